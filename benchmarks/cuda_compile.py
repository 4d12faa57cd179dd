"""Time NVRTC's compilation of the operators' CUDA kernels, on any machine with Warp's wheel (NVRTC ships in
it; no GPU needed): the query kernel of a quantity and method for a field of a preset, and the curvature-flow
targets kernel (polyfit).

    python benchmarks/cuda_compile.py [--preset fast] [--arch 90] [--queries normal:polyfit value:ad ...]
        [--curvature-flow] [--optimization-level 3]

Each kernel compiles to PTX in a fresh directory (``warp.compile_aot_module``), so nothing comes from a cache.
``--optimization-level`` replaces the project's level (2, ``parallel.bulk_module_options``) for a baseline.
"""

import argparse
import tempfile
import time

import warp as wp

from warpfields import parallel
from warpfields.fields.hybrid import HybridField, preset_config
from warpfields.ops import OperatorSpec, host
from warpfields.sims import level_set


def compile_seconds(kernel: wp.Kernel, arch: int, level: int | None) -> float:
    if level is not None:
        kernel.module.options["optimization_level"] = level
    start = time.perf_counter()
    wp.compile_aot_module(kernel.module, arch=arch, module_dir=tempfile.mkdtemp(), use_ptx=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fast", help="hybrid preset of the field (default fast)")
    parser.add_argument("--arch", type=int, default=90, help="CUDA architecture (default 90)")
    parser.add_argument("--queries", nargs="*", default=["normal:polyfit"], help="QUANTITY:METHOD pairs")
    parser.add_argument("--curvature-flow", action="store_true", help="also the curvature-flow targets kernel")
    parser.add_argument("--optimization-level", type=int, default=None, help="NVRTC level instead of the project's")
    args = parser.parse_args()
    wp.config.quiet = True
    field = HybridField(preset_config(args.preset), seed=0)
    struct = field.warp("cpu")
    points = wp.zeros(16, dtype=wp.vec3)
    for pair in args.queries:
        quantity, method = pair.split(":")
        spec = OperatorSpec.for_field(field, method=method)
        out = wp.zeros(16, dtype=host._output_dtype(quantity, 3))
        order = wp.zeros(16, dtype=int)
        kernel = host._query_kernel(quantity, method, 3)
        kernel = parallel.specialize(kernel, [0, 0, struct, spec.warp(), points, order, out])
        seconds = compile_seconds(kernel, args.arch, args.optimization_level)
        print(f"{quantity} {method} query, {args.preset} field: {seconds:.1f} s", flush=True)
    if args.curvature_flow:
        values = wp.zeros(16, dtype=float)
        inputs = [0, struct, OperatorSpec.for_field(field).warp(), 0, 0.002, 2.0, 40.0, 0.1, points, values]
        kernel = parallel.specialize(level_set.curvature_targets_kernel("polyfit"), inputs)
        seconds = compile_seconds(kernel, args.arch, args.optimization_level)
        print(f"curvature-flow targets, {args.preset} field: {seconds:.1f} s")


if __name__ == "__main__":
    main()
