"""The Newton scenes of ``warpfields sim``: ``cloth`` and ``pour``, the field as a collider in a Newton model."""

from __future__ import annotations

import argparse

from ..errors import InputError
from ._sim_common import check_common_arguments, operator_from_args, settings

CLOTH_HELP = "a cloth sheet dropped onto the field (Newton), settling on it and the ground"
POUR_HELP = "particles poured onto the field (Newton, particle-particle contacts), piling into a heap"
# Three seconds let the matter settle; each solver takes its own steps per frame unless --substeps is given.
COMMON = {"frames": 180, "substeps": None}


def _add_shared_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--solver", default="xpbd", help="Newton solver: xpbd | semi-implicit (default xpbd)")
    p.add_argument("--radius", type=float, default=None, help="particle radius (default: 0.01 in field units)")
    p.add_argument("--margin", type=float, default=None, help="contact band beyond the radius (default 0.01)")
    p.add_argument("--friction", type=float, default=None, help="Coulomb friction of every contact (default 1.0)")
    p.add_argument(
        "--reference",
        default=None,
        help="mesh the field was trained from (file or 'bunny'): the same scene with Newton's mesh collider, compared",
    )
    p.add_argument("--mesh-resolution", type=int, default=96, help="marching-cubes grid of the field (default 96)")


def add_cloth_arguments(p: argparse.ArgumentParser) -> None:
    _add_shared_arguments(p)
    p.add_argument("--resolution", type=int, default=None, help="cloth cells per side (default 40)")
    p.add_argument("--coverage", type=float, default=None, help="sheet side over the object's width (default 2.4)")


def add_pour_arguments(p: argparse.ArgumentParser) -> None:
    _add_shared_arguments(p)
    p.add_argument("--particles", type=int, default=None, help="particles poured (default 1500)")
    p.add_argument("--width", type=int, default=None, help="particles across the poured column (default 8)")


def _given(args: argparse.Namespace, names: tuple[str, ...]) -> dict:
    """The scene's keyword arguments the user gave (the rest keep the scene's defaults)."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _require_newton() -> None:
    try:
        import newton  # noqa: F401
    except ImportError:
        raise InputError("the Newton scenes need Newton: pip install 'warpfields[newton]'") from None


def run_cloth(args: argparse.Namespace) -> int:
    _require_newton()
    from warpfields.sims.cloth import ClothScene

    return _run(args, ClothScene, _given(args, ("resolution", "coverage")))


def run_pour(args: argparse.Namespace) -> int:
    _require_newton()
    from warpfields.sims.pour import PourScene

    return _run(args, PourScene, _given(args, ("particles", "width")))


def _run(args: argparse.Namespace, scene_type, scene_arguments: dict) -> int:
    from warpfields.io.fieldfile import load_field
    from warpfields.io.mesh import load_mesh
    from warpfields.io.usd import StageRecorder
    from warpfields.sims.base import check_count, print_summary, surface_mesh
    from warpfields.sims.newton_scene import METRICS, DepthGauge, compare, ground_quad, run_frames, scene_metrics

    check_common_arguments(args)
    check_count(args.mesh_resolution, "--mesh-resolution", 2)
    field = load_field(args.field)
    if field.dim != 3:
        raise InputError(f"--field {args.field!r}: a Newton scene needs a 3D field, got a {field.dim}D one")
    spec = operator_from_args(args, field, "normal")
    mesh = load_mesh(args.reference) if args.reference is not None else None
    scene = scene_type(
        field,
        spec,
        seed=args.seed,
        device=args.device,
        **_given(args, ("solver", "substeps", "radius", "margin", "friction")),
        **scene_arguments,
    )
    surface = surface_mesh(field, args.mesh_resolution, args.device)
    metadata = {"scene": scene_type.name, **settings(args)}
    with StageRecorder(args.out, fps=1.0 / args.dt, metadata=metadata) as recorder:
        recorder.add_static_mesh("field", *surface)
        recorder.add_static_mesh("ground", *ground_quad(scene.bounds))
        runs = [("field", scene, f"{spec.method} on {args.field}", "")]
        if mesh is not None:
            recorder.add_static_mesh("reference_mesh", mesh.vertices, mesh.faces)
            runs.append(("reference", scene.reference(mesh), f"Newton mesh collider of {args.reference}", "_reference"))
        gauges = {}
        for name, run, label, suffix in runs:
            print(f"{scene_type.name}: {label}, {run.model.particle_count} particles", flush=True)
            gauges[name] = DepthGauge(mesh, run.radius, args.device) if mesh is not None else None
            run_frames(run, args.frames, args.dt, gauges[name], recorder, suffix=suffix)
        metrics = {name: scene_metrics(run, gauges[name]) for name, run, _, _ in runs}
        if mesh is not None:
            metrics["field"].update(compare(scene, runs[1][1]))
        recorder.set_metadata({"metrics": metrics})
    headers = ("metric", *(name for name, *_ in runs))
    keys = sorted({key for values in metrics.values() for key in values}, key=METRICS.index)
    rows = [(key, *(metrics[name].get(key, "") for name, *_ in runs)) for key in keys]
    print_summary(f"{scene_type.name}: {args.field} ({spec.method}), {scene.steps} steps -> {args.out}", rows, headers)
    if mesh is None:
        print("(no reference: pass --reference MESH for the comparison with Newton's mesh collider)")
    return 0
