"""A warpfields field as a collider in a Newton model (``pip install warpfields[newton]``).

Newton's colliders are analytic shapes, meshes, heightfields and mesh-built SDFs. A
``FieldCollider`` makes any 3D warpfields field (hybrid, analytic, mesh SDF) one more: it adds
a stand-in shape to the ``ModelBuilder`` that carries the collider's material (friction,
stiffness, damping) and pose (static, or attached to a body and moving with it) and that
Newton's own contact generation skips; after ``CollisionPipeline.collide`` its
``collide(state, contacts)`` appends a particle contact for every particle within its radius
plus ``margin`` of the field's zero level set, in one Warp launch::

    collider = FieldCollider(field, OperatorSpec.for_field(field, "polyfit", k=16))
    collider.add_to(builder)                # before builder.finalize()
    model = builder.finalize()
    collider.bind(model)
    pipeline = collider.pipeline()          # a CollisionPipeline with room for the field's contacts
    contacts = pipeline.contacts()
    ...
    pipeline.collide(state, contacts)
    collider.collide(state, contacts)
    solver.step(state, next_state, control, contacts, dt)

Each contact is a particle record as Newton's own generator writes it: indices
``(particle, -1, -1)``, barycentric ``(1, 0, 0)``, the stand-in's shape, the contact point on
the surface in the body's frame (the particle moved back along the normal by its signed
distance), the operator's unit normal in world space, and a zero body-frame velocity (the
field moves rigidly with its body; the solvers add the body's own velocity at the contact
point). World coordinates map to the field's through the shape's pose and then the field's
``normalization`` (``(x - center) * scale``), so a field trained on a mesh collides where the
mesh is.

Solvers: ``SolverXPBD`` and ``SolverSemiImplicit`` read exactly these arrays (the tests check
both against Newton's own sphere shape). ``SolverVBD`` reads the same records through
``soft_contact_indices``/``soft_contact_barycentric``, and its contact path takes them as they
are: particles dropped on an analytic sphere field follow the run on Newton's sphere shape to
5e-6 under VBD as well. VBD is not in the test suite, whose CI machine would spend minutes
compiling its kernels. Contacts are not differentiable (the launch records no tape).

The collider is one of possibly several contact producers writing ``soft_contact_count``, after
the pipeline's ``collide`` (which empties the buffer each step); it never writes past
``soft_contact_max``. Contacts that did not fit are counted on the device; ``check_overflow()``
reads that counter (one integer) and warns or raises with the number dropped and the capacity
that holds them.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import newton
import numpy as np
import warp as wp

from . import parallel
from .errors import InputError
from .fields.analytic import field_value
from .fields.base import Field
from .geometry import object_bounds
from .ops import funcs
from .ops.host import OperatorSpec, check_protocol

DEFAULT_MARGIN = 0.01
"""Detection band beyond the particle radius [world units]: Newton's default ``soft_contact_gap``."""

_ACTIVE = wp.constant(int(newton.ParticleFlags.ACTIVE))


class ContactOverflowWarning(UserWarning):
    """Some field contacts did not fit into the ``newton.Contacts`` buffer and were dropped."""


@wp.struct
class _Memory:
    """Per particle, in field coordinates: where the field was last evaluated and its value there, and
    where the normal was last computed and the normal."""

    value_at: wp.array(dtype=wp.vec3)
    value: wp.array(dtype=float)
    normal_at: wp.array(dtype=wp.vec3)
    normal: wp.array(dtype=wp.vec3)


