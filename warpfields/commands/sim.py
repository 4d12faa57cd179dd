"""``warpfields sim SCENE``: run a simulation on a field and write it to a USD stage.

Scenes are entries of ``SCENES``; a scene module adds itself with ``register_scene(name,
help, add_arguments, run)`` and gets the common options (field, operator, frames, dt,
seed, output) from ``add_common_arguments``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError


@dataclass(frozen=True)
class Scene:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


SCENES: dict[str, Scene] = {}


def register_scene(name: str, help: str, add_arguments, run) -> None:
    SCENES[name] = Scene(help, add_arguments, run)


def add_common_arguments(p: argparse.ArgumentParser, frames: int = 60, dt: float = 1.0 / 60.0) -> None:
    p.add_argument("--field", required=True, help="field file, or a built-in shape word ('sphere', 'torus')")
    p.add_argument("--method", default="polyfit", help="derivative operator: ad | fd | polyfit (default polyfit)")
    p.add_argument("--k", type=int, default=None, help="polyfit samples per query (default: the operator's)")
    p.add_argument("--sigma", type=float, default=None, help="polyfit sample spread (default: from the field's grid)")
    p.add_argument("--stencil", default="cubature", help="polyfit stencil: gauss | antithetic | cubature")
    p.add_argument("--h", type=float, default=None, help="fd step (default: from the field's grid)")
    p.add_argument("--frames", type=int, default=frames, help=f"frames to simulate (default {frames})")
    p.add_argument("--substeps", type=int, default=10, help="steps per frame (default 10)")
    p.add_argument("--dt", type=float, default=dt, help=f"frame duration in seconds (default {dt:.6g}); fps = 1/dt")
    p.add_argument("--seed", type=int, default=0, help="seed of the scene and of the polyfit sampling (default 0)")
    p.add_argument("--out", required=True, help="output USD stage (.usd, .usda or .usdc)")


def check_common_arguments(args: argparse.Namespace) -> None:
    """Validate the options every scene shares, before any work."""
    from sims.base import check_count, check_dt
    from warpfields.io.atomic import check_output_path
    from warpfields.io.usd import STAGE_EXTENSIONS

    check_dt(args.dt)
    check_count(args.frames, "frames")
    check_count(args.substeps, "substeps")
    if Path(args.out).suffix.lower() not in STAGE_EXTENSIONS:
        raise InputError(f"--out {args.out!r}: expected a USD stage ending in one of {STAGE_EXTENSIONS}")
    check_output_path(args.out, "--out")


def operator_from_args(args: argparse.Namespace, field, quantity: str):
    """The ``OperatorSpec`` the options describe, checked for ``quantity`` on ``field``."""
    from warpfields.ops import DEFAULT_K, OperatorSpec

    spec = OperatorSpec.for_field(
        field,
        method=args.method,
        k=DEFAULT_K if args.k is None else args.k,
        sigma=args.sigma,
        h=args.h,
        stencil=args.stencil,
        seed=args.seed,
    )
    spec.check(quantity, field.dim)
    return spec


def settings(args: argparse.Namespace) -> dict:
    """The run's options, for the stage's metadata."""
    return {key: value for key, value in vars(args).items() if key != "func"}


# --- collision -----------------------------------------------------------------------

MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off", ".usd", ".usda", ".usdc", ".usdz")


def load_reference(source: str, field):
    """The ground truth for ``field``: a mesh (as a mesh SDF in the field's normalisation), a field file or a shape."""
    from warpfields.io.fieldfile import load_field

    if source == "bunny" or Path(source).suffix.lower() in MESH_SUFFIXES:
        from warpfields.fields.mesh_sdf import MeshSDF
        from warpfields.io.mesh import load_mesh

        return MeshSDF(load_mesh(source).normalized(field.normalization), field.normalization)
    return load_field(source)


def _add_collision_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--particles", type=int, default=1000, help="number of particles (default 1000)")
    p.add_argument("--radius", type=float, default=None, help="particle radius (default: 0.01 in field units)")
    p.add_argument("--restitution", type=float, default=0.5, help="coefficient of restitution in [0, 1] (default 0.5)")
    p.add_argument("--friction", type=float, default=0.3, help="Coulomb friction coefficient (default 0.3)")
    p.add_argument("--particle-contact", action="store_true", help="particle-particle contact through a hash grid")
    p.add_argument(
        "--reference",
        default=None,
        help="ground truth: mesh file or 'bunny', field file, or shape word (default: the field itself if analytic)",
    )
    p.add_argument("--mesh-resolution", type=int, default=96, help="marching-cubes grid of the collider (default 96)")


def _run_collision(args: argparse.Namespace) -> int:
    from sims.base import check_count, print_summary, surface_mesh
    from sims.collision import CollisionScene, compare_runs
    from warpfields.io.fieldfile import load_field
    from warpfields.io.usd import StageRecorder

    check_common_arguments(args)
    check_count(args.particles, "--particles")
    check_count(args.mesh_resolution, "--mesh-resolution", 2)
    field = load_field(args.field)
    if field.dim != 3:
        raise InputError(f"--field {args.field!r}: the collision scene needs a 3D field, got a {field.dim}D one")
    spec = operator_from_args(args, field, "normal")
    if args.reference is not None:
        reference = load_reference(args.reference, field)
    else:
        reference = field if field.kind == "analytic" else None
    scene = CollisionScene(
        field,
        spec,
        reference_field=reference,
        particles=args.particles,
        radius=args.radius,
        restitution=args.restitution,
        friction=args.friction,
        seed=args.seed,
        substeps=args.substeps,
        particle_contact=args.particle_contact,
        device=args.device,
    )
    vertices, faces = surface_mesh(field, args.mesh_resolution, args.device)
    rows = [("field", args.field), ("method", spec.method), ("particles", scene.particles), ("radius", scene.radius)]
    with StageRecorder(args.out, fps=1.0 / args.dt, metadata={"scene": "collision", **settings(args)}) as recorder:
        recorder.add_static_mesh("collider", vertices, faces)
        scene.run(args.frames, args.dt, recorder=recorder)
        rows += [("steps", scene.steps), ("ms per step", 1e3 * scene.seconds_per_step)]
        if reference is not None:
            truth = scene.reference()
            truth.run(args.frames, args.dt)
            metrics = compare_runs(scene, truth)
            recorder.set_metadata({"metrics": metrics})
            rows += [("reference", args.reference or args.field), ("ref. ms per step", 1e3 * truth.seconds_per_step)]
            rows += list(metrics.items())
    rows.append(("stage", str(args.out)))
    print_summary("collision", rows)
    if reference is None:
        print("(no reference: pass --reference MESH_OR_FIELD for divergence metrics)")
    return 0


register_scene(
    "collision",
    "particles with restitution and friction falling onto the field as a collider",
    _add_collision_arguments,
    _run_collision,
)


def register(subparsers) -> None:
    from . import _sim_level_set  # noqa: F401  (registers curvature-flow and advection)

    p = subparsers.add_parser("sim", help="run a simulation on a field and write a USD stage")
    scenes = p.add_subparsers(dest="scene", required=True, metavar="SCENE")
    for name, scene in SCENES.items():
        sp = scenes.add_parser(name, help=scene.help)
        add_common_arguments(sp)
        scene.add_arguments(sp)
        sp.set_defaults(func=scene.run)


__all__ = ["SCENES", "Scene", "add_common_arguments", "check_common_arguments", "operator_from_args", "register_scene"]
