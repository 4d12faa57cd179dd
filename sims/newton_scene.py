"""Newton scenes with a field collider, and their reference with Newton's own mesh collider.

A ``NewtonScene`` is a Newton model (y up, ground plane at y = 0) whose obstacle is either a
warpfields field through ``FieldCollider`` or a triangle mesh through Newton's ``add_shape_mesh``:
``reference(mesh)`` builds the same scene (same particles, material, solver, seed) against the
mesh the field was trained from, and ``compare`` measures a run against it. Subclasses add the
simulated matter (``ClothScene``, ``PourScene``) and say how to record it.

World coordinates are the mesh's original ones: the field maps them through its
``normalization``, so the field and the mesh sit in the same place.
"""

from __future__ import annotations

import math
import time
from abc import abstractmethod

import newton
import numpy as np
import warp as wp
from tqdm import tqdm

from warpfields.errors import InputError
from warpfields.fields import Field
from warpfields.fields.mesh_sdf import MeshSDF
from warpfields.geometry import object_bounds
from warpfields.io.mesh import Mesh, normalization_for
from warpfields.newton import DEFAULT_MARGIN, FieldCollider
from warpfields.ops import OperatorSpec, value

from .base import Simulation, check_count

# SolverVBD takes the field's contacts too (see warpfields.newton), but these scenes' materials are tuned for
# the two below: with VBD the sheet sinks into the mesh reference as deep as into the field.
SOLVERS = ("xpbd", "semi-implicit")
# Steps per 1/60 s frame each solver needs on these scenes (Newton's cloth examples use the same).
SOLVER_SUBSTEPS = {"xpbd": 10, "semi-implicit": 32}


