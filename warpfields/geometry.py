"""Host-side geometry for training and evaluation: surface samples, reference normals and
curvature on meshes, training points, level-set extraction and mesh-to-mesh distances."""

from __future__ import annotations

from typing import Any

import numpy as np
import warp as wp

from . import ops
from .errors import InputError
from .fields.analytic import field_gradient, field_value
from .fields.base import Field
from .fields.mesh_sdf import MeshSDF
from .io.mesh import Mesh
from .parallel import launch
from .runtime import check_memory

wp.set_module_options({"enable_backward": False})

_GRID_CHUNK = 1 << 20
# A grid's values (float32), their concatenation and marching cubes' float64 copy.
_GRID_CELL_BYTES = 24
_VEC = {2: wp.vec2, 3: wp.vec3}


@wp.kernel
def _project_kernel(start: int, field: Any, points: wp.array(dtype=Any), steps: int):
    i = start + wp.tid()
    x = points[i]
    for _ in range(steps):
        g = field_gradient(field, x)
        x = x - g * (field_value(field, x) / wp.max(wp.dot(g, g), 1.0e-12))
    points[i] = x


@wp.kernel
def _distance_kernel(
    start: int, mesh: wp.uint64, points: wp.array(dtype=wp.vec3), max_dist: float, out: wp.array(dtype=float)
):
    i = start + wp.tid()
    x = points[i]
    q = wp.mesh_query_point_no_sign(mesh, x, max_dist)
    out[i] = max_dist
    if q.result:
        out[i] = wp.length(x - wp.mesh_eval_position(mesh, q.face, q.u, q.v))


# --- values --------------------------------------------------------------------------


def _checked_points(points, dim: int, what: str = "points") -> np.ndarray:
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != dim:
        raise InputError(f"{what}: expected an array of shape (n, {dim}); got {points.shape}")
    if not np.all(np.isfinite(points)):
        raise InputError(f"{what}: {int(np.sum(~np.isfinite(points).all(axis=1)))} points are NaN or infinite")
    return np.ascontiguousarray(points, dtype=np.float32)


def evaluate_values(field: Field, points, device=None) -> np.ndarray:
    """``field_value`` at each of the (n, dim) ``points`` (field coordinates); float32 (n,)."""
    return ops.value(field, _checked_points(points, field.dim), device)


# --- sampling on simplices (triangles in 3D, segments in 2D) --------------------------


def _simplex_sizes(vertices: np.ndarray, simplices: np.ndarray) -> np.ndarray:
    corners = vertices[simplices]
    if simplices.shape[1] == 2:
        return np.linalg.norm(corners[:, 1] - corners[:, 0], axis=1)
    return 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)


def _sample_simplices(vertices, simplices, n: int, seed: int):
    vertices = np.asarray(vertices, dtype=np.float64)
    simplices = np.asarray(simplices)
    if n < 0:
        raise InputError(f"sample count n={n} must be >= 0")
    sizes = _simplex_sizes(vertices, simplices)
    total = sizes.sum()
    if len(simplices) == 0 or not total > 0:
        raise InputError("surface has no area to sample")
    rng = np.random.default_rng(seed)
    ids = np.minimum(np.searchsorted(np.cumsum(sizes) / total, rng.random(n), side="right"), len(sizes) - 1)
    if simplices.shape[1] == 2:
        t = rng.random(n)
        bary = np.stack([1.0 - t, t], axis=1)
    else:
        s, r = np.sqrt(rng.random(n)), rng.random(n)
        bary = np.stack([1.0 - s, s * (1.0 - r), s * r], axis=1)
    points = np.einsum("nk,nkd->nd", bary, vertices[simplices[ids]])
    return points, ids.astype(np.int64), bary


def sample_surface(mesh: Mesh, n: int, seed: int):
    """``n`` area-weighted samples on ``mesh``: ``(points (n, 3), face_ids (n,), barycentrics (n, 3))``."""
    return _sample_simplices(mesh.vertices, mesh.faces, n, seed)


