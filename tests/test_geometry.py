import numpy as np
import pytest
import trimesh

import warpfields as wf
from warpfields import geometry
from warpfields.errors import InputError
from warpfields.fields.hybrid import HybridField, preset_config
from warpfields.fields.mesh_sdf import MeshSDF
from warpfields.io.mesh import Mesh


def icosphere(subdivisions=3, radius=0.5) -> Mesh:
    ico = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return Mesh(np.asarray(ico.vertices), np.asarray(ico.faces, dtype=np.int32), "icosphere")


def two_triangles() -> Mesh:
    """Areas 0.5 and 1 in the z = 0 plane."""
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [3, 0, 0], [3, 1, 0]], dtype=float)
    faces = np.array([[0, 1, 2], [1, 3, 4]], dtype=np.int32)
    return Mesh(vertices, faces)


def test_sample_surface_is_area_weighted_deterministic_and_on_faces():
    mesh = two_triangles()
    points, ids, bary = geometry.sample_surface(mesh, 20000, seed=4)
    again = geometry.sample_surface(mesh, 20000, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip((points, ids, bary), again))
    assert not np.array_equal(points, geometry.sample_surface(mesh, 20000, seed=5)[0])
    share = np.mean(ids == 0)
    assert abs(share - 1 / 3) < 4 * np.sqrt(2 / 9 / 20000)
    assert np.allclose(bary.sum(axis=1), 1) and bary.min() >= 0
    assert np.allclose(points, np.einsum("nk,nkd->nd", bary, mesh.vertices[mesh.faces[ids]]))
    # uniform within a triangle: the mean barycentric coordinate is 1/3
    assert np.allclose(bary.mean(axis=0), 1 / 3, atol=0.01)


def test_vertex_normals_interpolation_and_reference_normals():
    mesh = icosphere()
    radial = mesh.vertices / np.linalg.norm(mesh.vertices, axis=1, keepdims=True)
    assert np.abs(geometry.vertex_normals(mesh) - radial).max() < 0.02
    # a vertex shared by a face of area 0.5 (normal +z) and one of area 2 (normal +x)
    hinge = Mesh(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 2, 0], [0, 0, 2.0]]), np.array([[0, 1, 2], [0, 3, 4]]))
    assert np.allclose(geometry.vertex_normals(hinge)[0], np.array([2.0, 0, 0.5]) / np.hypot(2.0, 0.5))
    points, ids, bary = geometry.sample_surface(mesh, 500, seed=0)
    linear = mesh.vertices @ np.array([1.0, -2.0, 0.5]) + 3.0
    assert np.allclose(geometry.interpolate(linear, mesh.faces, ids, bary), points @ np.array([1.0, -2.0, 0.5]) + 3.0)
    normals = geometry.reference_normals(mesh, ids, bary)
    assert np.allclose(np.linalg.norm(normals, axis=1), 1)
    assert np.einsum("nd,nd->n", normals, points / np.linalg.norm(points, axis=1, keepdims=True)).min() > 0.999


@pytest.mark.parametrize("radius", [0.5, 2.0])
def test_mean_curvature_of_icosphere_is_one_over_radius(radius):
    mesh = icosphere(subdivisions=4, radius=radius)
    curvature = geometry.mean_curvature_vertices(mesh)
    assert np.abs(curvature * radius - 1).max() < 1e-3
    flipped = Mesh(mesh.vertices, mesh.faces[:, ::-1].copy())
    assert np.abs(geometry.mean_curvature_vertices(flipped) * radius + 1).max() < 1e-3


def tube(radius: float, sections: int, rings: int) -> Mesh:
    """An open cylinder around z in [-1, 1], faces oriented outwards."""
    theta = 2 * np.pi * np.arange(sections) / sections
    z = np.linspace(-1, 1, rings)
    vertices = np.stack(np.broadcast_arrays(radius * np.cos(theta), radius * np.sin(theta), z[:, None]), -1)
    j, k = np.meshgrid(np.arange(rings - 1), np.arange(sections), indexing="ij")
    a, b = j * sections + k, j * sections + (k + 1) % sections
    c, d = b + sections, a + sections
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return Mesh(vertices.reshape(-1, 3), faces.astype(np.int32))


def test_mean_curvature_of_cylinder_and_plane():
    mesh = tube(radius=0.4, sections=128, rings=41)
    interior = np.abs(mesh.vertices[:, 2]) < 0.99  # boundary rings have no curvature estimate
    assert np.allclose(geometry.mean_curvature_vertices(mesh)[interior], 1 / (2 * 0.4), rtol=1e-3)
    box = trimesh.creation.box().subdivide().subdivide()
    mesh = Mesh(np.asarray(box.vertices), np.asarray(box.faces, dtype=np.int32))
    on_one_face = np.sum(np.isclose(np.abs(mesh.vertices), 0.5), axis=1) == 1
    assert on_one_face.any() and np.abs(geometry.mean_curvature_vertices(mesh)[on_one_face]).max() < 1e-9


