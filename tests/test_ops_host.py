"""Host API of the operators: containers, sharding, defaults and bad input."""

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
import trimesh
import warp as wp

import warpfields as wf
from warpfields import ops, parallel
from warpfields.errors import InputError
from warpfields.fields.base import Field
from warpfields.fields.hybrid import HybridConfig, HybridField, parameter_shapes, preset_config
from warpfields.ops import MAX_K


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
    """Each kind comes back as itself: numpy, torch, Warp float rows as float rows and Warp vectors as vectors."""
    field, points = wf.sphere(0.5), sphere_points(16)
    reference = ops.gradient(field, points, stencil="antithetic", k=8)
    as_torch = ops.gradient(field, torch.from_numpy(points.astype(np.float64)), stencil="antithetic", k=8)
    assert isinstance(as_torch, torch.Tensor) and tuple(as_torch.shape) == (16, 3)
    np.testing.assert_array_equal(as_torch.numpy(), reference)
    rows = ops.gradient(field, wp.array(points, dtype=float), stencil="antithetic", k=8)
    assert isinstance(rows, wp.array) and rows.dtype == wp.float32 and rows.shape == (16, 3)
    np.testing.assert_array_equal(rows.numpy(), reference)
    vectors = ops.gradient(field, wp.array(points, dtype=wp.vec3), stencil="antithetic", k=8)
    assert isinstance(vectors, wp.array) and vectors.dtype == wp.vec3 and vectors.shape == (16,)
    np.testing.assert_array_equal(vectors.numpy(), reference)
    hessians = ops.hessian(field, wp.array(points, dtype=wp.vec3), method="ad")
    assert hessians.dtype == wp.mat33 and hessians.shape == (16,)
    assert ops.hessian(field, wp.array(points, dtype=float), method="ad").shape == (16, 3, 3)
    curvatures = ops.mean_curvature(field, wp.array(points, dtype=wp.vec3), method="ad")
    assert curvatures.dtype == wp.float32 and curvatures.shape == (16,)


def test_sharded_equals_single_thread_and_per_point_seeds():
    """Query i uses salted_seed(seed, i) whatever the sharding and the evaluation order: the host API (locality
    order, 2 threads) and the caller's order on 1 thread agree bit for bit."""
    field = wf.torus()
    points = np.random.default_rng(3).uniform(-0.7, 0.7, (2 * 2048 + 5, 3)).astype(np.float32)
    spec = ops.OperatorSpec(method="polyfit", k=16, sigma=0.01, stencil="gauss", seed=9)
    both = ops.query(field, points, "normal", spec)
    xs = wp.array(points, dtype=wp.vec3)
    out = wp.empty(len(points), dtype=wp.vec3)
    kernel = ops.host._query_kernel("normal", "polyfit", 3)
    caller_order = wp.array(np.arange(len(points), dtype=np.int32), dtype=int)
    assert not np.array_equal(parallel.locality_order(xs).numpy(), caller_order.numpy())
    parallel.launch(kernel, len(points), [0, field.warp(), spec.warp(), xs, caller_order, out], threads=1)
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
        ({"k": 0}, r"k=0 is out of range: expected 1 <= k <= 4096"),
        ({"k": 2.5}, "k=2.5 is out of range"),
        ({"k": 2**31}, "k=2147483648 is out of range"),
        ({"sigma": 0.0}, "sigma"),
        ({"sigma": -1e-3}, "sigma"),
        ({"sigma": float("nan")}, "sigma"),
        ({"sigma": float("inf")}, "sigma"),
        ({"h": 0.0}, r"h=0.0 is out of range: expected 1e-05 <= h <= 2"),
        ({"h": 1e-30}, "h=1e-30 is out of range"),
        ({"sigma": 1e-30}, "sigma=1e-30 is out of range"),
        ({"sigma": 3.0}, r"sigma=3.0 is out of range: .* at most the domain's side"),
        ({"h": "small"}, "h must be a number"),
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


