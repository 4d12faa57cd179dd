"""The README's Python blocks run as written, each in a fresh interpreter, and compute what their text says."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from warpfields.fields.hybrid import HybridField, preset_config
from warpfields.io.fieldfile import save_field

README = Path(__file__).resolve().parents[1] / "README.md"
# Runs a block as a script (Warp reads kernels' source from their file) and saves the named expressions.
DRIVER = """\
import runpy, sys
import numpy as np
names = runpy.run_path(sys.argv[1], run_name="__main__")
pairs = zip(sys.argv[3::2], sys.argv[4::2])
np.savez(sys.argv[2], **{key: np.asarray(eval(expression, names)) for key, expression in pairs})
"""


def python_blocks() -> list[tuple[str, str]]:
    """(heading of the section it is in, code) for every ```python block of the README."""
    blocks, heading = [], ""
    for match in re.finditer(r"^## ([^\n]*)$|^```python\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL):
        if match.group(1) is not None:
            heading = match.group(1)
        else:
            blocks.append((heading, match.group(2)))
    return blocks


def run_block(tmp_path: Path, heading: str, index: int = 0, **expressions: str) -> dict[str, np.ndarray]:
    """Run the ``index``-th Python block under ``heading`` in ``tmp_path``; the values of ``expressions`` after it."""
    code = [code for block_heading, code in python_blocks() if block_heading == heading][index]
    (tmp_path / "block.py").write_text(code)
    (tmp_path / "driver.py").write_text(DRIVER)
    named = [part for pair in expressions.items() for part in pair]
    command = [sys.executable, "driver.py", "block.py", "results.npz", *named]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr
    with np.load(tmp_path / "results.npz") as results:
        return dict(results)


CHECKED = {("Python API", 0), ("Python API", 1), ("Use a field in Newton", 0)}


def test_every_python_block_is_run_here():
    seen = {}
    found = set()
    for heading, _ in python_blocks():
        found.add((heading, seen.setdefault(heading, 0)))
        seen[heading] += 1
    assert found == CHECKED


def test_api_example_kernel_equals_the_host_api(tmp_path):
    # The field file `warpfields demo` writes, stood in for by an untrained tiny field of the same format.
    (tmp_path / "warpfields-demo").mkdir()
    save_field(HybridField(preset_config("tiny"), seed=0), tmp_path / "warpfields-demo" / "field.wfield")
    got = run_block(tmp_path, "Python API", kernel="out.numpy()", host="normals", curvature="curvature")
    assert got["kernel"].shape == got["host"].shape == (1000, 3)
    np.testing.assert_allclose(np.linalg.norm(got["kernel"], axis=1), 1.0, atol=1e-5)
    # The host API's bulk kernels are built with fused multiply-adds, a user's kernel is not: rounding apart.
    np.testing.assert_allclose(got["kernel"], got["host"], atol=2e-4)
    assert got["curvature"].shape == (1000,) and np.isfinite(got["curvature"]).all()


def test_custom_field_example_finds_the_planes_normal(tmp_path):
    got = run_block(tmp_path, "Python API", 1, normals="out.numpy()")
    np.testing.assert_allclose(got["normals"], np.tile([0.0, 0.6, 0.8], (100, 1)), atol=1e-4)


def test_newton_example_rests_particles_on_the_sphere(tmp_path):
    got = run_block(tmp_path, "Use a field in Newton", positions="state.particle_q.numpy()")
    gaps = np.linalg.norm(got["positions"].astype(np.float64) - [0.0, 0.5, 0.0], axis=1) - 0.5
    radius = 0.02
    resting = gaps < 2 * radius
    assert np.count_nonzero(resting) >= 5
    assert np.all(gaps > 0.9 * radius)


def test_a_block_that_fails_fails_its_test(tmp_path):
    # No field file where the API example loads one.
    with pytest.raises(AssertionError, match="warpfields-demo/field.wfield"):
        run_block(tmp_path, "Python API", kernel="out.numpy()")


def test_every_image_the_readme_shows_is_in_the_repository():
    text = README.read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text) + re.findall(r'<img src="([^"]+)"', text)
    assert len(images) >= 5
    for image in images:
        assert (README.parent / image).is_file(), image
