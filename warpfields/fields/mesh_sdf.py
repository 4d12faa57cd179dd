"""Signed distance to a triangle mesh: ground truth on real meshes, watertight or not.

The sign comes from the generalised winding number, so open or self-intersecting meshes
still get a sensible inside/outside. Mesh SDFs are targets, never saved to field files.
"""

from __future__ import annotations

import numpy as np
import warp as wp

from ..errors import InputError
from ..runtime import build_lock, get_device
from .analytic import field_gradient, field_value
from .base import Field, Normalization

wp.set_module_options({"enable_backward": False})


@wp.struct
class MeshSDFField:
    mesh: wp.uint64
    max_dist: float


@wp.func
def _closest(field: MeshSDFField, x: wp.vec3) -> wp.MeshQueryPoint:
    return wp.mesh_query_point_sign_winding_number(field.mesh, x, field.max_dist, 2.0, 0.5)


@wp.func
def field_value(field: MeshSDFField, x: wp.vec3) -> float:
    q = _closest(field, x)
    if not q.result:
        return field.max_dist
    return q.sign * wp.length(x - wp.mesh_eval_position(field.mesh, q.face, q.u, q.v))


@wp.func
def field_gradient(field: MeshSDFField, x: wp.vec3) -> wp.vec3:
    q = _closest(field, x)
    if not q.result:
        return wp.vec3(0.0)
    d = x - wp.mesh_eval_position(field.mesh, q.face, q.u, q.v)
    distance = wp.length(d)
    # On the surface (up to float32 rounding of the point) the direction to the closest point is noise.
    if distance < 1.0e-6:
        return wp.mesh_eval_face_normal(field.mesh, q.face)
    return d * (q.sign / distance)


class MeshSDF(Field):
    """Signed distance to ``mesh``, whose vertices are already in field coordinates.

    ``normalization`` records how the original mesh was mapped there (see
    :func:`warpfields.io.mesh.normalization_for`).
    """

    def __init__(self, mesh, normalization: Normalization | None = None, max_dist: float = 1.0e3):
        if not (np.isfinite(max_dist) and max_dist > 0):
            raise InputError(f"mesh SDF: max_dist={max_dist!r} must be positive and finite")
        super().__init__(dim=3, kind="mesh", normalization=normalization)
        self.mesh = mesh
        self.max_dist = float(max_dist)
        self._meshes: dict = {}

    def wp_mesh(self, device=None) -> wp.Mesh:
        """The ``wp.Mesh`` (with winding-number support) on ``device``, built once per device."""
        device = get_device(device)
        with build_lock:
            if device.alias not in self._meshes:
                points = wp.array(self.mesh.vertices, dtype=wp.vec3, device=device)
                indices = wp.array(self.mesh.faces.ravel(), dtype=wp.int32, device=device)
                self._meshes[device.alias] = wp.Mesh(points, indices, support_winding_number=True)
            return self._meshes[device.alias]

    def _make_struct(self, device):
        s = MeshSDFField()
        s.mesh = self.wp_mesh(device).id
        s.max_dist = self.max_dist
        return s

    def header(self) -> dict:
        return {
            **super().header(),
            "name": self.mesh.name,
            "vertices": len(self.mesh.vertices),
            "faces": len(self.mesh.faces),
        }

    def __repr__(self) -> str:
        return f"MeshSDF({self.mesh.name!r}, {len(self.mesh.vertices)} vertices, {len(self.mesh.faces)} faces)"


__all__ = ["MeshSDF", "MeshSDFField"]
