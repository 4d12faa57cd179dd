"""Throughput figures on the current device, each with the baseline measured in the same run.

``run_bench`` returns one flat dict (the keys are documented in BENCHMARKS.md):

- ``value_per_s_<t>t`` / ``value_gradient_per_s_<t>t``: field values and values with the
  exact gradient through the bulk path (locality order, sharded), on uniformly random
  points, with 1 and all CPU threads (on a GPU one figure, ``<t>`` = 1);
- ``torch_value_per_s``: the same field as vectorised float32 torch (``torch.reference``),
  and ``value_speedup_vs_torch``;
- ``polyfit_<quantity>_k<k>_per_s`` and ``..._cost_vs_k_values``: fused polyfit queries
  (cubature stencil) and their time over that of k value evaluations per query;
- ``train_steps_per_s`` (the preset's batch size) and ``train_preset_projected_seconds``
  (pool sampling on a sphere plus the preset's steps at that rate);
- ``paper_torch_polyfit_k64_per_s`` / ``..._extra_peak_bytes``: the paper's pipeline
  (materialised offsets, the torch field, one batched least squares) in a child process so
  its peak memory is its own, against ``fused_polyfit_gauss_k64_per_s`` / ``..._extra_bytes``;
  ``fused_vs_paper_speedup`` and ``fused_vs_paper_memory_ratio``;
- optional comparison with an external reference kernel (``DEFAULT_REFERENCE``, a stand-alone
  Warp kernel of a 3D hash-grid field kept outside the project, imported from its path at run
  time): ``reference_value_per_s_<t>t`` / ``reference_value_gradient_per_s_<t>t`` on the same
  points and threads, and ``value_vs_reference_<t>t`` / ``value_gradient_vs_reference_<t>t``
  (project over reference), the two measured alternately. Skipped with a note when the file
  is missing or the field is not a 3D hash grid with two hidden layers.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import warp as wp

from . import geometry, ops, parallel
from .errors import InputError
from .fields.hybrid import HybridField, preset_config
from .io.fieldfile import save_field
from .parallel import cpu_threads

# The reference kernel lives beside the repository, never in it.
DEFAULT_REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "tools" / "reference_kernel.py"


def best_seconds(fn, repeats: int = 3) -> float:
    """The fastest of ``repeats`` timed calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def _with_threads(threads: int, fn):
    previous = os.environ.get("WARPFIELDS_THREADS")
    os.environ["WARPFIELDS_THREADS"] = str(threads)
    try:
        return fn()
    finally:
        if previous is None:
            del os.environ["WARPFIELDS_THREADS"]
        else:
            os.environ["WARPFIELDS_THREADS"] = previous


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise OSError(f"/proc/self/status has no {field}")


def extra_peak_bytes(fn) -> int:
    """Peak resident memory above the current level while ``fn()`` runs (Linux: resets the peak first)."""
    Path("/proc/self/clear_refs").write_text("5")
    base = _status_bytes("VmRSS")
    fn()
    return max(_status_bytes("VmHWM") - base, 0)


def paper_polyfit_normals(config, params: dict, x, k: int, sigma: float, generator=None):
    """Normals the way the paper's code computes them (the baseline of ``fused_vs_paper_*``): ``k`` Gaussian
    offsets per point materialised and re-centred, the torch field evaluated at all of them, one batched least
    squares for the linear fits. ``x`` is an (n, 3) float32 tensor, ``params`` the field's tensors."""
    import torch

    from .torch import reference

    n = x.shape[0]
    with torch.no_grad():
        d = torch.randn(n, k, 3, generator=generator) * sigma
        d = d - d.mean(dim=1, keepdim=True)
        y = reference.forward(config, params, (x[:, None, :] + d).reshape(-1, 3)).reshape(n, k)
        a = torch.cat([torch.ones(n, k, 1), d], dim=2)
        coef = torch.linalg.lstsq(a, y[..., None]).solution
    return torch.nn.functional.normalize(coef[:, 1:4, 0], dim=1)


def _paper_polyfit_child(field_path: str, n: int, k: int, sigma: float) -> dict:
    """Runs in a child process of ``paper_polyfit``, so that the peak memory it measures is the pipeline's own."""
    import torch

    from .io.fieldfile import load_field

    field = load_field(field_path)
    params = {name: torch.tensor(value) for name, value in field.parameters.items()}
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, generator=generator) * 1.6 - 0.8
    started = time.perf_counter()
    extra = extra_peak_bytes(lambda: paper_polyfit_normals(field.config, params, x, k, sigma, generator))
    return {"seconds": time.perf_counter() - started, "extra_peak_bytes": extra}


