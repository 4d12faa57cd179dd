"""Advection of a hybrid neural field by a prescribed velocity: phi_t + v . grad phi = 0.

Two schemes. ``characteristics`` (the default): phi is constant along the flow's paths, so the new field at
x is the old one where x came from (RK4 back along the velocity); each step refits the state to the old
state (a frozen copy) read there, on fresh jittered band samples every round of the refit, so that no
sample is memorised and the state is moved everywhere near its surface. ``taylor``: the Eulerian second-order
Taylor step with grad phi and the Hessian from the derivative operators at fixed band samples; it needs
the gradient to about 0.1% to bring a shape back after a turn (the surface moves |v| * T, about 3 field
units here), which neither autodiff nor a local fit of a neural field gives (BENCHMARKS.md).

Metrics against the exact solution phi0(X(x)), X the map back along the flow: rigid rotation at any
time; the reversible deformation at its period (where X is the identity)."""

from __future__ import annotations

import math

import numpy as np
import warp as wp

from warpfields.errors import InputError
from warpfields.geometry import evaluate_values
from warpfields.ops import OperatorSpec, query
from warpfields.parallel import launch
from warpfields.rotation import rotation_matrix

from .base import check_count
from .level_set import (
    FIT_SHARD,
    FLOW_ROTATION,
    FLOWS,
    Flow,
    LevelSetSimulation,
    _characteristic_targets,
    _jitter,
    advection_targets_kernel,
    grid_points,
    inside_grid,
    iou,
    run_rounds,
    with_table,
)

SCHEMES = ("characteristics", "taylor")

wp.set_module_options({"enable_backward": False})


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
        scheme: str = "characteristics",
        trace_steps: int = 2,
        **kwargs,
    ):
        if scheme not in SCHEMES:
            raise InputError(f"scheme: expected one of {list(SCHEMES)}, got {scheme!r}")
        if scheme == "characteristics":
            # Fresh jittered points every round, and random batches of them, are not memorised, so the refit
            # can take many steps at a high rate, decaying within the step to 1% so that its noise settles; a
            # band of 0.05 spends the samples near the surface. What a step leaves behind shrinks with the
            # refit's steps (0.0014 of surface distance after one step with 200, 0.0010 with 400). Each round
            # relinearises the decoder: over a turn of the fast sphere 32 rounds leave 0.0020 of surface
            # distance where 16 leave 0.0026, at 1.3 times the time.
            defaults = {"refit_steps": 400, "learning_rate": 1e-2, "band_width": 0.05}
            kwargs = {**defaults, **kwargs}
        self.scheme = scheme
        super().__init__(field, spec, **kwargs)
        # RK4 in 2 substeps traces a step (1/32 turn) of either flow to float32 rounding: 1.5e-6 from a
        # 64-substep path, where 1 substep leaves 3.5e-6; both far below the refit's surface error (2e-3).
        self.trace_steps = check_count(trace_steps, "trace_steps")
        if velocity not in FLOWS:
            raise InputError(f"velocity: expected one of {sorted(FLOWS)}, got {velocity!r}")
        spec.check("hessian" if scheme == "taylor" else "normal", self.dim, field)
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
        self.initial_inside = inside_grid(self.state, self.grid_resolution, self.device)
        self._old = with_table(self.config, self._struct, wp.clone(self._struct.table))
        self._round_points = wp.empty_like(self.sampler.points)

    @property
    def full_sample_counts(self) -> tuple:
        return (65536, 8192) if self.scheme == "characteristics" else LevelSetSimulation.full_sample_counts

    def default_rounds(self, share: float) -> int:
        # Each round draws fresh points: the fresh points per step follow the share, sqrt(share) times the
        # rounds of sqrt(share) times the points. On the `tiny` preset the step then takes a third of the
        # time and one turn of the off-centre sphere ends at IoU 0.96 instead of 0.94; a quarter of those
        # points per round ends at 0.90 (each point refitted too often).
        if self.scheme != "characteristics":
            return super().default_rounds(share)
        return max(1, round(32 * math.sqrt(share)))

    def _advance(self, dt: float) -> None:
        if self.scheme == "taylor":
            return super()._advance(dt)
        # The state refits to a frozen copy of itself carried dt along the flow, with a fresh Adam, in rounds
        # on fresh jittered band points (a share of them first carried forward into where the surface moves).
        wp.copy(self._old.table, self._struct.table)
        seed = self.seed + self.steps + 1
        pool = self.sampler.sample(self._struct, seed)
        points, targets = self._round_points, self._targets

        def draw(r: int):
            launch(_jitter, len(pool), [pool, 0.5 * self.band_width, seed * 131 + r, points], self.device)
            self._launch_targets(self._old, points, targets, dt, carry=True)
            return points, targets

        self.refit.reset()
        final_lr = 0.01 * self.learning_rate
        run_rounds(self.refit, draw, self.refit_rounds, self.refit_steps, self.learning_rate, final_lr)

    def _launch_targets(self, struct, points, out, dt, carry: bool = False):
        if self.scheme == "taylor":
            inputs = [struct, self.op, self.steps * self.points, self.flow, self.time, dt, points, out]
            kernel = advection_targets_kernel(self.spec.method)
            launch(kernel, len(points), inputs, self.device, min_shard=FIT_SHARD)
            return
        inputs = [struct, self.flow, self.time, dt, self.trace_steps, self.dim, int(carry), points, out]
        launch(_characteristic_targets, len(points), inputs, self.device)

    def back_map(self, points: np.ndarray) -> np.ndarray | None:
        """Where the flow took ``points`` from (time 0), or None when no closed form is known now."""
        if self.flow.kind == FLOW_ROTATION:
            rotation = rotation_matrix(self.axis, -self.omega * self.time)
            if self.dim == 2:
                rotation = rotation_matrix((0.0, 0.0, 1.0), -self.omega * self.time)[:2, :2]
            c = self.center[: self.dim]
            return (points - c) @ rotation.T + c
        cycles = self.time / self.period
        return points if abs(cycles - round(cycles)) < 1e-6 else None

    def metrics(self, exact, n: int = 2048) -> dict:
        """IoU of the inside voxels, mean surface distance to the exact shape, volume drift; ``exact``
        is the initial shape as a field (e.g. the analytic SDF the state was fitted to)."""
        resolution = self.grid_resolution
        inside = inside_grid(self.state, resolution, self.device)
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
        result["median normal error (deg)"] = self.normal_error(exact, surface)
        return result

    def normal_error(self, exact, surface: np.ndarray, spec: OperatorSpec | None = None) -> float:
        """Median angle between the state's normals at ``surface`` (by ``spec``, default the scene's) and
        the exact shape's there (central differences of the exact field along the map back, h = 1e-3)."""
        h = 1e-3
        steps = np.eye(self.dim) * h
        exact_gradient = np.stack(
            [
                evaluate_values(exact, self.back_map(surface + e), self.device)
                - evaluate_values(exact, self.back_map(surface - e), self.device)
                for e in steps
            ],
            axis=1,
        )
        normals = query(self.field(), surface, "normal", spec or self.spec, self.device)
        cosine = (normals * exact_gradient).sum(axis=1) / np.linalg.norm(exact_gradient, axis=1)
        return float(np.degrees(np.median(np.arccos(np.clip(cosine, -1.0, 1.0)))))


__all__ = ["Advection"]