def test_evaluate_values_matches_closed_form_sharded_and_checks_points():
    points = np.random.default_rng(0).uniform(-1, 1, size=(6000, 3))
    values = geometry.evaluate_values(wf.sphere(0.3, center=(0.1, 0.0, 0.0)), points)
    assert values.dtype == np.float32 and values.shape == (6000,)
    assert np.allclose(values, np.linalg.norm(points - [0.1, 0, 0], axis=1) - 0.3, atol=1e-6)
    circle = geometry.evaluate_values(wf.circle(0.5), points[:, :2])
    assert np.allclose(circle, np.linalg.norm(points[:, :2], axis=1) - 0.5, atol=1e-6)
    with pytest.raises(InputError, match=r"shape \(n, 3\)"):
        geometry.evaluate_values(wf.sphere(), points[:, :2])
    bad = points.copy()
    bad[3, 1] = np.nan
    with pytest.raises(InputError, match="1 points are NaN"):
        geometry.evaluate_values(wf.sphere(), bad)


def test_extract_level_set_3d_and_2d():
    vertices, faces = geometry.extract_level_set(wf.sphere(0.5), resolution=40)
    assert faces.dtype == np.int32 and len(faces) > 1000
    assert np.abs(np.linalg.norm(vertices, axis=1) - 0.5).max() < 2e-3
    shifted, _ = geometry.extract_level_set(wf.sphere(0.5), resolution=40, level=0.2)
    assert np.abs(np.linalg.norm(shifted, axis=1) - 0.7).max() < 2e-3
    points, segments = geometry.extract_level_set(wf.circle(0.5), resolution=64)
    assert segments.shape[1] == 2 and np.abs(np.linalg.norm(points, axis=1) - 0.5).max() < 1e-3
    lengths = np.linalg.norm(points[segments[:, 1]] - points[segments[:, 0]], axis=1)
    assert abs(lengths.sum() - 2 * np.pi * 0.5) < 1e-2


def test_extract_level_set_errors():
    with pytest.raises(InputError, match="level set is empty"):
        geometry.extract_level_set(wf.sphere(0.5), resolution=16, level=3.0)
    with pytest.raises(InputError, match="resolution"):
        geometry.extract_level_set(wf.sphere(0.5), resolution=1)


def test_two_sided_distance_of_concentric_spheres():
    inner, outer = icosphere(radius=0.5), icosphere(radius=0.55)
    same = geometry.two_sided_distance(inner.vertices, inner.faces, inner.vertices, inner.faces, n=2000, seed=0)
    assert same < 1e-6
    gap = geometry.two_sided_distance(inner.vertices, inner.faces, outer.vertices, outer.faces, n=2000, seed=0)
    assert abs(gap - 0.05) < 3e-3  # facets of both spheres dip below their radius by at most ~3e-3


@pytest.mark.parametrize("shape", [wf.sphere(0.4), wf.torus(), wf.circle(0.6)])
def test_surface_points_lie_on_analytic_level_sets(shape):
    points = geometry.surface_points(shape, 3000, seed=1)
    assert points.shape == (3000, shape.dim)
    assert np.abs(geometry.evaluate_values(shape, points)).max() < 1e-5
    assert np.array_equal(points, geometry.surface_points(shape, 3000, seed=1))


def test_sample_training_points_shares_and_distances():
    mesh = icosphere()
    points, distances = geometry.sample_training_points(mesh, 5000, seed=3)
    assert points.shape == (5000, 3) and points.dtype == np.float32 and np.abs(points).max() <= 1
    assert np.allclose(distances, geometry.evaluate_values(MeshSDF(mesh), points))
    radius = np.linalg.norm(points, axis=1)
    assert np.abs(radius[:2000] - 0.5).max() < 3e-3  # on the surface (facets dip below the sphere)
    assert 1e-3 < np.abs(radius[2000:4000] - 0.5).mean() < 0.02
    again, _ = geometry.sample_training_points(MeshSDF(mesh), 5000, seed=3)
    assert np.array_equal(points, again)
    with pytest.raises(InputError, match="share"):
        geometry.sample_training_points(mesh, 100, seed=0, surface_share=0.8, near_share=0.5)


def test_hybrid_field_level_set():
    field = HybridField(preset_config("tiny", dim=3, encoding="hash"), seed=0)
    grid = geometry.grid_values(field, 9)
    axis = np.linspace(-1, 1, 9)
    corner_points = np.array([[axis[i], axis[j], axis[k]] for i, j, k in [(0, 0, 0), (8, 3, 1), (2, 7, 5)]])
    assert np.array_equal(geometry.evaluate_values(field, corner_points), grid[[0, 8, 2], [0, 3, 7], [0, 1, 5]])
