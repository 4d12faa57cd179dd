"""The installed layout: every package folder ships, the scenes ship inside the package (nothing named ``sims``
lands at the top level), the version has one source, and the tests import the package they mean to test.

``.ci/installed-smoke`` runs this file against a wheel installed into a fresh environment, from outside the
repository, with ``WARPFIELDS_TEST_INSTALLED=1``; otherwise the package must be this checkout's own."""

import importlib.metadata
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import warpfields

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPOSITORY = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())
INSTALLED = os.environ.get("WARPFIELDS_TEST_INSTALLED") == "1"


def _import_from(tmp_path, module: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", f"import {module}; print({module}.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )


def package_folders() -> set[str]:
    """Every folder of the source tree with an ``__init__.py``, by the package name it installs as."""
    names = set()
    for root, installed_as in (("warpfields", "warpfields"), ("sims", "warpfields.sims")):
        for init in (REPOSITORY / root).rglob("__init__.py"):
            parts = init.parent.relative_to(REPOSITORY / root).parts
            names.add(".".join((installed_as, *parts)))
    return names


def test_scenes_ship_as_warpfields_sims_and_not_as_a_top_level_package(tmp_path):
    scenes = _import_from(tmp_path, "warpfields.sims.collision")
    assert scenes.returncode == 0, scenes.stderr
    top_level = _import_from(tmp_path, "sims")
    assert top_level.returncode != 0
    assert "No module named 'sims'" in top_level.stderr


def test_python_in_the_folder_holding_a_clone_named_warpfields_gets_the_package(tmp_path):
    # There the clone's root comes first on the path, before the installed package.
    clone = REPOSITORY
    (tmp_path / "warpfields").symlink_to(clone, target_is_directory=True)
    code = (
        "import warpfields, warpfields.sims.collision; print(warpfields.AnyField, warpfields.sims.collision.__file__)"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[-1] == str(clone / "sims" / "collision.py")


def test_every_package_folder_is_in_the_explicit_package_list():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert package_folders() - listed == set(), "package folders missing from [tool.setuptools] packages"
    assert listed - package_folders() == set(), "[tool.setuptools] packages names folders that do not exist"


def test_the_package_under_test_is_the_one_meant():
    """Installed: from the environment's site-packages, never from the repository, with every package folder
    and the license. Otherwise: this checkout's own."""
    location = Path(warpfields.__file__).resolve()
    if not INSTALLED:
        assert location == REPOSITORY / "warpfields" / "__init__.py"
        return
    assert location.is_relative_to(Path(sysconfig.get_paths()["purelib"]).resolve())
    assert str(REPOSITORY) not in [str(Path(p).resolve()) for p in sys.path if p]
    files = {str(f) for f in importlib.metadata.distribution("warpfields").files}
    for package in package_folders():
        assert package.replace(".", "/") + "/__init__.py" in files
    assert any(f.endswith(".dist-info/licenses/LICENSE") for f in files)
    assert not any(f.startswith("sims/") for f in files)


def test_the_version_has_one_source_and_the_command_reports_it():
    assert "version" not in PYPROJECT["project"] and "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "warpfields._version.__version__"}
    assert importlib.metadata.version("warpfields") == warpfields.__version__
    run = subprocess.run(
        [sys.executable, "-m", "warpfields", "--version"], capture_output=True, text=True, cwd=REPOSITORY.parent
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == f"warpfields {warpfields.__version__}"
