"""``warpfields bench``: every documented figure is measured, and the ratios are the ratios of the figures."""

import json

import pytest

from warpfields.cli import main


def test_bench_reports_every_figure_with_consistent_ratios(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = ["bench", "--preset", "tiny", "--points", "8192", "--paper-queries", "1000", "--json", str(out)]
    assert main(args) == 0
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
    printed = capsys.readouterr().out
    assert "value_speedup_vs_torch" in printed and "fused_vs_paper_speedup" in printed


def test_bench_rejects_an_analytic_field_and_unknown_presets(capsys):
    assert main(["bench", "--field", "sphere"]) == 2
    assert "hybrid field file expected" in capsys.readouterr().err
    assert main(["bench", "--preset", "huge"]) == 2
    assert "expected one of" in capsys.readouterr().err