def target_surface(target: Field, device=None, resolution: int = 128):
    """The zero level set of a ground-truth field as a mesh (its own mesh for a :class:`MeshSDF`)."""
    if isinstance(target, MeshSDF):
        return target.mesh.vertices, target.mesh.faces
    return extract_level_set(target, resolution, device)


def surface_points(target: Field, n: int, seed: int, device=None, newton_steps: int = 3) -> np.ndarray:
    """``n`` points on the zero level set of ``target`` (float64, field coordinates).

    Mesh SDFs sample their mesh; other fields sample their marching-cubes surface and
    project the samples onto the level set with Newton steps along the gradient.
    """
    vertices, simplices = target_surface(target, device)
    points = _sample_simplices(vertices, simplices, n, seed)[0]
    if isinstance(target, MeshSDF) or n == 0:
        return points
    device = wp.get_device(device)
    x = wp.array(points.astype(np.float32), dtype=_VEC[target.dim], device=device)
    launch(_project_kernel, n, [target.warp(device), x, newton_steps], device)
    return x.numpy().astype(np.float64)


def sample_training_points(
    target: Field | Mesh,
    n: int,
    seed: int,
    surface_share: float = 0.4,
    near_share: float = 0.4,
    noise_scales: tuple[float, float] = (0.002, 0.02),
    device=None,
):
    """Training points as in the paper and their signed distances (float32).

    A ``surface_share`` of the points lie on the surface, a ``near_share`` on the surface
    plus Gaussian noise (half with each of ``noise_scales``), the rest uniform in
    [-1, 1]^dim. A :class:`Mesh` (in field coordinates) is wrapped in a :class:`MeshSDF`.
    """
    if isinstance(target, Mesh):
        target = MeshSDF(target)
    if not (0 <= surface_share and 0 <= near_share and surface_share + near_share <= 1):
        raise InputError(f"surface_share={surface_share}, near_share={near_share}: need shares >= 0 summing to <= 1")
    n_surface, n_near = int(n * surface_share), int(n * near_share)
    rng = np.random.default_rng(seed)
    surface = surface_points(target, n_surface + n_near, seed, device)
    scales = np.where(np.arange(n_near) % 2 == 0, *noise_scales)[:, None]
    near = surface[n_surface:] + rng.normal(size=(n_near, target.dim)) * scales
    uniform = rng.uniform(-1.0, 1.0, size=(n - n_surface - n_near, target.dim))
    points = np.clip(np.concatenate([surface[:n_surface], near, uniform]), -1.0, 1.0).astype(np.float32)
    return points, evaluate_values(target, points, device)


# --- reference normals and curvature -------------------------------------------------


def _face_cross(mesh: Mesh) -> np.ndarray:
    corners = mesh.vertices[mesh.faces]
    return np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-300)


def vertex_normals(mesh: Mesh) -> np.ndarray:
    """Unit vertex normals: the sum of the adjacent faces' normals weighted by their areas."""
    cross = _face_cross(mesh)  # twice the area times the unit normal
    normals = np.zeros_like(mesh.vertices)
    for corner in range(3):
        np.add.at(normals, mesh.faces[:, corner], cross)
    return _unit(normals)


def interpolate(values_per_vertex, faces, face_ids, barycentrics) -> np.ndarray:
    """Barycentric interpolation of per-vertex values (scalars or vectors) at surface samples."""
    values = np.asarray(values_per_vertex)[np.asarray(faces)[face_ids]]
    return np.einsum("nk,nk...->n...", np.asarray(barycentrics), values)


def reference_normals(mesh: Mesh, face_ids, barycentrics) -> np.ndarray:
    """The paper's reference normals: interpolated vertex normals, renormalised."""
    return _unit(interpolate(vertex_normals(mesh), mesh.faces, face_ids, barycentrics))


