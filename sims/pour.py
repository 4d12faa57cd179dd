"""Particles poured onto the obstacle from a column above it, piling into a heap (Newton).

Particle-particle contacts are on, so the particles pile up on the obstacle and the ground.
Run on its own: ``python -m warpfields.sims.pour --field F --out run.usd`` (the options of
``warpfields sim pour``).
"""

from __future__ import annotations

import math

import newton
import numpy as np
import warp as wp

from warpfields.errors import InputError

from .base import check_count
from .newton_scene import NewtonScene, _finite

_PENALTY = (1.0e3, 3.0, 1.0)  # contact stiffness, damping and friction stiffness for the semi-implicit solver


class PourScene(NewtonScene):
    """``particles`` particles in a column ``width`` particles wide, released above the middle of
    the obstacle at ``speed`` [world units/s] downwards, 2.1 radii apart with a seeded jitter of a
    tenth of a radius. Other arguments as ``NewtonScene``."""

    name = "pour"

    def __init__(
        self,
        field=None,
        spec="polyfit",
        mesh=None,
        particles: int = 1500,
        width: int = 8,
        speed: float = 1.0,
        particle_mass: float = 0.01,
        **kwargs,
    ):
        self.particles = check_count(particles, "particles")
        self.width = check_count(width, "width")
        self.speed = _finite("speed", speed, 0.0)
        self.particle_mass = _finite("particle_mass", particle_mass, 0.0, open_low=True)
        super().__init__(field, spec, mesh, **kwargs)
        self.settings.update(
            particles=self.particles, width=self.width, speed=self.speed, particle_mass=self.particle_mass
        )

    def _populate(self, builder: newton.ModelBuilder) -> None:
        lower, upper = self.bounds
        spacing = 2.1 * self.radius
        layers = math.ceil(self.particles / self.width**2)
        i, k, j = np.unravel_index(np.arange(self.particles), (self.width, self.width, layers), order="F")
        grid = np.stack([i, j, k], axis=1) - np.array([0.5 * (self.width - 1), 0.0, 0.5 * (self.width - 1)])
        center = 0.5 * (lower + upper)
        base = np.array([center[0], upper[1] + 0.1 * float(np.max(upper - lower)), center[2]])
        jitter = np.random.default_rng(self.seed).uniform(-0.1, 0.1, (self.particles, 3)) * self.radius
        positions = base + spacing * grid + jitter
        if not np.all(np.isfinite(positions)):
            raise InputError("pour: the column of particles is not finite (check radius and bounds)")
        builder.add_particles(
            pos=[wp.vec3(*p) for p in positions],
            vel=[wp.vec3(0.0, -self.speed, 0.0)] * self.particles,
            mass=[self.particle_mass] * self.particles,
            radius=[self.radius] * self.particles,
        )

    def _configure_material(self, material) -> None:
        # Semi-implicit contacts are penalty springs and dampers: stiff enough to carry a heap a few dozen
        # particles deep within a fraction of a radius, soft enough for 32 substeps with these light particles.
        if self.solver_name == "semi-implicit":
            material.ke, material.kd, material.kf = _PENALTY

    def _configure_model(self, model: newton.Model) -> None:
        # Newton's default grid has 128^3 cells, whose clearing on every step costs more than the contacts on a CPU.
        model.particle_grid = wp.HashGrid(32, 32, 32, device=model.device)
        model.particle_mu = self.friction
        if self.solver_name == "semi-implicit":
            model.soft_contact_ke, model.soft_contact_kd, model.soft_contact_kf = _PENALTY
            model.particle_ke, model.particle_kd, model.particle_kf = _PENALTY

    def record(self, recorder, frame: int, suffix: str = "") -> None:
        velocities = self.state.particle_qd.numpy()
        recorder.add_points(f"particles{suffix}", self.positions(), 2.0 * self.radius, velocities, frame)


if __name__ == "__main__":
    import sys

    from warpfields.cli import main

    sys.exit(main(["sim", "pour", *sys.argv[1:]]))
