"""The derivative operators as Warp functions, against closed forms and float64 references.

Tolerances (sigma = 0.01, h = 5e-3, points within 0.05 of surfaces with radii of curvature
>= 0.15):
- ad is exact up to float32 rounding.
- fd: gradient truncation h^2 |f'''| / 6 ~ 1e-4; second differences add rounding
  ~4 eps |f| / h^2 ~ 5e-3 and truncation h^2 |f''''| / 12 ~ 2e-3 on curvatures of order 5.
- polyfit estimates the Gaussian-smoothed derivative: bias ~ sigma^2 |f'''| ~ 4e-3 on
  gradients and ~ sigma^2 |f''''| / |f''| ~ 1% on second derivatives; plus the stencil's
  sampling error from the cubic and higher terms, which falls like 1/sqrt(k) for gauss and is
  much smaller for the structured stencils (k is raised for gauss accordingly).
"""

from typing import Any

import numpy as np
import pytest
import warp as wp

import warpfields as wf
from warpfields import ops

SIGMA = 0.01
H = 5.0e-3
K = {"gauss": 256, "antithetic": 128, "cubature": 64}


def make_kernel(method: str):
    """One kernel per method computing every quantity, so each field type compiles once per method."""

    @wp.kernel(enable_backward=False, module="unique")
    def derivatives(
        field: Any,
        xs: wp.array(dtype=Any),
        sigma: float,
        h: float,
        k: int,
        stencil: int,
        seed: int,
        gradient: wp.array(dtype=Any),
        normal: wp.array(dtype=Any),
        hessian: wp.array(dtype=Any),
        laplacian: wp.array(dtype=float),
        curvature: wp.array(dtype=float),
    ):
        i = wp.tid()
        x = xs[i]
        if wp.static(method == "ad"):
            gradient[i] = ops.ad_gradient(field, x)
            normal[i] = ops.ad_normal(field, x)
            hessian[i] = ops.ad_hessian(field, x)
            laplacian[i] = ops.ad_laplacian(field, x)
            curvature[i] = ops.ad_mean_curvature(field, x)
        elif wp.static(method == "fd"):
            gradient[i] = ops.fd_gradient(field, x, h)
            normal[i] = ops.fd_normal(field, x, h)
            hessian[i] = ops.fd_hessian(field, x, h)
            laplacian[i] = ops.fd_laplacian(field, x, h)
            curvature[i] = ops.fd_mean_curvature(field, x, h)
        else:
            s = seed + i
            gradient[i] = ops.polyfit_gradient(field, x, sigma, k, s, stencil)
            normal[i] = ops.polyfit_normal(field, x, sigma, k, s, stencil)
            hessian[i] = ops.polyfit_hessian(field, x, sigma, k, s, stencil)
            laplacian[i] = ops.polyfit_laplacian(field, x, sigma, k, s, stencil)
            curvature[i] = ops.polyfit_mean_curvature(field, x, sigma, k, s, stencil)

    return derivatives


KERNELS = {method: make_kernel(method) for method in ("ad", "fd", "polyfit")}


def evaluate(struct, points, method, stencil="cubature", sigma=SIGMA, k=None, seed=0):
    n, dim = points.shape
    vec = wp.types.vector(length=dim, dtype=float)
    mat = wp.types.matrix(shape=(dim, dim), dtype=float)
    outs = [wp.empty(n, dtype=vec), wp.empty(n, dtype=vec), wp.empty(n, dtype=mat)]
    outs += [wp.empty(n, dtype=float), wp.empty(n, dtype=float)]
    k = K[stencil] if k is None else k
    xs = wp.array(points.astype(np.float32), dtype=vec)
    wp.launch(KERNELS[method], n, inputs=[struct, xs, sigma, H, k, ops.STENCILS[stencil], seed, *outs])
    names = ("gradient", "normal", "hessian", "laplacian", "mean_curvature")
    return {name: out.numpy().astype(np.float64) for name, out in zip(names, outs, strict=True)}


