"""viewer.py: the numbers behind its colours, and headless (EGL) screenshots that show what they should.

Only a machine without EGL outside CI skips the screenshots: in CI (``CI`` set, or ``WARPFIELDS_REQUIRE_EGL=1``,
which ``.ci/run`` exports after installing the EGL packages) and for any other failure of the probe they fail."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

import warpfields as wf
from warpfields.io.usd import StageRecorder
from warpfields.targets import load_reference

VIEWER = Path(__file__).resolve().parents[1] / "viewer.py"
COLORBAR = (slice(0, 300), slice(0, 80))  # the colour bar and its labels, top left


def load_viewer():
    spec = importlib.util.spec_from_file_location("viewer", VIEWER)
    module = importlib.util.module_from_spec(spec)
    sys.modules["viewer"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def egl(tmp_path_factory):
    probe = subprocess.run(
        [sys.executable, "-c", "import polyscope as ps; ps.init('openGL3_egl')"],
        capture_output=True,
        text=True,
        cwd=tmp_path_factory.mktemp("egl-probe"),  # Polyscope's settings file lands there, not in the checkout
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


def screenshot(tmp_path, *args, name="shot.png") -> np.ndarray:
    from PIL import Image

    out = tmp_path / name
    run = subprocess.run(
        [sys.executable, str(VIEWER), *args, "--screenshot", str(out), "--size", "640x480"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    return np.asarray(Image.open(out).convert("RGB")).astype(int)


def saturated(image: np.ndarray) -> np.ndarray:
    """Coloured pixels: the colour-mapped surface, not the white background or the grey shadow."""
    return image.max(axis=2) - image.min(axis=2) > 40


def sphere_mesh(path: Path, scale=(1.0, 1.0, 1.0)) -> str:
    mesh = trimesh.creation.icosphere(subdivisions=5, radius=0.5)
    mesh.apply_scale(scale)
    mesh.export(path)
    return str(path)


# --- what the colours mean (no OpenGL) -----------------------------------------------------


def test_colours_are_the_angles_and_curvature_they_name(tmp_path):
    viewer = load_viewer()
    sphere = wf.sphere(0.5)
    ball = load_reference(sphere_mesh(tmp_path / "ball.obj"), sphere)
    view = viewer.FieldView(sphere, ball, method="polyfit", k=16, color="error", resolution=48)
    title, error, vminmax, _ = view.scalar()
    assert "error" in title and "polyfit cubature k=16" in title and vminmax == (0, viewer.ERROR_RANGE_DEG)
    # A 5-times subdivided icosphere's interpolated normals are within a fraction of a degree of the sphere's.
    assert len(error) == len(view.vertices) and np.percentile(error, 99) < 0.5
    # Against a stretched mesh the same normals are wrong by the stretch: the error is the reference's.
    egg = load_reference(sphere_mesh(tmp_path / "egg.obj", (1.3, 1.0, 1.0)), sphere)
    stretched = viewer.FieldView(sphere, egg, method="polyfit", k=16, color="error", resolution=48).scalar()[1]
    assert np.percentile(stretched, 90) > 5.0
    view.method, view.color = "ad", "angle"
    assert np.abs(view.scalar()[1]).max() < 1e-3  # autodiff against itself
    view.method, view.color = "fd", "curvature"
    np.testing.assert_allclose(view.scalar()[1], 2.0, rtol=0.02)  # 1/R on a sphere of radius 0.5


def test_normals_are_a_sparse_subset_at_a_readable_length():
    viewer = load_viewer()
    view = viewer.FieldView(wf.sphere(0.5), resolution=96)
    points, arrows = view.normal_arrows()
    assert len(view.vertices) > 4 * viewer.NORMALS_SHOWN and len(points) == viewer.NORMALS_SHOWN
    lengths = np.linalg.norm(arrows, axis=1)
    np.testing.assert_allclose(lengths, viewer.NORMAL_LENGTH * np.sqrt(3.0), rtol=0.02)
    np.testing.assert_allclose(arrows / lengths[:, None], points / np.linalg.norm(points, axis=1)[:, None], atol=1e-3)


def test_imgui_settings_go_to_the_config_folder(egl, tmp_path):
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import viewer, polyscope as ps, polyscope.imgui as im\n"
        "ps.init('openGL3_egl'); im.GetIO().IniFilename = 'imgui.ini'\n"
        "viewer.keep_imgui_settings_out_of_working_folder(); print(im.GetIO().IniFilename)"
    )
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    run = subprocess.run([sys.executable, "-c", code, str(VIEWER.parent)], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == str(tmp_path / "config" / "warpfields" / "imgui.ini")


# --- screenshots -------------------------------------------------------------------------------


def test_field_default_view_is_the_coloured_level_set_with_a_colour_bar(egl, tmp_path):
    image = screenshot(tmp_path, "sphere")
    height, width, _ = image.shape
    bar = image[COLORBAR]
    # The colour bar: viridis from yellow (top, 45 deg) to purple (bottom, 0 deg).
    yellow = (bar[..., 0] > 200) & (bar[..., 1] > 200) & (bar[..., 2] < 100)
    purple = (bar[..., 0] > 50) & (bar[..., 1] < 30) & (bar[..., 2] > 60)
    assert yellow.sum() > 20 and purple.sum() > 20
    assert np.nonzero(yellow)[0].mean() < np.nonzero(purple)[0].mean()
    surface = saturated(image)
    surface[COLORBAR] = False
    # polyfit and autodiff agree on the exact sphere: the whole surface has the colour of 0 deg (dark purple).
    assert np.median(image[surface][:, 1]) < 40 and np.median(image[surface][:, 2]) > np.median(image[surface][:, 1])
    share = surface.mean()
    assert 0.25 < share < 0.75, share
    rows, cols = np.nonzero(surface)
    # In frame (clear of the borders), centred, and round (the view is not distorted).
    assert rows.min() > 0 and cols.min() > 0 and rows.max() < height - 1 and cols.max() < width - 1
    assert abs(rows.mean() / height - 0.5) < 0.1 and abs(cols.mean() / width - 0.5) < 0.1
    assert 0.9 < (np.ptp(rows) + 1) / (np.ptp(cols) + 1) < 1.1
    assert not (tmp_path / "imgui.ini").exists() and not (tmp_path / ".polyscope.ini").exists()


def dark_grey(image: np.ndarray) -> np.ndarray:
    return (image.max(axis=2) < 80) & (image.max(axis=2) - image.min(axis=2) < 20)


def test_normals_and_slice_when_asked(egl, tmp_path):
    # The arrows are dark grey; without --normals only the shading's darkest pixels and the colour bar's labels are.
    plain = dark_grey(screenshot(tmp_path, "sphere")).mean()
    arrows = dark_grey(screenshot(tmp_path, "sphere", "--normals", name="normals.png")).mean()
    assert plain < 0.01 and arrows > plain + 0.02, (plain, arrows)
    # The slice through the values (blue inside, red outside with coolwarm) cuts the surface.
    sliced = screenshot(tmp_path, "sphere", "--slice", name="slice.png")
    red = (sliced[..., 0] > sliced[..., 2] + 60) & (sliced[..., 0] > 150)
    blue = (sliced[..., 2] > sliced[..., 0] + 60) & (sliced[..., 2] > 150)
    assert red.mean() > 0.01 and blue.mean() > 0.01


def test_error_colours_follow_the_reference(egl, tmp_path):
    ball = sphere_mesh(tmp_path / "ball.obj")
    egg = sphere_mesh(tmp_path / "egg.obj", (1.3, 1.0, 1.0))
    green = []
    for mesh in (ball, egg):
        image = screenshot(tmp_path, "sphere", "--mesh", mesh, "--resolution", "64", name=f"{Path(mesh).stem}.png")
        surface = saturated(image)
        surface[COLORBAR] = False
        # Viridis' green channel grows with the value: the stretched reference's errors are brighter.
        green.append(np.median(image[surface][:, 1]))
    assert green[0] < 40 and green[1] > green[0] + 40


def stage_with_everything(path: Path) -> None:
    """A static ball at the origin, particles starting far above it and falling past its side, and a sheet that
    sinks on its other side."""
    ball = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
    rng = np.random.default_rng(0)
    start = rng.uniform((-0.7, 1.6, -0.2), (-0.4, 1.8, 0.2), (300, 3))
    sheet = np.array([[x, 0.0, z] for x in (-0.4, 0.4) for z in (-0.4, 0.4)])
    with StageRecorder(path, fps=30) as recorder:
        recorder.add_static_mesh("ball", ball.vertices, ball.faces)
        for frame in range(5):
            recorder.add_points("particles", start - [0.0, 0.55 * frame, 0.0], widths=0.03, frame=frame)
            recorder.add_mesh_frame("sheet", sheet + [0.6, 0.5 - 0.25 * frame, 0.0], [[0, 1, 3, 2]], frame=frame)


def colours(image: np.ndarray) -> dict:
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    return {
        "particles": (r > g + 25) & (g > b + 20),
        "deforming": (g > r + 30) & (b > r + 60),
        "static": (b > r + 8) & (b < r + 50) & (image.max(axis=2) > 120),
    }


def test_stage_view_holds_every_prim_over_time(egl, tmp_path):
    stage = tmp_path / "run.usd"
    stage_with_everything(stage)
    first, last = (colours(screenshot(tmp_path, str(stage), "--frame", f, name=f"{f}.png")) for f in ("0", "-1"))
    height, width = first["particles"].shape
    for frame in (first, last):
        for name, mask in frame.items():
            assert mask.sum() > 100, name
            rows, cols = np.nonzero(mask)
            assert rows.min() > 0 and cols.min() > 0 and rows.max() < height - 1 and cols.max() < width - 1, name
    # Frame 0: the particles above the ball; the last frame: below it. The sheet sinks; the ball stays.
    centre = {name: np.nonzero(mask)[0].mean() for name, mask in first.items()}
    moved = {name: np.nonzero(mask)[0].mean() for name, mask in last.items()}
    assert centre["particles"] < centre["static"] < moved["particles"]
    assert moved["deforming"] > centre["deforming"] + 20
    assert abs(moved["static"] - centre["static"]) < 2


def test_bad_inputs_are_one_line(tmp_path):
    bad = tmp_path / "bad.wfield"
    bad.write_text("not a field")
    run = subprocess.run(
        [sys.executable, str(VIEWER), str(bad), "--screenshot", str(tmp_path / "x.png")], capture_output=True, text=True
    )
    # (Warp itself may warn first, on a machine with the CUDA toolkit but no driver.)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("viewer: error: field file") and "bad.wfield" in run.stderr
    assert not (tmp_path / "x.png").exists()
    run = subprocess.run(
        [sys.executable, str(VIEWER), "sphere", "--color", "error", "--screenshot", str(tmp_path / "x.png")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "--mesh" in run.stderr and not (tmp_path / "x.png").exists()
