"""``warpfields sim collision``: particles with restitution and friction falling onto the field."""

from __future__ import annotations

import argparse

import numpy as np

from ..errors import InputError
from ..targets import load_reference
from ._sim_common import check_common_arguments, operator_from_args, settings

HELP = "particles with restitution and friction falling onto the field as a collider"


def add_arguments(p: argparse.ArgumentParser) -> None:
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
    ground = p.add_mutually_exclusive_group()
    ground.add_argument(
        "--ground", type=float, default=None, help="height (y) of the ground plane (default: the bottom of the object)"
    )
    ground.add_argument("--no-ground", action="store_true", help="no ground: particles that miss the object fall on")


def run(args: argparse.Namespace) -> int:
    from warpfields.io.fieldfile import load_field
    from warpfields.io.usd import StageRecorder
    from warpfields.sims.base import check_count, print_summary, surface_mesh
    from warpfields.sims.collision import CollisionScene, compare_runs

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
    vertices, faces = surface_mesh(field, args.mesh_resolution, args.device)
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    ground = None if args.no_ground else low[1] if args.ground is None else args.ground
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
        ground=ground,
        device=args.device,
    )
    rows = [("field", args.field), ("method", spec.method), ("particles", scene.particles), ("radius", scene.radius)]
    rows.append(("ground", "none" if ground is None else ground))
    metadata = {"scene": "collision", **settings(args), "ground": ground}
    with StageRecorder(args.out, fps=1.0 / args.dt, metadata=metadata) as recorder:
        recorder.add_static_mesh("collider", vertices, faces)
        if ground is not None:
            recorder.add_static_mesh("ground", *ground_quad(low, high, ground))
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


def ground_quad(low, high, height: float) -> tuple[np.ndarray, np.ndarray]:
    """A square of the ground at ``height``, centred under the box [low, high], three times its horizontal size."""
    center = (np.asarray(low) + np.asarray(high)) / 2
    half = 1.5 * float(max(high[0] - low[0], high[2] - low[2]))
    corners = [(-1, -1), (-1, 1), (1, 1), (1, -1)]
    vertices = np.array([[center[0] + a * half, height, center[2] + b * half] for a, b in corners])
    return vertices, np.array([[0, 1, 2, 3]])
