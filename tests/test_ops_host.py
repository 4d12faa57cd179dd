"""Host API of the operators: containers, sharding, defaults and bad input."""

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
import warp as wp

import warpfields as wf
from warpfields import ops, parallel
from warpfields.errors import InputError
from warpfields.fields.base import Field
from warpfields.fields.hybrid import HybridField, preset_config


def sphere_points(n=64, radius=0.5, seed=0):
    d = np.random.default_rng(seed).normal(size=(n, 3))
    return (radius * d / np.linalg.norm(d, axis=1, keepdims=True)).astype(np.float32)


def test_numpy_in_numpy_out_with_closed_form():
    field, points = wf.sphere(0.5), sphere_points()
    normals = ops.normal(field, points, k=32, sigma=0.01)
    assert isinstance(normals, np.ndarray) and normals.shape == (64, 3) and normals.dtype == np.float32
    # Smoothing bias sigma^2 / R^2 = 4e-4 on the gradient; cubature sampling error is below it.
    np.testing.assert_allclose(normals, points / 0.5, atol=1e-3)
    curvature = ops.mean_curvature(field, points, k=32, sigma=0.01)
    assert curvature.shape == (64,)
    np.testing.assert_allclose(curvature, 2.0, rtol=5e-3)
    assert ops.hessian(field, points, method="fd", h=5e-3).shape == (64, 3, 3)
    np.testing.assert_allclose(ops.laplacian(field, points, method="ad"), 4.0, rtol=1e-5)
    np.testing.assert_allclose(ops.value(field, points), 0.0, atol=1e-6)


def test_containers_round_trip():
    field, points = wf.sphere(0.5), sphere_points(16)
    reference = ops.gradient(field, points, stencil="antithetic", k=8)
    as_torch = ops.gradient(field, torch.from_numpy(points.astype(np.float64)), stencil="antithetic", k=8)
    assert isinstance(as_torch, torch.Tensor) and tuple(as_torch.shape) == (16, 3)
    np.testing.assert_array_equal(as_torch.numpy(), reference)
    for as_warp in (wp.array(points, dtype=float), wp.array(points, dtype=wp.vec3)):
        out = ops.gradient(field, as_warp, stencil="antithetic", k=8)
        assert isinstance(out, wp.array) and out.shape == (16, 3)
        np.testing.assert_array_equal(out.numpy(), reference)


def test_sharded_equals_single_thread_and_per_point_seeds():
    """Query i uses salted_seed(seed, i) whatever the sharding and the evaluation order: the host API (locality
    order, 2 threads) and the caller's order on 1 thread agree bit for bit."""
    field = wf.torus()
    points = np.random.default_rng(3).uniform(-0.7, 0.7, (2 * 2048 + 5, 3)).astype(np.float32)
    spec = ops.OperatorSpec(method="polyfit", k=16, sigma=0.01, stencil="gauss", seed=9)
    both = ops.query(field, points, "normal", spec)
    xs = wp.array(points, dtype=wp.vec3)
    out = wp.empty(len(points), dtype=wp.vec3)
    kernel = ops.host._query_kernel("normal", "polyfit")
    caller_order = wp.array(np.arange(len(points), dtype=np.int32), dtype=int)
    assert not np.array_equal(parallel.locality_order(xs).numpy(), caller_order.numpy())
    parallel.launch(kernel, len(points), [field.warp(), spec.warp(), xs, caller_order, out], threads=1)
    np.testing.assert_array_equal(both, out.numpy())
    other_seed = ops.OperatorSpec(k=16, sigma=0.01, stencil="gauss", seed=10)
    assert not np.array_equal(both, ops.query(field, points, "normal", other_seed))


def test_circle_2d():
    field = wf.circle(0.4)
    angles = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    points = 0.4 * np.stack([np.cos(angles), np.sin(angles)], 1)
    np.testing.assert_allclose(ops.mean_curvature(field, points, k=16, sigma=0.01), 2.5, rtol=5e-3)
    np.testing.assert_allclose(ops.normal(field, points, method="fd"), points / 0.4, atol=1e-4)


