"""viewer.py renders headless (EGL) screenshots that show the object.

Only a machine without EGL outside CI skips the screenshots: in CI (``CI`` set, or ``WARPFIELDS_REQUIRE_EGL=1``,
which ``.ci/run`` exports after installing the EGL packages) and for any other failure of the probe they fail."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

VIEWER = Path(__file__).resolve().parents[1] / "viewer.py"


@pytest.fixture(scope="module")
def egl():
    probe = subprocess.run(
        [sys.executable, "-c", "import polyscope as ps; ps.init('openGL3_egl')"], capture_output=True, text=True
    )
    if probe.returncode == 0:
        return
    lines = probe.stderr.strip().splitlines() or ["unknown"]
    reason = next((line for line in lines if "EGL" in line), lines[-1])
    message = f"headless OpenGL (EGL) is not available (apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri): {reason}"
    if "EGL" not in probe.stderr or egl_required():
        pytest.fail(message)
    pytest.skip(message)


def egl_required() -> bool:
    ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false")
    return ci or os.environ.get("WARPFIELDS_REQUIRE_EGL") == "1"


def screenshot(tmp_path, *args) -> np.ndarray:
    from PIL import Image

    out = tmp_path / "shot.png"
    run = subprocess.run([sys.executable, str(VIEWER), *args, "--screenshot", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return np.asarray(Image.open(out).convert("RGB")).astype(int)


def test_field_screenshot_shows_the_sphere(egl, tmp_path):
    image = screenshot(tmp_path, "sphere")
    height, width, _ = image.shape
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    # The polyfit normals are drawn as green vectors over the sphere; nothing else in the scene is green.
    green = (g > r + 40) & (g > b + 40)
    share = green.mean()
    assert 0.02 < share < 0.5
    rows, cols = np.nonzero(green)
    assert abs(rows.mean() / height - 0.5) < 0.2 and abs(cols.mean() / width - 0.5) < 0.2
    # A round blob: its extent is about equal across and down (the view is not distorted).
    assert 0.7 < (np.ptp(rows) + 1) / (np.ptp(cols) + 1) < 1.4


def test_stage_screenshot_shows_the_particles(egl, tmp_path):
    from warpfields.io.usd import StageRecorder

    positions = np.random.default_rng(0).uniform(-0.3, 0.3, (400, 3))
    stage = tmp_path / "run.usd"
    with StageRecorder(stage, fps=30) as recorder:
        for frame in range(3):
            recorder.add_points("particles", positions + 0.05 * frame, widths=np.full(400, 0.02), frame=frame)
    image = screenshot(tmp_path, str(stage))
    background = np.median(image.reshape(-1, 3), axis=0)
    differs = np.abs(image - background).sum(axis=2) > 60
    assert differs.mean() > 0.005


def test_bad_field_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.wfield"
    bad.write_text("not a field")
    run = subprocess.run(
        [sys.executable, str(VIEWER), str(bad), "--screenshot", str(tmp_path / "x.png")], capture_output=True, text=True
    )
    assert run.returncode == 2 and "bad.wfield" in run.stderr
    assert not (tmp_path / "x.png").exists()
