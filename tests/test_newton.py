"""A field as a collider in Newton: against Newton's own sphere, overflow, a moving body, the cloth
scene end to end, and every bad argument."""

import math
import warnings
from pathlib import Path

import newton
import numpy as np
import pytest
import warp as wp
from pxr import Usd, UsdGeom

import warpfields as wf
from warpfields.cli import main
from warpfields.errors import InputError
from warpfields.fields import AnalyticField, Field, Normalization
from warpfields.io.usd import validation_errors
from warpfields.newton import ContactOverflowWarning, FieldCollider
from warpfields.ops import OperatorSpec

RADIUS = 0.03
DT = 1.0 / 600.0
CENTER = np.array([0.0, 0.5, 0.0])
SPHERE_RADIUS = 0.4


def _sphere_scene(collider, solver="xpbd"):
    """48 particles dropped onto a sphere of radius 0.4 at CENTER (y up, ground plane), as a field or
    as Newton's sphere; contact stiffness and damping low enough for semi-implicit steps of DT."""
    builder = newton.ModelBuilder(up_axis=newton.Axis.Y)
    material = builder.default_shape_cfg.copy()
    material.mu, material.ke, material.kd, material.kf = 0.5, 1.0e3, 1.0, 1.0
    builder.add_ground_plane(cfg=material)
    axis = np.linspace(-0.25, 0.25, 4)
    lattice = np.stack(np.meshgrid(axis, [1.0, 1.1, 1.2], axis), axis=-1).reshape(-1, 3)
    for p in lattice + np.random.default_rng(0).uniform(-0.01, 0.01, lattice.shape):
        builder.add_particle(wp.vec3(*p), wp.vec3(0.0), mass=0.01, radius=RADIUS)
    pose = wp.transform(wp.vec3(*CENTER), wp.quat_identity())
    if collider is None:
        builder.add_shape_sphere(-1, xform=pose, radius=SPHERE_RADIUS, cfg=material)
    else:
        # A field whose normalization already puts it in place takes no pose of its own.
        placed = collider.field.normalization.scale != 1.0
        collider.add_to(builder, xform=wp.transform_identity() if placed else pose, cfg=material)
    model = builder.finalize(device="cpu")
    model.soft_contact_kd = model.particle_kd = model.soft_contact_kf = model.particle_kf = 1.0
    if collider is None:
        pipeline = newton.CollisionPipeline(model)
    else:
        pipeline = collider.bind(model).pipeline()
    make = {"xpbd": lambda: newton.solvers.SolverXPBD(model, iterations=10), "semi": newton.solvers.SolverSemiImplicit}
    solver = make[solver]() if solver == "xpbd" else make[solver](model)
    return model, pipeline, pipeline.contacts(), solver


def _simulate(collider, solver="xpbd", steps=150):
    model, pipeline, contacts, solver = _sphere_scene(collider, solver)
    state, next_state, control = model.state(), model.state(), model.control()
    for _ in range(steps):
        state.clear_forces()
        pipeline.collide(state, contacts)
        if collider is not None:
            collider.collide(state, contacts)
        solver.step(state, next_state, control, contacts, DT)
        state, next_state = next_state, state
    return state.particle_q.numpy().astype(np.float64)


@pytest.mark.parametrize(("solver", "placement"), [("xpbd", "pose"), ("semi", "pose"), ("xpbd", "normalization")])
def test_sphere_field_follows_newtons_sphere(solver, placement):
    field_run = _simulate(FieldCollider(_placed_sphere(placement), "ad"), solver)
    newton_run = _simulate(None, solver)
    # Both resolve the same contacts; only float32 rounding of the two SDF evaluations differs.
    assert np.max(np.abs(field_run - newton_run)) < 1e-4
    # The run did meet the sphere: particles rest on it, one radius from its surface.
    distances = np.linalg.norm(field_run - CENTER, axis=1) - SPHERE_RADIUS
    on_sphere = distances < 2 * RADIUS
    assert np.count_nonzero(on_sphere) >= 5
    assert np.all(distances[on_sphere] > 0.9 * RADIUS)


def _placed_sphere(placement):
    """The sphere of radius 0.4 at CENTER: an analytic sphere posed there, or one twice as large in field
    units that the field's normalization (world -> (x - CENTER) * 2) maps there."""
    if placement == "pose":
        return wf.sphere(SPHERE_RADIUS)
    return AnalyticField("sphere", Normalization(tuple(CENTER), 2.0), radius=2.0 * SPHERE_RADIUS)


