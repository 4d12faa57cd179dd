"""The sphere tracer against the analytic sphere: silhouette and shading in closed form."""

import numpy as np
import pytest

import warpfields as wf
from warpfields.cli import main
from warpfields.errors import InputError
from warpfields.ops.host import OperatorSpec
from warpfields.render import Camera, light_direction, render

CAMERA = Camera(eye=(0.0, 0.0, 3.0), orthographic=True, extent=1.0)
SIZE = 64


def pixel_plane():
    centres = (np.arange(SIZE) + 0.5) / SIZE * 2 - 1
    return np.meshgrid(centres, -centres)


def environment(d):
    sky = np.sqrt(np.clip(d[:, 1], 0, None))[:, None]
    above = (1 - sky) * np.array([0.85, 0.88, 0.95]) + sky * np.array([0.25, 0.45, 0.85])
    s = 1.0 / np.maximum(-d[:, 1], 1e-3)
    u = np.floor(d[:, 0] * s * 0.5) + np.floor(d[:, 2] * s * 0.5)
    below = np.where(np.mod(u, 2.0) == 0.0, 0.75, 0.35)[:, None] * np.ones(3)
    return np.where(d[:, 1:2] >= 0, above, below)


def test_silhouette_matches_the_projected_disc():
    _, hit = render(wf.sphere(0.5), OperatorSpec.for_field(wf.sphere(0.5), method="ad"), SIZE, SIZE, CAMERA)
    sx, sy = pixel_plane()
    disc = sx**2 + sy**2 < 0.25
    iou = (hit & disc).sum() / (hit | disc).sum()
    # Only pixels whose centre lies within a pixel of the rim may differ.
    assert iou > 0.97
    rim = np.abs(np.sqrt(sx**2 + sy**2) - 0.5) < 2.0 / SIZE
    assert np.all((hit == disc) | rim)


def test_shading_matches_closed_form_with_exact_normals():
    sphere = wf.sphere(0.5)
    image, hit = render(sphere, OperatorSpec.for_field(sphere, method="ad"), SIZE, SIZE, CAMERA)
    sx, sy = pixel_plane()
    inside = (sx**2 + sy**2 < 0.2) & hit
    x, y = sx[inside], sy[inside]
    n = np.stack([x, y, np.sqrt(0.25 - x**2 - y**2)], 1) / 0.5
    light, view, direction = light_direction(), np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, -1.0])
    diffuse = np.clip(n @ light, 0, None)
    halfway = (light + view) / np.linalg.norm(light + view)
    specular = np.clip(n @ halfway, 0, None) ** 60
    mirror = direction - 2 * (n @ direction)[:, None] * n
    color = np.array([0.72, 0.55, 0.42]) * (0.12 + 0.75 * diffuse)[:, None] + 0.35 * specular[:, None]
    color = color + 0.3 * environment(mirror)
    expected = np.clip(color, 0, 1) ** (1 / 2.2) * 255
    # float32 hit points sit within 2e-4 of the surface: normals agree to ~1e-3, a fraction of a grey level.
    assert np.abs(image[inside].astype(float) - expected).max() <= 3.0


def test_noisy_normals_change_the_picture_and_polyfit_does_not():
    """The same sphere with polyfit normals looks like the exact one (the renderer shows normal quality)."""
    sphere = wf.sphere(0.5)
    exact, _ = render(sphere, OperatorSpec.for_field(sphere, method="ad"), SIZE, SIZE, CAMERA)
    fitted, _ = render(sphere, OperatorSpec.for_field(sphere, method="polyfit", k=16), SIZE, SIZE, CAMERA)
    assert np.abs(exact.astype(int) - fitted.astype(int)).mean() < 0.5


def test_render_command_compare_and_bad_inputs(tmp_path, capsys):
    out = tmp_path / "cmp.png"
    assert main(["render", "sphere", "--compare", "--width", "40", "--height", "32", "--out", str(out)]) == 0
    from PIL import Image

    assert Image.open(out).size == (120, 32)
    assert main(["render", "circle", "--out", str(tmp_path / "c.png")]) == 2
    assert "3D" in capsys.readouterr().err
    assert main(["render", "sphere", "--out", str(tmp_path / "missing" / "c.png")]) == 2
    with pytest.raises(InputError, match="size"):
        render(wf.sphere(0.5), OperatorSpec.for_field(wf.sphere(0.5)), 0, 10)
