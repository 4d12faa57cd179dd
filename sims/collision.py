"""Particles under gravity against a field collider, with the field's normal from a derivative operator.

World coordinates are the field's original (un-normalised) ones: each field maps them with
its own ``normalization``, so a run and its reference agree whatever domains they use.
Contact when the signed distance drops below the particle radius: push out along the
operator's normal, reflect the normal velocity with restitution, and reduce the
tangential velocity by the Coulomb law (friction impulse <= mu times the normal impulse).
An optional ground, the plane y = ``ground`` (world units), answers contacts by the same law;
its contacts do not count as the collider's.
"""

from __future__ import annotations

import functools
import math
import typing

import numpy as np
import warp as wp

from warpfields.errors import InputError
from warpfields.fields import Field, field_value
from warpfields.geometry import object_bounds
from warpfields.ops import METHOD_AD, METHODS, Operator, operator_function
from warpfields.parallel import launch
from warpfields.runtime import check_memory

from .base import Simulation, check_count

_METHOD_NAMES = {code: name for name, code in METHODS.items()}

wp.set_module_options({"enable_backward": False})

NO_STEP = -1
# Everything a run allocates per particle, its reference run and recording included: 310 B measured with
# 2e6 particles (peak resident memory against 1e3), with a margin for particle contact's buffers.
PARTICLE_BYTES = 512


@wp.func
def _bounce(v: wp.vec3, n: wp.vec3, restitution: float, friction: float) -> wp.vec3:
    """The velocity after a contact with normal ``n``: restitution on the normal part, Coulomb friction on the rest."""
    vn = wp.dot(v, n)
    if vn >= 0.0:
        return v
    vt = v - vn * n
    normal_impulse = -(1.0 + restitution) * vn
    keep = wp.max(0.0, 1.0 - friction * normal_impulse / wp.max(wp.length(vt), 1.0e-30))
    return keep * vt - restitution * vn * n


@functools.cache
def collide_kernel(method: str) -> wp.Kernel:
    """A substep of the particles against the field, with the normal's ``method`` fixed at compile time."""
    normal_fn = operator_function("normal", method)

    @wp.kernel(enable_backward=False, module="unique")
    def collide(
        start: int,
        field: typing.Any,
        op: Operator,
        center: wp.vec3,
        scale: float,
        gravity: wp.vec3,
        dt: float,
        radius: float,
        restitution: float,
        friction: float,
        has_ground: int,
        ground: float,
        step: int,
        salt: int,
        x: wp.array(dtype=wp.vec3),
        v: wp.array(dtype=wp.vec3),
        contact_step: wp.array(dtype=int),
        contact_x: wp.array(dtype=wp.vec3),
        contact_v_in: wp.array(dtype=wp.vec3),
        contact_v_out: wp.array(dtype=wp.vec3),
        bad_step: wp.array(dtype=int),
    ):
        i = start + wp.tid()
        vi = v[i] + gravity * dt
        xi = x[i] + vi * dt
        xf = (xi - center) * scale
        distance = field_value(field, xf) / scale
        if distance < radius:
            n = wp.static(normal_fn)(field, xf, op, salt + i)
            v_in = vi
            x_in = xi
            xi = xi + (radius - distance) * n
            vi = _bounce(vi, n, restitution, friction)
            if contact_step[i] == NO_STEP:
                contact_step[i] = step
                contact_x[i] = x_in
                contact_v_in[i] = v_in
                contact_v_out[i] = vi
        if has_ground != 0 and xi[1] < ground + radius:
            xi = wp.vec3(xi[0], ground + radius, xi[2])
            vi = _bounce(vi, wp.vec3(0.0, 1.0, 0.0), restitution, friction)
        if bad_step[i] == NO_STEP and not (wp.isfinite(xi) and wp.isfinite(vi)):
            bad_step[i] = step
        x[i] = xi
        v[i] = vi

    return collide


@wp.kernel
def _particle_contact(
    start: int,
    grid: wp.uint64,
    radius: float,
    restitution: float,
    x: wp.array(dtype=wp.vec3),
    v: wp.array(dtype=wp.vec3),
    x_out: wp.array(dtype=wp.vec3),
    v_out: wp.array(dtype=wp.vec3),
):
    # Each particle takes half of every pair's separation and impulse; writes only its own slot.
    i = start + wp.tid()
    xi = x[i]
    vi = v[i]
    dx = wp.vec3(0.0)
    dv = wp.vec3(0.0)
    for j in wp.hash_grid_query(grid, xi, 2.0 * radius):
        d = xi - x[j]
        dist = wp.length(d)
        if j != i and dist < 2.0 * radius and dist > 1.0e-12:
            n = d / dist
            dx += 0.5 * (2.0 * radius - dist) * n
            approach = wp.dot(vi - v[j], n)
            if approach < 0.0:
                dv -= 0.5 * (1.0 + restitution) * approach * n
    x_out[i] = xi + dx
    v_out[i] = vi + dv