@pytest.mark.parametrize("bad_rows, first", [([7000], 7000), ([9000, 3000], 3000)])
def test_the_first_non_finite_row_of_a_sharded_batch_is_named(bad_rows, first, monkeypatch):
    # Large batches look for non-finite rows in the locality sort's pass, one result per thread's shard.
    monkeypatch.setenv("WARPFIELDS_THREADS", "2")
    points = np.random.default_rng(0).uniform(-1.0, 1.0, (10000, 3))
    points[bad_rows, 1] = np.nan
    with pytest.raises(InputError, match=rf"row {first} is"):
        ops.value(wf.sphere(), points)


def test_unknown_quantity_and_bad_spec_type():
    with pytest.raises(InputError, match="quantity"):
        ops.query(wf.sphere(), sphere_points(2), "divergence")
    with pytest.raises(InputError, match="OperatorSpec"):
        ops.query(wf.sphere(), sphere_points(2), "normal", {"method": "ad"})


def test_hybrid_field_polyfit_agrees_with_ad_where_smooth():
    config = HybridConfig(levels=2, features=2, log2_table=8, base_resolution=4, max_resolution=8, hidden_width=8)
    field = HybridField(config, seed=1)
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
def _affine(start: int, scale: float, shift: float, xs: wp.array(dtype=float), out: wp.array(dtype=float)):
    i = start + wp.tid()
    out[i] = scale * xs[i] + shift


@pytest.mark.parametrize("threads", ["1", "2"])
def test_a_recorded_launch_runs_every_shard_with_the_changed_arguments(threads, monkeypatch):
    monkeypatch.setenv("WARPFIELDS_THREADS", threads)
    xs = np.arange(3 * 2048 + 5, dtype=np.float32)
    out = wp.zeros(len(xs), dtype=float)
    recorded = parallel.RecordedLaunch(_affine, len(xs), [1.0, 0.0, wp.array(xs), out], "cpu")
    assert len(recorded.commands) == int(threads)
    recorded.run()
    np.testing.assert_array_equal(out.numpy(), xs)
    recorded.run(shift=0.5)
    recorded.run(scale=2.0)
    np.testing.assert_array_equal(out.numpy(), 2.0 * xs + 0.5)


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


# --- every argument has one range, the same for the host API and the CLI -------------------------


SMALL = HybridConfig(levels=2, features=2, log2_table=8, base_resolution=4, max_resolution=8, hidden_width=8)


def test_scale_ranges_follow_the_finest_cell():
    """sigma and h range from 1/256 of the finest cell (or the float32 floor) to the domain's side."""
    field = HybridField(SMALL, seed=1)
    low, high = ops.scale_range(field)
    assert low == pytest.approx(field.finest_cell / 256) and high == 2.0
    assert ops.scale_range(wf.sphere()) == (ops.MIN_SCALE, 2.0)
    points = sphere_points(4)
    with pytest.raises(InputError, match=r"sigma=0.0005 is out of range: expected 0.0009766 <= sigma <= 2"):
        ops.normal(field, points, sigma=5e-4)
    with pytest.raises(InputError, match=r"h=0.0005 is out of range: .*1/256 of the finest cell 0.25"):
        ops.query(field, points, "normal", ops.OperatorSpec(method="fd", h=5e-4))
    assert np.isfinite(ops.normal(field, points, sigma=low, k=16)).all()


@pytest.mark.parametrize("k", [2**31, 2**32, 0, MAX_K + 16])
def test_k_outside_its_range_is_refused(k):
    """2^31 would wrap to a negative count in the Warp functions and return all-zero normals."""
    with pytest.raises(InputError, match=f"k={k} is out of range: expected 1 <= k <= {MAX_K}"):
        ops.normal(wf.sphere(), sphere_points(4), k=k)


# --- outside the domain: values extended by the distance, derivatives NaN -------------------------

FAR = np.array([[1e6, 0.0, 0.0], [1e30, 0.0, 0.0], [2.0, 0.5, -3.0], [0.0, 1.0 + 1e-6, 0.0]], dtype=np.float32)


def icosphere_sdf():
    from warpfields.fields.mesh_sdf import MeshSDF
    from warpfields.io.mesh import Mesh

    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.5)
    return MeshSDF(Mesh(np.asarray(sphere.vertices), np.asarray(sphere.faces, dtype=np.int32)))


