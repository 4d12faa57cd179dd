"""Derivative operators as Warp functions, generic over the field type and the dimension.

Every operator takes ``field: Any`` (any struct with a ``field_value`` overload) and ``x``
(``wp.vec2`` or ``wp.vec3``); the dimension is read at compile time (``wp.static(len(x))``),
so each operator is one definition that Warp instantiates per field and point type:

- ``ad_*(field, x)``: the exact derivative as implemented (``field_gradient``/``field_hessian``).
- ``fd_*(field, x, h)``: central differences with step ``h`` (gradient: 2 dim evaluations;
  second order: 2 dim^2 + 1 evaluations, the gradient comes from the same samples).
- ``polyfit_*(field, x, sigma, k, seed, stencil)``: least-squares polynomial fit to ``k``
  values around ``x`` (degree 1 for gradient and normal, degree 2 for the rest), fused: the
  normal equations are accumulated in scaled offsets ``u = d / sigma`` while sampling, so
  nothing of size ``k`` is stored, and solved by Cholesky with a relative diagonal guard.
  Every fit has an intercept, so the Gaussian stencil's re-centring to zero mean is exact
  algebraically (the slope of a fit with intercept equals that of the centred fit).
- ``op_*(field, x, op, salt)``: the method chosen at run time by an ``Operator`` struct; the
  polyfit seed is ``hash(op.seed, salt)``. Every branch is compiled, so ``op_hessian`` and
  what derives from it need a ``field_hessian`` overload even when ``op`` is not ``ad``.

Mean curvature follows docs/design.md: ``(|g|^2 tr H - g^T H g) / ((dim - 1) |g|^3)``, +1/R on a
sphere of radius R (3D) and the curve's curvature in 2D.
"""

import math
from typing import Any

import numpy as np
import warp as wp

from ..fields.analytic import field_gradient, field_hessian, field_value
from ..rotation import rotation_matrix
from ..runtime import build_lock

wp.set_module_options({"enable_backward": False})

METHOD_AD = 0
METHOD_FD = 1
METHOD_POLYFIT = 2

STENCIL_GAUSS = 0
STENCIL_ANTITHETIC = 1
STENCIL_CUBATURE = 2

# Relative Cholesky guard: added to the diagonal in units of the total sample weight, far below
# the O(1) eigenvalues of a well-spread stencil in scaled offsets, so exact fits stay exact.
_GUARD = 1.0e-6


@wp.struct
class Operator:
    """Runtime choice of derivative method for simulations (see ``OperatorSpec.warp``)."""

    method: int
    h: float
    sigma: float
    k: int
    stencil: int
    seed: int


