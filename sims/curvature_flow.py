"""Mean curvature flow of a hybrid neural field's zero level set: phi_t = kappa |grad phi|, kappa the
sum of principal curvatures ((dim - 1) times the operators' mean curvature). A sphere obeys
R(t)^2 = R0^2 - 4t and a circle r(t)^2 = r0^2 - 2t (field units)."""

from __future__ import annotations

import math

import numpy as np
import warp as wp

from warpfields.errors import InputError
from warpfields.geometry import evaluate_values
from warpfields.parallel import launch

from .level_set import FIT_SHARD, LevelSetSimulation, curvature_targets_kernel

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
        spec.check("mean_curvature", self.dim, field)
        # Noisy fits can give single band points huge curvatures; a cap of a few over the band width
        # (the smallest radius the band resolves) keeps them from dominating the refit.
        self.max_curvature = float(max_curvature or 4.0 / self.band_width)
        if self.max_curvature <= 0:
            raise InputError(f"max_curvature: expected a positive number, got {max_curvature!r}")

    def _launch_targets(self, struct, points, out, dt):
        inputs = [struct, self.op, self.steps * self.points, dt, float(self.dim - 1), self.max_curvature]
        inputs += [self.band_width, points, out]
        launch(curvature_targets_kernel(self.spec.method), len(points), inputs, self.device, min_shard=FIT_SHARD)

    def radius(self, resolution: int = 128) -> float:
        """The state's ``enclosed_radius`` (field coordinates)."""
        return enclosed_radius(self.state, resolution, self.device)


def enclosed_radius(field, resolution: int = 128, device=None) -> float:
    """Radius of the sphere (3D) or circle (2D) with the volume (area) of the field's negative region in
    [-1, 1]^dim, counted on a cell-centred grid of ``resolution`` cells per axis. Unlike distances of
    surface points it needs no projection onto the level set and no centre, and roughness averages out."""
    axis = (np.arange(resolution) + 0.5) * (2.0 / resolution) - 1.0
    grid = np.stack(np.meshgrid(*([axis] * field.dim), indexing="ij"), axis=-1).reshape(-1, field.dim)
    volume = float(np.count_nonzero(evaluate_values(field, grid, device) < 0.0)) * (2.0 / resolution) ** field.dim
    return math.sqrt(volume / math.pi) if field.dim == 2 else (3.0 * volume / (4.0 * math.pi)) ** (1.0 / 3.0)


__all__ = ["CurvatureFlow", "collapse_time", "enclosed_radius", "law_radius"]
