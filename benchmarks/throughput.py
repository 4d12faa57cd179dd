"""Throughput of the hybrid field and the operators on the current device, with the baselines.

    python benchmarks/throughput.py [--field F.wfield] [--points N] [--json OUT]

Figures: value and value + exact gradient evaluations/s with 1 and all CPU threads, the
same field in vectorised torch (float32), fused polyfit normal and mean-curvature queries/s
at k = 16 and 64 with their cost relative to k value evaluations, training steps/s, and a
paper-style torch polyfit (materialised offsets, one batched least-squares solve) at k = 64
with its extra peak memory against the fused operator's.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import hybrid_reference  # noqa: E402

from warpfields import ops  # noqa: E402
from warpfields.fields.hybrid import HybridField, preset_config  # noqa: E402
from warpfields.io.fieldfile import load_field  # noqa: E402
from warpfields.parallel import cpu_threads  # noqa: E402


def best_time(fn, repeats: int = 3) -> float:
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def with_threads(threads: int, fn):
    os.environ["WARPFIELDS_THREADS"] = str(threads)
    try:
        return fn()
    finally:
        del os.environ["WARPFIELDS_THREADS"]


def paper_polyfit(field_path: str, n: int, k: int, sigma: float) -> dict:
    """Runs in a child process so that its peak resident memory is its own."""
    code = f"""
import resource, sys, time, json, torch
sys.path.insert(0, {str(Path(__file__).resolve().parents[1] / "tests")!r})
import hybrid_reference
from warpfields.io.fieldfile import load_field
field = load_field({field_path!r})
params = {{k: torch.tensor(v) for k, v in field.parameters.items()}}
x = torch.rand({n}, 3) * 1.6 - 0.8
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
with torch.no_grad():
    d = torch.randn({n}, {k}, 3) * {sigma}
    d = d - d.mean(dim=1, keepdim=True)
    y = hybrid_reference.forward(field.config, params, (x[:, None, :] + d).reshape(-1, 3)).reshape({n}, {k})
    a = torch.cat([torch.ones({n}, {k}, 1), d], dim=2)
    coef = torch.linalg.lstsq(a, y[..., None]).solution
normals = torch.nn.functional.normalize(coef[:, 1:4, 0], dim=1)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": seconds, "extra_peak_bytes": (peak - base) * 1024}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--field", default=None, help="a fast-preset field file (default: a random fast field)")
    parser.add_argument("--points", type=int, default=1 << 20)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    if args.field is None:
        field = HybridField(preset_config("fast"), seed=0)
        args.field = "/tmp/warpfields-bench-field.wfield"
        from warpfields.io.fieldfile import save_field

        save_field(field, args.field)
    field = load_field(args.field)
    n = args.points
    rng = np.random.default_rng(0)
    points = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
    figures = {"points": n, "threads": cpu_threads()}

    for threads in (1, cpu_threads()):
        value = with_threads(threads, lambda: best_time(lambda: ops.value(field, points)))
        gradient = with_threads(threads, lambda: best_time(lambda: ops.gradient(field, points, method="ad")))
        figures[f"value_per_s_{threads}t"] = n / value
        figures[f"value_gradient_per_s_{threads}t"] = n / gradient

    params = {k: torch.tensor(v) for k, v in field.parameters.items()}
    x = torch.tensor(points[: n // 4])
    with torch.no_grad():
        torch_value = best_time(lambda: hybrid_reference.forward(field.config, params, x), repeats=2)
    figures["torch_value_per_s"] = len(x) / torch_value
    figures["value_speedup_vs_torch"] = figures[f"value_per_s_{cpu_threads()}t"] / figures["torch_value_per_s"]

    value_time = n / figures[f"value_per_s_{cpu_threads()}t"]
    for k in (16, 64):
        queries = points[: n // k]
        for quantity in ("normal", "mean_curvature"):
            spec = ops.OperatorSpec.for_field(field, k=k)
            t = best_time(lambda spec=spec, quantity=quantity: ops.query(field, queries, quantity, spec))
            figures[f"polyfit_{quantity}_k{k}_per_s"] = len(queries) / t
            figures[f"polyfit_{quantity}_k{k}_cost_vs_k_values"] = t / (value_time * len(queries) * k / n)

    from warpfields.torch import HybridModule

    module = HybridModule(field)
    batch = torch.tensor(points[: 1 << 15])
    target = torch.zeros(len(batch))

    def train_step():
        loss = (module(batch) - target).abs().mean()
        loss.backward()

    figures["train_steps_per_s_batch32768"] = 1.0 / best_time(train_step)

    paper_n = 100_000
    sigma = ops.default_sigma(field)
    paper = paper_polyfit(args.field, paper_n, 64, sigma)
    queries = points[:paper_n] * 0.8
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fused = best_time(lambda: ops.normal(field, queries, k=64, stencil="gauss"))
    fused_extra = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base, 0) * 1024
    fused_bytes = max(fused_extra, queries.nbytes * 2)
    figures["paper_torch_polyfit_k64_per_s"] = paper_n / paper["seconds"]
    figures["paper_torch_polyfit_k64_extra_peak_bytes"] = paper["extra_peak_bytes"]
    figures["fused_polyfit_gauss_k64_per_s"] = paper_n / fused
    figures["fused_polyfit_k64_extra_bytes"] = fused_bytes
    figures["fused_vs_paper_speedup"] = (
        figures["fused_polyfit_gauss_k64_per_s"] / figures["paper_torch_polyfit_k64_per_s"]
    )
    figures["fused_vs_paper_memory_ratio"] = paper["extra_peak_bytes"] / fused_bytes

    for key, value in figures.items():
        print(f"{key:45s} {value:.4g}" if isinstance(value, float) else f"{key:45s} {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