def paper_polyfit(field_path: str, n: int, k: int, sigma: float) -> dict:
    """Seconds and extra peak resident bytes of ``paper_polyfit_normals`` for ``n`` points (CPU, own process)."""
    out = subprocess.run(
        [sys.executable, "-m", __name__, str(field_path), str(n), str(k), str(sigma)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _train_figures(field: HybridField, preset: str, train_steps: int, device, figures: dict, log) -> None:
    import torch

    from .fields.shapes import sphere
    from .torch import HybridModule
    from .torch.train import TRAIN_PRESETS, fit_module

    settings = TRAIN_PRESETS[preset]
    target = sphere()
    started = time.perf_counter()
    pool_x, pool_y = geometry.sample_training_points(
        target, settings.pool_size, 0, settings.surface_share, settings.near_share, settings.noise_scales, device
    )
    sampling_seconds = time.perf_counter() - started
    module = HybridModule(HybridField(field.config, seed=0), device=device)
    pool_x, pool_y = torch.from_numpy(pool_x).to(module.table.device), torch.from_numpy(pool_y).to(module.table.device)
    short = replace(settings, steps=train_steps)
    step_seconds = best_seconds(lambda: fit_module(module, pool_x, pool_y, short, 0, progress=False), 1) / train_steps
    figures["train_steps_per_s"] = 1.0 / step_seconds
    figures["train_preset_projected_seconds"] = sampling_seconds + settings.steps * step_seconds
    log(f"training {1.0 / step_seconds:.3g} steps/s (batch {settings.batch_size})")


def load_reference(path: Path):
    """The reference kernel module at ``path``, imported from there."""
    spec = importlib.util.spec_from_file_location("warpfields_bench_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _ReferenceSizes:
    """The reference kernel's configuration arguments for a hybrid config."""

    def __init__(self, config):
        self.levels, self.feat, self.log2t = config.levels, config.features, config.log2_table
        self.base_res, self.max_res, self.hidden = config.base_resolution, config.max_resolution, config.hidden_width


def _reference_runs(field, xs: np.ndarray, device, reference: Path, log):
    """``runs(threads)``: the reference kernel's value and value + gradient over ``xs`` as timed calls, or None
    (with a note) when there is no file at ``reference`` or it does not model ``field``."""
    if not reference.is_file():
        log(f"reference comparison skipped: no reference kernel at {reference} (--reference PATH)")
        return None
    config = field.config
    if not (config.dim == 3 and config.encoding == "hash" and config.hidden_layers == 2):
        log(f"reference comparison skipped: {reference.name} models 3D hash grids with two hidden layers")
        return None
    module = load_reference(reference)
    sizes = module.Cfg(_ReferenceSizes(config))
    kernels = module.build_warp(wp, sizes, None)
    struct = module.warp_field(wp, kernels, sizes, module.make_params(sizes))
    n = len(xs)
    points = wp.array(xs, dtype=wp.vec3, device=device)
    values = wp.empty(n, dtype=float, device=device)
    gradients = wp.empty(n, dtype=wp.vec3, device=device)
    log("compiling the reference kernels")

    def sharded(name: str, threads: int, outputs: list):
        # Disjoint ranges launched from as many Python threads, as the reference's own benchmark does.
        bounds = parallel.shard_bounds(n, parallel.shard_count(n, device, threads))

        def launch(s: int) -> None:
            count = bounds[s + 1] - bounds[s]
            wp.launch(kernels[name], count, inputs=[struct, points, bounds[s], *outputs], device=device)

        def run() -> None:
            with ThreadPoolExecutor(max_workers=len(bounds) - 1) as pool:
                list(pool.map(launch, range(len(bounds) - 1)))

        return run

    return lambda threads: {
        "reference_value": sharded("value", threads, [values]),
        "reference_value_gradient": sharded("value_grad", threads, [values, gradients]),
    }


def _alternating_best_seconds(runs: dict, repeats: int = 3) -> dict:
    """The fastest time of each of ``runs``, timed in turn ``repeats`` times after one warm-up round, so
    that drifts of the machine's load hit all of them alike."""
    for fn in runs.values():
        fn()
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, fn in runs.items():
            started = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def run_bench(
    field: HybridField | None = None,
    preset: str = "fast",
    points: int = 1 << 20,
    paper_queries: int = 20_000,
    train_steps: int = 20,
    device=None,
    log=print,
    reference_kernel: Path | str | None = None,
) -> dict:
    """Every figure of the module docstring for ``field`` (default: a freshly initialised ``preset`` field).

    ``reference_kernel``: the reference kernel's file (default ``DEFAULT_REFERENCE``, skipped with a note
    when missing; a given path must exist)."""
    import torch

    from .torch import reference

    device = wp.get_device(device)
    if reference_kernel is not None and not Path(reference_kernel).is_file():
        raise InputError(f"--reference: no file at {reference_kernel}")
    reference_kernel = DEFAULT_REFERENCE if reference_kernel is None else Path(reference_kernel)
    field = HybridField(preset_config(preset), seed=0) if field is None else field
    rng = np.random.default_rng(0)
    xs = rng.uniform(-1, 1, (points, field.dim)).astype(np.float32)
    thread_counts = sorted({1, cpu_threads()}) if device.is_cpu else [1]
    figures: dict = {"device": str(device), "config": field.config.key(), "points": points}
    figures["threads"] = thread_counts[-1]

    reference_runs = _reference_runs(field, xs, device, reference_kernel, log)
    for threads in thread_counts:
        runs = {
            "value": lambda: ops.value(field, xs, device=device),
            "value_gradient": lambda: ops.gradient(field, xs, method="ad", device=device),
            **(reference_runs(threads) if reference_runs else {}),
        }
        seconds = _with_threads(threads, lambda runs=runs: _alternating_best_seconds(runs))
        for name in runs:
            figures[f"{name}_per_s_{threads}t"] = points / seconds[name]
        rates = f"value {points / seconds['value']:.3g}/s, value+gradient {points / seconds['value_gradient']:.3g}/s"
        log(f"{rates} ({threads} thread(s))")
        if reference_runs:
            for name in ("value", "value_gradient"):
                figures[f"{name}_vs_reference_{threads}t"] = seconds[f"reference_{name}"] / seconds[name]
            log(
                f"reference kernel ({threads} thread(s)): value {points / seconds['reference_value']:.3g}/s, "
                f"value+gradient {points / seconds['reference_value_gradient']:.3g}/s; project over reference: "
                f"value {figures[f'value_vs_reference_{threads}t']:.2f}, "
                f"value+gradient {figures[f'value_gradient_vs_reference_{threads}t']:.2f}"
            )
    all_threads = thread_counts[-1]

    params = {name: torch.tensor(v) for name, v in field.parameters.items()}
    x_torch = torch.from_numpy(xs[: max(points // 8, 1)])
    with torch.no_grad():
        torch_value = best_seconds(lambda: reference.forward(field.config, params, x_torch), repeats=2)
    figures["torch_value_per_s"] = len(x_torch) / torch_value
    figures["value_speedup_vs_torch"] = figures[f"value_per_s_{all_threads}t"] / figures["torch_value_per_s"]
    log(f"torch value {figures['torch_value_per_s']:.3g}/s")

    seconds_per_value = 1.0 / figures[f"value_per_s_{all_threads}t"]
    for k in (16, 64):
        queries = xs[: max(points // k, 1)]
        for quantity in ("normal", "mean_curvature"):
            spec = ops.OperatorSpec.for_field(field, k=k)
            t = best_seconds(lambda spec=spec, quantity=quantity: ops.query(field, queries, quantity, spec, device))
            figures[f"polyfit_{quantity}_k{k}_per_s"] = len(queries) / t
            figures[f"polyfit_{quantity}_k{k}_cost_vs_k_values"] = t / (seconds_per_value * len(queries) * k)
            log(f"polyfit {quantity} k={k}: {len(queries) / t:.3g}/s")

    if not device.is_cpu and not torch.cuda.is_available():
        log(f"training skipped: this torch build cannot reach {device}")
    else:
        _train_figures(field, preset, train_steps, device, figures, log)

    if field.dim == 3 and device.is_cpu:
        sigma = ops.default_sigma(field)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "bench.wfield"
            save_field(field, path)
            paper = paper_polyfit(str(path), paper_queries, 64, sigma)
        queries = xs[:paper_queries] * 0.8
        fused = best_seconds(lambda: ops.normal(field, queries, k=64, stencil="gauss", device=device))
        # The fused fit keeps nothing per sample: its extra memory is the points in and the normals out,
        # which the page-granular resident size may not show for small runs.
        fused_bytes = max(
            extra_peak_bytes(lambda: ops.normal(field, queries, k=64, stencil="gauss", device=device)),
            queries.nbytes * 2,
        )
        figures["paper_torch_polyfit_k64_per_s"] = paper_queries / paper["seconds"]
        figures["paper_torch_polyfit_k64_extra_peak_bytes"] = paper["extra_peak_bytes"]
        figures["fused_polyfit_gauss_k64_per_s"] = paper_queries / fused
        figures["fused_polyfit_k64_extra_bytes"] = fused_bytes
        figures["fused_vs_paper_speedup"] = paper["seconds"] / fused
        figures["fused_vs_paper_memory_ratio"] = paper["extra_peak_bytes"] / fused_bytes
        log(f"paper-style torch polyfit k=64: {figures['paper_torch_polyfit_k64_per_s']:.3g}/s")
    return figures


def format_figures(figures: dict) -> str:
    return "\n".join(
        f"{key:45s} {value:.4g}" if isinstance(value, float) else f"{key:45s} {value}" for key, value in figures.items()
    )


__all__ = ["best_seconds", "extra_peak_bytes", "format_figures", "paper_polyfit", "paper_polyfit_normals", "run_bench"]


if __name__ == "__main__":
    path, count, samples, scale = sys.argv[1:5]
    print(json.dumps(_paper_polyfit_child(path, int(count), int(samples), float(scale))))
