"""A square cloth sheet dropped onto the obstacle, settling on it and on the ground (Newton).

Run on its own: ``python -m warpfields.sims.cloth --field F --out run.usd`` (the options of
``warpfields sim cloth``).
"""

from __future__ import annotations

import newton
import warp as wp

from .base import check_count
from .newton_scene import NewtonScene, _finite

# Cloth materials per solver, from Newton's cloth examples (mass per particle [kg], stiffnesses in
# Newton's units); the sheet is stiff in stretch and soft in bending so that it drapes.
_CLOTH = {
    "xpbd": {"add_springs": True, "spring_ke": 1.0e3, "spring_kd": 1.0, "edge_ke": 1.0e-1},
    "semi-implicit": {"tri_ke": 1.0e3, "tri_ka": 1.0e3, "tri_kd": 1.0e1, "edge_ke": 1.0e-1},
}


class ClothScene(NewtonScene):
    """A ``resolution`` x ``resolution``-cell sheet, ``coverage`` times the obstacle's widest
    horizontal extent, released flat at ``drop`` (a fraction of that extent) above its top.
    Other arguments as ``NewtonScene``."""

    name = "cloth"

    def __init__(
        self,
        field=None,
        spec="polyfit",
        mesh=None,
        resolution: int = 40,
        coverage: float = 2.4,
        drop: float = 0.1,
        particle_mass: float = 0.1,
        **kwargs,
    ):
        self.resolution = check_count(resolution, "resolution", 2)
        self.coverage = _finite("coverage", coverage, 0.0, open_low=True)
        self.drop = _finite("drop", drop, 0.0)
        self.particle_mass = _finite("particle_mass", particle_mass, 0.0, open_low=True)
        super().__init__(field, spec, mesh, **kwargs)
        self.settings.update(
            resolution=self.resolution, coverage=self.coverage, drop=self.drop, particle_mass=self.particle_mass
        )
        self.faces = self.model.tri_indices.numpy()

    def _populate(self, builder: newton.ModelBuilder) -> None:
        lower, upper = self.bounds
        extent = float(max(upper[0] - lower[0], upper[2] - lower[2]))
        size = self.coverage * extent
        cell = size / self.resolution
        center = 0.5 * (lower + upper)
        # The grid lies in its local xy plane; a quarter turn about x lays it flat (local y -> world -z).
        builder.add_cloth_grid(
            pos=wp.vec3(center[0] - 0.5 * size, upper[1] + self.drop * extent, center[2] + 0.5 * size),
            rot=wp.quat_from_axis_angle(wp.vec3(1.0, 0.0, 0.0), -0.5 * wp.pi),
            vel=wp.vec3(0.0),
            dim_x=self.resolution,
            dim_y=self.resolution,
            cell_x=cell,
            cell_y=cell,
            mass=self.particle_mass,
            particle_radius=self.radius,
            **_CLOTH[self.solver_name],
        )

    def _configure_material(self, material) -> None:
        # Semi-implicit contacts are penalty springs: this stiffness keeps the sheet's vertices within a
        # third of a radius of the surface under its weight, and 32 substeps keep it stable.
        if self.solver_name == "semi-implicit":
            material.ke, material.kd = 5.0e4, 1.0e1

    def _configure_model(self, model: newton.Model) -> None:
        # The sheet's vertices never touch each other at this spacing: no particle-particle contacts
        # (XPBD solves them whenever the model has a particle radius; on a CPU the grid costs most of a step).
        model.particle_grid = None
        model.particle_max_radius = 0.0
        if self.solver_name == "semi-implicit":
            model.soft_contact_ke, model.soft_contact_kd = 5.0e4, 1.0e1

    def record(self, recorder, frame: int, suffix: str = "") -> None:
        recorder.add_mesh_frame(f"cloth{suffix}", self.positions(), self.faces, frame)


if __name__ == "__main__":
    import sys

    from warpfields.cli import main

    sys.exit(main(["sim", "cloth", *sys.argv[1:]]))
