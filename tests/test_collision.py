import math

import numpy as np
import pytest
import trimesh
from pxr import Usd, UsdGeom

import warpfields as wf
from warpfields import ops
from warpfields.cli import main
from warpfields.errors import InputError
from warpfields.fields.hybrid import HybridField, preset_config
from warpfields.io.usd import StageRecorder, validation_errors
from warpfields.ops import OperatorSpec
from warpfields.sims.base import SimulationError, format_table
from warpfields.sims.collision import CollisionScene, ad_operator, compare_runs

SPHERE = wf.sphere(0.5)
DT = 1.0 / 600.0


def _first_contact(positions, velocities, restitution, friction, steps=400):
    scene = CollisionScene(
        SPHERE,
        ad_operator(),
        radius=0.01,
        restitution=restitution,
        friction=friction,
        positions=positions,
        velocities=velocities,
    )
    for _ in range(steps):
        scene.step(DT)
    contacts = scene.contacts()
    assert np.all(contacts["step"] >= 0)
    return scene, {k: v.astype(np.float64) for k, v in contacts.items()}


def _coulomb_reflection(x, v_in, restitution, friction):
    """Closed form in float64: reflect the normal part about the exact sphere normal, Coulomb on the tangent."""
    n = x / np.linalg.norm(x, axis=1, keepdims=True)
    vn = np.sum(v_in * n, axis=1, keepdims=True)
    vt = v_in - vn * n
    keep = np.maximum(0.0, 1.0 - friction * (1.0 + restitution) * -vn / np.linalg.norm(vt, axis=1, keepdims=True))
    return keep * vt - restitution * vn * n


def test_drop_on_top_reflects_with_restitution():
    _, c = _first_contact([[0.0, 0.8, 0.0]], None, restitution=0.6, friction=0.3)
    v_in = c["velocity_in"][0]
    # Semi-implicit Euler from rest: the velocity at step s is -g (s + 1) dt.
    np.testing.assert_allclose(v_in, [0.0, -9.81 * (c["step"][0] + 1) * DT, 0.0], rtol=1e-5)
    np.testing.assert_allclose(c["velocity_out"][0], -0.6 * v_in, rtol=1e-5, atol=1e-7)
    assert c["position"][0][1] < 0.51


@pytest.mark.parametrize("friction", [0.0, 0.2, 5.0])
def test_oblique_bounces_follow_coulomb_reflection(friction):
    positions = [[0.2, 0.8, 0.1], [-0.3, 0.7, -0.2], [0.05, 0.9, -0.35]]
    velocities = [[0.5, 0.0, -0.3], [0.8, -1.0, 0.2], [-0.2, 0.0, 0.9]]
    _, c = _first_contact(positions, velocities, restitution=0.4, friction=friction)
    expected = _coulomb_reflection(c["position"], c["velocity_in"], 0.4, friction)
    np.testing.assert_allclose(c["velocity_out"], expected, rtol=1e-4, atol=1e-5)
    normal_in = np.sum(c["velocity_in"] * c["position"], axis=1)
    assert np.all(normal_in < 0)
    if friction >= 5.0:  # sticking: the tangential velocity is removed entirely
        n = c["position"] / np.linalg.norm(c["position"], axis=1, keepdims=True)
        tangential = c["velocity_out"] - np.sum(c["velocity_out"] * n, axis=1, keepdims=True) * n
        np.testing.assert_allclose(tangential, 0.0, atol=1e-5)


def test_push_out_keeps_particles_outside_the_collider():
    scene = CollisionScene(SPHERE, ad_operator(), particles=200, radius=0.01, seed=3, substeps=10)
    scene.run(frames=20, dt=1.0 / 60.0, progress=False)
    distances = np.linalg.norm(scene.x.numpy().astype(np.float64), axis=1) - 0.5
    assert distances.min() >= 0.01 - 1e-4
    assert np.count_nonzero(scene.contacts()["step"] >= 0) > 20


def test_seeded_spawn_and_reference_run():
    a = CollisionScene(SPHERE, ad_operator(), reference_field=SPHERE, particles=64, seed=7)
    b = CollisionScene(SPHERE, ad_operator(), particles=64, seed=7)
    c = CollisionScene(SPHERE, ad_operator(), particles=64, seed=8)
    np.testing.assert_array_equal(a.initial_positions, b.initial_positions)
    assert not np.allclose(a.initial_positions, c.initial_positions)
    assert np.all(a.initial_positions[:, 1] > 0.5 + 2 * a.radius)
    a.run(15, 1.0 / 60.0, progress=False)
    reference = a.reference()
    reference.run(15, 1.0 / 60.0, progress=False)
    metrics = compare_runs(a, reference)
    assert metrics["contacts_both"] > 0
    assert metrics["angle_median_deg"] == 0.0 and metrics["final_position_rms"] == 0.0


