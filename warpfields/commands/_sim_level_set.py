"""The level-set scenes of ``warpfields sim``: ``curvature-flow`` and ``advection`` (state: a hybrid field)."""

from __future__ import annotations

import argparse
import math

from ..errors import InputError
from ._sim_common import check_common_arguments, operator_from_args, settings

# Per sample: the band sampler's candidates, the target, the refit's linearisation (a feature vector) and the
# advection's jittered copy; under 1 KiB with the widest encodings.
BAND_SAMPLE_BYTES = 1024
CURVATURE_FLOW_HELP = "mean curvature flow of the field's zero level set"
ADVECTION_HELP = "the field advected by a rotation or a reversible deformation (one turn / one period over the run)"


def add_level_set_arguments(p: argparse.ArgumentParser) -> None:
    # The refit's defaults are the scene's own (the classes' keyword defaults): only given values are passed.
    p.add_argument(
        "--points", type=int, default=None, help="band samples per step (curvature flow 4096; 2048 on `tiny` fields)"
    )
    p.add_argument("--band", type=float, default=0.1, help="half width of the sampled band, field units (default 0.1)")
    p.add_argument("--refit-steps", type=int, default=None, help="Adam steps per simulation step (curvature flow 20)")
    p.add_argument(
        "--refit-rounds",
        type=int,
        default=None,
        help="rounds of the refit per step, each linearising the decoder anew (curvature flow 10)",
    )
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate of the refit (curvature flow 5e-3)")
    p.add_argument(
        "--refit-resolution", type=int, default=None, help="finest grid level the refit changes (curvature flow 128)"
    )
    p.add_argument("--init", default="tiny", help="hybrid preset fitted first when --field is analytic (default tiny)")


def add_advection_arguments(p: argparse.ArgumentParser) -> None:
    add_level_set_arguments(p)
    p.add_argument("--velocity", default="rotation", help="rotation | deformation (default rotation)")
    p.add_argument("--axis", type=float, nargs=3, default=(0.0, 0.0, 1.0), help="rotation axis (default 0 0 1)")
    p.add_argument("--center", type=float, nargs="+", default=None, help="rotation centre (default the origin)")
    p.add_argument(
        "--scheme",
        default="characteristics",
        help="characteristics (values carried along the flow; refit defaults: 65536 points, batches of 8192 and "
        "400 steps in 32 rounds, on `tiny` fields 32768, 2048 and 16 rounds; band 0.05, lr 1e-2, resolution 128) | "
        "taylor (second-order step with the operators' gradient and Hessian; curvature-flow refit defaults)",
    )
    p.add_argument("--batch", type=int, default=None, help="samples per refit step (default: the scheme's)")


def _state_field(args: argparse.Namespace):
    """The hybrid field the scene evolves, and the analytic shape it was fitted to (or None)."""
    from warpfields.fields.hybrid import HybridField, preset_config
    from warpfields.io.fieldfile import load_field

    field = load_field(args.field)
    if isinstance(field, HybridField):
        return field, None
    if field.kind != "analytic":
        raise InputError(f"--field {args.field!r}: expected a hybrid field file or a shape word, got a {field.kind}")
    from warpfields.torch.train import settings_for, train_field

    hybrid, _ = train_field(
        field, preset_config(args.init, dim=field.dim), settings_for(args.init), args.seed, args.device
    )
    return hybrid, field


def _check_arguments(args: argparse.Namespace) -> None:
    from warpfields.runtime import check_memory

    check_common_arguments(args)
    for name, samples in (("--points", args.points), ("--batch", getattr(args, "batch", None))):
        if samples is not None:
            check_memory(name, samples, BAND_SAMPLE_BYTES, args.device)


def _common(args: argparse.Namespace) -> dict:
    given = {
        "points": args.points,
        "batch": getattr(args, "batch", None),
        "refit_steps": args.refit_steps,
        "refit_rounds": args.refit_rounds,
        "learning_rate": args.lr,
        "refit_resolution": args.refit_resolution,
    }
    common = {"band_width": args.band, "seed": args.seed, "device": args.device}
    return {**common, **{name: value for name, value in given.items() if value is not None}}


def _run(args, scene, rows, metrics=None) -> int:
    from warpfields.io.usd import StageRecorder
    from warpfields.sims.base import print_summary

    scene.substeps = args.substeps
    with StageRecorder(args.out, fps=1.0 / args.dt, metadata={"scene": scene.name, **settings(args)}) as recorder:
        scene.run(args.frames, args.dt, recorder=recorder)
        rows += [("steps", scene.steps), ("time", scene.time), ("ms per step", 1e3 * scene.seconds_per_step)]
        rows += [("last refit loss", scene.last_loss)]
        extra = metrics() if metrics else {}
        recorder.set_metadata({"metrics": extra})
    print_summary(scene.name, rows + list(extra.items()) + [("stage", str(args.out))])
    return 0


def run_curvature_flow(args: argparse.Namespace) -> int:
    from warpfields.sims.curvature_flow import CurvatureFlow, law_radius

    _check_arguments(args)
    field, _ = _state_field(args)
    spec = operator_from_args(args, field, "mean_curvature")
    scene = CurvatureFlow(field, spec, **_common(args))
    r0 = scene.radius()
    rows = [("field", args.field), ("method", spec.method), ("initial radius", r0)]

    def metrics():
        radius = scene.radius()
        law = float(law_radius(r0, scene.time, field.dim))
        return {
            "radius": radius,
            "law radius (sphere/circle)": law,
            "relative error": abs(radius - law) / max(law, 1e-12),
        }

    return _run(args, scene, rows, metrics)


def run_advection(args: argparse.Namespace) -> int:
    from warpfields.sims.advection import Advection

    _check_arguments(args)
    field, shape = _state_field(args)
    spec = operator_from_args(args, field, "hessian")
    total = args.frames * args.dt
    center = args.center or (0.0,) * field.dim
    scene = Advection(
        field,
        spec,
        velocity=args.velocity,
        axis=args.axis,
        center=center,
        omega=2.0 * math.pi / total,
        period=total,
        scheme=args.scheme,
        **_common(args),
    )
    rows = [("field", args.field), ("method", spec.method), ("velocity", args.velocity)]
    return _run(args, scene, rows, (lambda: scene.metrics(shape)) if shape is not None else None)
