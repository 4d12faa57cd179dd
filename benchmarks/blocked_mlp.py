"""Does a blocked MLP pay on this machine? The value of a hybrid field at 2^20 random points (in locality order,
as the bulk paths visit them) two ways, in one run:

- fused: the bulk value kernel, encoding and MLP per point in one Warp kernel (what ``warpfields.ops.value`` runs);
- blocked: a Warp kernel writes the encoding's features, then the layers run as matrix products through
  torch's BLAS on blocks of ``--block`` points (``torch.set_num_threads(--threads)``).

    python benchmarks/blocked_mlp.py [--field FIELD] [--threads 2] [--block 16384] [--reps 5]

Also prints each half of the blocked path on its own (encoding alone; the layers alone on ready features) and the
largest difference between the two paths' values. Without ``--field``, a freshly initialised field of the
``fast`` preset.
"""

import argparse
import os
import statistics
import time

import numpy as np
import torch
import warp as wp

from warpfields import parallel
from warpfields.fields.hybrid import HybridField, generated, preset_config
from warpfields.io.fieldfile import load_field


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--field", help="a hybrid field file (default: a fresh field of the fast preset)")
    parser.add_argument("--n", type=int, default=1 << 20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--block", type=int, default=16384, help="points per matrix product")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    os.environ["WARPFIELDS_THREADS"] = str(args.threads)
    torch.set_num_threads(args.threads)
    wp.config.quiet = True
    field = load_field(args.field) if args.field else HybridField(preset_config("fast"))
    config, device = field.config, wp.get_device("cpu")
    gen = generated(config)
    struct = field.warp(device)

    @wp.kernel(enable_backward=False, module="unique", module_options=parallel.bulk_module_options(max_unroll=16))
    def encode_kernel(start: int, field: gen.struct, xs: wp.array(dtype=wp.vec3), out: wp.array(dtype=gen.vec_in)):
        i = start + wp.tid()
        out[i] = gen.encoding.encode(field, xs[i])

    points = np.random.default_rng(1).uniform(-1.0, 1.0, (args.n, 3)).astype(np.float32)
    xs = wp.array(points, dtype=wp.vec3, device=device)
    ordered = parallel.in_order(xs, parallel.locality_order(xs))
    fused_out = wp.empty(args.n, dtype=float, device=device)
    features = wp.empty(args.n, dtype=gen.vec_in, device=device)
    feature_rows = wp.to_torch(features).view(args.n, config.n_inputs)
    p = {name: torch.from_numpy(array) for name, array in field.parameters.items()}
    H = config.hidden_width
    layers = [p["w_hidden"][(k - 1) * H : k * H] for k in range(1, config.hidden_layers)]
    blocked_out = torch.empty(args.n)
    hidden = [torch.empty(args.block, H) for _ in range(2)]

    def fused():
        parallel.launch(gen.value_kernel, args.n, [struct, ordered, fused_out], device)

    def encode():
        parallel.launch(encode_kernel, args.n, [struct, ordered, features], device)

    def layers_only():
        for begin in range(0, args.n, args.block):
            rows = feature_rows[begin : begin + args.block]
            a, b = hidden[0][: len(rows)], hidden[1][: len(rows)]
            torch.addmm(p["b_hidden"][0], rows, p["w_in"], out=a).relu_()
            for k, weight in enumerate(layers, start=1):
                torch.addmm(p["b_hidden"][k], a, weight, out=b).relu_()
                a, b = b, a
            torch.addmv(p["b_out"].expand(len(rows)), a, p["w_out"][0], out=blocked_out[begin : begin + len(rows)])

    def blocked():
        encode()
        layers_only()

    runs = {"fused": fused, "blocked": blocked, "encoding alone": encode, "layers alone": layers_only}
    for run in runs.values():
        run()  # compile and warm
    seconds = {name: [] for name in runs}
    for _ in range(args.reps):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    layout = f"{config.n_inputs}-{H}x{config.hidden_layers}-1 MLP"
    print(f"{layout}, {args.n} points, {args.threads} threads, median of {args.reps}")
    for name, times in seconds.items():
        print(f"{name:16s} {1e9 * statistics.median(times) / args.n:7.1f} ns per point")
    difference = np.abs(fused_out.numpy() - blocked_out.numpy()).max()
    print(f"blocked over fused time: {statistics.median(seconds['blocked']) / statistics.median(seconds['fused']):.2f}")
    print(f"largest difference between the two: {difference:.2e}")


if __name__ == "__main__":
    main()
