import numpy as np
import pytest
from pxr import Usd, UsdGeom

from warpfields.errors import InputError
from warpfields.io.usd import StageRecorder, validation_errors


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if ".part" in p.name]


def test_points_meshes_metadata_and_compliance(tmp_path):
    path = tmp_path / "run.usd"
    rng = np.random.default_rng(0)
    frames = [rng.normal(size=(7, 3)) for _ in range(3)]
    settings = {"method": "polyfit", "k": 64, "sigma": 0.002, "gravity": [0.0, -9.81, 0.0], "reference": None}
    with StageRecorder(path, fps=30, up_axis="Y", meters_per_unit=0.01, metadata=settings) as rec:
        for frame, positions in enumerate(frames):
            rec.add_points("particles", positions, 0.1, 2.0 * positions, frame)
        rec.add_static_mesh("collider", np.eye(3), np.array([[0, 1, 2]]))
        rec.add_mesh_frame("surface", np.eye(3), np.array([[0, 1, 2]]), 1, {"curvature": [1.0, 2.0, 3.0]})
        assert not path.exists()
    assert path.exists() and not _leftovers(tmp_path)
    assert validation_errors(path) == []

    stage = Usd.Stage.Open(str(path))
    assert UsdGeom.GetStageUpAxis(stage) == "Y"
    assert UsdGeom.GetStageMetersPerUnit(stage) == pytest.approx(0.01)
    assert stage.GetTimeCodesPerSecond() == 30
    assert (stage.GetStartTimeCode(), stage.GetEndTimeCode()) == (0, 2)
    assert stage.GetDefaultPrim().GetPath() == "/World"
    meta = stage.GetRootLayer().customLayerData["warpfields"]
    assert meta["method"] == "polyfit" and meta["k"] == 64 and meta["sigma"] == pytest.approx(0.002)
    assert meta["gravity"] == "[0.0, -9.81, 0.0]"

    points = UsdGeom.Points(stage.GetPrimAtPath("/World/particles"))
    assert points.GetPointsAttr().GetTimeSamples() == [0, 1, 2]
    for frame, positions in enumerate(frames):
        np.testing.assert_allclose(np.array(points.GetPointsAttr().Get(frame)), positions, rtol=1e-6)
        np.testing.assert_allclose(np.array(points.GetVelocitiesAttr().Get(frame)), 2 * positions, rtol=1e-6)
        extent = np.array(points.GetExtentAttr().Get(frame))
        np.testing.assert_allclose(extent, [positions.min(0) - 0.05, positions.max(0) + 0.05], rtol=1e-6)
    assert np.allclose(points.GetWidthsAttr().Get(1), 0.1)

    collider = UsdGeom.Mesh(stage.GetPrimAtPath("/World/collider"))
    assert collider.GetPointsAttr().GetTimeSamples() == []
    assert list(collider.GetFaceVertexIndicesAttr().Get()) == [0, 1, 2]
    assert np.allclose(np.array(collider.GetExtentAttr().Get()), [[0, 0, 0], [1, 1, 1]])

    surface = UsdGeom.Mesh(stage.GetPrimAtPath("/World/surface"))
    curvature = UsdGeom.PrimvarsAPI(surface).GetPrimvar("curvature")
    assert curvature.GetInterpolation() == UsdGeom.Tokens.vertex
    assert list(curvature.Get(1)) == [1.0, 2.0, 3.0]


def test_failed_run_keeps_frames_written(tmp_path):
    path = tmp_path / "partial.usda"
    with pytest.raises(RuntimeError), StageRecorder(path, fps=24) as rec:
        for frame in range(5):
            if frame == 3:
                raise RuntimeError("blow-up")
            rec.add_points("particles", np.full((2, 3), float(frame)), 0.1, frame=frame)
    stage = Usd.Stage.Open(str(path))
    assert stage.GetEndTimeCode() == 2
    assert UsdGeom.Points(stage.GetPrimAtPath("/World/particles")).GetPointsAttr().GetTimeSamples() == [0, 1, 2]
    assert validation_errors(path) == [] and not _leftovers(tmp_path)


def test_validation_reports_missing_stage_metadata(tmp_path):
    path = tmp_path / "bare.usda"
    stage = Usd.Stage.CreateNew(str(path))
    UsdGeom.Points.Define(stage, "/P")
    stage.GetRootLayer().Save()
    assert len(validation_errors(path)) >= 2


@pytest.mark.parametrize(
    "path, kwargs, match",
    [
        ("run.txt", {}, "ending in"),
        ("run.usd", {"fps": 0}, "fps"),
        ("run.usd", {"fps": float("nan")}, "fps"),
        ("run.usd", {"up_axis": "X"}, "up_axis"),
        ("missing/run.usd", {}, "does not exist"),
    ],
)
def test_bad_recorder_arguments(tmp_path, path, kwargs, match):
    with pytest.raises(InputError, match=match):
        StageRecorder(tmp_path / path, **{"fps": 30, **kwargs})


def test_bad_prims(tmp_path):
    with StageRecorder(tmp_path / "run.usd", fps=30) as rec:
        with pytest.raises(InputError, match="identifier"):
            rec.add_points("bad name", np.zeros((1, 3)))
        with pytest.raises(InputError, match=r"\(n, 3\)"):
            rec.add_points("p", np.zeros((4,)))
        with pytest.raises(InputError, match="velocities"):
            rec.add_points("p", np.zeros((2, 3)), velocities=np.zeros((3, 3)))
        with pytest.raises(InputError, match="face indices"):
            rec.add_static_mesh("m", np.zeros((3, 3)), np.array([[0, 1, 3]]))
        with pytest.raises(InputError, match="primvar"):
            rec.add_mesh_frame("m", np.eye(3), np.array([[0, 1, 2]]), 0, {"curvature": [1.0]})
        with pytest.raises(InputError, match="frame"):
            rec.add_points("p", np.zeros((1, 3)), frame=-1)
    with pytest.raises(InputError, match="closed"):
        rec.add_points("p", np.zeros((1, 3)))
