"""``warpfields bench``: each rate is the work of one timed call over its time, the paper's pipeline computes
what the fused operator computes, and the memory probe measures the call it wraps."""

import json
import mmap
from pathlib import Path

import numpy as np
import pytest
import torch

from warpfields import bench, ops
from warpfields.cli import main
from warpfields.fields.hybrid import HybridField, preset_config
from warpfields.torch.train import TRAIN_PRESETS

# A stand-in for the external reference kernel with its interface: a field struct, kernels
# (field, points, offset, outputs...) for the value and the value with its gradient.
STAND_IN_REFERENCE = """
import warp as wp


class Cfg:
    def __init__(self, args):
        self.sizes = (args.levels, args.feat, args.log2t, args.base_res, args.max_res, args.hidden)


def make_params(cfg):
    return {"slope": float(sum(cfg.sizes))}


def build_warp(wp, cfg, flags=None):
    @wp.struct
    class Field:
        slope: float

    @wp.kernel(module="unique")
    def value(f: Field, xs: wp.array(dtype=wp.vec3), offset: int, out: wp.array(dtype=float)):
        i = wp.tid() + offset
        out[i] = f.slope * xs[i][0]

    @wp.kernel(module="unique")
    def value_grad(
        f: Field, xs: wp.array(dtype=wp.vec3), offset: int, out: wp.array(dtype=float), grad: wp.array(dtype=wp.vec3)
    ):
        i = wp.tid() + offset
        out[i] = f.slope * xs[i][0]
        grad[i] = wp.vec3(f.slope, 0.0, 0.0)

    return {"Field": Field, "value": value, "value_grad": value_grad}


def warp_field(wp, ks, cfg, p):
    f = ks["Field"]()
    f.slope = p["slope"]
    return f
"""


def test_each_rate_is_the_work_of_one_timed_call(tmp_path, capsys, monkeypatch):
    """With every timed call taking one second (the reference kernel's two), each rate is the number of items
    that call handled over that time."""
    monkeypatch.setattr(bench, "best_seconds", lambda fn, repeats=3: (fn(), 1.0)[1])
    points, queries = 8192, 1000
    out = tmp_path / "bench.json"
    reference = tmp_path / "reference_kernel.py"
    reference.write_text(STAND_IN_REFERENCE)
    # The reference kernel's calls take twice as long as the project's.
    monkeypatch.setattr(
        bench,
        "_alternating_best_seconds",
        lambda runs, repeats=3: {name: (fn(), 2.0 if "reference" in name else 1.0)[1] for name, fn in runs.items()},
    )
    args = ["bench", "--preset", "tiny", "--points", str(points), "--paper-queries", str(queries), "--json", str(out)]
    assert main([*args, "--reference", str(reference)]) == 0
    figures = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert "fused_vs_paper_speedup" in printed and "project over reference" in printed
    threads = figures["threads"]
    for key in (f"value_per_s_{threads}t", "value_per_s_1t", f"value_gradient_per_s_{threads}t"):
        assert figures[key] == points, key
    for t in sorted({1, threads}):
        for name in ("value", "value_gradient"):
            assert figures[f"reference_{name}_per_s_{t}t"] == points / 2
            assert figures[f"{name}_vs_reference_{t}t"] == 2.0
    # The torch baseline evaluates an eighth of the points.
    assert figures["torch_value_per_s"] == points // 8 and figures["value_speedup_vs_torch"] == 8
    for k in (16, 64):
        for quantity in ("normal", "mean_curvature"):
            assert figures[f"polyfit_{quantity}_k{k}_per_s"] == points // k
            # One query costs k values: as long as k value evaluations when it takes as long as they do.
            assert figures[f"polyfit_{quantity}_k{k}_cost_vs_k_values"] == pytest.approx(1.0)
    train_steps = 20  # what run_bench times by default
    assert figures["train_steps_per_s"] == train_steps
    assert figures["train_preset_projected_seconds"] >= TRAIN_PRESETS["tiny"].steps / train_steps
    assert figures["fused_polyfit_gauss_k64_per_s"] == queries
    # The paper's pipeline ran in its own process: its peak holds at least the offsets it materialises.
    assert figures["paper_torch_polyfit_k64_extra_peak_bytes"] >= queries * 64 * 3 * 4


