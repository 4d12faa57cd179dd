"""Level-set simulations on a hybrid field: curvature flow of a sphere against R^2 = R0^2 - 4t, and
one full rotation of an off-centre sphere (the axis misses it) and of the bunny, polyfit beside ad.

    python benchmarks/sims_level_set.py [--config tiny|fast] [--dt 0.002] [--rotation-steps 32]
        [--sphere FIELD --k K --sigma S --stencil gauss --no-advection]
        [--scheme characteristics|taylor] [--batch B] [--points P] [--bunny] [--no-curvature-flow]

The characteristics scheme's step reads no derivative, so it runs once per shape and the state's normals
after the turn are measured with both methods; the taylor scheme runs once per method. Each table gives
the step's wall time (median, and the process's CPU time per step, which other jobs on the machine
inflate less) next to the fidelity; the curvature flow also prints its error after every step. Points and
batches default to the scenes' own, which depend on the field's levels.
"""

from __future__ import annotations

import argparse
import itertools
import math
import time

import numpy as np
from tqdm import tqdm

import warpfields
from warpfields.fields.hybrid import preset_config
from warpfields.io.fieldfile import load_field
from warpfields.ops import OperatorSpec
from warpfields.ops.host import DEFAULT_K
from warpfields.sims.advection import Advection
from warpfields.sims.base import print_summary
from warpfields.sims.curvature_flow import CurvatureFlow, collapse_time, law_radius
from warpfields.targets import load_target
from warpfields.torch.train import settings_for, train_field

METHODS = ("polyfit", "ad")


class StepClock:
    """The wall time of each step (the scene's own) and the process's CPU time of each."""

    def __init__(self, sim):
        self.sim, self.cpu = sim, []

    def step(self, dt: float) -> None:
        start = time.process_time()
        self.sim.step(dt)
        self.cpu.append(time.process_time() - start)

    def figures(self) -> tuple[float, float]:
        """Median wall and mean CPU milliseconds per step, leaving out the first (it compiles kernels)."""
        first = 1 if len(self.cpu) > 1 else 0
        return 1e3 * float(np.median(self.sim.step_seconds[first:])), 1e3 * float(np.mean(self.cpu[first:]))


def curvature_flow(field, spec: OperatorSpec, dt: float, points: int, device) -> tuple:
    sim = CurvatureFlow(field, spec, points=points, device=device)
    clock = StepClock(sim)
    r0 = sim.radius()
    errors = []
    while sim.time + dt <= 0.7 * collapse_time(r0, 3) + 1e-12:
        clock.step(dt)
        law = float(law_radius(r0, sim.time, 3))
        errors.append((sim.radius() - law) / law)
    path = " ".join(f"{100 * e:+.2f}" for e in errors)
    print(f"{spec.method}: signed radius error per step (%): {path}", flush=True)
    worst = max(abs(e) for e in errors)
    return spec.method, r0, sim.steps, worst, abs(errors[-1]), *clock.figures()


def rotation(field, shape, name: str, scheme: str, method: str, steps: int, batch: int, device) -> tuple:
    spec = OperatorSpec.for_field(field, method=method)
    axis = (0.0, 0.0, 1.0)
    sim = Advection(field, spec, axis=axis, omega=2.0 * math.pi, scheme=scheme, batch=batch, device=device)
    clock = StepClock(sim)
    start = sim.metrics(shape)["IoU"]
    for _ in tqdm(range(steps), desc=f"{name}, {scheme}, {method}", leave=False):
        clock.step(1.0 / steps)
    end = sim.metrics(shape)
    surface = sim.surface(2048, sim.steps)
    normal_errors = [sim.normal_error(shape, surface, OperatorSpec.for_field(field, method=m)) for m in METHODS]
    figures = (start, end["IoU"], end["mean surface distance"], end["volume drift"], *normal_errors)
    return (name, method if scheme == "taylor" else "none", *figures, *clock.figures())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny", help="hybrid preset of the fields (default tiny)")
    parser.add_argument("--dt", type=float, default=0.002, help="curvature-flow time step (default 0.002)")
    parser.add_argument("--rotation-steps", type=int, default=32, help="steps of the full rotation (default 32)")
    parser.add_argument("--points", type=int, default=None, help="curvature flow: band points per step")
    parser.add_argument("--scheme", default="characteristics", help="advection scheme (default characteristics)")
    parser.add_argument("--batch", type=int, default=None, help="advection: samples per refit step")
    parser.add_argument("--bunny", action="store_true", help="also rotate a field of the bundled bunny")
    parser.add_argument(
        "--rotated", nargs="+", default=(), help="field files of the rotated shapes (default: fit them)"
    )
    parser.add_argument("--sphere", default=None, help="field file of a sphere of radius 0.5 (default: fit one)")
    parser.add_argument("--k", type=int, default=None, help="polyfit samples of the curvature flow (default 32)")
    parser.add_argument("--sigma", type=float, default=None, help="polyfit sigma of the curvature flow")
    parser.add_argument("--stencil", default="cubature", help="polyfit stencil of the curvature flow")
    parser.add_argument("--no-advection", action="store_true", help="run the curvature flow only")
    parser.add_argument("--no-curvature-flow", action="store_true", help="run the advection only")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    config = preset_config(args.config, dim=3)
    settings = settings_for(args.config)

    if not args.no_curvature_flow:
        curvature_flows(args, config, settings)
    if args.no_advection:
        return
    shapes = {"off-centre sphere": warpfields.sphere(0.3, center=(0.45, 0.0, 0.0))}
    if args.bunny:
        shapes["bunny"] = load_target("bunny")
    methods = METHODS if args.scheme == "taylor" else METHODS[:1]
    rows = []
    for (name, shape), path in itertools.zip_longest(shapes.items(), args.rotated[: len(shapes)]):
        field = load_field(path) if path else train_field(shape, config, settings, 0, args.device, progress=False)[0]
        rows += [
            rotation(field, shape, name, args.scheme, method, args.rotation_steps, args.batch, args.device)
            for method in methods
        ]
    headers = ("shape", "step's method", "IoU start", "IoU after 1 turn", "mean surf. dist", "volume drift")
    headers += tuple(f"normal err. {m} (deg)" for m in METHODS) + ("ms/step", "CPU ms/step")
    title = f"advection, {args.scheme}, {args.config} fields, one rotation in {args.rotation_steps} steps"
    print_summary(title, rows, headers)


def curvature_flows(args, config, settings) -> None:
    if args.sphere:
        field, name = load_field(args.sphere), args.sphere
    else:
        field, _ = train_field(warpfields.sphere(0.5), config, settings, 0, args.device, progress=False)
        name = args.config
    polyfit = OperatorSpec.for_field(field, k=args.k or DEFAULT_K, sigma=args.sigma, stencil=args.stencil)
    ad = OperatorSpec.for_field(field, method="ad")
    rows = [curvature_flow(field, spec, args.dt, args.points, args.device) for spec in (polyfit, ad)]
    headers = ("method", "R0", "steps", "max rel. err (to 70% T)", "final rel. err", "ms/step", "CPU ms/step")
    operator = f"polyfit {args.stencil} k {polyfit.k} sigma {polyfit.sigma:.3g}"
    print_summary(f"curvature flow, sphere, {name} field, dt {args.dt}, {operator}", rows, headers)


if __name__ == "__main__":
    main()