def test_polyfit_normals_match_the_exact_reference():
    spec = OperatorSpec.for_field(SPHERE, method="polyfit", seed=1)
    scene = CollisionScene(SPHERE, spec, reference_field=SPHERE, particles=64, seed=2)
    scene.run(30, 1.0 / 60.0, progress=False)
    reference = scene.reference()
    reference.run(30, 1.0 / 60.0, progress=False)
    metrics = compare_runs(scene, reference)
    assert metrics["contacts_both"] > 10
    assert 0.0 < metrics["angle_p90_deg"] < 0.5


def test_particle_contact_head_on():
    e = 0.5
    scene = CollisionScene(
        SPHERE,
        ad_operator(),
        radius=0.01,
        restitution=e,
        gravity=(0.0, 0.0, 0.0),
        particle_contact=True,
        positions=[[-0.05, 2.0, 0.0], [0.05, 2.0, 0.0]],
        velocities=[[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]],
    )
    for _ in range(80):
        scene.step(1e-3)
    v = scene.v.numpy()
    np.testing.assert_allclose(v, [[-e, 0.0, 0.0], [e, 0.0, 0.0]], atol=1e-5)
    x = scene.x.numpy()
    assert np.linalg.norm(x[0] - x[1]) >= 0.02 - 1e-5


def test_blow_up_names_the_step_and_keeps_a_valid_stage(tmp_path):
    # |x| grows by 1e38 per unit step and overflows float32 on step 3.
    scene = CollisionScene(SPHERE, ad_operator(), positions=[[0.0, 0.8, 0.0]], velocities=[[0.0, -1e38, 0.0]])
    path = tmp_path / "blowup.usd"
    with pytest.raises(SimulationError, match="step 3") as error, StageRecorder(path, fps=1.0) as recorder:
        scene.run(frames=6, dt=1.0, substeps=1, recorder=recorder, progress=False)
    assert error.value.step == 3
    stage = Usd.Stage.Open(str(path))
    assert stage.GetEndTimeCode() == 3
    points = UsdGeom.Points(stage.GetPrimAtPath("/World/particles"))
    assert points.GetPointsAttr().GetTimeSamples() == [0, 1, 2, 3]
    assert np.all(np.isfinite(np.array(points.GetPointsAttr().Get(3))))
    assert validation_errors(path) == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"particles": 0}, "particles"),
        ({"positions": np.zeros((0, 3))}, "particles"),
        ({"radius": -0.1}, "radius"),
        ({"restitution": 1.5}, "restitution"),
        ({"friction": math.nan}, "friction"),
        ({"gravity": (0.0, math.inf, 0.0)}, "gravity"),
        ({"substeps": 0}, "substeps"),
        ({"positions": [[0.0, math.nan, 0.0]]}, "finite"),
    ],
)
def test_bad_scene_inputs(kwargs, match):
    with pytest.raises(InputError, match=match):
        CollisionScene(SPHERE, ad_operator(), **{"particles": 4, **kwargs})


def test_wrong_dimension_and_bad_dt():
    with pytest.raises(InputError, match="3D"):
        CollisionScene(wf.circle(0.5), ad_operator(), particles=4)
    scene = CollisionScene(SPHERE, ad_operator(), particles=4)
    for dt in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(InputError, match="dt"):
            scene.step(dt)