@pytest.mark.parametrize("placement", ["pose", "normalization"])
@pytest.mark.parametrize("method", ["ad", "polyfit"])
def test_contacts_carry_the_sphere_normal_and_surface_point(method, placement):
    field = _placed_sphere(placement)
    collider = FieldCollider(field, OperatorSpec.for_field(field, method=method, k=16))
    model, pipeline, contacts, _ = _sphere_scene(collider)
    state = model.state()
    directions = np.random.default_rng(1).normal(size=(model.particle_count, 3))
    gaps = np.linspace(-0.5, 1.2, model.particle_count) * RADIUS
    tolerance = 1e-6 if method == "ad" else 1e-4
    # Twice: the second time every particle has turned 0.1 rad about the centre, far beyond the distance
    # within which a polyfit normal is kept, so every normal is new.
    for turn in (0.0, 0.1):
        rotation = np.array([[math.cos(turn), -math.sin(turn), 0], [math.sin(turn), math.cos(turn), 0], [0, 0, 1]])
        turned = directions @ rotation.T
        turned /= np.linalg.norm(turned, axis=1, keepdims=True)
        # Every particle just outside the surface or just inside, within radius + margin of it.
        state.particle_q.assign((CENTER + turned * (SPHERE_RADIUS + gaps[:, None])).astype(np.float32))
        pipeline.collide(state, contacts)
        collider.collide(state, contacts)
        count = int(contacts.soft_contact_count.numpy()[0])
        mine = contacts.soft_contact_shape.numpy()[:count] == collider.shape
        particles = contacts.soft_contact_particle.numpy()[:count][mine]
        assert sorted(particles) == list(range(model.particle_count))
        normals = contacts.soft_contact_normal.numpy()[:count][mine].astype(np.float64)
        points = contacts.soft_contact_body_pos.numpy()[:count][mine].astype(np.float64)
        assert np.max(np.linalg.norm(normals - turned[particles], axis=1)) < tolerance
        assert np.max(np.abs(np.linalg.norm(points - CENTER, axis=1) - SPHERE_RADIUS)) < 1e-5
        assert np.all(contacts.soft_contact_indices.numpy()[:count][mine][:, 1:] == -1)
        assert np.all(contacts.soft_contact_barycentric.numpy()[:count][mine] == [1.0, 0.0, 0.0])


def test_overflow_is_counted_and_reported():
    collider = FieldCollider(wf.sphere(SPHERE_RADIUS), "ad")
    model, _, _, _ = _sphere_scene(collider)
    room = 10
    pipeline = collider.pipeline(soft_contact_max=room)
    contacts = pipeline.contacts()
    state = model.state()
    # All 48 particles one millimetre above the sphere's top, none on the ground.
    state.particle_q.assign(np.tile(CENTER + [0.0, SPHERE_RADIUS + 0.001, 0.0], (model.particle_count, 1)))
    pipeline.collide(state, contacts)
    collider.collide(state, contacts)
    assert set(contacts.soft_contact_shape.numpy()) == {collider.shape}
    assert len(set(contacts.soft_contact_particle.numpy())) == room
    with pytest.warns(ContactOverflowWarning, match=rf"{model.particle_count - room} field contacts were dropped"):
        assert collider.check_overflow() == model.particle_count - room
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert collider.check_overflow() == 0
    collider.collide(state, contacts)
    with pytest.raises(InputError, match=rf"soft_contact_max >= {collider.soft_contact_max}") as error:
        collider.check_overflow(strict=True)
    assert "\n" not in str(error.value)


def _platform(velocity=(0.0, 0.0, 0.0), angle=0.0, particle=(0.0, 0.0, 0.0), gravity=(0.0, -9.81, 0.0)):
    """A sphere field 0.5 off the origin of a kinematic body (pose: ``angle`` about z), one particle."""
    builder = newton.ModelBuilder(up_axis=newton.Axis.Y, gravity=gravity)
    body = builder.add_body(
        xform=wp.transform(wp.vec3(0.0), wp.quat_from_axis_angle(wp.vec3(0.0, 0.0, 1.0), angle)), is_kinematic=True
    )
    builder.add_particle(wp.vec3(*particle), wp.vec3(0.0), mass=0.01, radius=RADIUS)
    collider = FieldCollider(wf.sphere(SPHERE_RADIUS), "ad")
    collider.add_to(builder, body=body, xform=wp.transform(wp.vec3(0.5, 0.0, 0.0), wp.quat_identity()))
    model = builder.finalize(device="cpu")
    pipeline = collider.bind(model).pipeline()
    state, next_state = model.state(), model.state()
    state.body_qd.assign([np.array([*velocity, 0.0, 0.0, 0.0], dtype=np.float32)])
    return (
        collider,
        model,
        pipeline,
        pipeline.contacts(),
        newton.solvers.SolverXPBD(model, iterations=10),
        state,
        next_state,
    )