def _radial_rule(dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Two-node Gauss rule for |u| with u ~ N(0, I_dim): t = |u|^2 / 2 is Gamma(dim/2)-distributed,
    so the nodes are the roots of the generalised Laguerre polynomial L_2^(dim/2 - 1)."""
    alpha = dim / 2 - 1
    t = np.array([alpha + 2 - math.sqrt(alpha + 2), alpha + 2 + math.sqrt(alpha + 2)])
    w0 = (t[1] - dim / 2) / (t[1] - t[0])
    return np.sqrt(2 * t), np.array([w0, 1 - w0])


# Half of an antipodal spherical 3-design (the other half is its negation): square and cube.
_HALF_DESIGN = {
    2: np.array([[1.0, 0.0], [0.0, 1.0]]),
    3: np.array([[1.0, 1.0, 1.0], [1.0, 1.0, -1.0], [1.0, -1.0, 1.0], [1.0, -1.0, -1.0]]) / math.sqrt(3.0),
}
# Fixed rotation of the outer shell against the inner one. 2D: 45 degrees (the two squares form a
# regular octagon). 3D: found by a search over rotations for the best-conditioned quadratic normal
# matrix of the 16-point pair (condition number 19.8; 16.0 for infinitely many Gaussian samples), given
# as a rotation vector (axis times angle).
_TWIST_3D = np.array([-0.77838331, -0.7711374, 2.29541185])
_TWIST = {
    2: np.array([[math.cos(math.pi / 4), -math.sin(math.pi / 4)], [math.sin(math.pi / 4), math.cos(math.pi / 4)]]),
    3: rotation_matrix(_TWIST_3D / np.linalg.norm(_TWIST_3D), np.linalg.norm(_TWIST_3D)),
}


def cubature_block(dim: int) -> int:
    """Samples per cubature block (k must be a multiple): two shells of a full design."""
    return 4 * len(_HALF_DESIGN[dim])


def _cubature_shells(dim: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Half of each shell's points (the other half is their negation), and each shell's weight."""
    radii, weights = _radial_rule(dim)
    half = _HALF_DESIGN[dim]
    return [radius * design for radius, design in zip(radii, (half, half @ _TWIST[dim].T), strict=True)], weights


def cubature_points(dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Unrotated scaled offsets (one block) and their weights, antipodal pairs adjacent.

    The Gaussian stencil's fit converges, as k grows, to the fit whose normal equations use
    the moments of N(0, sigma^2 I): for the linear fit this is the gradient of the
    Gaussian-smoothed field (Stein's lemma), ``E[u f(x + sigma u)] / sigma``. This stencil
    integrates the same Gaussian by a product rule: a two-node radial Gauss rule for ``|u|``
    (exact for ``E|u|^0..6``) times an antipodal spherical 3-design per shell, the outer shell
    twisted against the inner one, the whole block rotated uniformly at random per query
    (and per block). Odd moments vanish exactly (antipodal), second moments are exact
    (E[u u^T] = I, so the linear fit's normal matrix equals the Gaussian's), and the random
    rotation makes every higher moment exact in expectation. For smooth f the estimate
    therefore matches the Gaussian-smoothed derivative up to the O(sigma^2) smoothing bias
    that both share, without the Monte Carlo variance of the radial and low-order angular
    parts; the rotation keeps the points from aliasing with the grid.
    """
    shells, weights = _cubature_shells(dim)
    points, point_weights = [], []
    for shell, weight in zip(shells, weights, strict=True):
        for d in shell:
            points += [d, -d]
            point_weights += [weight, weight]
    return np.array(points), np.array(point_weights)


# What the Warp functions below read at compile time, per dimension (``wp.static(len(x))`` is the
# dimension of the point type they are instantiated for).
_SHELL_POINTS = {
    dim: [[wp.types.vector(length=dim, dtype=float)(*d) for d in shell] for shell in _cubature_shells(dim)[0]]
    for dim in (2, 3)
}
_SHELL_WEIGHTS = {dim: [float(w) for w in _cubature_shells(dim)[1]] for dim in (2, 3)}
_CROSS_PAIRS = {dim: [(a, b) for a in range(dim) for b in range(a + 1, dim)] for dim in (2, 3)}


def _basis_size(dim: int, degree: int) -> int:
    """Terms of the fit: 1, u_a (degree 1), then u_a^2 and u_a u_b (a < b) for degree 2."""
    return 1 + dim if degree == 1 else 1 + 2 * dim + len(_CROSS_PAIRS[dim])


@wp.func
def _box_muller(u0: float, u1: float) -> wp.vec2:
    r = wp.sqrt(-2.0 * wp.log(1.0 - u0))
    t = 2.0 * wp.pi * u1
    return wp.vec2(r * wp.cos(t), r * wp.sin(t))


@wp.func
def salted_seed(seed: int, salt: int) -> int:
    """A per-query seed from an operator seed and a salt (query index, time step...)."""
    return wp.int32(wp.rand_init(seed, salt))


@wp.func
def _gauss_offset(x: Any, seed: int, i: int):
    """Standard normal offset ``i`` of the Gaussian stencil, in the space of ``x``."""
    state = wp.rand_init(seed, i)
    u0 = wp.randf(state)
    u1 = wp.randf(state)
    a = _box_muller(u0, u1)
    if wp.static(len(x) == 2):
        return wp.vec2(a[0], a[1])
    else:
        u2 = wp.randf(state)
        u3 = wp.randf(state)
        b = _box_muller(u2, u3)
        return wp.vec3(a[0], a[1], b[0])


@wp.func
def _random_rotation(x: Any, seed: int, i: int):
    """Uniformly random rotation ``i`` of the space of ``x`` (the cubature stencil's block ``i``)."""
    state = wp.rand_init(seed, i)
    u0 = wp.randf(state)
    u1 = wp.randf(state)
    if wp.static(len(x) == 2):
        c = wp.cos(2.0 * wp.pi * u0)
        s = wp.sin(2.0 * wp.pi * u0)
        return wp.mat22(c, -s, s, c)
    else:
        u2 = wp.randf(state)
        u3 = wp.randf(state)
        a = _box_muller(u0, u1)
        b = _box_muller(u2, u3)
        return wp.quat_to_matrix(wp.normalize(wp.quat(a[0], a[1], b[0], b[1])))


@wp.func
def stencil_offset(x: Any, seed: int, stencil: int, i: int):
    """Scaled offset and weight of sample ``i`` in the order the fused fit draws them (for checking the
    fused fit against a materialised one). Only the type of ``x`` matters: the offsets are the same at
    every point."""
    dim = wp.static(len(x))
    if stencil == STENCIL_CUBATURE:
        block = wp.static(cubature_block(dim))
        rot = _random_rotation(x, seed, i // block)
        r = i % block
        u = wp.vector(length=dim, dtype=float)
        w = float(0.0)  # noqa: UP018 (a dynamic Warp variable)
        for s in range(2):
            for j in range(wp.static(block // 4)):
                if r // 2 == wp.static(s * (block // 4) + j):
                    u = rot * wp.static(_SHELL_POINTS[dim][s][j])
                    w = wp.static(_SHELL_WEIGHTS[dim][s])
        return u * float(1 - 2 * (r % 2)), w
    if stencil == STENCIL_ANTITHETIC:
        return _gauss_offset(x, seed, i // 2) * float(1 - 2 * (i % 2)), 1.0
    return _gauss_offset(x, seed, i), 1.0


@wp.func
def _accumulate(normal: Any, rhs: Any, phi: Any, y: float):
    """Adds one sample with basis values ``phi`` and value ``y`` to the upper triangle of the normal equations."""
    m = wp.static(len(phi))
    out_normal = normal
    out_rhs = rhs
    for a in range(m):
        out_rhs[a] += phi[a] * y
        for b in range(m):
            if wp.static(b >= a):
                out_normal[a, b] += phi[a] * phi[b]
    return out_normal, out_rhs


@wp.func
def _accumulate_pair(normal: Any, rhs: Any, u: Any, phi: Any, y_plus: float, y_minus: float, w: float):
    """Adds the samples at +u and -u with weight w each; ``phi`` is the basis at +u, whose entries
    1..dim (the linear terms) flip sign at -u, so only terms of equal parity couple."""
    m = wp.static(len(phi))
    dim = wp.static(len(u))
    even_y = w * (y_plus + y_minus)
    odd_y = w * (y_plus - y_minus)
    out_normal = normal
    out_rhs = rhs
    for a in range(m):
        if wp.static(0 < a <= dim):
            out_rhs[a] += phi[a] * odd_y
        else:
            out_rhs[a] += phi[a] * even_y
        w2 = 2.0 * w * phi[a]
        for b in range(m):
            if wp.static(b >= a and (0 < a <= dim) == (0 < b <= dim)):
                out_normal[a, b] += w2 * phi[b]
    return out_normal, out_rhs


@wp.func
def _solve(normal: Any, rhs: Any):
    """Cholesky of the upper triangle (the only part accumulated), then two triangular solves."""
    m = wp.static(len(rhs))
    guard = _GUARD * normal[0, 0] + 1.0e-30
    chol = wp.matrix(shape=(m, m), dtype=float)
    for j in range(m):
        s = normal[j, j] + guard
        for p in range(m):
            if wp.static(p < j):
                s -= chol[j, p] * chol[j, p]
        d = wp.sqrt(wp.max(s, guard))
        chol[j, j] = d
        for i in range(m):
            if wp.static(i > j):
                t = normal[j, i]
                for p in range(m):
                    if wp.static(p < j):
                        t -= chol[i, p] * chol[j, p]
                chol[i, j] = t / d
    z = wp.vector(length=m, dtype=float)
    for i in range(m):
        t = rhs[i]
        for p in range(m):
            if wp.static(p < i):
                t -= chol[i, p] * z[p]
        z[i] = t / chol[i, i]
    c = wp.vector(length=m, dtype=float)
    for r in range(m):
        t = z[wp.static(m - 1 - r)]
        for p in range(m):
            if wp.static(p > m - 1 - r):
                t -= chol[p, wp.static(m - 1 - r)] * c[p]
        c[wp.static(m - 1 - r)] = t / chol[wp.static(m - 1 - r), wp.static(m - 1 - r)]
    return c


def _polynomial_fit(degree: int) -> wp.Function:
    """The fused least-squares fit of one degree; it returns the coefficients in scaled offsets, in the
    order 1, u_a, then (degree 2) u_a^2 and u_a u_b for a < b."""

    @wp.func(name=f"_basis_degree{degree}")
    def basis(u: Any):
        dim = wp.static(len(u))
        phi = wp.vector(length=wp.static(_basis_size(dim, degree)), dtype=float)
        phi[0] = 1.0
        for a in range(dim):
            phi[wp.static(1 + a)] = u[a]
        if wp.static(degree == 2):
            for a in range(dim):
                phi[wp.static(1 + dim + a)] = u[a] * u[a]
            for p in range(wp.static(len(_CROSS_PAIRS[dim]))):
                phi[wp.static(1 + 2 * dim + p)] = (
                    u[wp.static(_CROSS_PAIRS[dim][p][0])] * u[wp.static(_CROSS_PAIRS[dim][p][1])]
                )
        return phi

    @wp.func(name=f"_fit_degree{degree}")
    def fit(field: Any, x: Any, sigma: float, k: int, seed: int, stencil: int):
        dim = wp.static(len(x))
        m = wp.static(_basis_size(dim, degree))
        block = wp.static(cubature_block(dim))
        normal = wp.matrix(shape=(m, m), dtype=float)
        rhs = wp.vector(length=m, dtype=float)
        # Values are taken relative to the first sample so float32 sums keep the O(sigma^2) signal.
        y_ref = float(0.0)  # noqa: UP018 (a dynamic Warp variable)
        if stencil == STENCIL_CUBATURE:
            for blk in range(k // block):
                rot = _random_rotation(x, seed, blk)
                for s in range(2):
                    for j in range(wp.static(block // 4)):
                        u = rot * wp.static(_SHELL_POINTS[dim][s][j])
                        y_plus = field_value(field, x + sigma * u)
                        y_minus = field_value(field, x - sigma * u)
                        if blk == 0 and s == 0 and j == 0:
                            y_ref = y_plus
                        w = wp.static(_SHELL_WEIGHTS[dim][s])
                        normal, rhs = _accumulate_pair(normal, rhs, u, basis(u), y_plus - y_ref, y_minus - y_ref, w)
        elif stencil == STENCIL_ANTITHETIC:
            for i in range(k // 2):
                u = _gauss_offset(x, seed, i)
                y_plus = field_value(field, x + sigma * u)
                y_minus = field_value(field, x - sigma * u)
                if i == 0:
                    y_ref = y_plus
                normal, rhs = _accumulate_pair(normal, rhs, u, basis(u), y_plus - y_ref, y_minus - y_ref, 1.0)
        else:
            for i in range(k):
                u = _gauss_offset(x, seed, i)
                y = field_value(field, x + sigma * u)
                if i == 0:
                    y_ref = y
                normal, rhs = _accumulate(normal, rhs, basis(u), y - y_ref)
        return _solve(normal, rhs)

    return fit


_fit_linear = _polynomial_fit(1)
_fit_quadratic = _polynomial_fit(2)


@wp.func
def _curvature(g: Any, hess: Any) -> float:
    gg = wp.dot(g, g)
    return (gg * wp.trace(hess) - wp.dot(g, hess * g)) / (wp.static(float(len(g) - 1)) * gg * wp.sqrt(gg))


@wp.func
def _polyfit_second(field: Any, x: Any, sigma: float, k: int, seed: int, stencil: int):
    """Gradient and Hessian from the quadratic fit."""
    dim = wp.static(len(x))
    c = _fit_quadratic(field, x, sigma, k, seed, stencil)
    g = wp.vector(length=dim, dtype=float)
    hess = wp.matrix(shape=(dim, dim), dtype=float)
    inv2 = 1.0 / (sigma * sigma)
    for a in range(dim):
        g[a] = c[wp.static(1 + a)] / sigma
        hess[a, a] = 2.0 * c[wp.static(1 + dim + a)] * inv2
    for p in range(wp.static(len(_CROSS_PAIRS[dim]))):
        v = c[wp.static(1 + 2 * dim + p)] * inv2
        hess[wp.static(_CROSS_PAIRS[dim][p][0]), wp.static(_CROSS_PAIRS[dim][p][1])] = v
        hess[wp.static(_CROSS_PAIRS[dim][p][1]), wp.static(_CROSS_PAIRS[dim][p][0])] = v
    return g, hess


@wp.func
def _fd_second(field: Any, x: Any, h: float):
    """Gradient and Hessian from central differences (2 dim^2 + 1 values)."""
    dim = wp.static(len(x))
    f0 = field_value(field, x)
    g = wp.vector(length=dim, dtype=float)
    hess = wp.matrix(shape=(dim, dim), dtype=float)
    inv = 1.0 / (h * h)
    for a in range(dim):
        ea = wp.vector(length=dim, dtype=float)
        ea[a] = h
        f_plus = field_value(field, x + ea)
        f_minus = field_value(field, x - ea)
        g[a] = (f_plus - f_minus) / (2.0 * h)
        hess[a, a] = (f_plus - 2.0 * f0 + f_minus) * inv
        for b in range(dim):
            if wp.static(b > a):
                eb = wp.vector(length=dim, dtype=float)
                eb[b] = h
                v = (
                    field_value(field, x + ea + eb)
                    - field_value(field, x + ea - eb)
                    - field_value(field, x - ea + eb)
                    + field_value(field, x - ea - eb)
                ) * (0.25 * inv)
                hess[a, b] = v
                hess[b, a] = v
    return g, hess


# --- autodiff: the field's own derivatives -----------------------------------------------


@wp.func
def ad_gradient(field: Any, x: Any):
    """The gradient (``wp.vec2``/``wp.vec3``, field units per unit length) of ``field`` at ``x``, from the
    field's exact derivatives (``field_gradient``/``field_hessian``)."""
    return field_gradient(field, x)


@wp.func
def ad_normal(field: Any, x: Any):
    """The unit normal (the normalised gradient) of ``field`` at ``x``, from the field's exact derivatives
    (``field_gradient``/``field_hessian``)."""
    return wp.normalize(field_gradient(field, x))


@wp.func
def ad_hessian(field: Any, x: Any):
    """The Hessian (``wp.mat22``/``wp.mat33``) of ``field`` at ``x``, from the field's exact derivatives
    (``field_gradient``/``field_hessian``)."""
    return field_hessian(field, x)


@wp.func
def ad_laplacian(field: Any, x: Any) -> float:
    """The Laplacian (trace of the Hessian) of ``field`` at ``x``, from the field's exact derivatives
    (``field_gradient``/``field_hessian``)."""
    return wp.trace(field_hessian(field, x))


@wp.func
def ad_mean_curvature(field: Any, x: Any) -> float:
    """The mean curvature, +1/R on a sphere of radius R (the curve's curvature in 2D) of ``field`` at ``x``,
    from the field's exact derivatives (``field_gradient``/``field_hessian``)."""
    return _curvature(field_gradient(field, x), field_hessian(field, x))


# --- central differences with step h ---------------------------------------------------


@wp.func
def fd_gradient(field: Any, x: Any, h: float):
    """The gradient (``wp.vec2``/``wp.vec3``, field units per unit length) of ``field`` at ``x``, by central
    differences with step ``h`` (in the units of ``x``)."""
    dim = wp.static(len(x))
    g = wp.vector(length=dim, dtype=float)
    for a in range(dim):
        e = wp.vector(length=dim, dtype=float)
        e[a] = h
        g[a] = (field_value(field, x + e) - field_value(field, x - e)) / (2.0 * h)
    return g


@wp.func
def fd_normal(field: Any, x: Any, h: float):
    """The unit normal (the normalised gradient) of ``field`` at ``x``, by central differences with step ``h``
    (in the units of ``x``)."""
    return wp.normalize(fd_gradient(field, x, h))


@wp.func
def fd_hessian(field: Any, x: Any, h: float):
    """The Hessian (``wp.mat22``/``wp.mat33``) of ``field`` at ``x``, by central differences with step ``h`` (in
    the units of ``x``)."""
    g, hess = _fd_second(field, x, h)
    return hess


@wp.func
def fd_laplacian(field: Any, x: Any, h: float) -> float:
    """The Laplacian (trace of the Hessian) of ``field`` at ``x``, by central differences with step ``h`` (in
    the units of ``x``)."""
    g, hess = _fd_second(field, x, h)
    return wp.trace(hess)


@wp.func
def fd_mean_curvature(field: Any, x: Any, h: float) -> float:
    """The mean curvature, +1/R on a sphere of radius R (the curve's curvature in 2D) of ``field`` at ``x``, by
    central differences with step ``h`` (in the units of ``x``)."""
    g, hess = _fd_second(field, x, h)
    return _curvature(g, hess)


# --- polynomial fits to k samples around x ----------------------------------------------


@wp.func
def polyfit_gradient(field: Any, x: Any, sigma: float, k: int, seed: int, stencil: int):
    """The gradient (``wp.vec2``/``wp.vec3``, field units per unit length) of ``field`` at ``x``, from a least-
    squares polynomial fitted to ``k`` values at scale ``sigma`` (units of ``x``) drawn by ``stencil``
    (``STENCIL_*``) with ``seed``."""
    c = _fit_linear(field, x, sigma, k, seed, stencil)
    dim = wp.static(len(x))
    g = wp.vector(length=dim, dtype=float)
    for a in range(dim):
        g[a] = c[wp.static(1 + a)] / sigma
    return g


@wp.func
def polyfit_normal(field: Any, x: Any, sigma: float, k: int, seed: int, stencil: int):
    """The unit normal (the normalised gradient) of ``field`` at ``x``, from a least-squares polynomial fitted
    to ``k`` values at scale ``sigma`` (units of ``x``) drawn by ``stencil`` (``STENCIL_*``) with ``seed``."""
    return wp.normalize(polyfit_gradient(field, x, sigma, k, seed, stencil))


@wp.func
def polyfit_hessian(field: Any, x: Any, sigma: float, k: int, seed: int, stencil: int):
    """The Hessian (``wp.mat22``/``wp.mat33``) of ``field`` at ``x``, from a least-squares polynomial fitted to
    ``k`` values at scale ``sigma`` (units of ``x``) drawn by ``stencil`` (``STENCIL_*``) with ``seed``."""
    g, hess = _polyfit_second(field, x, sigma, k, seed, stencil)
    return hess


@wp.func
def polyfit_laplacian(field: Any, x: Any, sigma: float, k: int, seed: int, stencil: int) -> float:
    """The Laplacian (trace of the Hessian) of ``field`` at ``x``, from a least-squares polynomial fitted to
    ``k`` values at scale ``sigma`` (units of ``x``) drawn by ``stencil`` (``STENCIL_*``) with ``seed``."""
    g, hess = _polyfit_second(field, x, sigma, k, seed, stencil)
    return wp.trace(hess)


@wp.func
def polyfit_mean_curvature(field: Any, x: Any, sigma: float, k: int, seed: int, stencil: int) -> float:
    """The mean curvature, +1/R on a sphere of radius R (the curve's curvature in 2D) of ``field`` at ``x``,
    from a least-squares polynomial fitted to ``k`` values at scale ``sigma`` (units of ``x``) drawn by
    ``stencil`` (``STENCIL_*``) with ``seed``."""
    g, hess = _polyfit_second(field, x, sigma, k, seed, stencil)
    return _curvature(g, hess)


# --- the method chosen at run time --------------------------------------------------------


@wp.func
def op_gradient(field: Any, x: Any, op: Operator, salt: int):
    """The gradient (``wp.vec2``/``wp.vec3``, field units per unit length) of ``field`` at ``x``, by the method
    ``op`` chooses at run time; ``salt`` (a query index or step) varies the polyfit seed."""
    if op.method == METHOD_AD:
        return ad_gradient(field, x)
    if op.method == METHOD_FD:
        return fd_gradient(field, x, op.h)
    return polyfit_gradient(field, x, op.sigma, op.k, salted_seed(op.seed, salt), op.stencil)


@wp.func
def op_normal(field: Any, x: Any, op: Operator, salt: int):
    """The unit normal (the normalised gradient) of ``field`` at ``x``, by the method ``op`` chooses at run
    time; ``salt`` (a query index or step) varies the polyfit seed."""
    return wp.normalize(op_gradient(field, x, op, salt))


@wp.func
def op_hessian(field: Any, x: Any, op: Operator, salt: int):
    """The Hessian (``wp.mat22``/``wp.mat33``) of ``field`` at ``x``, by the method ``op`` chooses at run time;
    ``salt`` (a query index or step) varies the polyfit seed."""
    if op.method == METHOD_AD:
        return ad_hessian(field, x)
    if op.method == METHOD_FD:
        return fd_hessian(field, x, op.h)
    return polyfit_hessian(field, x, op.sigma, op.k, salted_seed(op.seed, salt), op.stencil)


@wp.func
def op_laplacian(field: Any, x: Any, op: Operator, salt: int) -> float:
    """The Laplacian (trace of the Hessian) of ``field`` at ``x``, by the method ``op`` chooses at run time;
    ``salt`` (a query index or step) varies the polyfit seed."""
    return wp.trace(op_hessian(field, x, op, salt))


@wp.func
def op_mean_curvature(field: Any, x: Any, op: Operator, salt: int) -> float:
    """The mean curvature, +1/R on a sphere of radius R (the curve's curvature in 2D) of ``field`` at ``x``, by
    the method ``op`` chooses at run time; ``salt`` (a query index or step) varies the polyfit seed."""
    if op.method == METHOD_AD:
        return ad_mean_curvature(field, x)
    if op.method == METHOD_FD:
        return fd_mean_curvature(field, x, op.h)
    return polyfit_mean_curvature(field, x, op.sigma, op.k, salted_seed(op.seed, salt), op.stencil)


# --- the method fixed at compile time -------------------------------------------------------

_BY_METHOD = {
    "gradient": {"ad": ad_gradient, "fd": fd_gradient, "polyfit": polyfit_gradient},
    "normal": {"ad": ad_normal, "fd": fd_normal, "polyfit": polyfit_normal},
    "hessian": {"ad": ad_hessian, "fd": fd_hessian, "polyfit": polyfit_hessian},
    "laplacian": {"ad": ad_laplacian, "fd": fd_laplacian, "polyfit": polyfit_laplacian},
    "mean_curvature": {"ad": ad_mean_curvature, "fd": fd_mean_curvature, "polyfit": polyfit_mean_curvature},
}
_OPERATOR_FUNCTIONS: dict = {}


def operator_function(quantity: str, method: str) -> wp.Function:
    """``f(field, x, op, salt)``: the operator ``quantity`` (``gradient``, ``normal``, ``hessian``, ``laplacian``,
    ``mean_curvature``) by ``method`` (``ad``, ``fd``, ``polyfit``), fixed at compile time, with ``op``'s
    parameters (its ``method`` is not read) and ``salt`` as in the ``op_*`` functions.

    A kernel that calls ``op_*`` compiles all three methods, whichever runs; one built for a method around
    these compiles that method alone (NVRTC takes minutes on a kernel with every method of a `fast` field)."""
    key = (quantity, method)
    with build_lock:
        if key not in _OPERATOR_FUNCTIONS:
            fn = _BY_METHOD[quantity][method]
            if method == "ad":

                def evaluate(field: Any, x: Any, op: Operator, salt: int):
                    return wp.static(fn)(field, x)

            elif method == "fd":

                def evaluate(field: Any, x: Any, op: Operator, salt: int):
                    return wp.static(fn)(field, x, op.h)

            else:

                def evaluate(field: Any, x: Any, op: Operator, salt: int):
                    return wp.static(fn)(field, x, op.sigma, op.k, salted_seed(op.seed, salt), op.stencil)

            _OPERATOR_FUNCTIONS[key] = wp.func(evaluate, name=f"operator_{quantity}_{method}")
        return _OPERATOR_FUNCTIONS[key]


__all__ = [
    "METHOD_AD",
    "METHOD_FD",
    "METHOD_POLYFIT",
    "STENCIL_ANTITHETIC",
    "STENCIL_CUBATURE",
    "STENCIL_GAUSS",
    "Operator",
    "ad_gradient",
    "ad_hessian",
    "ad_laplacian",
    "ad_mean_curvature",
    "ad_normal",
    "cubature_block",
    "cubature_points",
    "fd_gradient",
    "fd_hessian",
    "fd_laplacian",
    "fd_mean_curvature",
    "fd_normal",
    "op_gradient",
    "op_hessian",
    "op_laplacian",
    "op_mean_curvature",
    "operator_function",
    "op_normal",
    "polyfit_gradient",
    "polyfit_hessian",
    "polyfit_laplacian",
    "polyfit_mean_curvature",
    "polyfit_normal",
    "salted_seed",
    "stencil_offset",
]
