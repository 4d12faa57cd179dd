"""`warpfields demo --preset tiny`: every artefact, and a report whose numbers come from the run."""

import json

import numpy as np
from PIL import Image
from pxr import Usd, UsdGeom

from warpfields.cli import main
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


def test_tiny_demo_writes_everything(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--preset", "tiny", "--out", str(out)]) == 0
    assert str(out.resolve()) in capsys.readouterr().out
    for name in ARTEFACTS:
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    data = json.loads((out / "report.json").read_text())

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
    assert image.shape[1] == 3 * image.shape[0] and image.std() > 5
