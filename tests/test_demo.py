"""`warpfields demo --preset tiny`: every artefact, a report whose numbers come from the run, and a line of
output at least every 15 s."""

import io
import json
import re
import sys
import time

import numpy as np
from PIL import Image
from pxr import Usd, UsdGeom

from warpfields.cli import main
from warpfields.demo import DEMO_PRESETS, SMOKE_TEST
from warpfields.io.fieldfile import load_field
from warpfields.io.usd import validation_errors

ARTEFACTS = (
    "field.wfield",
    "field_tuned.wfield",
    "cloth_ad.usd",
    "cloth_polyfit.usd",
    "cloth_reference.usd",
    "render_compare.png",
    "report.md",
    "report.json",
)


SUMS = ("total", "of which compiling kernels")


class Stamped(io.TextIOBase):
    """Records when each piece of output was written."""

    def __init__(self):
        self.writes = []

    def write(self, text: str) -> int:
        self.writes.append((time.monotonic(), text))
        return len(text)

    def text(self) -> str:
        return "".join(text for _, text in self.writes)


def test_tiny_demo_writes_everything(tmp_path, monkeypatch):
    out = tmp_path / "demo"
    stamped = Stamped()
    monkeypatch.setattr(sys, "stdout", stamped)
    monkeypatch.setattr(sys, "stderr", stamped)
    started = time.monotonic()
    assert main(["demo", "--preset", "tiny", "--out", str(out)]) == 0
    ended = time.monotonic()
    printed = stamped.text()
    assert str(out.resolve()) in printed and SMOKE_TEST in printed
    # Something (a line, a progress bar's update, a compile notice or the heartbeat) at least every 15 s.
    times = [started] + [t for t, text in stamped.writes if "\n" in text or "\r" in text] + [ended]
    assert max(np.diff(times)) < 15.0
    assert "Module " not in printed  # Warp's own line per module loaded is quiet
    for name in ARTEFACTS:
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    data = json.loads((out / "report.json").read_text())
    assert SMOKE_TEST in report and data["smoke_test"] is True
    # Timings as a table, one row per step, with the run's figures.
    steps = {step: seconds for step, seconds in data["timings"].items() if step not in SUMS}
    assert 0.9 * data["timings"]["total"] <= sum(steps.values()) <= data["timings"]["total"]  # the steps add up
    for step, seconds in data["timings"].items():
        assert re.search(rf"^\| {re.escape(step)} \| {seconds:.1f} \|$", report, re.MULTILINE), step
    # Every column of the operator table is explained, with its reference and units.
    for column in ("normal L2", "angle deg", "<1 deg", "curv RMS", "evals n/H", "normals/s"):
        assert f"- {column}" in report or f", {column}" in report, column

    field = load_field(out / "field.wfield")
    quality = field.metadata["training"]["quality"]
    assert f"{quality['near_surface_mean_abs_error']:.5f}" in report
    assert data["quality"]["near_surface_mean_abs_error"] == quality["near_surface_mean_abs_error"]
    tuned_record = load_field(out / "field_tuned.wfield").metadata["finetune"]
    assert tuned_record["original_file"] == "field.wfield"
    assert f"{tuned_record['level_set_motion']:.5f}" in report
    assert data["finetune"]["level_set_motion"] == tuned_record["level_set_motion"]

    labels = [row["label"] for row in data["operators"]]
    assert labels[0] == "ad" and "fine-tuned ad" in labels
    for row in data["operators"]:
        assert f"{row['angle_mean_deg']:.3f}" in report, row["label"]
    assert list(data["cloth"]) == ["reference", "ad", "polyfit"]
    for method in ("ad", "polyfit"):
        metrics = data["cloth"][method]
        assert f"| {method} | {metrics['deviation_mean']:.4f} | {metrics['deviation_max']:.4f} |" in report
        # The sheet came down onto the bunny instead of falling through it.
        assert metrics["penetration_per_radius"] < 2.0
    assert f"| reference | - | - | {data['cloth']['reference']['penetration_per_radius']:.3f} |" in report

    for stage in ("cloth_ad.usd", "cloth_polyfit.usd", "cloth_reference.usd"):
        assert validation_errors(out / stage) == []
        opened = Usd.Stage.Open(str(out / stage))
        cloth = UsdGeom.Mesh(opened.GetPrimAtPath("/World/cloth"))
        assert cloth.GetPointsAttr().GetNumTimeSamples() == opened.GetEndTimeCode() + 1 > 1
    image = np.asarray(Image.open(out / "render_compare.png"))
    size = DEMO_PRESETS["tiny"].image_size
    assert image.shape[1] == 3 * size + 2 * 2 and image.shape[0] > size and image.std() > 5