# --- closed forms (float64) ------------------------------------------------------------


def round_shape(points, radius):
    """Sphere (3D) or circle (2D) of ``radius`` around the origin."""
    dim = points.shape[1]
    r = np.linalg.norm(points, axis=1)
    n = points / r[:, None]
    hess = (np.eye(dim) - n[:, :, None] * n[:, None, :]) / r[:, None, None]
    return {"gradient": n, "normal": n, "hessian": hess, "laplacian": (dim - 1) / r, "mean_curvature": 1 / r}


def torus_truth(points, major, minor):
    x, y, z = points.T
    rho = np.hypot(x, y)
    q = np.stack([rho - major, z], 1)
    qn = np.linalg.norm(q, axis=1)
    n = q / qn[:, None]
    c, s = x / rho, y / rho
    grad = np.stack([n[:, 0] * c, n[:, 0] * s, n[:, 1]], 1)
    jq = np.zeros((len(x), 2, 3))
    jq[:, 0, 0], jq[:, 0, 1], jq[:, 1, 2] = c, s, 1.0
    proj = (np.eye(2) - n[:, :, None] * n[:, None, :]) / qn[:, None, None]
    hess_rho = np.zeros((len(x), 3, 3))
    hess_rho[:, 0, 0], hess_rho[:, 0, 1], hess_rho[:, 1, 1] = 1 - c * c, -c * s, 1 - s * s
    hess_rho[:, 1, 0] = hess_rho[:, 0, 1]
    hess = np.einsum("nai,nab,nbj->nij", jq, proj, jq) + (n[:, 0] / rho)[:, None, None] * hess_rho
    # Principal curvatures of the level set (a torus of tube radius qn): 1/qn and cos(phi)/rho.
    curvature = 0.5 * (1 / qn + n[:, 0] / rho)
    return {"gradient": grad, "normal": grad, "hessian": hess, "laplacian": np.trace(hess, axis1=1, axis2=2),
            "mean_curvature": curvature}  # fmt: skip


def near_round(dim, radius, n=48, seed=0):
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, dim))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return d * (radius + rng.uniform(-0.05, 0.05, (n, 1)))


def near_torus(major, minor, n=48, seed=0):
    rng = np.random.default_rng(seed)
    theta, phi = rng.uniform(0, 2 * np.pi, (2, n))
    t = minor + rng.uniform(-0.05, 0.05, n)
    rho = major + t * np.cos(phi)
    return np.stack([rho * np.cos(theta), rho * np.sin(theta), t * np.sin(phi)], 1)


CASES = {
    "sphere": (lambda: wf.sphere(0.5), lambda: near_round(3, 0.5), lambda p: round_shape(p, 0.5)),
    "circle": (lambda: wf.circle(0.4), lambda: near_round(2, 0.4), lambda p: round_shape(p, 0.4)),
    "torus": (lambda: wf.torus(0.5, 0.2), lambda: near_torus(0.5, 0.2), lambda p: torus_truth(p, 0.5, 0.2)),
}

# Largest error allowed: (gradient/normal, second derivatives relative to their size).
TOLERANCE = {
    "ad": (1e-5, 1e-4),
    "fd": (1e-3, 1e-2),
    "gauss": (3e-2, 0.1),
    "antithetic": (5e-3, 3e-2),
    "cubature": (5e-3, 2e-2),
}

METHOD_CASES = [
    (shape, method, stencil)
    for shape in CASES
    for method, stencil in [("ad", None), ("fd", None), *(("polyfit", s) for s in ops.STENCILS)]
]


