"""``warpfields sim collision``: particles with restitution and friction falling onto the field."""

from __future__ import annotations

import argparse

from ..errors import InputError
from ._sim_common import check_common_arguments, load_reference, operator_from_args, settings

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