# One method per field type keeps the compiled kernels few; the contract lives in the one query kernel.
CONTRACT_CASES = {
    "sphere": (wf.sphere, "polyfit", ops.QUANTITIES[1:]),
    "torus": (wf.torus, "fd", ("normal", "mean_curvature")),
    "hybrid": (lambda: HybridField(SMALL, seed=2), "ad", ("normal", "mean_curvature")),
    "mesh": (icosphere_sdf, "polyfit", ("normal", "mean_curvature")),
}


@pytest.mark.parametrize("kind", sorted(CONTRACT_CASES))
def test_the_domain_contract_holds_for_every_field_type(kind):
    make_field, method, quantities = CONTRACT_CASES[kind]
    field = make_field()
    inside = np.array([[0.3, 0.1, 0.2], [1.0, -1.0, 0.4]], dtype=np.float32)
    points = np.concatenate([FAR, inside])
    closest = np.clip(FAR.astype(np.float64), -1.0, 1.0)
    distance = np.linalg.norm(FAR - closest, axis=1)
    values = ops.value(field, points)
    np.testing.assert_allclose(values[:4], ops.value(field, closest) + distance, rtol=1e-6)
    np.testing.assert_array_equal(values[4:], ops.value(field, inside))
    for quantity in quantities:
        result = ops.query(field, points, quantity, ops.OperatorSpec.for_field(field, method=method, k=16))
        assert np.isnan(result[:4]).all(), quantity
        assert np.isfinite(result[4:]).all(), quantity


def test_no_zero_normal_is_presented_as_a_result():
    """Where the gradient vanishes there is no normal: NaN, not a zero vector."""
    flat = HybridField(SMALL, {name: np.zeros(shape) for name, shape in parameter_shapes(SMALL).items()})
    points = sphere_points(8)
    for method in ("ad", "fd", "polyfit"):
        np.testing.assert_array_equal(ops.gradient(flat, points, method=method), 0.0)
        assert np.isnan(ops.normal(flat, points, method=method)).all()
    # The torus's tube centre circle: the distance has no gradient there.
    assert np.isnan(ops.normal(wf.torus(0.5, 0.2), np.array([[0.5, 0.0, 0.0]]), method="ad")).all()


# --- first calls from several threads at once ---------------------------------------------------

_FIRST_CALLS = """
import json, sys, threading
import numpy as np
import warp as wp
wp.init()  # Warp's banner, which warpfields' own initialisation leaves out: it must appear once
from warpfields import ops
from warpfields.fields.hybrid import HybridConfig, HybridField

config = HybridConfig(levels=2, features=2, log2_table=8, base_resolution=4, max_resolution=8, hidden_width=8)
field = HybridField(config, seed=1)
points = np.random.default_rng(0).uniform(-0.9, 0.9, (64, 3)).astype(np.float32)
threads = int(sys.argv[1])
barrier = threading.Barrier(threads)
results = [None] * threads


def first_call(i):
    barrier.wait()
    try:
        results[i] = ops.normal(field, points, method="ad").tolist()
    except Exception as error:
        results[i] = repr(error)


workers = [threading.Thread(target=first_call, args=(i,)) for i in range(threads)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
print(json.dumps({"threads": results, "after": ops.normal(field, points, method="ad").tolist()}))
"""


def test_first_calls_from_threads_at_once_in_fresh_processes():
    """Threads making their first query at once must not generate the struct type twice (the overloads would be
    registered for the other copy: a false 'no field_value overload', and later calls broken too)."""
    field = HybridField(SMALL, seed=1)
    points = np.random.default_rng(0).uniform(-0.9, 0.9, (64, 3)).astype(np.float32)
    sequential = ops.normal(field, points, method="ad").tolist()
    for _ in range(3):
        run = subprocess.run(
            [sys.executable, "-c", _FIRST_CALLS, "4"], capture_output=True, text=True, timeout=600, check=True
        )
        report = json.loads(run.stdout.strip().splitlines()[-1])
        assert report["threads"] == [sequential] * 4
        assert report["after"] == sequential
        assert run.stdout.count("Warp") <= 1 and "initialized" in run.stdout
