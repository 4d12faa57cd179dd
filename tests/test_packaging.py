"""The installed layout: the scenes ship inside the package, nothing named ``sims`` lands at the top level."""

import subprocess
import sys
from pathlib import Path


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


def test_python_in_the_folder_holding_a_clone_named_warpfields_gets_the_package(tmp_path):
    # There the clone's root comes first on the path, before the installed package.
    clone = Path(__file__).resolve().parents[1]
    (tmp_path / "warpfields").symlink_to(clone, target_is_directory=True)
    code = (
        "import warpfields, warpfields.sims.collision; print(warpfields.AnyField, warpfields.sims.collision.__file__)"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[-1] == str(clone / "sims" / "collision.py")