def _finite(name: str, value, low: float, high: float = math.inf, open_low: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value > high or value < low or (open_low and value == low):
        bracket = "(" if open_low else "["
        raise InputError(f"{name}: expected a finite number in {bracket}{low}, {high}], got {value!r}")
    return float(value)


class NewtonScene(Simulation):
    """Matter (from ``_populate``) falling onto ``field`` (normals from ``spec``) or, for the
    reference, onto ``mesh`` (world coordinates) with Newton's mesh collider.

    ``radius`` is the particle radius in world units (default: 0.01 field units); ``bounds`` the
    obstacle's world box ``(lower, upper)`` that places the matter (default: the field's object, or
    the mesh's vertices; a reference takes its run's, so both start alike); ``margin`` the
    detection band beyond it (both colliders use it); ``friction`` the Coulomb coefficient of
    every contact; ``solver`` one of ``SOLVERS`` and ``substeps`` its steps per frame (default
    ``SOLVER_SUBSTEPS[solver]``).
    """

    name = "newton"

    def __init__(
        self,
        field: Field | None = None,
        spec: OperatorSpec | str = "polyfit",
        mesh: Mesh | None = None,
        solver: str = "xpbd",
        substeps: int | None = None,
        radius: float | None = None,
        bounds=None,
        margin: float = DEFAULT_MARGIN,
        friction: float = 1.0,
        seed: int = 0,
        device=None,
    ):
        super().__init__(device)
        if (field is None) == (mesh is None):
            raise InputError("NewtonScene: give exactly one obstacle, a field or a reference mesh")
        if solver not in SOLVERS:
            raise InputError(f"solver: expected one of {SOLVERS}, got {solver!r}")
        if field is not None and field.dim != 3:
            raise InputError(f"field: a Newton scene needs a 3D field, got a {field.dim}D one")
        if mesh is not None and not isinstance(mesh, Mesh):
            raise InputError(f"mesh: expected a warpfields.io.mesh.Mesh, got {type(mesh).__name__}")
        if radius is None:
            if field is None:
                raise InputError("radius: a scene against a mesh needs an explicit particle radius")
            radius = 0.01 / field.normalization.scale
        if bounds is None and field is not None:
            bounds = object_bounds(field, device=self.device)
        elif bounds is None:
            bounds = (mesh.vertices.min(axis=0), mesh.vertices.max(axis=0))
        bounds = tuple(np.asarray(b, dtype=np.float64) for b in bounds)
        if len(bounds) != 2 or any(b.shape != (3,) or not np.all(np.isfinite(b)) for b in bounds):
            raise InputError(f"bounds: expected two finite 3-vectors (lower, upper), got {bounds!r}")
        if substeps is None:
            substeps = SOLVER_SUBSTEPS[solver]
        self.settings = {
            "solver": solver,
            "substeps": check_count(substeps, "substeps"),
            "radius": _finite("radius", radius, 0.0, open_low=True),
            "bounds": bounds,
            "margin": _finite("margin", margin, 0.0),
            "friction": _finite("friction", friction, 0.0),
            "seed": int(seed),
        }
        self.field = field
        self.mesh = mesh
        self.solver_name = solver
        self.radius = self.settings["radius"]
        self.margin = self.settings["margin"]
        self.friction = self.settings["friction"]
        self.seed = self.settings["seed"]
        self.substeps = self.settings["substeps"]
        self.bounds = bounds

        builder = newton.ModelBuilder(up_axis=newton.Axis.Y)
        material = builder.default_shape_cfg.copy()
        material.mu = self.friction
        self._configure_material(material)
        builder.add_ground_plane(cfg=material)
        self._populate(builder)
        self.collider = None
        if field is not None:
            self.collider = FieldCollider(field, spec, margin=self.margin)
            self.collider.add_to(builder, cfg=material)
        else:
            shape_mesh = newton.Mesh(mesh.vertices.astype(np.float32), mesh.faces.ravel(), compute_inertia=False)
            builder.add_shape_mesh(-1, mesh=shape_mesh, cfg=material, label="reference")
        self.model = builder.finalize(device=self.device)
        self.model.soft_contact_mu = self.friction
        self._configure_model(self.model)
        if self.collider is not None:
            self.collider.bind(self.model)
            self.pipeline = self.collider.pipeline(soft_contact_gap=self.margin)
        else:
            self.pipeline = newton.CollisionPipeline(self.model, soft_contact_gap=self.margin)
        self.contacts = self.pipeline.contacts()
        self.state = self.model.state()
        self.next_state = self.model.state()
        self.control = self.model.control()
        self.solver = self._make_solver(self.model)
        self.collide_seconds: list[float] = []

    # --- what subclasses provide ------------------------------------------------------

    @abstractmethod
    def _populate(self, builder: newton.ModelBuilder) -> None:
        """Add the simulated matter to ``builder`` (the obstacle and the ground are added here)."""

    def _configure_material(self, material: newton.ModelBuilder.ShapeConfig) -> None:
        """Adjust the obstacle's and the ground's contact material for the solver."""

    def _configure_model(self, model: newton.Model) -> None:
        """Adjust the finalized model (contact stiffness, particle grid) for the solver."""

    def _make_solver(self, model: newton.Model):
        if self.solver_name == "xpbd":
            return newton.solvers.SolverXPBD(model, iterations=10)
        return newton.solvers.SolverSemiImplicit(model)

    def reference(self, mesh: Mesh) -> NewtonScene:
        """The same scene against ``mesh`` (world coordinates) with Newton's own mesh collider."""
        return type(self)(mesh=mesh, device=self.device, **self.settings)

    # --- stepping ---------------------------------------------------------------------

    def _advance(self, dt: float) -> None:
        self.state.clear_forces()
        start = time.perf_counter()
        self.pipeline.collide(self.state, self.contacts)
        if self.collider is not None:
            self.collider.collide(self.state, self.contacts)
        wp.synchronize_device(self.device)
        self.collide_seconds.append(time.perf_counter() - start)
        self.solver.step(self.state, self.next_state, self.control, self.contacts, dt)
        self.state, self.next_state = self.next_state, self.state

    def check_finite(self) -> None:
        super().check_finite()
        if self.collider is not None:
            self.collider.check_overflow(strict=True)

    @property
    def collide_seconds_per_step(self) -> float:
        """Median wall time of contact generation per step (Newton's pipeline plus the field collider)."""
        return float(np.median(self.collide_seconds)) if self.collide_seconds else math.nan

    def state_arrays(self) -> dict[str, wp.array]:
        return {"positions": self.state.particle_q, "velocities": self.state.particle_qd}

    def positions(self) -> np.ndarray:
        return self.state.particle_q.numpy()

    def kinetic_energy(self) -> float:
        """Kinetic energy of the particles [J]."""
        v = self.state.particle_qd.numpy().astype(np.float64)
        return float(0.5 * np.sum(self.model.particle_mass.numpy() * np.sum(v * v, axis=1)))


class DepthGauge:
    """Deepest penetration of the particles into ``mesh`` (world coordinates), by its exact signed
    distance: ``max(0, radius - sdf(x))`` over the particles, kept over every ``measure`` call."""

    def __init__(self, mesh: Mesh, radius: float, device=None):
        normalization = normalization_for(mesh)
        self.sdf = MeshSDF(mesh.normalized(normalization), normalization)
        self.radius = float(radius)
        self.device = device
        self.deepest = 0.0

    def distances(self, points: np.ndarray) -> np.ndarray:
        """Signed distances of world ``points`` to the mesh (negative inside)."""
        norm = self.sdf.normalization
        return value(self.sdf, norm.to_field(points), device=self.device) / norm.scale

    def measure(self, points: np.ndarray) -> float:
        depth = float(np.max(self.radius - self.distances(points), initial=0.0))
        self.deepest = max(self.deepest, depth)
        return depth


METRICS = (
    "deviation_mean",
    "deviation_max",
    "penetration_max",
    "penetration_per_radius",
    "kinetic_energy",
    "ms_per_step",
    "contacts_ms_per_step",
)
"""The figures of a run, in the order tables show them (deviations only against a reference)."""


def scene_metrics(scene: NewtonScene, gauge: DepthGauge | None = None) -> dict[str, float]:
    """What a run reports on its own: the deepest penetration (with a gauge), the particles' kinetic
    energy now, and the median wall time of a step and of its contact generation [ms]."""
    values = {
        "kinetic_energy": scene.kinetic_energy(),
        "ms_per_step": 1e3 * scene.seconds_per_step,
        "contacts_ms_per_step": 1e3 * scene.collide_seconds_per_step,
    }
    if gauge is not None:
        values["penetration_max"] = gauge.deepest
        values["penetration_per_radius"] = gauge.deepest / scene.radius
    return values


def compare(run: NewtonScene, reference: NewtonScene) -> dict[str, float]:
    """Per-particle deviation of ``run``'s final positions from ``reference``'s (mean and max, world units)."""
    offsets = np.linalg.norm(run.positions().astype(np.float64) - reference.positions().astype(np.float64), axis=1)
    return {"deviation_mean": float(offsets.mean()), "deviation_max": float(offsets.max())}


def ground_quad(bounds, extent: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """A square on the ground plane (y = 0) ``extent`` times the obstacle's widest side, centred under it."""
    lower, upper = (np.asarray(b, dtype=np.float64) for b in bounds)
    center = 0.5 * (lower + upper)
    half = 0.5 * extent * float(np.max(upper - lower))
    corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    vertices = np.array([[center[0] + half * a, 0.0, center[2] + half * b] for a, b in corners])
    return vertices, np.array([[0, 2, 1], [0, 3, 2]], dtype=np.int32)


def run_frames(
    scene: NewtonScene, frames: int, dt: float, gauge: DepthGauge | None = None, recorder=None, progress=True, **record
) -> None:
    """Run ``frames`` frames of ``dt``, measuring the penetration into ``gauge``'s mesh and recording
    (``scene.record(recorder, frame, **record)``) the initial state and every frame."""
    frames = check_count(frames, "frames")
    for frame in tqdm(range(frames + 1), desc=scene.name, unit="frame", disable=None if progress else True):
        if frame:
            scene.run(1, dt, progress=False)
        if gauge is not None:
            gauge.measure(scene.positions())
        if recorder is not None:
            scene.record(recorder, frame, **record)


__all__ = [
    "METRICS",
    "SOLVERS",
    "SOLVER_SUBSTEPS",
    "DepthGauge",
    "NewtonScene",
    "compare",
    "ground_quad",
    "run_frames",
    "scene_metrics",
]