def ad_operator() -> Operator:
    """The exact-derivative operator (the reference runs use it on the ground-truth field)."""
    op = Operator()
    op.method = METHOD_AD
    return op


def _operator(spec) -> Operator:
    return spec.warp() if hasattr(spec, "warp") else spec


def spawn_positions(field: Field, particles: int, radius: float, seed: int, device=None) -> np.ndarray:
    """Particles uniformly in a slab above the object (y up), over its horizontal extent."""
    lo, hi = object_bounds(field, device=device)
    size = float(np.max(hi - lo))
    rng = np.random.default_rng(seed)
    points = rng.uniform(0.0, 1.0, (particles, 3))
    bottom = hi[1] + 2.0 * radius + 0.1 * size
    top = bottom + 0.5 * size
    low = np.array([lo[0], bottom, lo[2]])
    high = np.array([hi[0], top, hi[2]])
    return low + points * (high - low)


class CollisionScene(Simulation):
    """Particles falling onto ``field``; ``operator_spec`` (an ``OperatorSpec`` or ``Operator``)
    gives the contact normal. ``positions``/``velocities`` override the seeded spawn; ``ground``, the
    height (world y) of a ground plane, or None for none."""

    name = "collision"

    def __init__(
        self,
        field: Field,
        operator_spec,
        reference_field: Field | None = None,
        particles: int = 1000,
        radius: float | None = None,
        restitution: float = 0.5,
        friction: float = 0.3,
        gravity=(0.0, -9.81, 0.0),
        seed: int = 0,
        substeps: int = 10,
        particle_contact: bool = False,
        positions=None,
        velocities=None,
        ground: float | None = None,
        device=None,
    ):
        super().__init__(device)
        if field.dim != 3:
            raise InputError(f"field: the collision scene needs a 3D field, got a {field.dim}D one")
        if reference_field is not None and reference_field.dim != 3:
            raise InputError(f"reference field: expected a 3D field, got a {reference_field.dim}D one")
        particles = check_count(particles, "particles") if positions is None else len(positions)
        if particles < 1:
            raise InputError("particles: expected at least 1 particle, got 0")
        check_memory("particles", particles, PARTICLE_BYTES, self.device)
        if radius is None:
            radius = 0.01 / field.normalization.scale
        for name, value, low, high in (
            ("radius", radius, 0.0, math.inf),
            ("restitution", restitution, 0.0, 1.0),
            ("friction", friction, 0.0, math.inf),
        ):
            if not (math.isfinite(value) and (low < value if name == "radius" else low <= value) and value <= high):
                raise InputError(f"{name}: expected a finite value in [{low}, {high}], got {value!r}")
        if ground is not None and not math.isfinite(ground):
            raise InputError(f"ground: expected a finite height or None, got {ground!r}")
        gravity = np.asarray(gravity, dtype=np.float64)
        if gravity.shape != (3,) or not np.all(np.isfinite(gravity)):
            raise InputError(f"gravity: expected 3 finite numbers, got {gravity.tolist()!r}")
        self.field = field
        self.operator_spec = operator_spec
        self.operator = _operator(operator_spec)
        self.reference_field = reference_field
        self.particles = particles
        self.radius = float(radius)
        self.restitution = float(restitution)
        self.friction = float(friction)
        self.gravity = wp.vec3(*gravity)
        self.seed = int(seed)
        self.substeps = check_count(substeps, "substeps")
        self.particle_contact = bool(particle_contact)
        self.ground = None if ground is None else float(ground)
        if positions is None:
            positions = spawn_positions(field, particles, self.radius, self.seed, self.device)
        positions = np.asarray(positions, dtype=np.float32)
        velocities = np.zeros_like(positions) if velocities is None else np.asarray(velocities, dtype=np.float32)
        if positions.shape != (particles, 3) or velocities.shape != (particles, 3):
            raise InputError(
                f"positions/velocities: expected ({particles}, 3) arrays, got {positions.shape}, {velocities.shape}"
            )
        if not (np.all(np.isfinite(positions)) and np.all(np.isfinite(velocities))):
            raise InputError("positions/velocities: expected finite values")
        self.initial_positions = positions.copy()
        self.initial_velocities = velocities.copy()
        self._reset_state()

    def _reset_state(self) -> None:
        def vectors(values=None):
            if values is None:
                return wp.zeros(self.particles, dtype=wp.vec3, device=self.device)
            return wp.array(values, dtype=wp.vec3, device=self.device)

        self.x = vectors(self.initial_positions)
        self.v = vectors(self.initial_velocities)
        self.contact_step = wp.full(self.particles, NO_STEP, dtype=int, device=self.device)
        self.contact_x = vectors()
        self.contact_v_in = vectors()
        self.contact_v_out = vectors()
        self.bad_step = wp.full(self.particles, NO_STEP, dtype=int, device=self.device)
        if self.particle_contact:
            self.x_next = vectors()
            self.v_next = vectors()
            self.grid = wp.HashGrid(64, 64, 64, device=self.device)

    def reference(self) -> CollisionScene:
        """The same scene (same particles, seed and settings) against the reference field with exact normals."""
        if self.reference_field is None:
            raise InputError("reference: this collision scene has no reference field")
        return CollisionScene(
            self.reference_field,
            ad_operator(),
            particles=self.particles,
            radius=self.radius,
            restitution=self.restitution,
            friction=self.friction,
            gravity=tuple(self.gravity),
            seed=self.seed,
            substeps=self.substeps,
            particle_contact=self.particle_contact,
            positions=self.initial_positions,
            velocities=self.initial_velocities,
            ground=self.ground,
            device=self.device,
        )

    def _advance(self, dt: float) -> None:
        n = self.particles
        salt = (self.steps * n) % (2**31 - 1 - n)
        launch(
            collide_kernel(_METHOD_NAMES[self.operator.method]),
            n,
            [
                self.field.warp(self.device),
                self.operator,
                wp.vec3(*self.field.normalization.center),
                float(self.field.normalization.scale),
                self.gravity,
                dt,
                self.radius,
                self.restitution,
                self.friction,
                int(self.ground is not None),
                0.0 if self.ground is None else self.ground,
                self.steps,
                salt,
                self.x,
                self.v,
                self.contact_step,
                self.contact_x,
                self.contact_v_in,
                self.contact_v_out,
                self.bad_step,
            ],
            self.device,
        )
        if self.particle_contact:
            self.grid.build(self.x, 2.0 * self.radius)
            launch(
                _particle_contact,
                n,
                [self.grid.id, self.radius, self.restitution, self.x, self.v, self.x_next, self.v_next],
                self.device,
            )
            self.x, self.x_next = self.x_next, self.x
            self.v, self.v_next = self.v_next, self.v

    def state_arrays(self) -> dict[str, wp.array]:
        return {"positions": self.x, "velocities": self.v}

    def first_bad_step(self) -> int | None:
        bad = self.bad_step.numpy()
        bad = bad[bad != NO_STEP]
        if len(bad):
            return int(bad.min())
        return super().first_bad_step()

    def record(self, recorder, frame: int) -> None:
        recorder.add_points("particles", self.x.numpy(), 2.0 * self.radius, self.v.numpy(), frame)

    def contacts(self) -> dict[str, np.ndarray]:
        """Per particle: first-contact step (-1 if none), position, and velocities just before and after."""
        return {
            "step": self.contact_step.numpy(),
            "position": self.contact_x.numpy(),
            "velocity_in": self.contact_v_in.numpy(),
            "velocity_out": self.contact_v_out.numpy(),
        }