@pytest.mark.parametrize("shape,method,stencil", METHOD_CASES)
def test_matches_closed_form(shape, method, stencil):
    make_field, make_points, truth_of = CASES[shape]
    points = make_points()
    truth = truth_of(points.astype(np.float32).astype(np.float64))
    got = evaluate(make_field().warp(), points, method, stencil or "cubature")
    first, second = TOLERANCE[stencil or method]
    for name in ("gradient", "normal"):
        assert np.abs(got[name] - truth[name]).max() < first, name
    scale = np.abs(truth["mean_curvature"]).max()
    for name in ("hessian", "laplacian", "mean_curvature"):
        assert np.abs(got[name] - truth[name]).max() < second * scale, name


def random_quadratic(dim, seed):
    rng = np.random.default_rng(seed)
    a = rng.uniform(-2, 2, (dim, dim))
    return rng.uniform(-1, 1), rng.uniform(-1, 1, dim), a + a.T


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("stencil", list(ops.STENCILS))
def test_polyfit_of_quadratic_is_exact(dim, stencil):
    c, g, a = random_quadratic(dim, seed=dim)
    field = wf.quadratic(c, g, a)
    points = np.random.default_rng(5).uniform(-0.5, 0.5, (16, dim))
    # Twice the minimal sample count: random offsets at the minimum can be nearly degenerate.
    k = 2 * ops.min_samples(dim, 2, stencil)
    got = evaluate(field.warp(), points, "polyfit", stencil, sigma=0.05, k=k)
    # Exact up to float32 rounding of values of size ~1 divided by sigma^2 ~ 2.5e-3 (times conditioning).
    np.testing.assert_allclose(got["hessian"], np.broadcast_to(a, got["hessian"].shape), atol=5e-3)
    # The quadratic fit's gradient enters the mean curvature, which is then exact too.
    grads = g + points @ a.T
    norm = np.linalg.norm(grads, axis=1)
    curvature = (norm**2 * np.trace(a) - np.einsum("ni,ij,nj->n", grads, a, grads)) / ((2 if dim == 3 else 1) * norm**3)
    np.testing.assert_allclose(got["mean_curvature"], curvature, rtol=5e-3, atol=5e-3)
    if stencil != "gauss":
        # Paired offsets cancel the quadratic term in a linear fit, so its gradient is exact as well;
        # Gaussian offsets have random third moments that bias it by O(sigma |A| / sqrt(k)).
        np.testing.assert_allclose(got["gradient"], grads, atol=2e-4)


