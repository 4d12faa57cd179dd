"""USD stages of simulation runs: particles, collider meshes and evolving surfaces, time-sampled.

The stage is written to a temporary file next to the target and renamed over it on
``close()``. A run that fails mid-way (a blow-up) still saves what was written so far: a
valid stage whose ``endTimeCode`` is the last frame written. An interrupted run (Ctrl-C,
SIGTERM) saves nothing and leaves the target as it was.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
from pxr import Gf, Sdf, Usd, UsdGeom, Vt

from ..errors import InputError
from .atomic import PendingFile

STAGE_EXTENSIONS = (".usd", ".usda", ".usdc")
ROOT = "/World"


def _metadata_value(value):
    """A value USD can store in a layer's customLayerData (scalars, strings, nested dicts)."""
    if isinstance(value, dict):
        return {str(k): _metadata_value(v) for k, v in value.items()}
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return json.dumps(value, default=str)


def _points_array(values, name: str, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != 3:
        raise InputError(f"{what} {name!r}: expected an (n, 3) array, got shape {array.shape}")
    return np.ascontiguousarray(array)


def _faces_array(faces, vertex_count: int, name: str) -> np.ndarray:
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] < 3 or not np.issubdtype(faces.dtype, np.integer):
        raise InputError(f"mesh {name!r}: faces must be an (m, k>=3) integer array, got {faces.shape} {faces.dtype}")
    if faces.size and (faces.min() < 0 or faces.max() >= vertex_count):
        raise InputError(
            f"mesh {name!r}: face indices must lie in [0, {vertex_count}), got {faces.min()}..{faces.max()}"
        )
    return np.ascontiguousarray(faces, dtype=np.int32)


def _extent(points: np.ndarray, pad: np.ndarray | float = 0.0) -> Vt.Vec3fArray:
    if len(points) == 0:
        return Vt.Vec3fArray([Gf.Vec3f(0.0), Gf.Vec3f(0.0)])
    pad = np.reshape(np.asarray(pad, dtype=np.float32), (-1, 1))
    lo = (points - pad).min(axis=0)
    hi = (points + pad).max(axis=0)
    return Vt.Vec3fArray([Gf.Vec3f(*map(float, lo)), Gf.Vec3f(*map(float, hi))])


