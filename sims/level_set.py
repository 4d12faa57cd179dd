"""Level-set simulations whose state is a hybrid neural field (a ``HybridModule``).

Each step samples points in a band around the current zero level set (plus a share of
uniform points that keep the far field in check), evaluates the new values there with a
Warp kernel that calls the derivative operators per point, and refits the field to them
with a few warm-started Adam steps on its coarse grid levels. Everything is in field
coordinates ([-1, 1]^dim): lengths, speeds and times are field units.
"""

from __future__ import annotations

import typing
from abc import abstractmethod

import numpy as np
import torch
import warp as wp

from warpfields.errors import InputError
from warpfields.fields import field_value
from warpfields.fields.hybrid import HybridField
from warpfields.geometry import extract_level_set
from warpfields.ops import (
    Operator,
    OperatorSpec,
    mean_curvature,
    op_gradient,
    op_hessian,
    op_mean_curvature,
    op_normal,
)
from warpfields.torch import HybridModule

from .base import Simulation, check_count

wp.set_module_options({"enable_backward": False})

FLOW_ROTATION = 0
FLOW_DEFORMATION = 1
FLOWS = {"rotation": FLOW_ROTATION, "deformation": FLOW_DEFORMATION}
_VEC = {2: wp.vec2, 3: wp.vec3}


@wp.struct
class Flow:
    """A prescribed velocity: rigid rotation (``omega`` rad/s about ``axis`` through ``center``; 2D: about
    ``center.xy``) or the Enright (3D) / single-vortex (2D) deformation reversed at ``period / 2``."""

    kind: int
    axis: wp.vec3
    center: wp.vec3
    omega: float
    period: float


@wp.func
def flow_velocity(flow: Flow, x: wp.vec3, t: float) -> wp.vec3:
    if flow.kind == FLOW_ROTATION:
        return flow.omega * wp.cross(flow.axis, x - flow.center)
    # The deformation is defined on [0, 1]^3: u = (x + 1) / 2, so dx/dt = 2 du/dt.
    p = wp.pi * (x + wp.vec3(1.0)) * 0.5
    s = wp.vec3(wp.sin(p[0]), wp.sin(p[1]), wp.sin(p[2]))
    s2 = wp.vec3(wp.sin(2.0 * p[0]), wp.sin(2.0 * p[1]), wp.sin(2.0 * p[2]))
    c = 2.0 * wp.cos(wp.pi * t / flow.period)
    return c * wp.vec3(2.0 * s[0] * s[0] * s2[1] * s2[2], -s2[0] * s[1] * s[1] * s2[2], -s2[0] * s2[1] * s[2] * s[2])


@wp.func
def flow_velocity(flow: Flow, x: wp.vec2, t: float) -> wp.vec2:  # noqa: F811 (an overload per dimension)
    if flow.kind == FLOW_ROTATION:
        r = x - wp.vec2(flow.center[0], flow.center[1])
        return flow.omega * wp.vec2(-r[1], r[0])
    p = wp.pi * (x + wp.vec2(1.0)) * 0.5
    c = 2.0 * wp.cos(wp.pi * t / flow.period)
    return c * wp.vec2(
        -wp.sin(p[0]) * wp.sin(p[0]) * wp.sin(2.0 * p[1]), wp.sin(p[1]) * wp.sin(p[1]) * wp.sin(2.0 * p[0])
    )


@wp.func
def closest_surface_point(field: typing.Any, x: typing.Any, phi: float, g: typing.Any, op: Operator, salt: int):
    # Two Newton steps along the operator's gradient (the first from x's own phi and g); |g|^2 is
    # floored so that flat spots stay put.
    p = x - phi * g / wp.max(wp.dot(g, g), 1.0e-4)
    gp = op_gradient(field, p, op, salt)
    return p - field_value(field, p) * gp / wp.max(wp.dot(gp, gp), 1.0e-4)