@functools.cache
def _contact_kernel(method: str) -> wp.Kernel:
    """The contact generator with the normal operator fixed at compile time, so a field needs only
    what the method uses (``field_value`` for fd and polyfit)."""
    normal_fn = funcs.operator_function("normal", method)

    @wp.kernel(enable_backward=False, module="unique", module_options=parallel.bulk_module_options())
    def field_contacts(
        field: Any,
        op: funcs.Operator,
        center: wp.vec3,
        scale: float,
        cull_lower: wp.vec3,
        cull_upper: wp.vec3,
        margin: float,
        lipschitz: float,
        reuse_distance: float,
        memory: _Memory,
        shape: int,
        shape_body: wp.array(dtype=int),
        shape_transform: wp.array(dtype=wp.transform),
        body_q: wp.array(dtype=wp.transform),
        particle_q: wp.array(dtype=wp.vec3),
        particle_radius: wp.array(dtype=float),
        particle_flags: wp.array(dtype=wp.int32),
        contact_max: int,
        contact_count: wp.array(dtype=wp.int32),
        contact_particle: wp.array(dtype=int),
        contact_indices: wp.array(dtype=wp.vec3i),
        contact_barycentric: wp.array(dtype=wp.vec3),
        contact_shape: wp.array(dtype=int),
        contact_body_pos: wp.array(dtype=wp.vec3),
        contact_body_vel: wp.array(dtype=wp.vec3),
        contact_normal: wp.array(dtype=wp.vec3),
        dropped: wp.array(dtype=wp.int32),
    ):
        i = wp.tid()
        if (particle_flags[i] & _ACTIVE) == 0:
            return
        body = shape_body[shape]
        X_bs = shape_transform[shape]
        X_ws = X_bs
        if body >= 0:
            X_ws = wp.transform_multiply(body_q[body], X_bs)
        x_local = wp.transform_point(wp.transform_inverse(X_ws), particle_q[i])
        if wp.min(x_local - cull_lower) < 0.0 or wp.max(x_local - cull_upper) > 0.0:
            return
        xf = (x_local - center) * scale
        band = (particle_radius[i] + margin) * scale
        # The field changes by at most lipschitz per unit length: far from the band since its last
        # evaluation, the particle cannot have reached it.
        if memory.value[i] - lipschitz * wp.length(xf - memory.value_at[i]) >= band:
            return
        value = field_value(field, xf)
        memory.value_at[i] = xf
        memory.value[i] = value
        if value >= band:
            return
        n = memory.normal[i]
        if wp.length(xf - memory.normal_at[i]) > reuse_distance:
            # The particle index salts polyfit's stencil: each particle's normal is then a fixed function
            # of its position, so a resting particle does not jitter from one step to the next.
            n = wp.static(normal_fn)(field, xf, op, i)
            memory.normal_at[i] = xf
            memory.normal[i] = n
        index = wp.atomic_add(contact_count, 0, 1)
        if index >= contact_max:
            wp.atomic_add(dropped, 0, 1)
            return
        contact_particle[index] = i
        contact_indices[index] = wp.vec3i(i, -1, -1)
        contact_barycentric[index] = wp.vec3(1.0, 0.0, 0.0)
        contact_shape[index] = shape
        contact_body_pos[index] = wp.transform_point(X_bs, x_local - (value / scale) * n)
        contact_body_vel[index] = wp.vec3(0.0)
        contact_normal[index] = wp.transform_vector(X_ws, n)

    return field_contacts


def _operator_spec(field: Field, spec) -> OperatorSpec:
    if isinstance(spec, str):
        spec = OperatorSpec.for_field(field, method=spec)
    if not isinstance(spec, OperatorSpec):
        raise InputError(f"spec: expected an OperatorSpec or a method name, got {type(spec).__name__}")
    spec.check("normal", field.dim)
    return spec


def _nonnegative(name: str, value, unit: str) -> float:
    number = isinstance(value, int | float | np.floating) and not isinstance(value, bool)
    if not (number and math.isfinite(value) and value >= 0):
        raise InputError(f"{name}: expected a finite number >= 0 ({unit}), got {value!r}")
    return float(value)