def mean_curvature_vertices(mesh: Mesh) -> np.ndarray:
    """Signed mean curvature per vertex (average of the principal curvatures; +1/R on a sphere).

    Cotangent Laplacian of the positions over the mixed Voronoi area (Meyer et al. 2003):
    ``L x = -2 H n``; the sign comes from the Laplacian's direction against the vertex normal.
    """
    v, f = mesh.vertices, mesh.faces
    corners = v[f]
    # edge opposite corner k runs from corner k+1 to corner k+2
    edges = np.stack([corners[:, (k + 2) % 3] - corners[:, (k + 1) % 3] for k in range(3)], axis=1)
    double_area = np.linalg.norm(_face_cross(mesh), axis=1)
    safe_area = np.maximum(double_area, 1e-300)
    # cot of the angle at corner k, between the edges to k+1 and k+2
    cot = np.stack(
        [np.einsum("nd,nd->n", -edges[:, (k + 2) % 3], edges[:, (k + 1) % 3]) / safe_area for k in range(3)],
        axis=1,
    )
    laplacian = np.zeros_like(v)
    for k in range(3):
        a, b = f[:, (k + 1) % 3], f[:, (k + 2) % 3]
        contribution = cot[:, k, None] * edges[:, k]
        np.add.at(laplacian, a, contribution)
        np.add.at(laplacian, b, -contribution)
    squared = np.einsum("nkd,nkd->nk", edges, edges)
    voronoi = np.stack(
        [
            (squared[:, (k + 1) % 3] * cot[:, (k + 1) % 3] + squared[:, (k + 2) % 3] * cot[:, (k + 2) % 3]) / 8
            for k in range(3)
        ],
        axis=1,
    )
    area = double_area / 2
    obtuse = cot < 0
    mixed = np.where(obtuse.any(axis=1, keepdims=True), np.where(obtuse, area[:, None] / 2, area[:, None] / 4), voronoi)
    vertex_area = np.zeros(len(v))
    for k in range(3):
        np.add.at(vertex_area, f[:, k], mixed[:, k])
    laplacian /= 2 * np.maximum(vertex_area, 1e-300)[:, None]
    sign = -np.sign(np.einsum("nd,nd->n", laplacian, vertex_normals(mesh)))
    return sign * np.linalg.norm(laplacian, axis=1) / 2


# --- level sets and distances --------------------------------------------------------