def compare_runs(run: CollisionScene, reference: CollisionScene) -> dict[str, float]:
    """Divergence from the reference: angle (deg) between post-contact velocities at each
    particle's first contact (particles that touched in both runs and still move), and the
    RMS distance between final positions."""
    a, b = run.contacts(), reference.contacts()
    both = (a["step"] != NO_STEP) & (b["step"] != NO_STEP)
    va = a["velocity_out"][both].astype(np.float64)
    vb = b["velocity_out"][both].astype(np.float64)
    moving = (np.linalg.norm(va, axis=1) > 1.0e-12) & (np.linalg.norm(vb, axis=1) > 1.0e-12)
    va, vb = va[moving], vb[moving]
    # atan2 keeps small angles accurate where arccos of a dot product near 1 does not.
    angles = np.degrees(np.arctan2(np.linalg.norm(np.cross(va, vb), axis=1), np.sum(va * vb, axis=1)))
    offsets = run.x.numpy().astype(np.float64) - reference.x.numpy().astype(np.float64)
    return {
        "contacts_both": int(np.count_nonzero(moving)),
        "contacts_run": int(np.count_nonzero(a["step"] != NO_STEP)),
        "contacts_reference": int(np.count_nonzero(b["step"] != NO_STEP)),
        "angle_median_deg": float(np.median(angles)) if len(angles) else math.nan,
        "angle_p90_deg": float(np.percentile(angles, 90)) if len(angles) else math.nan,
        "final_position_rms": float(np.sqrt(np.mean(np.sum(offsets**2, axis=1)))),
    }


__all__ = ["CollisionScene", "ad_operator", "compare_runs", "spawn_positions"]