def test_defaults_for_analytic_fields():
    field = wf.sphere()
    assert ops.default_sigma(field) == ops.ANALYTIC_SIGMA
    assert ops.default_h(field) == ops.ANALYTIC_H
    spec = ops.OperatorSpec.for_field(field, method="fd", h=0.01)
    assert spec.h == 0.01 and spec.sigma == ops.ANALYTIC_SIGMA
    op = spec.warp()
    assert op.method == ops.METHOD_FD and op.k == ops.DEFAULT_K and op.stencil == ops.STENCIL_CUBATURE


@dataclass
class FakeGridField:
    finest_cell: float


def test_defaults_follow_the_finest_cell():
    assert ops.default_sigma(FakeGridField(0.01)) == pytest.approx(ops.SIGMA_PER_CELL * 0.01)
    assert ops.default_h(FakeGridField(0.01)) == pytest.approx(ops.H_PER_CELL * 0.01)


# --- a user field with only field_value: fd and polyfit work, ad is refused ----------------


@wp.struct
class Slab:
    thickness: float


field_value = wf.field_value


@wp.func
def field_value(field: Slab, x: wp.vec3) -> float:  # noqa: F811 (a protocol overload)
    return x[2] * x[2] - field.thickness


class SlabField(Field):
    def __init__(self):
        super().__init__(dim=3, kind="slab")

    def _make_struct(self, device):
        slab = Slab()
        slab.thickness = 0.1
        return slab


def test_user_field_through_the_host_api():
    field, points = SlabField(), np.random.default_rng(0).uniform(-0.5, 0.5, (8, 3))
    expected = np.zeros((8, 3))
    expected[:, 2] = 2 * points[:, 2]
    np.testing.assert_allclose(ops.gradient(field, points, method="fd", h=1e-2), expected, atol=1e-3)
    np.testing.assert_allclose(ops.laplacian(field, points, k=16, sigma=0.05), 2.0, rtol=1e-2)
    with pytest.raises(InputError, match="field_gradient"):
        ops.gradient(field, points, method="ad")
    with pytest.raises(InputError, match="field_hessian"):
        ops.mean_curvature(field, points, method="ad")


# --- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"method": "magic"}, "method"),
        ({"stencil": "hexagon"}, "stencil"),
        ({"k": 0}, "k must"),
        ({"k": 2.5}, "k must"),
        ({"sigma": 0.0}, "sigma"),
        ({"sigma": -1e-3}, "sigma"),
        ({"sigma": float("nan")}, "sigma"),
        ({"sigma": float("inf")}, "sigma"),
        ({"h": 0.0}, "h must"),
        ({"h": "small"}, "h must"),
        ({"seed": 2**40}, "seed"),
    ],
)
def test_bad_spec(kwargs, match):
    with pytest.raises(InputError, match=match):
        ops.OperatorSpec(**kwargs)


@pytest.mark.parametrize(
    "quantity,stencil,k,match",
    [
        ("gradient", "gauss", 3, "k >= 4"),
        ("hessian", "gauss", 9, "k >= 10"),
        ("gradient", "antithetic", 5, "k >= 6"),
        ("mean-curvature", "antithetic", 12, "k >= 14"),
        ("laplacian", "antithetic", 15, "even"),
        ("normal", "cubature", 8, "k >= 16"),
        ("normal", "cubature", 24, "multiple of 16"),
    ],
)
def test_too_few_samples(quantity, stencil, k, match):
    with pytest.raises(InputError, match=match):
        ops.query(wf.sphere(), sphere_points(4), quantity, ops.OperatorSpec(k=k, stencil=stencil))


def test_too_few_samples_2d():
    with pytest.raises(InputError, match="k >= 6"):
        ops.hessian(wf.circle(), np.zeros((2, 2)), stencil="gauss", k=5)
    with pytest.raises(InputError, match="multiple of 8"):
        ops.normal(wf.circle(), np.zeros((2, 2)), k=12)


