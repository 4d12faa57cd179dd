"""Derivative operators as Warp functions, generic over the field type, for 2D and 3D points.

Every operator takes ``field: Any`` (any struct with a ``field_value`` overload) and ``x``
(``wp.vec2`` or ``wp.vec3``):

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

Mean curvature follows DESIGN.md: ``(|g|^2 tr H - g^T H g) / ((dim - 1) |g|^3)``, +1/R on a
sphere of radius R (3D) and the curve's curvature in 2D.
"""

import math
from typing import Any

import numpy as np
import warp as wp

from ..fields.analytic import field_gradient, field_hessian, field_value

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


def _rotation(rotvec) -> np.ndarray:
    rotvec = np.asarray(rotvec, dtype=np.float64)
    angle = np.linalg.norm(rotvec)
    kx, ky, kz = rotvec / angle
    k = np.array([[0, -kz, ky], [kz, 0, -kx], [-ky, kx, 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)


# Half of an antipodal spherical 3-design (the other half is its negation): square and cube.
_HALF_DESIGN = {
    2: np.array([[1.0, 0.0], [0.0, 1.0]]),
    3: np.array([[1.0, 1.0, 1.0], [1.0, 1.0, -1.0], [1.0, -1.0, 1.0], [1.0, -1.0, -1.0]]) / math.sqrt(3.0),
}
# Fixed rotation of the outer shell against the inner one. 2D: 45 degrees (the two squares form a
# regular octagon). 3D: found by a search over rotations for the best-conditioned quadratic normal
# matrix of the 16-point pair (condition number 19.8; 16.0 for infinitely many Gaussian samples).
_TWIST = {
    2: np.array([[math.cos(math.pi / 4), -math.sin(math.pi / 4)], [math.sin(math.pi / 4), math.cos(math.pi / 4)]]),
    3: _rotation([-0.77838331, -0.7711374, 2.29541185]),
}


# The per-dimension sample generators, for checking the fused fit against a materialised one.
STENCIL_OFFSET: dict = {}


def cubature_block(dim: int) -> int:
    """Samples per cubature block (k must be a multiple): two shells of a full design."""
    return 4 * len(_HALF_DESIGN[dim])


def cubature_points(dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Unrotated scaled offsets (one block) and their weights, antipodal pairs adjacent.

    The Gaussian stencil's fit converges, as k grows, to the fit whose normal equations use
    the moments of N(0, sigma^2 I): for the linear fit this is the gradient of the
    Gaussian-smoothed field (Stein's lemma), ``E[u f(x + sigma u)] / sigma``. This stencil
    integrates the same Gaussian by a product rule: a two-node radial Gauss rule for |u|
    (exact for E|u|^0..6) times an antipodal spherical 3-design per shell, the outer shell
    twisted against the inner one, the whole block rotated uniformly at random per query
    (and per block). Odd moments vanish exactly (antipodal), second moments are exact
    (E[u u^T] = I, so the linear fit's normal matrix equals the Gaussian's), and the random
    rotation makes every higher moment exact in expectation. For smooth f the estimate
    therefore matches the Gaussian-smoothed derivative up to the O(sigma^2) smoothing bias
    that both share, without the Monte Carlo variance of the radial and low-order angular
    parts; the rotation keeps the points from aliasing with the grid.
    """
    radii, weights = _radial_rule(dim)
    half = _HALF_DESIGN[dim]
    shells = [half, half @ _TWIST[dim].T]
    points, point_weights = [], []
    for shell, radius, weight in zip(shells, radii, weights, strict=True):
        for d in shell:
            points += [radius * d, -radius * d]
            point_weights += [weight, weight]
    return np.array(points), np.array(point_weights)


@wp.func
def _box_muller(u0: float, u1: float) -> wp.vec2:
    r = wp.sqrt(-2.0 * wp.log(1.0 - u0))
    t = 2.0 * wp.pi * u1
    return wp.vec2(r * wp.cos(t), r * wp.sin(t))


@wp.func
def salted_seed(seed: int, salt: int) -> int:
    """A per-query seed from an operator seed and a salt (query index, time step...)."""
    return wp.int32(wp.rand_init(seed, salt))


def _define(dim: int, roots: dict) -> dict:
    vec_d = wp.types.vector(length=dim, dtype=float)
    mat_d = wp.types.matrix(shape=(dim, dim), dtype=float)
    cross_pairs = [(a, b) for a in range(dim) for b in range(a + 1, dim)]
    radii, weights = _radial_rule(dim)
    half = _HALF_DESIGN[dim]
    shells = [
        [vec_d(*(radius * d)) for d in (half if s == 0 else half @ _TWIST[dim].T)] for s, radius in enumerate(radii)
    ]
    shell_weights = [float(w) for w in weights]
    n_half = len(half)
    block = cubature_block(dim)

    @wp.func(name=f"_gauss_offset_{dim}d")
    def _gauss_offset(seed: int, i: int) -> vec_d:
        state = wp.rand_init(seed, i)
        u0 = wp.randf(state)
        u1 = wp.randf(state)
        a = _box_muller(u0, u1)
        if wp.static(dim == 2):
            return vec_d(a[0], a[1])
        else:
            u2 = wp.randf(state)
            u3 = wp.randf(state)
            b = _box_muller(u2, u3)
            return vec_d(a[0], a[1], b[0])

    @wp.func(name=f"_random_rotation_{dim}d")
    def _random_rotation(seed: int, i: int) -> mat_d:
        state = wp.rand_init(seed, i)
        u0 = wp.randf(state)
        u1 = wp.randf(state)
        if wp.static(dim == 2):
            c = wp.cos(2.0 * wp.pi * u0)
            s = wp.sin(2.0 * wp.pi * u0)
            return mat_d(c, -s, s, c)
        else:
            u2 = wp.randf(state)
            u3 = wp.randf(state)
            a = _box_muller(u0, u1)
            b = _box_muller(u2, u3)
            return wp.quat_to_matrix(wp.normalize(wp.quat(a[0], a[1], b[0], b[1])))

    def define_fit(degree: int):
        """The fused fit of one degree: returns its coefficients in scaled offsets."""
        m = 1 + dim + (dim + len(cross_pairs) if degree == 2 else 0)
        vec_m = wp.types.vector(length=m, dtype=float)
        mat_m = wp.types.matrix(shape=(m, m), dtype=float)
        # Parity of each basis function under u -> -u: an antipodal pair only couples equal parities.
        odd = [0 < a <= dim for a in range(m)]
        tag = f"{dim}d_{degree}"

        @wp.func(name=f"_basis_{tag}")
        def _basis(u: vec_d) -> vec_m:
            phi = vec_m()
            phi[0] = 1.0
            for a in range(wp.static(dim)):
                phi[wp.static(1 + a)] = u[a]
            if wp.static(degree == 2):
                for a in range(wp.static(dim)):
                    phi[wp.static(1 + dim + a)] = u[a] * u[a]
                for p in range(wp.static(len(cross_pairs))):
                    phi[wp.static(1 + 2 * dim + p)] = u[wp.static(cross_pairs[p][0])] * u[wp.static(cross_pairs[p][1])]
            return phi

        @wp.func(name=f"_accumulate_{tag}")
        def _accumulate(normal: mat_m, rhs: vec_m, u: vec_d, y: float):
            phi = _basis(u)
            out_normal = normal
            out_rhs = rhs
            for a in range(wp.static(m)):
                out_rhs[a] += phi[a] * y
                for b in range(wp.static(m)):
                    if wp.static(b >= a):
                        out_normal[a, b] += phi[a] * phi[b]
            return out_normal, out_rhs

        @wp.func(name=f"_accumulate_pair_{tag}")
        def _accumulate_pair(normal: mat_m, rhs: vec_m, u: vec_d, y_plus: float, y_minus: float, w: float):
            # Samples at +u and -u with weight w each: phi(-u) flips the odd entries.
            phi = _basis(u)
            even_y = w * (y_plus + y_minus)
            odd_y = w * (y_plus - y_minus)
            out_normal = normal
            out_rhs = rhs
            for a in range(wp.static(m)):
                if wp.static(odd[a]):
                    out_rhs[a] += phi[a] * odd_y
                else:
                    out_rhs[a] += phi[a] * even_y
                w2 = 2.0 * w * phi[a]
                for b in range(wp.static(m)):
                    if wp.static(b >= a and odd[a] == odd[b]):
                        out_normal[a, b] += w2 * phi[b]
            return out_normal, out_rhs

        @wp.func(name=f"_solve_{tag}")
        def _solve(normal: mat_m, rhs: vec_m) -> vec_m:
            # Cholesky of the upper triangle (the only part accumulated), then two triangular solves.
            guard = _GUARD * normal[0, 0] + 1.0e-30
            chol = mat_m()
            for j in range(wp.static(m)):
                s = normal[j, j] + guard
                for p in range(wp.static(m)):
                    if wp.static(p < j):
                        s -= chol[j, p] * chol[j, p]
                d = wp.sqrt(wp.max(s, guard))
                chol[j, j] = d
                for i in range(wp.static(m)):
                    if wp.static(i > j):
                        t = normal[j, i]
                        for p in range(wp.static(m)):
                            if wp.static(p < j):
                                t -= chol[i, p] * chol[j, p]
                        chol[i, j] = t / d
            z = vec_m()
            for i in range(wp.static(m)):
                t = rhs[i]
                for p in range(wp.static(m)):
                    if wp.static(p < i):
                        t -= chol[i, p] * z[p]
                z[i] = t / chol[i, i]
            c = vec_m()
            for r in range(wp.static(m)):
                t = z[wp.static(m - 1 - r)]
                for p in range(wp.static(m)):
                    if wp.static(p > m - 1 - r):
                        t -= chol[p, wp.static(m - 1 - r)] * c[p]
                c[wp.static(m - 1 - r)] = t / chol[wp.static(m - 1 - r), wp.static(m - 1 - r)]
            return c

        @wp.func(name=f"_fit_{tag}")
        def _fit(field: Any, x: vec_d, sigma: float, k: int, seed: int, stencil: int) -> vec_m:
            normal = mat_m()
            rhs = vec_m()
            # Values are taken relative to the first sample so float32 sums keep the O(sigma^2) signal.
            y_ref = float(0.0)  # noqa: UP018 (a dynamic Warp variable)
            if stencil == STENCIL_CUBATURE:
                for blk in range(k // wp.static(block)):
                    rot = _random_rotation(seed, blk)
                    for s in range(2):
                        for j in range(wp.static(n_half)):
                            u = rot * wp.static(shells[s][j])
                            y_plus = field_value(field, x + sigma * u)
                            y_minus = field_value(field, x - sigma * u)
                            if blk == 0 and s == 0 and j == 0:
                                y_ref = y_plus
                            normal, rhs = _accumulate_pair(
                                normal, rhs, u, y_plus - y_ref, y_minus - y_ref, wp.static(shell_weights[s])
                            )
            elif stencil == STENCIL_ANTITHETIC:
                for i in range(k // 2):
                    u = _gauss_offset(seed, i)
                    y_plus = field_value(field, x + sigma * u)
                    y_minus = field_value(field, x - sigma * u)
                    if i == 0:
                        y_ref = y_plus
                    normal, rhs = _accumulate_pair(normal, rhs, u, y_plus - y_ref, y_minus - y_ref, 1.0)
            else:
                for i in range(k):
                    u = _gauss_offset(seed, i)
                    y = field_value(field, x + sigma * u)
                    if i == 0:
                        y_ref = y
                    normal, rhs = _accumulate(normal, rhs, u, y - y_ref)
            return _solve(normal, rhs)

        return _fit

    @wp.func(name=f"stencil_offset_{dim}d")
    def stencil_offset(seed: int, stencil: int, i: int):
        """Scaled offset and weight of sample ``i`` in the order the fused fit draws them."""
        if stencil == STENCIL_CUBATURE:
            rot = _random_rotation(seed, i // wp.static(block))
            r = i % wp.static(block)
            u = vec_d()
            w = float(0.0)  # noqa: UP018 (a dynamic Warp variable)
            for s in range(2):
                for j in range(wp.static(n_half)):
                    if r // 2 == wp.static(s * n_half + j):
                        u = rot * wp.static(shells[s][j])
                        w = wp.static(shell_weights[s])
            return u * float(1 - 2 * (r % 2)), w
        if stencil == STENCIL_ANTITHETIC:
            return _gauss_offset(seed, i // 2) * float(1 - 2 * (i % 2)), 1.0
        return _gauss_offset(seed, i), 1.0

    STENCIL_OFFSET[dim] = stencil_offset

    fit_linear = define_fit(1)
    fit_quadratic = define_fit(2)

    @wp.func(name=f"_curvature_{dim}d")
    def _curvature(g: vec_d, hess: mat_d) -> float:
        gg = wp.dot(g, g)
        return (gg * wp.trace(hess) - wp.dot(g, hess * g)) / (wp.static(float(dim - 1)) * gg * wp.sqrt(gg))

    @wp.func(name=f"_polyfit_second_{dim}d")
    def _polyfit_second(field: Any, x: vec_d, sigma: float, k: int, seed: int, stencil: int):
        c = fit_quadratic(field, x, sigma, k, seed, stencil)
        g = vec_d()
        hess = mat_d()
        inv2 = 1.0 / (sigma * sigma)
        for a in range(wp.static(dim)):
            g[a] = c[wp.static(1 + a)] / sigma
            hess[a, a] = 2.0 * c[wp.static(1 + dim + a)] * inv2
        for p in range(wp.static(len(cross_pairs))):
            v = c[wp.static(1 + 2 * dim + p)] * inv2
            hess[wp.static(cross_pairs[p][0]), wp.static(cross_pairs[p][1])] = v
            hess[wp.static(cross_pairs[p][1]), wp.static(cross_pairs[p][0])] = v
        return g, hess

    @wp.func(name=f"_fd_second_{dim}d")
    def _fd_second(field: Any, x: vec_d, h: float):
        f0 = field_value(field, x)
        g = vec_d()
        hess = mat_d()
        inv = 1.0 / (h * h)
        for a in range(wp.static(dim)):
            ea = vec_d()
            ea[a] = h
            f_plus = field_value(field, x + ea)
            f_minus = field_value(field, x - ea)
            g[a] = (f_plus - f_minus) / (2.0 * h)
            hess[a, a] = (f_plus - 2.0 * f0 + f_minus) * inv
            for b in range(wp.static(dim)):
                if wp.static(b > a):
                    eb = vec_d()
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

    # Public overloads, told apart by the type of x: Warp adds a decorated function as an overload of the
    # Function bound to its name in the defining scope.
    (
        ad_gradient,
        ad_normal,
        ad_hessian,
        ad_laplacian,
        ad_mean_curvature,
        fd_gradient,
        fd_normal,
        fd_hessian,
        fd_laplacian,
        fd_mean_curvature,
        polyfit_gradient,
        polyfit_normal,
        polyfit_hessian,
        polyfit_laplacian,
        polyfit_mean_curvature,
        op_gradient,
        op_normal,
        op_hessian,
        op_laplacian,
        op_mean_curvature,
    ) = (roots.get(name) for name in _PUBLIC)

    @wp.func
    def ad_gradient(  # noqa: F811 (an overload per dimension)
        field: Any, x: vec_d
    ) -> vec_d:
        return field_gradient(field, x)

    @wp.func
    def ad_normal(  # noqa: F811 (an overload per dimension)
        field: Any, x: vec_d
    ) -> vec_d:
        return wp.normalize(field_gradient(field, x))

    @wp.func
    def ad_hessian(  # noqa: F811 (an overload per dimension)
        field: Any, x: vec_d
    ) -> mat_d:
        return field_hessian(field, x)

    @wp.func
    def ad_laplacian(  # noqa: F811 (an overload per dimension)
        field: Any, x: vec_d
    ) -> float:
        return wp.trace(field_hessian(field, x))

    @wp.func
    def ad_mean_curvature(  # noqa: F811 (an overload per dimension)
        field: Any, x: vec_d
    ) -> float:
        return _curvature(field_gradient(field, x), field_hessian(field, x))

    @wp.func
    def fd_gradient(  # noqa: F811 (an overload per dimension)
        field: Any, x: vec_d, h: float
    ) -> vec_d:
        g = vec_d()
        for a in range(wp.static(dim)):
            e = vec_d()
            e[a] = h
            g[a] = (field_value(field, x + e) - field_value(field, x - e)) / (2.0 * h)
        return g

    @wp.func
    def fd_normal(  # noqa: F811 (an overload per dimension)
        field: Any, x: vec_d, h: float
    ) -> vec_d:
        return wp.normalize(fd_gradient(field, x, h))

    @wp.func
    def fd_hessian(  # noqa: F811 (an overload per dimension)
        field: Any, x: vec_d, h: float
    ) -> mat_d:
        g, hess = _fd_second(field, x, h)
        return hess

    @wp.func
    def fd_laplacian(  # noqa: F811 (an overload per dimension)
        field: Any, x: vec_d, h: float
    ) -> float:
        g, hess = _fd_second(field, x, h)
        return wp.trace(hess)

    @wp.func
    def fd_mean_curvature(  # noqa: F811 (an overload per dimension)
        field: Any, x: vec_d, h: float
    ) -> float:
        g, hess = _fd_second(field, x, h)
        return _curvature(g, hess)

    @wp.func
    def polyfit_gradient(  # noqa: F811 (an overload per dimension)
        field: Any, x: vec_d, sigma: float, k: int, seed: int, stencil: int
    ) -> vec_d:
        c = fit_linear(field, x, sigma, k, seed, stencil)
        g = vec_d()
        for a in range(wp.static(dim)):
            g[a] = c[wp.static(1 + a)] / sigma
        return g

    @wp.func
    def polyfit_normal(  # noqa: F811 (an overload per dimension)
        field: Any, x: vec_d, sigma: float, k: int, seed: int, stencil: int
    ) -> vec_d:
        return wp.normalize(polyfit_gradient(field, x, sigma, k, seed, stencil))

    @wp.func
    def polyfit_hessian(  # noqa: F811 (an overload per dimension)
        field: Any, x: vec_d, sigma: float, k: int, seed: int, stencil: int
    ) -> mat_d:
        g, hess = _polyfit_second(field, x, sigma, k, seed, stencil)
        return hess

    @wp.func
    def polyfit_laplacian(  # noqa: F811 (an overload per dimension)
        field: Any, x: vec_d, sigma: float, k: int, seed: int, stencil: int
    ) -> float:
        g, hess = _polyfit_second(field, x, sigma, k, seed, stencil)
        return wp.trace(hess)

    @wp.func
    def polyfit_mean_curvature(  # noqa: F811 (an overload per dimension)
        field: Any, x: vec_d, sigma: float, k: int, seed: int, stencil: int
    ) -> float:
        g, hess = _polyfit_second(field, x, sigma, k, seed, stencil)
        return _curvature(g, hess)

    @wp.func
    def op_gradient(  # noqa: F811 (an overload per dimension)
        field: Any, x: vec_d, op: Operator, salt: int
    ) -> vec_d:
        if op.method == METHOD_AD:
            return ad_gradient(field, x)
        if op.method == METHOD_FD:
            return fd_gradient(field, x, op.h)
        return polyfit_gradient(field, x, op.sigma, op.k, salted_seed(op.seed, salt), op.stencil)

    @wp.func
    def op_normal(  # noqa: F811 (an overload per dimension)
        field: Any, x: vec_d, op: Operator, salt: int
    ) -> vec_d:
        return wp.normalize(op_gradient(field, x, op, salt))

    @wp.func
    def op_hessian(  # noqa: F811 (an overload per dimension)
        field: Any, x: vec_d, op: Operator, salt: int
    ) -> mat_d:
        if op.method == METHOD_AD:
            return ad_hessian(field, x)
        if op.method == METHOD_FD:
            return fd_hessian(field, x, op.h)
        return polyfit_hessian(field, x, op.sigma, op.k, salted_seed(op.seed, salt), op.stencil)

    @wp.func
    def op_laplacian(  # noqa: F811 (an overload per dimension)
        field: Any, x: vec_d, op: Operator, salt: int
    ) -> float:
        return wp.trace(op_hessian(field, x, op, salt))

    @wp.func
    def op_mean_curvature(  # noqa: F811 (an overload per dimension)
        field: Any, x: vec_d, op: Operator, salt: int
    ) -> float:
        if op.method == METHOD_AD:
            return ad_mean_curvature(field, x)
        if op.method == METHOD_FD:
            return fd_mean_curvature(field, x, op.h)
        return polyfit_mean_curvature(field, x, op.sigma, op.k, salted_seed(op.seed, salt), op.stencil)

    return {name: value for name, value in locals().items() if name.startswith(("ad_", "fd_", "polyfit_", "op_"))}


_PUBLIC = (
    "ad_gradient",
    "ad_normal",
    "ad_hessian",
    "ad_laplacian",
    "ad_mean_curvature",
    "fd_gradient",
    "fd_normal",
    "fd_hessian",
    "fd_laplacian",
    "fd_mean_curvature",
    "polyfit_gradient",
    "polyfit_normal",
    "polyfit_hessian",
    "polyfit_laplacian",
    "polyfit_mean_curvature",
    "op_gradient",
    "op_normal",
    "op_hessian",
    "op_laplacian",
    "op_mean_curvature",
)
globals().update(_define(3, {}))
globals().update(_define(2, globals()))

__all__ = [
    "METHOD_AD",
    "METHOD_FD",
    "METHOD_POLYFIT",
    "STENCIL_ANTITHETIC",
    "STENCIL_CUBATURE",
    "STENCIL_GAUSS",
    "Operator",
    "cubature_block",
    "cubature_points",
    "salted_seed",
    *_PUBLIC,
]