def test_rotated_body_places_the_field():
    # Rotated a quarter turn about z, the body carries the sphere's centre from (0.5, 0, 0) to (0, 0.5, 0).
    top = 0.5 + SPHERE_RADIUS
    collider, model, pipeline, contacts, solver, state, next_state = _platform(
        angle=0.5 * math.pi, particle=(0.0, top + 0.5 * RADIUS, 0.0), gravity=(0.0, 0.0, 0.0)
    )
    pipeline.collide(state, contacts)
    collider.collide(state, contacts)
    assert int(contacts.soft_contact_count.numpy()[0]) == 1
    assert np.allclose(contacts.soft_contact_normal.numpy()[0], [0.0, 1.0, 0.0], atol=1e-6)
    # The contact point is in the body's frame: on the sphere's top, rotated back.
    assert np.allclose(contacts.soft_contact_body_pos.numpy()[0], [0.5 + SPHERE_RADIUS, 0.0, 0.0], atol=1e-6)
    solver.step(state, next_state, model.control(), contacts, DT)
    assert next_state.particle_q.numpy()[0] == pytest.approx([0.0, top + RADIUS, 0.0], abs=1e-5)


def test_particle_rides_a_moving_body():
    # The body is kinematic: its pose and velocity are prescribed every step, rising and sliding sideways.
    velocity, steps = np.array([0.5, 0.25, 0.0]), 180
    top = SPHERE_RADIUS
    collider, model, pipeline, contacts, solver, state, next_state = _platform(particle=(0.5, top + RADIUS, 0.0))
    control = model.control()
    for step in range(steps):
        for s in (state, next_state):
            s.body_q.assign([wp.transform(wp.vec3(*(velocity * step * DT)), wp.quat_identity())])
            s.body_qd.assign([np.array([*velocity, 0.0, 0.0, 0.0], dtype=np.float32)])
        state.clear_forces()
        pipeline.collide(state, contacts)
        collider.collide(state, contacts)
        solver.step(state, next_state, control, contacts, DT)
        state, next_state = next_state, state
    # Lifted by the contact normal, the particle rises with the top; friction drags it up to the surface's
    # sideways speed, then it rides along. Writing the body's velocity as the contact's own surface velocity
    # as well would drag it to twice that. Friction at least as strong as Coulomb's with mu = 0.5 (between
    # the defaults; XPBD's positional friction also scales with the lift) catches up within v^2 / (2 mu g).
    position, speed = state.particle_q.numpy()[0], state.particle_qd.numpy()[0]
    assert position[1] == pytest.approx(top + RADIUS + velocity[1] * steps * DT, abs=2e-3)
    assert speed == pytest.approx(velocity, abs=0.02)
    carried = 0.5 + velocity[0] * steps * DT
    assert carried - velocity[0] ** 2 / (2 * 0.5 * 9.81) < position[0] < carried


class _NoValueField(Field):
    def __init__(self):
        super().__init__(dim=3, kind="no-value")

    def _make_struct(self, device):
        return _Empty()