@wp.kernel
def _curvature_targets(
    start: int,
    field: typing.Any,
    op: Operator,
    salt: int,
    dt: float,
    principal: float,
    max_curvature: float,
    band: float,
    points: wp.array(dtype=typing.Any),
    out: wp.array(dtype=float),
):
    i = start + wp.tid()
    x = points[i]
    phi = field_value(field, x)
    g = op_gradient(field, x, op, salt + i)
    # The speed is the curvature at the closest surface point, extended along the normal to every
    # point (no far-field curvature, unbounded at a collapsing sphere's centre, enters), taken at the
    # step's midpoint: on the parallel surface half a step in, which makes the step second order in dt.
    p = closest_surface_point(field, x, phi, g, op, salt + i)
    kappa = wp.clamp(principal * op_mean_curvature(field, p, op, salt + i), -max_curvature, max_curvature)
    mid = p - 0.5 * dt * kappa * op_normal(field, p, op, salt + i)
    kappa_mid = wp.clamp(principal * op_mean_curvature(field, mid, op, salt + i), -max_curvature, max_curvature)
    slope = wp.length(g)
    out[i] = phi + dt * kappa_mid * slope
    if wp.abs(phi) > band and wp.abs(field_value(field, p)) > 0.25 * wp.abs(phi):
        # No closest point (the medial axis, e.g. a sphere's centre): hold the value there.
        out[i] = phi
    elif wp.abs(phi) < band and slope > 0.25:
        # Reinitialise in the band: phi / |grad phi| has the same zero set and unit slope, so the refit's
        # errors in the slope do not accumulate into the speed of the surface.
        out[i] = phi / slope + dt * kappa_mid


@wp.kernel
def _advection_targets(
    start: int,
    field: typing.Any,
    op: Operator,
    salt: int,
    flow: Flow,
    t: float,
    dt: float,
    points: wp.array(dtype=typing.Any),
    out: wp.array(dtype=float),
):
    # Second-order Taylor step (RK2 for this linear equation): phi_tt = v.(H v) + (J v).g with v at
    # the mid time, which also absorbs the -v_t.g term of a time-dependent velocity to O(dt^3).
    i = start + wp.tid()
    x = points[i]
    g = op_gradient(field, x, op, salt + i)
    hess = op_hessian(field, x, op, salt + i)
    mid = t + 0.5 * dt
    v = flow_velocity(flow, x, mid)
    eps = 1.0e-3
    jv = (flow_velocity(flow, x + eps * v, mid) - flow_velocity(flow, x - eps * v, mid)) / (2.0 * eps)
    second = wp.dot(v, hess * v) + wp.dot(jv, g)
    out[i] = field_value(field, x) - dt * wp.dot(v, g) + 0.5 * dt * dt * second


@wp.func
def trace_flow(flow: Flow, x: typing.Any, t: float, dt: float, substeps: int, dim: int):
    """Where the flow carries ``x`` from time ``t`` to ``t + dt`` (RK4 in ``substeps``; a negative ``dt``
    traces back), kept in the domain [-1, 1]^dim."""
    h = dt / float(substeps)
    y = x
    s = t
    for _ in range(substeps):
        k1 = flow_velocity(flow, y, s)
        k2 = flow_velocity(flow, y + 0.5 * h * k1, s + 0.5 * h)
        k3 = flow_velocity(flow, y + 0.5 * h * k2, s + 0.5 * h)
        k4 = flow_velocity(flow, y + h * k3, s + h)
        y = y + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        s = s + h
    for a in range(dim):
        y[a] = wp.clamp(y[a], -1.0, 1.0)
    return y


@wp.kernel
def _characteristic_targets(
    start: int,
    field: typing.Any,
    flow: Flow,
    t: float,
    dt: float,
    substeps: int,
    dim: int,
    carried: int,
    points: wp.array(dtype=typing.Any),
    out: wp.array(dtype=float),
):
    # phi is constant along the flow's paths: the new value at x is the old one where x came from. The first
    # ``carried`` points are first carried forward over the step, so that they sample the band the surface
    # moves into.
    i = start + wp.tid()
    x = points[i]
    if i < carried:
        x = trace_flow(flow, x, t, dt, substeps, dim)
        points[i] = x
    out[i] = field_value(field, trace_flow(flow, x, t + dt, -dt, substeps, dim))


def module_tensor(module: HybridModule, values: np.ndarray) -> torch.Tensor:
    """``values`` as a float32 tensor on the device of ``module``'s parameters."""
    return torch.as_tensor(np.ascontiguousarray(values, dtype=np.float32), device=module.table.device)


