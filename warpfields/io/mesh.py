"""Triangle meshes from OBJ/PLY/STL/OFF (trimesh) and USD (pxr), checked and normalised."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, InputWarning
from ..fields.base import Normalization

TRIMESH_EXTENSIONS = {".obj", ".ply", ".stl", ".off"}
USD_EXTENSIONS = {".usd", ".usda", ".usdc", ".usdz"}
FILL = 0.95  # the bounding-box diagonal becomes FILL * 2, as in the paper's code


@dataclass
class Mesh:
    """A triangle mesh: float64 ``vertices`` (n, 3), int32 ``faces`` (m, 3)."""

    vertices: np.ndarray
    faces: np.ndarray
    name: str = "mesh"

    def normalized(self, normalization: Normalization) -> Mesh:
        return Mesh(normalization.to_field(self.vertices), self.faces.copy(), self.name)

    def open_edges(self) -> int:
        """Edges (a, b) of a face with no face holding (b, a), coincident vertices merged: 0 when the surface is
        closed and consistently oriented, and has an inside."""
        _, merged = np.unique(self.vertices, axis=0, return_inverse=True)
        faces = merged.reshape(-1)[self.faces]
        start, end = faces.ravel(), np.roll(faces, -1, axis=1).ravel()
        kept = start != end
        start, end, n = start[kept], end[kept], len(self.vertices)
        return int(np.count_nonzero(~np.isin(start * n + end, end * n + start)))


def bunny_path() -> Path:
    import warp.examples

    return Path(warp.examples.get_asset_directory()) / "bunny.usd"


def load_mesh(source: str | os.PathLike, prim: str | None = None) -> Mesh:
    """Read a triangle mesh; ``"bunny"`` is Warp's bundled ``bunny.usd``. Polygons are fan-triangulated."""
    path = bunny_path() if str(source) == "bunny" else Path(source)
    what = f"mesh {str(source)!r}"
    if not path.exists():
        raise InputError(f"{what}: file not found")
    if not path.is_file() or not os.access(path, os.R_OK):
        raise InputError(f"{what}: not a readable file")
    if path.stat().st_size == 0:
        raise InputError(f"{what}: file is empty")
    suffix = path.suffix.lower()
    if suffix in USD_EXTENSIONS:
        vertices, faces = _read_usd(path, prim, what)
    elif suffix in TRIMESH_EXTENSIONS:
        if prim is not None:
            raise InputError(f"{what}: a prim path ({prim!r}) only applies to USD files")
        vertices, faces = _read_trimesh(path, what)
    else:
        known = ", ".join(sorted(TRIMESH_EXTENSIONS | USD_EXTENSIONS))
        raise InputError(f"{what}: unknown extension {suffix!r}; expected one of {known}")
    mesh = _checked(vertices, faces, what, path.stem)
    open_edges = mesh.open_edges()
    if open_edges:
        warnings.warn(
            f"{what} is not closed ({open_edges} edges without an opposite twin): its inside and outside are "
            "ill-defined; signed distances take their sign from the generalised winding number (inside above 0.5)",
            InputWarning,
            stacklevel=2,
        )
    return mesh


