"""Shared fixtures."""

from pathlib import Path

import pytest
import warp as wp

SHARED_ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets"


def available_devices() -> list[str]:
    """The Warp devices that tests taking a ``device`` run on: the CPU, and the first CUDA device where Warp
    finds one (``.ci/gpu-check`` selects those runs with ``-k cuda``)."""
    return ["cpu", *(["cuda:0"] if wp.is_cuda_available() else [])]


@pytest.fixture(params=available_devices())
def device(request) -> str:
    return request.param


@pytest.fixture
def shared_assets() -> Path:
    """``../shared/assets`` next to the repository (meshes too large to keep in it)."""
    if not SHARED_ASSETS.is_dir():
        pytest.skip(f"shared assets folder {SHARED_ASSETS} is absent")
    return SHARED_ASSETS