def quadratic_basis(u):
    dim = u.shape[1]
    cross = [u[:, a] * u[:, b] for a in range(dim) for b in range(a + 1, dim)]
    return np.stack([np.ones(len(u)), *u.T, *(u**2).T, *cross], 1)


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("stencil", list(ops.STENCILS))
def test_fused_fit_matches_materialised_lstsq(dim, stencil):
    """The fused accumulation equals a float64 weighted least-squares fit on the same offsets."""
    field = wf.sphere(0.5) if dim == 3 else wf.circle(0.5)
    x = np.full(dim, 0.3)
    seed, k = 11, 2 * ops.min_samples(dim, 2, stencil)
    u, w = ops.polyfit_offsets(dim, k, seed, stencil)
    assert u.shape == (k, dim) and w.shape == (k,)
    y = np.linalg.norm(x + SIGMA * u.astype(np.float64), axis=1) - 0.5
    basis = quadratic_basis(u.astype(np.float64))
    sw = np.sqrt(w)[:, None]
    coef = np.linalg.lstsq(basis * sw, y * sw[:, 0], rcond=None)[0]
    ref_grad = coef[1 : 1 + dim] / SIGMA
    ref_hess = np.zeros((dim, dim))
    ref_hess[np.diag_indices(dim)] = 2 * coef[1 + dim : 1 + 2 * dim] / SIGMA**2
    for p, (a, b) in enumerate(zip(*np.triu_indices(dim, 1), strict=True)):
        ref_hess[a, b] = ref_hess[b, a] = coef[1 + 2 * dim + p] / SIGMA**2
    got = evaluate(field.warp(), x[None], "polyfit", stencil, k=k, seed=seed)
    np.testing.assert_allclose(got["hessian"][0], ref_hess, atol=2e-2)
    np.testing.assert_allclose(got["laplacian"][0], np.trace(ref_hess), atol=2e-2)
    # The normal comes from the degree-1 fit (intercept + linear terms) on the same offsets.
    linear = np.linalg.lstsq(basis[:, : 1 + dim] * sw, y * sw[:, 0], rcond=None)[0][1 : 1 + dim] / SIGMA
    np.testing.assert_allclose(got["normal"][0], linear / np.linalg.norm(linear), atol=2e-4)
    if stencil != "gauss":
        # With paired offsets the two fits share their linear coefficients.
        np.testing.assert_allclose(linear, ref_grad, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dim", [2, 3])
def test_cubature_moments_match_the_gaussian(dim):
    """Weighted moments of one block: zero mean, identity covariance, exact E|u|^4 = dim (dim + 2)."""
    u, raw_weights = ops.cubature_points(dim)
    w = raw_weights / raw_weights.sum()
    assert len(u) == ops.cubature_block(dim)
    np.testing.assert_allclose(w @ u, 0, atol=1e-12)
    np.testing.assert_allclose((u * w[:, None]).T @ u, np.eye(dim), atol=1e-12)
    np.testing.assert_allclose(w @ np.sum(u**2, 1) ** 2, dim * (dim + 2), rtol=1e-12)
    # The generator in Warp draws the same radii and weights, randomly rotated.
    drawn, drawn_w = ops.polyfit_offsets(dim, len(u), seed=3, stencil="cubature")
    np.testing.assert_allclose(np.sort(np.linalg.norm(drawn, axis=1)), np.sort(np.linalg.norm(u, axis=1)), rtol=1e-5)
    np.testing.assert_allclose(np.sort(drawn_w), np.sort(raw_weights), rtol=1e-6)


@pytest.mark.parametrize("stencil", list(ops.STENCILS))
def test_same_seed_same_result(stencil):
    struct = wf.torus().warp()
    points = near_torus(0.5, 0.2, n=8)
    a = evaluate(struct, points, "polyfit", stencil, seed=7)
    b = evaluate(struct, points, "polyfit", stencil, seed=7)
    c = evaluate(struct, points, "polyfit", stencil, seed=8)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["hessian"], c["hessian"])


# --- a user-defined field: only field_value, defined here --------------------------------


@wp.struct
class Ellipsoid:
    axes: wp.vec3


field_value = wf.field_value


@wp.func
def field_value(field: Ellipsoid, x: wp.vec3) -> float:  # noqa: F811 (a protocol overload)
    return wp.dot(wp.cw_div(x, field.axes), wp.cw_div(x, field.axes)) - 1.0


@pytest.mark.parametrize("method,stencil", [("fd", None), ("polyfit", "gauss"), ("polyfit", "cubature")])
def test_user_defined_field(method, stencil):
    axes = np.array([0.5, 0.7, 0.9])
    struct = Ellipsoid()
    struct.axes = wp.vec3(*axes)
    points = np.random.default_rng(1).uniform(-0.6, 0.6, (16, 3))
    got = evaluate(struct, points, method, stencil or "cubature")
    # f = sum (x_a / axes_a)^2 - 1: quadratic, so fd and the paired polyfit stencils are exact up to
    # rounding; the Gaussian stencil's linear fit carries an O(sigma |A| / sqrt(k)) third-moment bias.
    np.testing.assert_allclose(got["gradient"], 2 * points / axes**2, atol=2e-2 if stencil == "gauss" else 2e-3)
    np.testing.assert_allclose(got["hessian"], np.broadcast_to(np.diag(2 / axes**2), (16, 3, 3)), atol=2e-2)