def grid_values(field: Field, resolution: int, device=None) -> np.ndarray:
    """``field_value`` on a ``resolution``^dim grid spanning [-1, 1]^dim (axis i of the result is coordinate i)."""
    if not (isinstance(resolution, int | np.integer) and 2 <= resolution <= 2048):
        raise InputError(f"grid resolution {resolution!r} must be an integer in [2, 2048]")
    check_memory(f"a {resolution}^{field.dim} grid, cells", resolution**field.dim, _GRID_CELL_BYTES, device)
    axis = np.linspace(-1.0, 1.0, resolution)
    slab = max(1, _GRID_CHUNK // resolution ** (field.dim - 1))
    slabs = []
    for first in range(0, resolution, slab):
        grid = np.meshgrid(axis[first : first + slab], *([axis] * (field.dim - 1)), indexing="ij")
        points = np.stack([g.ravel() for g in grid], axis=1)
        slabs.append(evaluate_values(field, points, device).reshape(grid[0].shape))
    return np.concatenate(slabs, axis=0)


def extract_level_set(field: Field, resolution: int, device=None, level: float = 0.0):
    """The ``level`` set of ``field`` in [-1, 1]^dim, in field coordinates.

    3D: marching cubes, ``(vertices (n, 3), faces (m, 3) int32)``. 2D: contour lines,
    ``(vertices (n, 2), segments (m, 2) int32)``.
    """
    values = grid_values(field, resolution, device)
    if not (values.min() < level < values.max()):
        raise InputError(
            f"the field's {level} level set is empty on a {resolution}^{field.dim} grid over [-1, 1]^{field.dim} "
            f"(values range over [{values.min():.4g}, {values.max():.4g}])"
        )
    step = 2.0 / (resolution - 1)
    if field.dim == 3:
        from skimage.measure import marching_cubes

        vertices, faces, _, _ = marching_cubes(values, level=level, spacing=(step,) * 3)
        return vertices.astype(np.float64) - 1.0, faces.astype(np.int32)
    from skimage.measure import find_contours

    lines = find_contours(values, level)
    offsets = np.cumsum([0] + [len(line) for line in lines])
    segments = np.concatenate(
        [np.stack([np.arange(a, b - 1), np.arange(a + 1, b)], axis=1) for a, b in zip(offsets[:-1], offsets[1:])]
    )
    return np.concatenate(lines) * step - 1.0, segments.astype(np.int32)


def object_bounds(field: Field, resolution: int = 48, device=None) -> tuple[np.ndarray, np.ndarray]:
    """World-space bounding box of the region of the domain [-1, 1]^dim where the field is negative."""
    inside = np.argwhere(grid_values(field, resolution, device) < 0.0)
    if len(inside) == 0:
        raise InputError(f"field: it is nowhere negative in its domain [-1, 1]^{field.dim} (no object)")
    cell = 2.0 / (resolution - 1)
    lo = field.normalization.from_field(inside.min(axis=0) * cell - 1.0 - cell)
    hi = field.normalization.from_field(inside.max(axis=0) * cell - 1.0 + cell)
    return lo, hi


def _distances_to_mesh(points: np.ndarray, vertices, faces, device) -> np.ndarray:
    device = wp.get_device(device)
    vertices = np.asarray(vertices, dtype=np.float32)
    mesh = wp.Mesh(
        wp.array(vertices, dtype=wp.vec3, device=device),
        wp.array(np.asarray(faces, dtype=np.int32).ravel(), dtype=wp.int32, device=device),
    )
    extent = np.ptp(np.concatenate([vertices, points]), axis=0)
    max_dist = float(np.linalg.norm(extent)) * 2 + 1.0
    x = wp.array(points.astype(np.float32), dtype=wp.vec3, device=device)
    out = wp.empty(len(points), dtype=float, device=device)
    launch(_distance_kernel, len(points), [mesh.id, x, max_dist, out], device)
    return out.numpy()


def two_sided_distance(verts_a, faces_a, verts_b, faces_b, n: int, seed: int, device=None) -> float:
    """Mean two-sided surface distance: the average of the mean distance from ``n`` area-weighted samples
    of A to surface B and from ``n`` samples of B to surface A (3D triangle meshes)."""
    points_a = _sample_simplices(verts_a, faces_a, n, seed)[0]
    points_b = _sample_simplices(verts_b, faces_b, n, seed + 1)[0]
    a_to_b = _distances_to_mesh(points_a, verts_b, faces_b, device)
    b_to_a = _distances_to_mesh(points_b, verts_a, faces_a, device)
    return 0.5 * (float(a_to_b.mean()) + float(b_to_a.mean()))


def level_set_motion(field_a: Field, field_b: Field, resolution: int = 256, seed: int = 0, device=None) -> float:
    """How far the zero level set of ``field_b`` lies from that of ``field_a``: the two-sided mean distance of
    their marching-cubes surfaces (field units, 3D)."""
    verts_a, faces_a = extract_level_set(field_a, resolution, device)
    verts_b, faces_b = extract_level_set(field_b, resolution, device)
    return two_sided_distance(verts_a, faces_a, verts_b, faces_b, n=100_000, seed=seed, device=device)


__all__ = [
    "evaluate_values",
    "extract_level_set",
    "grid_values",
    "interpolate",
    "level_set_motion",
    "mean_curvature_vertices",
    "object_bounds",
    "reference_normals",
    "sample_surface",
    "sample_training_points",
    "surface_points",
    "target_surface",
    "two_sided_distance",
    "vertex_normals",
]