class StageRecorder:
    """Writes one run to a USD stage: ``with StageRecorder("run.usd", fps=60) as rec: ...``.

    Frames are time codes (``timeCodesPerSecond = fps``); ``metadata`` (the run's settings)
    goes into the root layer's ``customLayerData`` under ``"warpfields"``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        up_axis: str = "Y",
        meters_per_unit: float = 1.0,
        metadata: dict | None = None,
    ):
        path = Path(path)
        if path.suffix.lower() not in STAGE_EXTENSIONS:
            raise InputError(f"USD stage {str(path)!r}: expected a file name ending in one of {STAGE_EXTENSIONS}")
        if not (isinstance(fps, int | float) and math.isfinite(fps) and fps > 0):
            raise InputError(f"USD stage: fps must be a finite number > 0, got {fps!r}")
        if up_axis not in ("Y", "Z"):
            raise InputError(f"USD stage: up_axis must be 'Y' or 'Z', got {up_axis!r}")
        if not (math.isfinite(meters_per_unit) and meters_per_unit > 0):
            raise InputError(f"USD stage: meters_per_unit must be finite and > 0, got {meters_per_unit!r}")
        self.path = path
        self._pending = PendingFile(path, "USD stage")
        try:
            self.stage = Usd.Stage.CreateNew(str(self._pending.temporary))
        except BaseException:
            self._pending.discard()
            raise
        self.stage.SetTimeCodesPerSecond(float(fps))
        self.stage.SetFramesPerSecond(float(fps))
        self.stage.SetStartTimeCode(0.0)
        self.stage.SetEndTimeCode(0.0)
        UsdGeom.SetStageUpAxis(self.stage, UsdGeom.Tokens.y if up_axis == "Y" else UsdGeom.Tokens.z)
        UsdGeom.SetStageMetersPerUnit(self.stage, float(meters_per_unit))
        self.stage.SetDefaultPrim(UsdGeom.Xform.Define(self.stage, ROOT).GetPrim())
        self._metadata: dict = {}
        self.last_frame: int | None = None
        self.closed = False
        self.set_metadata(metadata or {})

    def set_metadata(self, metadata: dict) -> None:
        """Add (or replace) entries of the run's settings stored in the stage."""
        self._metadata.update(metadata)
        data = dict(self.stage.GetRootLayer().customLayerData)
        data["warpfields"] = _metadata_value(self._metadata)
        self.stage.GetRootLayer().customLayerData = data

    def _prim_path(self, name: str) -> Sdf.Path:
        if not Sdf.Path.IsValidIdentifier(name):
            raise InputError(f"USD prim name {name!r}: expected an identifier (letters, digits, underscores)")
        return Sdf.Path(ROOT).AppendChild(name)

    def _frame(self, frame: int) -> Usd.TimeCode:
        if self.closed:
            raise InputError(f"USD stage {str(self.path)!r} is already closed")
        if int(frame) != frame or frame < 0:
            raise InputError(f"USD frame: expected an integer >= 0, got {frame!r}")
        frame = int(frame)
        if self.last_frame is None or frame > self.last_frame:
            self.last_frame = frame
            self.stage.SetEndTimeCode(float(frame))
        return Usd.TimeCode(float(frame))

    def add_points(self, name: str, positions, widths=None, velocities=None, frame: int = 0) -> UsdGeom.Points:
        """Time-sample a point cloud: ``widths`` (diameters) a scalar or one per point; velocities per second."""
        time = self._frame(frame)
        positions = _points_array(positions, name, "points")
        n = len(positions)
        points = UsdGeom.Points.Define(self.stage, self._prim_path(name))
        points.GetPointsAttr().Set(Vt.Vec3fArray.FromNumpy(positions), time)
        pad = 0.0
        if widths is not None:
            widths = np.broadcast_to(np.asarray(widths, dtype=np.float32), (n,)).copy()
            points.GetWidthsAttr().Set(Vt.FloatArray.FromNumpy(widths), time)
            points.SetWidthsInterpolation(UsdGeom.Tokens.vertex)
            pad = 0.5 * widths
        if velocities is not None:
            velocities = _points_array(velocities, name, "velocities of points")
            if len(velocities) != n:
                raise InputError(f"points {name!r}: {len(velocities)} velocities for {n} positions")
            points.GetVelocitiesAttr().Set(Vt.Vec3fArray.FromNumpy(velocities), time)
        points.GetExtentAttr().Set(_extent(positions, pad), time)
        return points

    def _mesh(self, name, vertices, faces, time) -> UsdGeom.Mesh:
        vertices = _points_array(vertices, name, "mesh")
        faces = _faces_array(faces, len(vertices), name)
        mesh = UsdGeom.Mesh.Define(self.stage, self._prim_path(name))
        mesh.GetPointsAttr().Set(Vt.Vec3fArray.FromNumpy(vertices), time)
        mesh.GetFaceVertexCountsAttr().Set(Vt.IntArray.FromNumpy(np.full(len(faces), faces.shape[1], np.int32)), time)
        mesh.GetFaceVertexIndicesAttr().Set(Vt.IntArray.FromNumpy(faces.ravel()), time)
        mesh.GetExtentAttr().Set(_extent(vertices), time)
        mesh.GetSubdivisionSchemeAttr().Set(UsdGeom.Tokens.none)
        return mesh

    def add_static_mesh(self, name: str, vertices, faces) -> UsdGeom.Mesh:
        """A mesh that does not change (the collider's surface): default values, no time samples."""
        if self.closed:
            raise InputError(f"USD stage {str(self.path)!r} is already closed")
        return self._mesh(name, vertices, faces, Usd.TimeCode.Default())

    def add_mesh_frame(self, name: str, vertices, faces, frame: int, primvars: dict | None = None) -> UsdGeom.Mesh:
        """One frame of an evolving surface; ``primvars`` maps names to per-vertex float values."""
        time = self._frame(frame)
        mesh = self._mesh(name, vertices, faces, time)
        count = len(np.asarray(vertices))
        for primvar_name, values in (primvars or {}).items():
            values = np.ascontiguousarray(values, dtype=np.float32)
            if values.shape != (count,):
                raise InputError(f"mesh {name!r}: primvar {primvar_name!r} needs {count} values, got {values.shape}")
            primvar = UsdGeom.PrimvarsAPI(mesh).CreatePrimvar(
                primvar_name, Sdf.ValueTypeNames.FloatArray, UsdGeom.Tokens.vertex
            )
            primvar.Set(Vt.FloatArray.FromNumpy(values), time)
        return mesh

    def close(self) -> Path:
        """Save what was written and move the stage to its path (also after a failed run)."""
        if not self.closed:
            self.closed = True
            try:
                self.stage.GetRootLayer().Save()
                self.stage = None
                self._pending.commit()
            finally:
                self._pending.discard()
        return self.path

    def discard(self) -> None:
        """Drop the stage: nothing is written and the path keeps what it had."""
        if not self.closed:
            self.closed = True
            self.stage = None
            self._pending.discard()

    def __enter__(self) -> StageRecorder:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.discard()
        else:
            self.close()


def validation_errors(path: str | os.PathLike) -> list[str]:
    """Problems a USD checker reports for the stage at ``path`` (empty when it complies).

    Uses ``UsdUtils.ComplianceChecker`` where usd-core still ships it, else the
    ``UsdValidation`` validators that replaced it (what ``usdchecker`` runs).
    """
    from pxr import UsdUtils

    checker_type = getattr(UsdUtils, "ComplianceChecker", None)
    if checker_type is not None:
        checker = checker_type()
        checker.CheckCompliance(str(path))
        return [*checker.GetErrors(), *checker.GetFailedChecks()]
    from pxr import UsdValidation

    registry = UsdValidation.ValidationRegistry()
    names = [m.name for m in registry.GetAllValidatorMetadata() if not m.isSuite]
    context = UsdValidation.ValidationContext(registry.GetOrLoadValidatorsByName(names))
    stage = Usd.Stage.Open(str(path))
    return [
        f"{e.GetName()}: {e.GetMessage()}"
        for e in context.Validate(stage)
        if e.GetType() == UsdValidation.ValidationErrorType.Error
    ]


__all__ = ["StageRecorder", "validation_errors", "STAGE_EXTENSIONS"]