def field_values(module: HybridModule, points: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(module_tensor(module, points)).cpu().numpy()


def band_points(
    module: HybridModule, n: int, width: float, seed: int, uniform_share: float = 0.25, tries: int = 8
) -> np.ndarray:
    """``n`` float32 points: about ``1 - uniform_share`` of them uniform in the band |phi| < ``width``
    (by rejection from the domain), the rest uniform in [-1, 1]^dim."""
    dim = module.config.dim
    rng = np.random.default_rng(seed)
    n_band = int(n * (1.0 - uniform_share))
    kept, found = [], 0
    for _ in range(tries):
        candidates = rng.uniform(-1.0, 1.0, size=(16 * n, dim)).astype(np.float32)
        inside = candidates[np.abs(field_values(module, candidates)) < width]
        kept.append(inside)
        found += len(inside)
        if found >= n_band:
            break
    band = np.concatenate(kept)[:n_band]
    uniform = rng.uniform(-1.0, 1.0, size=(n - len(band), dim)).astype(np.float32)
    return np.concatenate([band, uniform])


def coarse_mask(module: HybridModule, max_resolution: int) -> torch.Tensor:
    """1 on the table entries of the grid levels of resolution <= ``max_resolution``, 0 elsewhere."""
    mask = torch.zeros_like(module.table)
    for grid in module.config.grids():
        if grid.resolution <= max_resolution:
            mask[grid.offset : grid.offset + grid.entries * module.config.features] = 1.0
    return mask


def jittered_batches(pool: torch.Tensor, size: int, spread: float, seed: int, targets):
    """A batch source for ``refit``: each call draws ``size`` points of ``pool`` moved by N(0, ``spread``^2)
    noise (kept in the domain), with ``targets(x)``. Fresh points every optimiser step cannot be memorised."""
    generator = torch.Generator(device=pool.device).manual_seed(seed)

    def batch(_):
        pick = torch.randint(len(pool), (size,), generator=generator, device=pool.device)
        noise = torch.randn(size, pool.shape[1], generator=generator, device=pool.device)
        x = (pool[pick] + spread * noise).clamp(-1.0, 1.0).contiguous()
        return x, targets(x)

    return batch


def refit(module: HybridModule, batches, steps: int, lr: float, mask: torch.Tensor, optimizer=None, final_lr=None):
    """``steps`` Adam steps of the squared error towards the targets of ``batches(k)`` (a pair of tensors:
    points, targets) on the table entries that ``mask`` selects, warm-started from the current table (and
    from ``optimizer``'s moments when given); the rate decays geometrically to ``final_lr`` when given.
    The decoder and the other entries stay fixed. Returns (optimizer, last loss)."""
    if optimizer is None:
        optimizer = torch.optim.Adam([module.table], lr=lr, betas=(0.9, 0.99), eps=1e-15)
    decay = (final_lr / lr) ** (1.0 / steps) if final_lr else 1.0
    for group in optimizer.param_groups:
        group["lr"] = lr
    loss = torch.zeros(())
    for k in range(steps):
        x, y = batches(k)
        loss = ((module(x) - y) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        module.table.grad.mul_(mask)
        optimizer.step()
        for group in optimizer.param_groups:
            group["lr"] *= decay
    module.zero_grad(set_to_none=True)
    return optimizer, float(loss.item())


class LevelSetSimulation(Simulation):
    """The shared machinery: subclasses implement ``_launch_targets(struct, points, out, dt)``."""

    def __init__(
        self,
        field: HybridField,
        spec: OperatorSpec,
        band_width: float = 0.1,
        points: int = 4096,
        refit_steps: int = 20,
        learning_rate: float = 5e-3,
        refit_resolution: int = 128,
        seed: int = 0,
        device=None,
    ):
        super().__init__(device)
        if not isinstance(field, HybridField):
            raise InputError(f"field: expected a hybrid neural field (the state), got a {field.kind} field")
        if not (isinstance(band_width, int | float) and band_width > 0):
            raise InputError(f"band_width: expected a positive number, got {band_width!r}")
        self.dim = field.dim
        self.spec = spec
        self.op = spec.warp()
        self.band_width = float(band_width)
        self.points = check_count(points, "points", 16)
        self.refit_steps = check_count(refit_steps, "refit_steps")
        self.learning_rate = float(learning_rate)
        self.refit_resolution = check_count(refit_resolution, "refit_resolution")
        self.seed = seed
        self.module = HybridModule(field, self.device)
        self.normalization = field.normalization
        self.optimizer = None
        self.refit_mask = coarse_mask(self.module, self.refit_resolution)
        if not self.refit_mask.any():
            coarsest = min(grid.resolution for grid in self.module.config.grids())
            expected = f"expected at least the coarsest level's {coarsest}"
            raise InputError(f"refit_resolution: {expected}, got {refit_resolution}")
        if not bool(self.refit_mask.all()):
            self._drop_unmoved_levels(field)
        self.losses: list[float] = []
        self._targets = wp.zeros(self.points, dtype=float, device=self.device)

    def _drop_unmoved_levels(self, field: HybridField) -> None:
        """The refit moves the grid levels up to ``refit_resolution``; finer ones would hold their part of the
        shape where it started (0.0035 rms near the fast sphere's surface, more than a step's refit error) and
        drag the moving surface. So the state starts without them, and the moved levels are refitted to the
        field (200 steps on jittered band batches, as the advection's refit). The state keeps only the moved
        levels where they form a level series of their own (every refit then costs about half), and holds the
        others at zero where they do not."""
        initial = HybridModule(field, self.device)
        coarse = field.coarse_levels(self.refit_resolution)
        if coarse is None:
            with torch.no_grad():
                self.module.table.mul_(self.refit_mask)
        else:
            self.module = HybridModule(coarse, self.device)
            self.refit_mask = coarse_mask(self.module, self.refit_resolution)
        pool = module_tensor(self.module, band_points(initial, 65536, self.band_width, self.seed))

        def targets(x):
            with torch.no_grad():
                return initial(x)

        batches = jittered_batches(pool, 8192, 0.5 * self.band_width, self.seed, targets)
        refit(self.module, batches, 200, 1e-2, self.refit_mask, final_lr=1e-4)

    @abstractmethod
    def _launch_targets(self, struct, points: wp.array, out: wp.array, dt: float) -> None:
        """Write the state's next values at ``points`` into ``out``."""

    def _advance(self, dt: float) -> None:
        x = band_points(self.module, self.points, self.band_width, self.seed + self.steps)
        points = wp.array(x, dtype=_VEC[self.dim], device=self.device)
        self._launch_targets(self.module.warp_struct(), points, self._targets, dt)
        # Fine entries are each seen by one or two of these fixed samples and would fit them on their own,
        # leaving the level set between them behind: the mask keeps this refit on the coarse levels.
        batch = (module_tensor(self.module, x), module_tensor(self.module, self._targets.numpy()))
        self.optimizer, loss = refit(
            self.module, lambda k: batch, self.refit_steps, self.learning_rate, self.refit_mask, self.optimizer
        )
        self.losses.append(loss)

    def next_values(self, points: np.ndarray, dt: float) -> np.ndarray:
        """The state's values at ``points`` one step of ``dt`` on: what the refit of a step fits to."""
        x = wp.array(np.ascontiguousarray(points, dtype=np.float32), dtype=_VEC[self.dim], device=self.device)
        out = wp.zeros(len(x), dtype=float, device=self.device)
        self._launch_targets(self.module.warp_struct(), x, out, dt)
        return out.numpy()

    def state_arrays(self) -> dict[str, wp.array]:
        parameters = {name: wp.from_torch(p.detach()) for name, p in self.module.named_parameters()}
        return {"targets": self._targets, **parameters}

    def field(self) -> HybridField:
        return self.module.to_field()

    def surface(self, n: int = 2048, seed: int = 0) -> np.ndarray:
        """``n`` points on the current zero level set (field coordinates): vertices of its marching-cubes
        extraction at 128^3 (a 512^2 contour in 2D), which lie within about 1e-4 of the level set. Newton
        projection with the field's own gradient does not: its fine-level noise leaves a share of the points
        0.05 off after 10 steps."""
        vertices, _ = extract_level_set(self.field(), 128 if self.dim == 3 else 512, self.device)
        pick = np.random.default_rng(seed).choice(len(vertices), size=min(n, len(vertices)), replace=False)
        return vertices[pick]

    def inside_fraction(self, resolution: int = 48) -> np.ndarray:
        return inside_grid(self.module, resolution)

    def record(self, recorder, frame: int) -> None:
        field = self.field()
        vertices, faces = extract_level_set(field, 64 if self.dim == 3 else 256, self.device)
        if self.dim == 2:
            recorder.add_points("surface", self.normalization.from_field(vertices) @ np.eye(2, 3), frame=frame)
            return
        curvature = mean_curvature(field, vertices, **self._op_kwargs(), device=self.device)
        recorder.add_mesh_frame(
            "surface", self.normalization.from_field(vertices), faces, frame, primvars={"curvature": curvature}
        )

    def _op_kwargs(self) -> dict:
        s = self.spec
        return {"method": s.method, "k": s.k, "sigma": s.sigma, "h": s.h, "stencil": s.stencil, "seed": s.seed}


def grid_points(dim: int, resolution: int) -> np.ndarray:
    axis = np.linspace(-1.0, 1.0, resolution)
    grid = np.meshgrid(*([axis] * dim), indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=1)


def inside_grid(module: HybridModule, resolution: int) -> np.ndarray:
    return field_values(module, grid_points(module.config.dim, resolution)) < 0.0


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 1.0


__all__ = [
    "FLOWS",
    "Flow",
    "LevelSetSimulation",
    "band_points",
    "coarse_mask",
    "field_values",
    "grid_points",
    "inside_grid",
    "iou",
    "jittered_batches",
    "refit",
]
