"""Host-side handles of fields: the Warp struct on a device plus what the files record."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..runtime import build_lock, get_device


@dataclass(frozen=True)
class Normalization:
    """Maps original (mesh) coordinates into the field's domain: ``(x - center) * scale``."""

    center: tuple[float, ...]
    scale: float

    def __post_init__(self):
        try:
            scale = float(self.scale)
            center = tuple(float(c) for c in self.center)
        except (TypeError, ValueError):
            raise InputError(f"normalization: center {self.center!r}, scale {self.scale!r}: expected numbers") from None
        if not (math.isfinite(scale) and scale > 0):
            raise InputError(f"normalization: scale must be a finite number > 0, got {self.scale!r}")
        if not all(math.isfinite(c) for c in center):
            raise InputError(f"normalization: center must be finite, got {self.center!r}")

    @staticmethod
    def identity(dim: int) -> Normalization:
        return Normalization(center=(0.0,) * dim, scale=1.0)

    def to_field(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, dtype=np.float64) - np.asarray(self.center)) * self.scale

    def from_field(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, dtype=np.float64) / self.scale + np.asarray(self.center)

    def to_dict(self) -> dict:
        return {"center": list(self.center), "scale": self.scale}

    @staticmethod
    def from_dict(d: dict) -> Normalization:
        return Normalization(center=tuple(float(c) for c in d["center"]), scale=float(d["scale"]))


@dataclass
class Field(ABC):
    """A field usable in Warp kernels.

    ``warp(device)`` returns the ``@wp.struct`` instance that kernels receive; every field
    type overloads ``field_value`` (and where it can, ``field_gradient``/``field_hessian``)
    for its struct type. ``finest_cell`` is the side of the finest grid cell in field units
    (``None`` for fields without a grid); operators derive their default scales from it.
    """

    dim: int
    kind: str
    normalization: Normalization = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.normalization is None:
            self.normalization = Normalization.identity(self.dim)
        if len(self.normalization.center) != self.dim:
            raise InputError(
                f"normalization: center {list(self.normalization.center)} has {len(self.normalization.center)} "
                f"coordinates, expected {self.dim} for a {self.dim}D field"
            )
        self._structs: dict = {}

    @property
    def finest_cell(self) -> float | None:
        return None

    def warp(self, device=None):
        device = get_device(device)
        with build_lock:
            if device.alias not in self._structs:
                self._structs[device.alias] = self._make_struct(device)
            return self._structs[device.alias]

    def invalidate(self) -> None:
        """Forget cached device structs (after parameters were replaced)."""
        self._structs.clear()

    @abstractmethod
    def _make_struct(self, device):
        """Build the Warp struct instance with its arrays on ``device``."""

    def header(self) -> dict:
        """JSON-serialisable description (without the arrays)."""
        return {"kind": self.kind, "dim": self.dim, "normalization": self.normalization.to_dict()}

    def arrays(self) -> dict[str, np.ndarray]:
        return {}
