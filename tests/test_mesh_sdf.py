import numpy as np
import pytest
import trimesh
import warp as wp

from warpfields.fields import field_gradient
from warpfields.fields.mesh_sdf import MeshSDF, MeshSDFField
from warpfields.geometry import evaluate_values
from warpfields.io.mesh import Mesh, load_mesh, normalization_for

wp.set_module_options({"enable_backward": False})

RADIUS = 0.5


@wp.kernel
def gradients(field: MeshSDFField, points: wp.array(dtype=wp.vec3), out: wp.array(dtype=wp.vec3)):
    i = wp.tid()
    out[i] = field_gradient(field, points[i])


def icosphere(subdivisions=3, radius=RADIUS) -> Mesh:
    ico = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return Mesh(np.asarray(ico.vertices), np.asarray(ico.faces, dtype=np.int32), "icosphere")


def facet_gap(mesh: Mesh, radius: float) -> float:
    """How far the inscribed polyhedron's faces dip below the sphere: bounds |sdf_mesh - sdf_sphere|."""
    corners = mesh.vertices[mesh.faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return radius - np.abs(np.einsum("nd,nd->n", normals, corners[:, 0])).min() + 1e-6


def mesh_gradients(sdf: MeshSDF, points: np.ndarray) -> np.ndarray:
    x = wp.array(points.astype(np.float32), dtype=wp.vec3)
    out = wp.empty(len(points), dtype=wp.vec3)
    wp.launch(gradients, len(points), [sdf.warp(), x, out])
    return out.numpy()


def random_points(n, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=(n, 3))


def test_icosphere_values_match_sphere_within_facet_gap():
    mesh = icosphere()
    points = random_points(3000)
    exact = np.linalg.norm(points, axis=1) - RADIUS
    values = evaluate_values(MeshSDF(mesh), points)
    assert np.abs(values - exact).max() <= facet_gap(mesh, RADIUS)
    assert np.all(np.sign(values[np.abs(exact) > 0.05]) == np.sign(exact[np.abs(exact) > 0.05]))


def test_gradient_is_unit_direction_to_closest_point_and_matches_differences():
    sdf = MeshSDF(icosphere())
    h = 1e-3
    # The differences stay inside the domain [-1, 1]^3, where values are the field's own.
    points = random_points(400, seed=1) * (1 - h)
    points = points[np.abs(np.linalg.norm(points, axis=1) - RADIUS) > 0.05]
    g = mesh_gradients(sdf, points)
    assert np.allclose(np.linalg.norm(g, axis=1), 1.0, atol=1e-5)
    # Stepping back by the distance along the gradient lands on the surface.
    values = evaluate_values(sdf, points)
    assert np.abs(evaluate_values(sdf, points - values[:, None] * g)).max() < 1e-5
    radial = points / np.linalg.norm(points, axis=1, keepdims=True)
    assert np.einsum("nd,nd->n", g, radial).min() > 0.95
    central = np.stack(
        [(evaluate_values(sdf, points + h * e) - evaluate_values(sdf, points - h * e)) / (2 * h) for e in np.eye(3)],
        axis=1,
    )
    # Outside a convex polyhedron the distance is smooth (inside, the medial axis has kinks);
    # float32 values limit the differences to ~1e-4.
    outside = values > 0.05
    assert outside.sum() > 100
    assert np.abs(central - g)[outside].max() < 2e-3


def test_gradient_on_the_surface_is_the_face_normal():
    mesh = icosphere(subdivisions=1)
    corners = mesh.vertices[mesh.faces]
    centroids = corners.mean(axis=1)
    g = mesh_gradients(MeshSDF(mesh), centroids)
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    assert np.allclose(g, normals / np.linalg.norm(normals, axis=1, keepdims=True), atol=1e-5)


def test_open_mesh_keeps_inside_and_outside():
    mesh = icosphere()
    keep = mesh.vertices[mesh.faces].mean(axis=1)[:, 2] < 0.35  # cut a hole in the top cap
    open_mesh = Mesh(mesh.vertices, mesh.faces[keep], "open")
    assert not trimesh.Trimesh(open_mesh.vertices, open_mesh.faces).is_watertight
    points = random_points(3000, seed=2)
    exact = np.linalg.norm(points, axis=1) - RADIUS
    values = evaluate_values(MeshSDF(open_mesh), points)
    clear = (np.abs(exact) > 0.1) & (points[:, 2] < 0.2)
    assert clear.sum() > 500
    assert np.all(np.sign(values[clear]) == np.sign(exact[clear]))
    low = (points[:, 2] < 0.0) & (np.abs(exact) < 0.1)
    assert np.abs(values[low] - exact[low]).max() <= facet_gap(mesh, RADIUS)


def test_shared_sphere_asset_normalised(shared_assets):
    mesh = load_mesh(shared_assets / "sphere.obj")
    normalization = normalization_for(mesh)
    radius = normalization.scale * np.linalg.norm(mesh.vertices, axis=1).max()
    sdf = MeshSDF(mesh.normalized(normalization), normalization=normalization)
    points = random_points(2000, seed=3) + normalization.to_field(np.zeros((1, 3)))
    exact = np.linalg.norm(points - normalization.to_field(np.zeros((1, 3))), axis=1) - radius
    assert np.abs(evaluate_values(sdf, points) - exact).max() <= facet_gap(mesh.normalized(normalization), radius)
    assert sdf.header()["kind"] == "mesh" and sdf.header()["faces"] == len(mesh.faces)


def test_bad_max_dist():
    from warpfields.errors import InputError

    with pytest.raises(InputError, match="max_dist"):
        MeshSDF(icosphere(1), max_dist=-1.0)