def test_cli_writes_stage_and_summary(tmp_path, capsys):
    out = tmp_path / "run.usd"
    argv = ["sim", "collision", "--field", "sphere", "--method", "ad", "--particles", "100", "--frames", "6"]
    assert main([*argv, "--substeps", "4", "--seed", "5", "--out", str(out), "--mesh-resolution", "24"]) == 0
    printed = capsys.readouterr().out
    assert "angle_median_deg" in printed and "ms per step" in printed
    assert validation_errors(out) == []
    stage = Usd.Stage.Open(str(out))
    assert stage.GetEndTimeCode() == 6 and stage.GetTimeCodesPerSecond() == pytest.approx(60.0)
    collider = UsdGeom.Mesh(stage.GetPrimAtPath("/World/collider"))
    radii = np.linalg.norm(np.array(collider.GetPointsAttr().Get()), axis=1)
    np.testing.assert_allclose(radii, 0.5, atol=0.02)
    points = UsdGeom.Points(stage.GetPrimAtPath("/World/particles"))
    assert len(points.GetPointsAttr().Get(6)) == 100 and points.GetVelocitiesAttr().GetTimeSamples() == list(range(7))
    meta = stage.GetRootLayer().customLayerData["warpfields"]
    assert meta["scene"] == "collision" and meta["method"] == "ad" and meta["seed"] == 5
    assert meta["metrics"]["final_position_rms"] == 0.0


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--dt", "0"], "dt"),
        (["--dt", "nan"], "dt"),
        (["--particles", "0"], "particles"),
        (["--method", "magic"], "method"),
        (["--field", "circle"], "3D"),
        (["--out", "run.txt"], "USD"),
    ],
)
def test_cli_bad_inputs(tmp_path, capsys, extra, match):
    argv = ["sim", "collision", "--field", "sphere", "--particles", "10", "--frames", "2", "--out"]
    args = [*argv, str(tmp_path / "run.usd"), *extra]
    assert main(args) == 2
    assert match in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_format_table():
    text = format_table([("angle", 1.23456789), ("n", 3)], ("metric", "value"))
    assert text.splitlines() == ["metric  value", "------  -----", "angle   1.235", "n       3"]


def test_cli_mesh_reference(tmp_path, capsys):
    mesh_path = tmp_path / "ball.obj"
    trimesh.creation.icosphere(subdivisions=4, radius=0.5).export(mesh_path)
    out = tmp_path / "run.usda"
    argv = ["sim", "collision", "--field", "sphere", "--method", "ad", "--particles", "100", "--frames", "20"]
    assert main([*argv, "--reference", str(mesh_path), "--out", str(out), "--mesh-resolution", "16"]) == 0
    stage = Usd.Stage.Open(str(out))
    metrics = stage.GetRootLayer().customLayerData["warpfields"]["metrics"]
    # The faceted mesh normals differ from the sphere's by at most about half a facet angle (~2 deg).
    assert metrics["contacts_both"] > 10 and metrics["angle_median_deg"] < 3.0


@pytest.mark.parametrize("method", ["ad", "polyfit"])
def test_hybrid_field_collider_pushes_out_along_the_operator_normal(method):
    """One step of the generic contact kernel on a hybrid field in original units (a shifted, scaled domain)
    against the host API: penetrating particles move to the particle radius along the operator's normal and
    lose their inward velocity, the others fly on."""
    normalization = wf.Normalization(center=(0.3, -0.2, 0.1), scale=0.8)
    field = HybridField(preset_config("tiny"), seed=0, normalization=normalization)
    rng = np.random.default_rng(0)
    x_field = rng.uniform(-0.8, 0.8, (64, 3)).astype(np.float32)
    positions = normalization.from_field(x_field).astype(np.float32)
    velocities = rng.normal(size=(64, 3)).astype(np.float32)
    # O(1) features, and the output bias set so that the contact radius splits the particles in half.
    parameters = dict(field.parameters)
    parameters["table"] = rng.uniform(-1, 1, parameters["table"].shape).astype(np.float32)
    field.set_parameters(parameters)
    radius = 0.05
    parameters["b_out"] = parameters["b_out"] + normalization.scale * radius - np.median(ops.value(field, x_field))
    field.set_parameters(parameters)
    distance = ops.value(field, x_field).astype(np.float64) / normalization.scale
    spec = OperatorSpec.for_field(field, method=method, k=16, seed=3)
    scene = CollisionScene(
        field, spec, positions=positions, velocities=velocities, radius=radius, gravity=(0.0, 0.0, 0.0),
        restitution=0.0, friction=0.0, substeps=1,
    )  # fmt: skip
    # A step too short to move a float32 position: contacts are evaluated where the particles start.
    scene.step(1.0e-12)
    normal = ops.normal(field, x_field, method=method, k=spec.k, sigma=spec.sigma, seed=spec.seed)
    inside = distance < radius
    expected = positions + np.where(inside, radius - distance, 0.0)[:, None] * normal
    np.testing.assert_allclose(scene.x.numpy(), expected, atol=1e-5)
    inward = np.minimum(np.sum(velocities * normal, axis=1), 0.0)
    expected_v = velocities - np.where(inside, inward, 0.0)[:, None] * normal
    np.testing.assert_allclose(scene.v.numpy(), expected_v, atol=1e-5)
    assert inside.sum() == 32 and np.count_nonzero(scene.contacts()["step"] == 0) == 32
