"""Time per step of the level-set scenes on a field file, with each scene's default settings: the advection
(characteristics, one turn in 32 steps about the z axis) and the curvature flow (dt 0.002).

    python benchmarks/level_set_steps.py FIELD [--scene advection|curvature-flow] [--steps 3] [--method polyfit]

Uses only the scenes' public API (construct, ``step``, ``step_seconds``), so the same script times older
versions of the code as well. Prints the set-up time (the state's first refit and compiling kernels) and,
leaving out the first step (it compiles the step's kernels), the median wall time per step and the mean
process CPU time per step: on a shared machine other jobs inflate the wall time, the CPU time (all
threads together) much less.
"""

import argparse
import math
import time

import numpy as np

from warpfields.io.fieldfile import load_field
from warpfields.ops import OperatorSpec
from warpfields.sims.advection import Advection
from warpfields.sims.curvature_flow import CurvatureFlow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("field", help="hybrid field file")
    parser.add_argument("--scene", default="advection", choices=("advection", "curvature-flow"))
    parser.add_argument("--steps", type=int, default=3, help="timed steps after the first (default 3)")
    parser.add_argument("--method", default="polyfit", help="the operators' method (default polyfit)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    field = load_field(args.field)
    spec = OperatorSpec.for_field(field, method=args.method)
    wall, cpu = time.perf_counter(), time.process_time()
    if args.scene == "advection":
        sim = Advection(field, spec, axis=(0.0, 0.0, 1.0), omega=2.0 * math.pi, device=args.device)
        dt = 1.0 / 32.0
    else:
        sim = CurvatureFlow(field, spec, device=args.device)
        dt = 0.002
    print(f"set-up: {time.perf_counter() - wall:.1f} s wall, {time.process_time() - cpu:.1f} s CPU", flush=True)
    cpu_seconds = []
    for k in range(args.steps + 1):
        start = time.process_time()
        sim.step(dt)
        cpu_seconds.append(time.process_time() - start)
        print(f"step {k}: {sim.step_seconds[-1]:.3f} s wall, {cpu_seconds[-1]:.3f} s CPU", flush=True)
    median_wall = 1e3 * float(np.median(sim.step_seconds[1:]))
    mean_cpu = 1e3 * float(np.mean(cpu_seconds[1:]))
    print(f"{args.scene}, {args.field}: {median_wall:.0f} ms wall (median), {mean_cpu:.0f} ms CPU (mean) per step")


if __name__ == "__main__":
    main()
