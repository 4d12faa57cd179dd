"""Options every ``warpfields sim`` scene shares (field, operator, frames, dt, seed, output), and their checks."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from ..io.mesh import TRIMESH_EXTENSIONS, USD_EXTENSIONS
from ..ops.host import METHODS, STENCILS


def add_common_arguments(
    p: argparse.ArgumentParser, frames: int = 60, dt: float = 1.0 / 60.0, substeps: int | None = 10
) -> None:
    """The shared options; ``substeps=None`` leaves the steps per frame to the scene (its solver's)."""
    p.add_argument("--field", required=True, help="field file, or a built-in shape word ('sphere', 'torus')")
    p.add_argument("--method", default="polyfit", help=f"derivative operator: {' | '.join(METHODS)} (default polyfit)")
    p.add_argument("--k", type=int, default=None, help="polyfit samples per query (default: the operator's)")
    p.add_argument("--sigma", type=float, default=None, help="polyfit sample spread (default: from the field's grid)")
    p.add_argument("--stencil", default="cubature", help=f"polyfit stencil: {' | '.join(STENCILS)} (default cubature)")
    p.add_argument("--h", type=float, default=None, help="fd step (default: from the field's grid)")
    p.add_argument("--frames", type=int, default=frames, help=f"frames to simulate (default {frames})")
    substeps_default = "the solver's" if substeps is None else substeps
    p.add_argument("--substeps", type=int, default=substeps, help=f"steps per frame (default {substeps_default})")
    p.add_argument("--dt", type=float, default=dt, help=f"frame duration in seconds (default {dt:.6g}); fps = 1/dt")
    p.add_argument("--seed", type=int, default=0, help="seed of the scene and of the polyfit sampling (default 0)")
    p.add_argument("--out", required=True, help="output USD stage (.usd, .usda or .usdc)")


def check_common_arguments(args: argparse.Namespace) -> None:
    """Validate the options every scene shares, before any work."""
    from warpfields.io.atomic import check_output_path
    from warpfields.io.usd import STAGE_EXTENSIONS
    from warpfields.sims.base import check_count, check_dt

    check_dt(args.dt)
    check_count(args.frames, "frames")
    if args.substeps is not None:
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


def load_reference(source: str, field):
    """The ground truth for ``field``: a mesh (as a mesh SDF in the field's normalisation), a field file or a shape."""
    from warpfields.io.fieldfile import load_field

    if source == "bunny" or Path(source).suffix.lower() in TRIMESH_EXTENSIONS | USD_EXTENSIONS:
        from warpfields.fields.mesh_sdf import MeshSDF
        from warpfields.io.mesh import load_mesh

        return MeshSDF(load_mesh(source).normalized(field.normalization), field.normalization)
    return load_field(source)
