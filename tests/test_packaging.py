"""The installed layout: the scenes ship inside the package, nothing named ``sims`` lands at the top level."""

import subprocess
import sys


def _import_from(tmp_path, module: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", f"import {module}; print({module}.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )


def test_scenes_ship_as_warpfields_sims_and_not_as_a_top_level_package(tmp_path):
    scenes = _import_from(tmp_path, "warpfields.sims.collision")
    assert scenes.returncode == 0, scenes.stderr
    top_level = _import_from(tmp_path, "sims")
    assert top_level.returncode != 0
    assert "No module named 'sims'" in top_level.stderr
