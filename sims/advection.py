"""Advection of a hybrid neural field by a prescribed velocity: phi_t + v . grad phi = 0, with grad phi
(and the Hessian of the second-order step) from the derivative operators.

Metrics against the exact solution phi0(X(x)), X the map back along the flow: rigid rotation at any
time; the reversible deformation at its period (where X is the identity)."""

from __future__ import annotations

import math

import numpy as np
import warp as wp

from warpfields.errors import InputError
from warpfields.geometry import evaluate_values
from warpfields.parallel import launch

from .level_set import FLOW_ROTATION, FLOWS, Flow, LevelSetSimulation, _advection_targets, grid_points, inside_grid, iou

wp.set_module_options({"enable_backward": False})


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    k = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    return np.eye(3) + math.sin(angle) * k + (1.0 - math.cos(angle)) * k @ k


class Advection(LevelSetSimulation):
    name = "advection"
    grid_resolution = 48

    def __init__(
        self,
        field,
        spec,
        velocity: str = "rotation",
        axis=(0.0, 0.0, 1.0),
        center=(0.0, 0.0, 0.0),
        omega: float = 2.0 * math.pi,
        period: float = 1.0,
        **kwargs,
    ):
        super().__init__(field, spec, **kwargs)
        if velocity not in FLOWS:
            raise InputError(f"velocity: expected one of {sorted(FLOWS)}, got {velocity!r}")
        spec.check("hessian", self.dim)
        axis = np.asarray(axis, dtype=np.float64)
        if axis.shape != (3,) or not np.linalg.norm(axis) > 0:
            raise InputError(f"axis: expected a non-zero 3-vector, got {axis.tolist()}")
        if not period > 0:
            raise InputError(f"period: expected a positive number, got {period!r}")
        self.velocity = velocity
        self.axis = axis / np.linalg.norm(axis)
        self.center = np.zeros(3)
        self.center[: len(center)] = center
        self.omega = float(omega)
        self.period = float(period)
        self.flow = Flow()
        self.flow.kind = FLOWS[velocity]
        self.flow.axis = wp.vec3(*self.axis)
        self.flow.center = wp.vec3(*self.center)
        self.flow.omega = self.omega
        self.flow.period = self.period
        self.initial_inside = inside_grid(self.module, self.grid_resolution)

    def _launch_targets(self, struct, points, out, dt):
        inputs = [struct, self.op, self.steps * self.points, self.flow, self.time, dt, points, out]
        launch(_advection_targets, len(points), inputs, self.device)

    def back_map(self, points: np.ndarray) -> np.ndarray | None:
        """Where the flow took ``points`` from (time 0), or None when no closed form is known now."""
        if self.flow.kind == FLOW_ROTATION:
            rotation = _rotation(self.axis, -self.omega * self.time)
            if self.dim == 2:
                rotation = _rotation(np.array([0.0, 0.0, 1.0]), -self.omega * self.time)[:2, :2]
            c = self.center[: self.dim]
            return (points - c) @ rotation.T + c
        cycles = self.time / self.period
        return points if abs(cycles - round(cycles)) < 1e-6 else None

    def metrics(self, exact, n: int = 2048) -> dict:
        """IoU of the inside voxels, mean surface distance to the exact shape, volume drift; ``exact``
        is the initial shape as a field (e.g. the analytic SDF the state was fitted to)."""
        resolution = self.grid_resolution
        inside = inside_grid(self.module, resolution)
        result = {"volume drift": float(inside.sum() / max(self.initial_inside.sum(), 1) - 1.0)}
        grid = grid_points(self.dim, resolution)
        back = self.back_map(grid)
        if back is None:
            return result
        exact_inside = evaluate_values(exact, back, self.device) < 0.0
        surface = self.surface(n, self.steps)
        result["IoU"] = iou(inside, exact_inside)
        result["mean surface distance"] = float(
            np.abs(evaluate_values(exact, self.back_map(surface), self.device)).mean()
        )
        return result


__all__ = ["Advection"]
