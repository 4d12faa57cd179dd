"""``warpfields bench``: every documented figure is measured, and the ratios are the ratios of the figures."""

import json
from pathlib import Path

import numpy as np
import pytest

from warpfields import bench
from warpfields.cli import main
from warpfields.fields.hybrid import HybridField, preset_config

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


def test_bench_reports_every_figure_with_consistent_ratios(tmp_path, capsys):
    out = tmp_path / "bench.json"
    reference = tmp_path / "reference_kernel.py"
    reference.write_text(STAND_IN_REFERENCE)
    args = ["bench", "--preset", "tiny", "--points", "8192", "--paper-queries", "1000", "--json", str(out)]
    assert main([*args, "--reference", str(reference)]) == 0
    figures = json.loads(out.read_text())
    threads = figures["threads"]
    keys = [f"value_per_s_{threads}t", f"value_gradient_per_s_{threads}t", "value_per_s_1t", "torch_value_per_s"]
    keys += [
        f"polyfit_{q}_k{k}_{s}"
        for q in ("normal", "mean_curvature")
        for k in (16, 64)
        for s in ("per_s", "cost_vs_k_values")
    ]
    keys += ["train_steps_per_s", "train_preset_projected_seconds", "paper_torch_polyfit_k64_per_s"]
    keys += [
        "paper_torch_polyfit_k64_extra_peak_bytes",
        "fused_polyfit_gauss_k64_per_s",
        "fused_polyfit_k64_extra_bytes",
    ]
    for key in keys:
        assert figures[key] > 0, key
    assert figures["value_speedup_vs_torch"] == pytest.approx(
        figures[f"value_per_s_{threads}t"] / figures["torch_value_per_s"]
    )
    assert figures["fused_vs_paper_speedup"] == pytest.approx(
        figures["fused_polyfit_gauss_k64_per_s"] / figures["paper_torch_polyfit_k64_per_s"]
    )
    assert figures["fused_vs_paper_memory_ratio"] == pytest.approx(
        figures["paper_torch_polyfit_k64_extra_peak_bytes"] / figures["fused_polyfit_k64_extra_bytes"]
    )
    # The reference comparison: measured alternately with the project's figures, on the same points and threads.
    for t in sorted({1, threads}):
        for name in ("value", "value_gradient"):
            assert figures[f"reference_{name}_per_s_{t}t"] > 0
            assert figures[f"{name}_vs_reference_{t}t"] == pytest.approx(
                figures[f"{name}_per_s_{t}t"] / figures[f"reference_{name}_per_s_{t}t"]
            )
    printed = capsys.readouterr().out
    assert "value_speedup_vs_torch" in printed and "fused_vs_paper_speedup" in printed
    assert f"value_vs_reference_{threads}t" in printed and "project over reference" in printed


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