class FieldCollider:
    """``field`` (any 3D warpfields ``Field``) as a collider whose contact normals come from ``spec``
    (an ``OperatorSpec``, or a method name "ad" | "fd" | "polyfit" with the field's default scales).

    ``margin`` [world units] widens the detection band beyond each particle's radius, so contacts
    exist before particles touch; the solvers act on them only once a particle penetrates.

    Two per-particle memories keep the cost with the particles near the surface:

    - ``lipschitz``: a bound on how fast the field changes per unit length (1 for a signed
      distance; the default 2 leaves room for a trained field's gradient error). A particle
      whose last evaluated value, less ``lipschitz`` times how far it has moved since, is still
      beyond the band is skipped without evaluating the field. Use a larger value for fields
      that are not distances.
    - ``reuse_distance`` [field units]: a particle that has moved less than this since its normal
      was computed keeps that normal (its distance is always evaluated afresh). Default: a tenth
      of the operator's own scale (polyfit's ``sigma``, fd's ``h``), a change far below the
      operator's error; 0 for ``ad``, whose normal is one gradient evaluation.
    """

    def __init__(
        self,
        field: Field,
        spec: OperatorSpec | str = "polyfit",
        margin: float = DEFAULT_MARGIN,
        lipschitz: float = 2.0,
        reuse_distance: float | None = None,
    ):
        if not isinstance(field, Field):
            raise InputError(f"field: expected a warpfields Field, got {type(field).__name__}")
        if field.dim != 3:
            raise InputError(f"field: a Newton collider needs a 3D field, got a {field.dim}D one")
        self.field = field
        self.spec = _operator_spec(field, spec)
        self.margin = _nonnegative("margin", margin, "world units")
        self.lipschitz = _nonnegative("lipschitz", lipschitz, "field change per unit length")
        if reuse_distance is None:
            reuse_distance = {"ad": 0.0, "fd": 0.1 * self.spec.h, "polyfit": 0.1 * self.spec.sigma}[self.spec.method]
        self.reuse_distance = _nonnegative("reuse_distance", reuse_distance, "field units")
        self.shape: int | None = None
        self.model: newton.Model | None = None

    def __repr__(self) -> str:
        return f"FieldCollider({self.field!r}, method={self.spec.method!r}, shape={self.shape})"

    def add_to(
        self,
        builder: newton.ModelBuilder,
        body: int = -1,
        xform: wp.transform | None = None,
        cfg: newton.ModelBuilder.ShapeConfig | None = None,
        label: str = "field",
    ) -> int:
        """Add the stand-in shape to ``builder`` (before ``finalize``) and return its index.

        ``body``: -1 for a static collider, else the body it moves with; ``xform``: the field's
        pose in that body's frame (world frame when static); ``cfg``: the material (``mu``,
        ``ke``, ``kd``, ``kf``; default ``builder.default_shape_cfg``). The stand-in adds no mass
        and no contacts of its own: Newton's pipeline never sees it.
        """
        if self.shape is not None:
            raise InputError(f"FieldCollider.add_to: this collider is already shape {self.shape} of a builder")
        if not isinstance(builder, newton.ModelBuilder):
            raise InputError(f"builder: expected a newton.ModelBuilder, got {type(builder).__name__}")
        if isinstance(body, bool) or not isinstance(body, int | np.integer) or not -1 <= body < builder.body_count:
            raise InputError(f"body: expected -1 (static) or a body index below {builder.body_count}, got {body!r}")
        try:
            values = np.asarray(xform, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            values = np.zeros(0)
        if xform is None:
            xform = wp.transform_identity()
        elif values.shape != (7,) or not np.all(np.isfinite(values)) or abs(np.linalg.norm(values[3:]) - 1) > 1e-3:
            raise InputError(f"xform: expected a finite wp.transform with a unit rotation quaternion, got {xform!r}")
        else:
            xform = wp.transform(wp.vec3(*values[:3]), wp.quat(*values[3:]))
        if cfg is None:
            cfg = builder.default_shape_cfg
        elif not isinstance(cfg, newton.ModelBuilder.ShapeConfig):
            raise InputError(f"cfg: expected a newton.ModelBuilder.ShapeConfig, got {type(cfg).__name__}")
        cfg = cfg.copy()
        cfg.density = 0.0
        cfg.has_shape_collision = False
        cfg.has_particle_collision = False
        cfg.is_visible = False
        # A unit box: its geometry is never used (no mass, no Newton contacts); the field is the geometry.
        self.shape = builder.add_shape_box(int(body), xform=xform, hx=0.5, hy=0.5, hz=0.5, cfg=cfg, label=label)
        return self.shape

    def bind(self, model: newton.Model) -> FieldCollider:
        """Attach to the finalized ``model`` that holds the stand-in shape: builds the field on the
        model's device and the box outside which no particle can touch the object."""
        if self.shape is None:
            raise InputError("FieldCollider.bind: call add_to(builder) before builder.finalize()")
        if not isinstance(model, newton.Model):
            raise InputError(f"model: expected a newton.Model, got {type(model).__name__}")
        if self.shape >= model.shape_count:
            raise InputError(f"model: it has {model.shape_count} shapes, not this collider's shape {self.shape}")
        device = model.device
        struct = self.field.warp(device)
        check_protocol(self.field, struct, "normal", self.spec.method)
        lower, upper = object_bounds(self.field, device=device)
        radius = float(model.particle_radius.numpy().max()) if model.particle_count else 0.0
        pad = radius + self.margin
        self.model = model
        self._struct = struct
        self._operator = self.spec.warp()
        self._cull = (wp.vec3(*(lower - pad)), wp.vec3(*(upper + pad)))
        self._dropped = wp.zeros(1, dtype=wp.int32, device=device)
        self._memory = _Memory()
        self._memory.value_at = wp.zeros(model.particle_count, dtype=wp.vec3, device=device)
        self._memory.value = wp.empty(model.particle_count, dtype=float, device=device)
        self._memory.normal_at = wp.empty(model.particle_count, dtype=wp.vec3, device=device)
        self._memory.normal = wp.zeros(model.particle_count, dtype=wp.vec3, device=device)
        self.reset()
        self._kernel = _contact_kernel(self.spec.method)
        return self

    def reset(self) -> None:
        """Forget every particle's last evaluation (after changing the field's parameters)."""
        self._bound()
        # A value of -inf never skips a particle; a normal computed at infinity is never reused.
        self._memory.value.fill_(-math.inf)
        self._memory.normal_at.fill_(wp.vec3(math.inf))

    def _bound(self) -> newton.Model:
        if self.model is None:
            raise InputError("FieldCollider: call bind(model) after builder.finalize() first")
        return self.model

    @property
    def soft_contact_max(self) -> int:
        """Soft-contact capacity for Newton's own particle-shape pairs plus one contact per particle
        with the field: pass it to ``CollisionPipeline(model, soft_contact_max=...)``."""
        model = self._bound()
        flags = model.shape_flags.numpy() if model.shape_count else np.zeros(0, dtype=np.int32)
        colliding = int(np.count_nonzero(flags & int(newton.ShapeFlags.COLLIDE_PARTICLES)))
        return model.particle_count * (colliding + 1)

    def pipeline(self, **kwargs) -> newton.CollisionPipeline:
        """A ``newton.CollisionPipeline`` for the bound model with room for the field's contacts."""
        kwargs.setdefault("soft_contact_max", self.soft_contact_max)
        return newton.CollisionPipeline(self._bound(), **kwargs)

    def collide(self, state: newton.State, contacts: newton.Contacts) -> None:
        """Append the field's particle contacts to ``contacts`` (after the pipeline's ``collide``)."""
        model = self._bound()
        if model.particle_count == 0:
            return
        lower, upper = self._cull
        center = self.field.normalization.center
        wp.launch(
            self._kernel,
            model.particle_count,
            inputs=[
                self._struct,
                self._operator,
                wp.vec3(*center),
                float(self.field.normalization.scale),
                lower,
                upper,
                self.margin,
                self.lipschitz,
                self.reuse_distance,
                self._memory,
                self.shape,
                model.shape_body,
                model.shape_transform,
                state.body_q,
                state.particle_q,
                model.particle_radius,
                model.particle_flags,
                contacts.soft_contact_max,
                contacts.soft_contact_count,
                contacts.soft_contact_particle,
                contacts.soft_contact_indices,
                contacts.soft_contact_barycentric,
                contacts.soft_contact_shape,
                contacts.soft_contact_body_pos,
                contacts.soft_contact_body_vel,
                contacts.soft_contact_normal,
                self._dropped,
            ],
            device=model.device,
            record_tape=False,
        )

    def check_overflow(self, strict: bool = False) -> int:
        """Contacts dropped since the last check for want of room (reads one integer and resets it).

        Warns (``ContactOverflowWarning``), or raises ``InputError`` when ``strict``, if any were.
        """
        self._bound()
        dropped = int(self._dropped.numpy()[0])
        if dropped:
            self._dropped.zero_()
            message = (
                f"FieldCollider: {dropped} field contacts were dropped because the contact buffer was full; "
                f"create the CollisionPipeline with soft_contact_max >= {self.soft_contact_max} "
                "(FieldCollider.soft_contact_max, or use FieldCollider.pipeline())"
            )
            if strict:
                raise InputError(message)
            warnings.warn(message, ContactOverflowWarning, stacklevel=2)
        return dropped


__all__ = ["DEFAULT_MARGIN", "ContactOverflowWarning", "FieldCollider"]
