"""Analytic fields with exact gradients and Hessians: the ground truth for every test.

This module also roots the field protocol. Every field type (analytic, hybrid, mesh SDF,
or a user's own ``@wp.struct``) overloads these three Warp functions:

- ``field_value(field, x) -> float``
- ``field_gradient(field, x) -> vec``: the exact derivative of the field as implemented
- ``field_hessian(field, x) -> mat``: the exact second derivative as implemented

To add a field type, bind the root name in the defining scope and decorate a function of
the same name (Warp adds it as an overload of the root)::

    from warpfields import field_value

    @wp.func
    def field_value(field: MyField, x: wp.vec3) -> float: ...

Only ``field_value`` is required; ``fd`` and ``polyfit`` operators need nothing else.
"""

from typing import Any

import warp as wp

wp.set_module_options({"enable_backward": False})

mat23 = wp.types.matrix(shape=(2, 3), dtype=float)


@wp.struct
class SphereField:
    """Signed distance to a sphere (3D)."""

    center: wp.vec3
    radius: float


@wp.struct
class TorusField:
    """Signed distance to a torus around the z axis (3D)."""

    center: wp.vec3
    major_radius: float
    minor_radius: float


@wp.struct
class CircleField:
    """Signed distance to a circle (2D)."""

    center: wp.vec2
    radius: float


@wp.struct
class QuadraticField3:
    """f(x) = c + g.x + x^T A x / 2, exactly representable by a quadratic fit."""

    c: float
    g: wp.vec3
    A: wp.mat33


@wp.struct
class QuadraticField2:
    """f(x) = c + g.x + x^T A x / 2 in 2D, exactly representable by a quadratic fit."""

    c: float
    g: wp.vec2
    A: wp.mat22


# --- field_value -------------------------------------------------------------------


@wp.func
def field_value(field: SphereField, x: wp.vec3) -> float:
    """The field's value at ``x`` (a signed distance, in field units, for the SDF fields). The field protocol,
    required: every field type overloads it."""
    return wp.length(x - field.center) - field.radius


@wp.func
def field_value(field: CircleField, x: wp.vec2) -> float:
    return wp.length(x - field.center) - field.radius


@wp.func
def _torus_q(field: TorusField, x: wp.vec3) -> wp.vec2:
    p = x - field.center
    rho = wp.sqrt(p[0] * p[0] + p[1] * p[1])
    return wp.vec2(rho - field.major_radius, p[2])


@wp.func
def field_value(field: TorusField, x: wp.vec3) -> float:
    return wp.length(_torus_q(field, x)) - field.minor_radius


@wp.func
def field_value(field: QuadraticField3, x: wp.vec3) -> float:
    return field.c + wp.dot(field.g, x) + 0.5 * wp.dot(x, field.A * x)


@wp.func
def field_value(field: QuadraticField2, x: wp.vec2) -> float:
    return field.c + wp.dot(field.g, x) + 0.5 * wp.dot(x, field.A * x)


# --- field_gradient ----------------------------------------------------------------


@wp.func
def field_gradient(field: SphereField, x: wp.vec3) -> wp.vec3:
    """The exact gradient of the field as implemented, at ``x``. The field protocol, optional: ``ad`` operators
    need it."""
    return wp.normalize(x - field.center)


@wp.func
def field_gradient(field: CircleField, x: wp.vec2) -> wp.vec2:
    return wp.normalize(x - field.center)


@wp.func
def field_gradient(field: TorusField, x: wp.vec3) -> wp.vec3:
    p = x - field.center
    rho = wp.max(wp.sqrt(p[0] * p[0] + p[1] * p[1]), 1.0e-12)
    n = wp.normalize(_torus_q(field, x))
    return wp.vec3(n[0] * p[0] / rho, n[0] * p[1] / rho, n[1])


@wp.func
def field_gradient(field: QuadraticField3, x: wp.vec3) -> wp.vec3:
    return field.g + 0.5 * (field.A + wp.transpose(field.A)) * x


@wp.func
def field_gradient(field: QuadraticField2, x: wp.vec2) -> wp.vec2:
    return field.g + 0.5 * (field.A + wp.transpose(field.A)) * x


# --- field_hessian -----------------------------------------------------------------


@wp.func
def _round_hessian(d: Any):
    """Hessian of |d| - radius (sphere or circle) at the offset ``d`` from the centre: (I - u u^T) / |d|."""
    r = wp.length(d)
    u = d / r
    return (wp.identity(n=wp.static(len(d)), dtype=float) - wp.outer(u, u)) / r


@wp.func
def field_hessian(field: SphereField, x: wp.vec3) -> wp.mat33:
    """The exact Hessian of the field as implemented, at ``x``. The field protocol, optional: ``ad`` second
    derivatives (and ``op_*`` second derivatives, which compile every branch) need it."""
    return _round_hessian(x - field.center)


@wp.func
def field_hessian(field: CircleField, x: wp.vec2) -> wp.mat22:
    return _round_hessian(x - field.center)


@wp.func
def field_hessian(field: TorusField, x: wp.vec3) -> wp.mat33:
    # f = |q| - r with q = (rho - R, z): H = Jq^T (I - n n^T) Jq / |q| + n_0 Hess(rho).
    p = x - field.center
    rho = wp.max(wp.sqrt(p[0] * p[0] + p[1] * p[1]), 1.0e-12)
    q = _torus_q(field, x)
    qn = wp.length(q)
    n = q / qn
    px = p[0] / rho
    py = p[1] / rho
    jq = mat23(px, py, 0.0, 0.0, 0.0, 1.0)
    proj = (wp.identity(n=2, dtype=float) - wp.outer(n, n)) / qn
    hess_rho = wp.mat33(1.0 - px * px, -px * py, 0.0, -px * py, 1.0 - py * py, 0.0, 0.0, 0.0, 0.0) / rho
    return wp.transpose(jq) * proj * jq + n[0] * hess_rho


@wp.func
def field_hessian(field: QuadraticField3, x: wp.vec3) -> wp.mat33:
    return 0.5 * (field.A + wp.transpose(field.A))


@wp.func
def field_hessian(field: QuadraticField2, x: wp.vec2) -> wp.mat22:
    return 0.5 * (field.A + wp.transpose(field.A))
