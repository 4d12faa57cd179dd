"""Mean curvature flow of a hybrid neural field's zero level set: phi_t = kappa |grad phi|, kappa the
sum of principal curvatures ((dim - 1) times the operators' mean curvature). A sphere obeys
R(t)^2 = R0^2 - 4t and a circle r(t)^2 = r0^2 - 2t (field units)."""

from __future__ import annotations

import numpy as np
import warp as wp

from warpfields.errors import InputError
from warpfields.parallel import launch

from .level_set import LevelSetSimulation, _curvature_targets

wp.set_module_options({"enable_backward": False})


def collapse_time(radius: float, dim: int) -> float:
    """When a sphere (3D) or circle (2D) of ``radius`` vanishes under the flow: R0^2 / (2 (dim - 1))."""
    return radius * radius / (2.0 * (dim - 1))


def law_radius(radius: float, t, dim: int):
    """The exact radius at time ``t`` of a sphere/circle that started at ``radius``."""
    return np.sqrt(np.maximum(radius * radius - 2.0 * (dim - 1) * np.asarray(t), 0.0))


class CurvatureFlow(LevelSetSimulation):
    name = "curvature-flow"

    def __init__(self, field, spec, max_curvature: float | None = None, **kwargs):
        super().__init__(field, spec, **kwargs)
        spec.check("mean_curvature", self.dim)
        # Noisy fits can give single band points huge curvatures; a cap of a few over the band width
        # (the smallest radius the band resolves) keeps them from dominating the refit.
        self.max_curvature = float(max_curvature or 4.0 / self.band_width)
        if self.max_curvature <= 0:
            raise InputError(f"max_curvature: expected a positive number, got {max_curvature!r}")

    def _launch_targets(self, struct, points, out, dt):
        inputs = [
            struct,
            self.op,
            self.steps * self.points,
            dt,
            float(self.dim - 1),
            self.max_curvature,
            self.band_width,
        ]
        launch(_curvature_targets, self.points, [*inputs, points, out], self.device)

    def radius(self, center, n: int = 2048) -> float:
        """Median distance of projected surface points to ``center`` (field coordinates)."""
        return float(np.median(np.linalg.norm(self.surface(n, self.steps) - np.asarray(center), axis=1)))


__all__ = ["CurvatureFlow", "collapse_time", "law_radius"]
