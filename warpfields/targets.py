"""Ground-truth targets named on the command line: a mesh file, the word ``bunny``, or an analytic shape."""

from __future__ import annotations

from .fields.base import Field
from .fields.shapes import SHAPES, AnalyticField


def load_target(source: str, prim: str | None = None) -> Field:
    """A signed distance field in normalised coordinates for ``source``.

    ``sphere``, ``torus`` and ``circle`` are the analytic shapes (already in [-1, 1]^dim);
    anything else is a mesh (a path, or ``bunny`` for Warp's bundled asset), normalised into
    [-1, 1]^3 with the transform kept in the field's ``normalization``.
    """
    if source in SHAPES and not source.startswith("quadratic"):
        return AnalyticField(source)
    from .fields.mesh_sdf import MeshSDF
    from .io.mesh import load_mesh, normalization_for

    mesh = load_mesh(source, prim=prim)
    normalization = normalization_for(mesh)
    return MeshSDF(mesh.normalized(normalization), normalization=normalization)


def load_reference(source: str, field: Field) -> Field:
    """The ground truth for ``field``: a mesh (as a mesh SDF in the field's normalisation), a field file or a shape."""
    from pathlib import Path

    from .io.fieldfile import load_field
    from .io.mesh import TRIMESH_EXTENSIONS, USD_EXTENSIONS

    if source == "bunny" or Path(source).suffix.lower() in TRIMESH_EXTENSIONS | USD_EXTENSIONS:
        from .fields.mesh_sdf import MeshSDF
        from .io.mesh import load_mesh

        return MeshSDF(load_mesh(source).normalized(field.normalization), field.normalization)
    return load_field(source)
