"""Host handles of the analytic fields (ground truth)."""

from __future__ import annotations

import numpy as np

from . import analytic
from .base import Field, Normalization

SHAPES = {
    "sphere": (3, analytic.SphereField, {"center": (0.0, 0.0, 0.0), "radius": 0.5}),
    "torus": (3, analytic.TorusField, {"center": (0.0, 0.0, 0.0), "major_radius": 0.5, "minor_radius": 0.2}),
    "circle": (2, analytic.CircleField, {"center": (0.0, 0.0), "radius": 0.5}),
    "quadratic3": (3, analytic.QuadraticField3, {"c": 0.0, "g": (0.0,) * 3, "A": (0.0,) * 9}),
    "quadratic2": (2, analytic.QuadraticField2, {"c": 0.0, "g": (0.0,) * 2, "A": (0.0,) * 4}),
}


class AnalyticField(Field):
    """A closed-form field: ``AnalyticField("sphere", radius=0.3)``."""

    def __init__(self, shape: str, normalization: Normalization | None = None, **params):
        if shape not in SHAPES:
            raise ValueError(f"unknown analytic shape {shape!r}; expected one of {sorted(SHAPES)}")
        dim, struct_type, defaults = SHAPES[shape]
        unknown = set(params) - set(defaults)
        if unknown:
            raise ValueError(f"analytic {shape}: unknown parameters {sorted(unknown)}; expected {sorted(defaults)}")
        merged = {**defaults, **params}
        for name, value in merged.items():
            if not np.all(np.isfinite(np.asarray(value, dtype=np.float64))):
                raise ValueError(f"analytic {shape}: parameter {name}={value!r} must be finite")
        super().__init__(dim=dim, kind="analytic", normalization=normalization)
        self.shape = shape
        self.params = {k: (tuple(float(x) for x in np.ravel(v)) if np.ndim(v) else float(v)) for k, v in merged.items()}
        self._struct_type = struct_type

    def _make_struct(self, device):
        s = self._struct_type()
        for name, value in self.params.items():
            current = getattr(s, name)
            if isinstance(value, tuple):
                setattr(s, name, type(current)(*value))
            else:
                setattr(s, name, value)
        return s

    def header(self) -> dict:
        return {**super().header(), "shape": self.shape, "params": self.params}

    @classmethod
    def from_parts(cls, header: dict, arrays: dict) -> AnalyticField:
        """The field a file's header describes (analytic fields store no arrays)."""
        return cls(header["shape"], Normalization.from_dict(header["normalization"]), **header["params"])

    def __repr__(self) -> str:
        return f"AnalyticField({self.shape!r}, {self.params})"


def sphere(radius: float = 0.5, center=(0.0, 0.0, 0.0)) -> AnalyticField:
    """Exact signed distance to a sphere (3D); ``radius`` and ``center`` in field units.
    Raises ``ValueError`` for a non-finite parameter."""
    return AnalyticField("sphere", radius=radius, center=center)


def torus(major_radius: float = 0.5, minor_radius: float = 0.2, center=(0.0, 0.0, 0.0)) -> AnalyticField:
    """Exact signed distance to a torus around the z axis (3D); radii and ``center`` in field units.
    Raises ``ValueError`` for a non-finite parameter."""
    return AnalyticField("torus", major_radius=major_radius, minor_radius=minor_radius, center=center)


def circle(radius: float = 0.5, center=(0.0, 0.0)) -> AnalyticField:
    """Exact signed distance to a circle (2D); ``radius`` and ``center`` in field units.
    Raises ``ValueError`` for a non-finite parameter."""
    return AnalyticField("circle", radius=radius, center=center)


def quadratic(c: float, g, A) -> AnalyticField:
    """f(x) = c + g.x + x^T A x / 2 in 2D or 3D (by the length of ``g``)."""
    g = np.asarray(g, dtype=np.float64).ravel()
    A = np.asarray(A, dtype=np.float64)
    if g.size not in (2, 3) or A.shape != (g.size, g.size):
        raise ValueError(
            f"quadratic: g must have 2 or 3 entries and A be square of that size; got {g.shape}, {A.shape}"
        )
    return AnalyticField(f"quadratic{g.size}", c=c, g=tuple(g), A=tuple(A.ravel()))


__all__ = ["AnalyticField", "sphere", "torus", "circle", "quadratic"]
