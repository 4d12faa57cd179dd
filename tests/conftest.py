"""Shared fixtures."""

from pathlib import Path

import pytest

SHARED_ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets"


@pytest.fixture
def shared_assets() -> Path:
    """``../shared/assets`` next to the repository (meshes too large to keep in it)."""
    if not SHARED_ASSETS.is_dir():
        pytest.skip(f"shared assets folder {SHARED_ASSETS} is absent")
    return SHARED_ASSETS