@wp.struct
class _Empty:
    scale: float


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: FieldCollider(wf.circle(0.5)), "needs a 3D field, got a 2D one"),
        (lambda: FieldCollider(wf.sphere(), "bogus"), "method must be one of"),
        (lambda: FieldCollider(wf.sphere(), OperatorSpec(k=24)), "multiple of 16"),
        (lambda: FieldCollider(wf.sphere(), OperatorSpec(k=3, stencil="gauss")), "too small"),
        (lambda: FieldCollider(wf.sphere(), margin=-1.0), "margin"),
        (lambda: FieldCollider(wf.sphere(), lipschitz=math.nan), "lipschitz"),
        (lambda: FieldCollider("sphere"), "expected a warpfields Field"),
        (lambda: FieldCollider(wf.sphere()).add_to(newton.ModelBuilder(), body=3), "body"),
        (lambda: FieldCollider(wf.sphere()).add_to(object()), "newton.ModelBuilder"),
        (lambda: FieldCollider(wf.sphere()).add_to(newton.ModelBuilder(), xform=(0.0, 1.0)), "xform"),
        (lambda: FieldCollider(wf.sphere()).add_to(newton.ModelBuilder(), xform="up"), "xform"),
        (lambda: FieldCollider(wf.sphere()).bind(newton.ModelBuilder().finalize(device="cpu")), "add_to"),
        (lambda: FieldCollider(wf.sphere()).collide(None, None), "bind"),
        (lambda: _bound(_NoValueField(), "polyfit"), "no field_value overload"),
    ],
)
def test_bad_arguments_are_one_line_errors(make, message):
    with pytest.raises(InputError, match=message) as error:
        make()
    assert "\n" not in str(error.value)


def _bound(field, method):
    collider = FieldCollider(field, method)
    builder = newton.ModelBuilder()
    collider.add_to(builder)
    return collider.bind(builder.finalize(device="cpu"))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--field", "sphere", "--method", "bogus"], "method must be one of"),
        (["--field", "sphere", "--method", "polyfit", "--k", "24"], "multiple of 16"),
        (["--field", "circle"], "needs a 3D field"),
        (["--field", "sphere", "--solver", "mpm"], "solver"),
        (["--field", "sphere", "--reference", "missing.obj"], "file not found"),
    ],
)
def test_cli_rejects_bad_arguments_in_one_line(arguments, message, tmp_path, capsys):
    assert main(["sim", "cloth", *arguments, "--out", str(tmp_path / "run.usd")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp_path / "run.usd").exists()


@pytest.fixture(scope="module")
def tiny_sphere_field(tmp_path_factory):
    from warpfields.fields.hybrid_config import preset_config
    from warpfields.io.fieldfile import save_field
    from warpfields.torch.train import settings_for, train_field

    field, _ = train_field(
        wf.sphere(0.5), preset_config("tiny"), settings_for("tiny", steps=80), seed=0, progress=False
    )
    return save_field(field, tmp_path_factory.mktemp("field") / "sphere.wfield")


def test_cloth_on_a_tiny_field_writes_a_valid_stage(tiny_sphere_field, tmp_path, capsys):
    import trimesh

    reference = tmp_path / "sphere.obj"
    trimesh.creation.icosphere(subdivisions=3, radius=0.5).export(reference)
    out = tmp_path / "cloth.usda"
    frames = 20
    arguments = ["--field", str(tiny_sphere_field), "--method", "polyfit", "--k", "16", "--resolution", "8"]
    arguments += ["--frames", str(frames), "--reference", str(reference), "--out", str(out)]
    assert main(["sim", "cloth", *arguments]) == 0
    printed = capsys.readouterr().out
    assert "deviation_mean" in printed and "penetration_max" in printed
    assert validation_errors(out) == []
    stage = Usd.Stage.Open(str(out))
    assert stage.GetEndTimeCode() == frames
    for name in ("cloth", "cloth_reference"):
        points = UsdGeom.Mesh(stage.GetPrimAtPath(f"/World/{name}")).GetPointsAttr()
        assert points.GetNumTimeSamples() == frames + 1
        final = np.asarray(points.Get(frames))
        # The sheet came down onto the sphere: its middle rests on the top, one radius above it.
        middle = final[len(final) // 2]
        radius = 0.01
        assert middle[1] == pytest.approx(0.5 + radius, abs=0.03)
    field_mesh = UsdGeom.Mesh(stage.GetPrimAtPath("/World/field"))
    assert field_mesh.GetPointsAttr().GetNumTimeSamples() == 0 and len(field_mesh.GetPointsAttr().Get()) > 100
    metrics = dict(stage.GetRootLayer().customLayerData)["warpfields"]["metrics"]
    assert metrics["field"]["penetration_per_radius"] < 1.0
    assert metrics["field"]["deviation_mean"] < 0.05


def test_readme_newton_example_runs_as_written():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = readme.split("## Use a field in Newton", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    positions = namespace["state"].particle_q.numpy().astype(np.float64)
    gaps = np.linalg.norm(positions - [0.0, 0.5, 0.0], axis=1) - 0.5
    radius = 0.02
    resting = gaps < 2 * radius
    assert np.count_nonzero(resting) >= 5
    assert np.all(gaps > 0.9 * radius)