@wp.kernel(enable_backward=False, module="unique")
def dispatch_kernel(
    field: Any,
    xs: wp.array(dtype=wp.vec3),
    op: ops.Operator,
    normal: wp.array(dtype=wp.vec3),
    curvature: wp.array(dtype=float),
    direct_normal: wp.array(dtype=wp.vec3),
    direct_curvature: wp.array(dtype=float),
):
    i = wp.tid()
    x = xs[i]
    normal[i] = ops.op_normal(field, x, op, i)
    curvature[i] = ops.op_mean_curvature(field, x, op, i)
    if op.method == ops.METHOD_AD:
        direct_normal[i] = ops.ad_normal(field, x)
        direct_curvature[i] = ops.ad_mean_curvature(field, x)
    elif op.method == ops.METHOD_FD:
        direct_normal[i] = ops.fd_normal(field, x, op.h)
        direct_curvature[i] = ops.fd_mean_curvature(field, x, op.h)
    else:
        seed = ops.salted_seed(op.seed, i)
        direct_normal[i] = ops.polyfit_normal(field, x, op.sigma, op.k, seed, op.stencil)
        direct_curvature[i] = ops.polyfit_mean_curvature(field, x, op.sigma, op.k, seed, op.stencil)


def fixed_method_kernel(quantity: str, method: str):
    fixed = ops.operator_function(quantity, method)
    chosen_at_run_time = getattr(ops, f"op_{quantity}")

    @wp.kernel(enable_backward=False, module="unique")
    def kernel(field: Any, xs: wp.array(dtype=wp.vec3), op: ops.Operator, out: wp.array(dtype=Any), ref: Any):
        i = wp.tid()
        out[i] = wp.static(fixed)(field, xs[i], op, i)
        ref[i] = wp.static(chosen_at_run_time)(field, xs[i], op, i)

    return kernel


@pytest.mark.parametrize("method", list(ops.METHODS))
@pytest.mark.parametrize("quantity,dtype", [("gradient", wp.vec3), ("hessian", wp.mat33), ("mean_curvature", float)])
def test_an_operator_fixed_at_compile_time_equals_the_run_time_choice(quantity, dtype, method):
    points = near_round(3, 0.5, n=8)
    spec = ops.OperatorSpec(method=method, k=32, sigma=SIGMA, h=H, stencil="antithetic", seed=4)
    out, ref = wp.empty(8, dtype=dtype), wp.empty(8, dtype=dtype)
    xs = wp.array(points.astype(np.float32), dtype=wp.vec3)
    wp.launch(fixed_method_kernel(quantity, method), 8, inputs=[wf.sphere(0.5).warp(), xs, spec.warp(), out, ref])
    # The same code at two call sites: equal to the rounding of fused multiply-adds.
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("method", list(ops.METHODS))
def test_operator_struct_dispatches(method):
    points = near_round(3, 0.5, n=8)
    spec = ops.OperatorSpec(method=method, k=32, sigma=SIGMA, h=H, stencil="antithetic", seed=4)
    outs = [wp.empty(8, dtype=wp.vec3), wp.empty(8, dtype=float), wp.empty(8, dtype=wp.vec3), wp.empty(8, dtype=float)]
    xs = wp.array(points.astype(np.float32), dtype=wp.vec3)
    wp.launch(dispatch_kernel, 8, inputs=[wf.sphere(0.5).warp(), xs, spec.warp(), *outs])
    # Equal up to rounding (CUDA contracts multiply-adds differently in the two call sites, which fd's
    # small step amplifies: 1e-5 on normals, 7.7e-4 on curvatures measured on an H200); the methods'
    # curvatures differ from each other by more than 2e-3.
    np.testing.assert_allclose(outs[0].numpy(), outs[2].numpy(), atol=2e-5)
    np.testing.assert_allclose(outs[1].numpy(), outs[3].numpy(), atol=1e-3)
    np.testing.assert_allclose(outs[1].numpy(), 1 / np.linalg.norm(points, axis=1), rtol=2e-2)