def test_paper_pipeline_computes_what_the_fused_operator_computes():
    """Both fit a plane to 64 Gaussian samples around each point (the paper's sigma): their normals scatter
    around the converged fit of the same Gaussian (1024 cubature samples) by the Monte Carlo error of 64 samples
    (a median of 1.4 and 1.6 degrees here)."""
    field = HybridField(preset_config("tiny"), seed=0)
    parameters = dict(field.parameters)
    rng = np.random.default_rng(0)
    parameters["table"] = rng.uniform(-1, 1, parameters["table"].shape).astype(np.float32)
    field.set_parameters(parameters)
    x = rng.uniform(-0.8, 0.8, (256, 3)).astype(np.float32)
    sigma = 0.002
    tensors = {name: torch.from_numpy(value) for name, value in field.parameters.items()}
    generator = torch.Generator().manual_seed(0)
    paper = bench.paper_polyfit_normals(field.config, tensors, torch.from_numpy(x), 64, sigma, generator).numpy()
    fused = ops.normal(field, x, method="polyfit", k=64, stencil="gauss", sigma=sigma)
    converged = ops.normal(field, x, method="polyfit", k=1024, stencil="cubature", sigma=sigma)

    def median_angle(a, b):
        return np.median(np.degrees(np.arccos(np.clip(np.sum(a * b, axis=1), -1, 1))))

    assert median_angle(paper, converged) < 3.0 and median_angle(fused, converged) < 3.0
    assert median_angle(paper, converged) == pytest.approx(median_angle(fused, converged), rel=0.5)


def write_fresh_memory(size: int) -> None:
    """Make ``size`` bytes of fresh anonymous memory resident, then release them (no allocator cache between)."""
    with mmap.mmap(-1, size) as buffer:
        view = np.frombuffer(buffer, dtype=np.uint8)
        view[:] = 1
        del view


def test_extra_peak_bytes_measures_the_call_not_an_earlier_peak():
    size = 32 << 20
    write_fresh_memory(4 * size)  # an earlier, higher peak of this process
    extra = bench.extra_peak_bytes(lambda: write_fresh_memory(size))
    # The kernel's resident-size counters may lag by a few pages.
    assert 0.95 * size <= extra < size + (8 << 20)


def test_reference_comparison_skipped_with_a_note_unless_the_reference_models_the_field(tmp_path):
    notes = []
    xs = np.zeros((16, 3), dtype=np.float32)
    hash3 = HybridField(preset_config("tiny"))
    assert bench._reference_runs(hash3, xs, "cpu", tmp_path / "missing.py", notes.append) is None
    assert "no reference kernel at" in notes[-1] and "--reference" in notes[-1]
    reference = tmp_path / "reference_kernel.py"
    reference.write_text(STAND_IN_REFERENCE)
    for config in (preset_config("tiny", encoding="dense"), preset_config("tiny", dim=2)):
        assert bench._reference_runs(HybridField(config), xs, "cpu", reference, notes.append) is None
        assert "models 3D hash grids" in notes[-1]
    assert bench.DEFAULT_REFERENCE == Path(bench.__file__).resolve().parents[2] / "shared/tools/reference_kernel.py"


def test_bench_rejects_an_analytic_field_unknown_presets_and_a_missing_reference(tmp_path, capsys):
    assert main(["bench", "--field", "sphere"]) == 2
    assert "hybrid field file expected" in capsys.readouterr().err
    assert main(["bench", "--preset", "huge"]) == 2
    assert "expected one of" in capsys.readouterr().err
    assert main(["bench", "--preset", "tiny", "--reference", str(tmp_path / "nothing.py")]) == 2
    assert "--reference: no file at" in capsys.readouterr().err