@pytest.mark.parametrize(
    "points,match",
    [
        (np.zeros((4, 2)), r"shape \(N, 3\)"),
        (np.zeros(3), r"shape \(N, 3\)"),
        (np.zeros((2, 3, 1)), r"shape \(N, 3\)"),
        (np.array([[0.0, np.nan, 0.0]]), "finite"),
        (np.array([[0.0, 0.0, 0.0], [np.inf, 0.0, 0.0]]), "row 1"),
        (np.array([["a", "b", "c"]]), "real numbers"),
        (np.zeros((2, 3), dtype=complex), "real numbers"),
    ],
)
def test_bad_points(points, match):
    with pytest.raises(InputError, match=match):
        ops.normal(wf.sphere(), points)


def test_unknown_quantity_and_bad_spec_type():
    with pytest.raises(InputError, match="quantity"):
        ops.query(wf.sphere(), sphere_points(2), "divergence")
    with pytest.raises(InputError, match="OperatorSpec"):
        ops.query(wf.sphere(), sphere_points(2), "normal", {"method": "ad"})


def test_hybrid_field_polyfit_agrees_with_ad_where_smooth():
    hybrid = pytest.importorskip("warpfields.fields.hybrid")
    config = hybrid.HybridConfig(
        levels=2, features=2, log2_table=8, base_resolution=4, max_resolution=8, hidden_width=8
    )
    field = hybrid.HybridField(config, seed=1)
    points = np.random.default_rng(0).uniform(-0.9, 0.9, (256, 3)).astype(np.float32)
    assert ops.default_sigma(field) == pytest.approx(ops.SIGMA_PER_CELL * field.finest_cell)
    exact = ops.gradient(field, points, method="ad")
    fitted = ops.gradient(field, points, sigma=1e-3, k=32, stencil="antithetic")
    # The field is piecewise smooth (ReLU, multilinear cells of side 0.25); a stencil of 1e-3
    # crosses a kink at only a few points, elsewhere the fit is exact to first order.
    error = np.linalg.norm(fitted - exact, axis=1) / np.maximum(np.linalg.norm(exact, axis=1), 1e-3)
    assert np.median(error) < 1e-2
    assert np.mean(error < 5e-2) > 0.8


@pytest.mark.parametrize("threads", ["1", "2"])
def test_locality_order_is_a_z_curve(threads, monkeypatch):
    """The order is a permutation; each thread's range of it holds that range's points, visits the octants
    (quadrants in 2D) one after another, and starts in the lowest corner's cells."""
    monkeypatch.setenv("WARPFIELDS_THREADS", threads)
    for dim, vector in ((3, wp.vec3), (2, wp.vec2)):
        points = np.random.default_rng(5).uniform(-1, 1, (8192, dim)).astype(np.float32)
        order = parallel.locality_order(wp.array(points, dtype=vector)).numpy()
        bounds = parallel.shard_bounds(len(points), parallel.shard_count(len(points), "cpu"))
        assert len(bounds) == int(threads) + 1
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            assert sorted(order[lo:hi].tolist()) == list(range(lo, hi))
            octant = ((points[order[lo:hi]] > 0) * [1, 2, 4][:dim]).sum(axis=1)
            assert np.all(np.diff(octant) >= 0)
            assert np.all(points[order[lo : lo + 8]] < -0.5)
    small = parallel.locality_order(wp.array(points[:100], dtype=wp.vec2)).numpy()
    assert small.tolist() == list(range(100))


@wp.kernel(enable_backward=False)
def _caller_order_values(field: Any, points: wp.array(dtype=wp.vec3), out: wp.array(dtype=float)):
    i = wp.tid()
    out[i] = wf.field_value(field, points[i])


def test_bulk_values_equal_the_per_point_function():
    """The bulk path (locality order, sharded) returns what the per-point function gives in caller order, to the
    float rounding of its build (fused multiply-adds, ``parallel.bulk_module_options``)."""
    field = HybridField(preset_config("tiny"), seed=3)
    points = np.random.default_rng(8).uniform(-1, 1, (3 * 4096 + 7, 3)).astype(np.float32)
    out = wp.empty(len(points), dtype=float)
    wp.launch(_caller_order_values, len(points), inputs=[field.warp(), wp.array(points, dtype=wp.vec3), out])
    expected = out.numpy()
    np.testing.assert_allclose(ops.value(field, points), expected, rtol=0, atol=1e-5 * np.abs(expected).max())