def _sniff(path: Path, suffix: str, what: str) -> None:
    """Refuse what cannot be a mesh of its extension before a reader guesses at it (trimesh tries character set
    detection on binary junk, which needs modules that may be missing)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    if suffix == ".ply" and not head.startswith(b"ply"):
        raise InputError(f"{what}: not a mesh (a PLY file starts with 'ply')")
    if suffix in (".obj", ".off") and b"\0" in head:
        raise InputError(f"{what}: not a mesh (an {suffix[1:].upper()} file is text; this one holds binary data)")
    if suffix == ".stl":
        binary = size >= 84 and size == 84 + 50 * int.from_bytes(head[80:84], "little")
        if not binary and not (head.lstrip().startswith(b"solid") and b"\0" not in head):
            raise InputError(
                f"{what}: not a mesh (neither a binary STL of 84 + 50 bytes per triangle nor an ASCII one)"
            )


def _read_trimesh(path: Path, what: str) -> tuple[np.ndarray, np.ndarray]:
    import trimesh

    _sniff(path, path.suffix.lower(), what)
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as error:  # trimesh raises many types for malformed files
        raise InputError(f"{what}: not a mesh that could be read ({type(error).__name__}: {error})") from error
    vertices = np.asarray(getattr(mesh, "vertices", np.zeros((0, 3))), dtype=np.float64)
    faces = np.asarray(getattr(mesh, "faces", np.zeros((0, 3))), dtype=np.int64)
    return vertices, faces


def _read_usd(path: Path, prim_path: str | None, what: str) -> tuple[np.ndarray, np.ndarray]:
    from pxr import Usd, UsdGeom

    try:
        stage = Usd.Stage.Open(str(path))
    except Exception as error:  # pxr raises Tf.ErrorException for unparsable layers
        raise InputError(f"{what}: could not be opened as a USD stage ({str(error).strip()})") from error
    if stage is None:
        raise InputError(f"{what}: could not be opened as a USD stage")
    if prim_path is not None:
        prim = stage.GetPrimAtPath(prim_path)
        if not prim.IsValid():
            raise InputError(f"{what}: prim {prim_path!r} not found")
        if not prim.IsA(UsdGeom.Mesh):
            raise InputError(f"{what}: prim {prim_path!r} is a {prim.GetTypeName() or 'typeless prim'}, not a Mesh")
    else:
        prim = next((p for p in stage.Traverse() if p.IsA(UsdGeom.Mesh)), None)
        if prim is None:
            raise InputError(f"{what}: the stage has no Mesh prim")
    mesh = UsdGeom.Mesh(prim)
    time = Usd.TimeCode.Default()
    points = np.asarray(mesh.GetPointsAttr().Get(time) or [], dtype=np.float64).reshape(-1, 3)
    counts = np.asarray(mesh.GetFaceVertexCountsAttr().Get(time) or [], dtype=np.int64)
    indices = np.asarray(mesh.GetFaceVertexIndicesAttr().Get(time) or [], dtype=np.int64)
    if counts.sum() != indices.size or np.any(counts < 3):
        raise InputError(f"{what}: prim {prim.GetPath()} has inconsistent face vertex counts and indices")
    world = np.asarray(UsdGeom.Xformable(prim).ComputeLocalToWorldTransform(time), dtype=np.float64)
    points = points @ world[:3, :3] + world[3, :3]  # USD matrices act on row vectors
    return points, _fan_triangulate(counts, indices)


def _fan_triangulate(counts: np.ndarray, indices: np.ndarray) -> np.ndarray:
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    polygon = np.repeat(np.arange(counts.size), counts - 2)
    corner = np.arange(polygon.size) - np.repeat(np.cumsum(counts - 2) - (counts - 2), counts - 2)
    first = starts[polygon]
    return np.stack([indices[first], indices[first + corner + 1], indices[first + corner + 2]], axis=1)


def _checked(vertices: np.ndarray, faces: np.ndarray, what: str, name: str) -> Mesh:
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise InputError(f"{what}: no triangle faces")
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
        raise InputError(f"{what}: no vertices")
    if not np.all(np.isfinite(vertices)):
        raise InputError(f"{what}: {int(np.sum(~np.isfinite(vertices).all(axis=1)))} vertices are NaN or infinite")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise InputError(
            f"{what}: face indices must lie in [0, {len(vertices) - 1}]; found {faces.min()}..{faces.max()}"
        )
    return Mesh(np.ascontiguousarray(vertices), np.ascontiguousarray(faces, dtype=np.int32), name)


def normalization_for(mesh: Mesh) -> Normalization:
    """Centre the bounding box at the origin and scale its diagonal to ``2 * FILL`` = 1.9."""
    lo, hi = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
    diagonal = float(np.linalg.norm(hi - lo))
    if diagonal == 0.0:
        raise InputError(f"mesh {mesh.name!r}: all vertices coincide; cannot normalise")
    return Normalization(center=tuple(float(c) for c in (lo + hi) / 2), scale=FILL * 2.0 / diagonal)


__all__ = ["Mesh", "bunny_path", "load_mesh", "normalization_for"]
