"""The sphere tracer against the analytic sphere: silhouette in closed form, shading by its invariances."""

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


def test_silhouette_matches_the_projected_disc():
    _, hit = render(wf.sphere(0.5), OperatorSpec.for_field(wf.sphere(0.5), method="ad"), SIZE, SIZE, CAMERA)
    sx, sy = pixel_plane()
    disc = sx**2 + sy**2 < 0.25
    iou = (hit & disc).sum() / (hit | disc).sum()
    # Only pixels whose centre lies within a pixel of the rim may differ.
    assert iou > 0.97
    rim = np.abs(np.sqrt(sx**2 + sy**2) - 0.5) < 2.0 / SIZE
    assert np.all((hit == disc) | rim)


def test_shading_depends_on_the_normal_alone():
    """Orthographic view: the sphere moved by 8 pixels renders as the same picture moved by 8 pixels."""
    spec = OperatorSpec.for_field(wf.sphere(0.5), method="ad")
    image, hit = render(wf.sphere(0.5), spec, SIZE, SIZE, CAMERA)
    shift = 8
    moved, moved_hit = render(wf.sphere(0.5, center=(shift * 2.0 / SIZE, 0.0, 0.0)), spec, SIZE, SIZE, CAMERA)
    both = hit[:, :-shift] & moved_hit[:, shift:]
    assert both.sum() > 0.9 * hit.sum()
    # float32 hit points differ by up to 2e-4 between the two: a fraction of a grey level.
    assert np.abs(image[:, :-shift][both].astype(int) - moved[:, shift:][both].astype(int)).max() <= 2


def test_highlight_sits_where_the_normal_is_the_halfway_vector():
    """The brightest pixel of the sphere is the one whose exact normal is closest to the Blinn-Phong halfway
    vector of the light and the view (the highlight outshines the diffuse and reflected terms there)."""
    image, hit = render(wf.sphere(0.5), OperatorSpec.for_field(wf.sphere(0.5), method="ad"), SIZE, SIZE, CAMERA)
    halfway = light_direction() + np.array([0.0, 0.0, 1.0])
    halfway /= np.linalg.norm(halfway)
    sx, sy = pixel_plane()
    brightness = np.where(hit, image.astype(int).sum(axis=2), -1)
    row, col = np.unravel_index(np.argmax(brightness), brightness.shape)
    # The orthographic pixel of the surface point 0.5 h, within a pixel.
    assert abs(sx[row, col] - 0.5 * halfway[0]) <= 2.0 / SIZE and abs(sy[row, col] - 0.5 * halfway[1]) <= 2.0 / SIZE


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
