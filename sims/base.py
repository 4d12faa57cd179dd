"""The shared simulation framework: Warp-array state, ``step(dt)``, ``run`` with a recorder,
blow-up detection, world-space field geometry (collider mesh, object bounds) and the summary table."""

from __future__ import annotations

import math
import sys
import time
from abc import ABC, abstractmethod

import numpy as np
import warp as wp
from tqdm import tqdm

from warpfields.errors import InputError
from warpfields.fields import Field
from warpfields.geometry import extract_level_set


class SimulationError(InputError):
    """A run stopped: the state became non-finite (or similar). ``step`` is the global step index."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


def check_dt(dt) -> float:
    if isinstance(dt, bool) or not isinstance(dt, int | float) or not math.isfinite(dt) or dt <= 0:
        raise InputError(f"dt: expected a finite time step > 0, got {dt!r}")
    return float(dt)


def check_count(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise InputError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


class Simulation(ABC):
    """Base of every scene: state lives in Warp arrays on ``device``; subclasses implement
    ``_advance(dt)`` (one step, no host round trip), ``record(recorder, frame)`` and
    ``state_arrays()`` (what must stay finite)."""

    name = "simulation"

    def __init__(self, device=None):
        self.device = wp.get_device(device)
        self.steps = 0
        self.time = 0.0
        self.step_seconds: list[float] = []
        self.substeps = 1

    @abstractmethod
    def _advance(self, dt: float) -> None:
        """Advance the state by one step of ``dt``."""

    def state_arrays(self) -> dict[str, wp.array]:
        return {}

    @abstractmethod
    def record(self, recorder, frame: int) -> None:
        """Write the current state as time code ``frame``."""

    def step(self, dt: float) -> None:
        dt = check_dt(dt)
        start = time.perf_counter()
        self._advance(dt)
        wp.synchronize_device(self.device)
        self.step_seconds.append(time.perf_counter() - start)
        self.steps += 1
        self.time += dt

    @property
    def seconds_per_step(self) -> float:
        """Median wall time of a step (the first launches also compile kernels)."""
        return float(np.median(self.step_seconds)) if self.step_seconds else math.nan

    def first_bad_step(self) -> int | None:
        """The step at which the state first became non-finite, or None. Subclasses that
        track it per element in their kernels report the exact step; this checks the state now."""
        for array in self.state_arrays().values():
            if not np.all(np.isfinite(array.numpy())):
                return self.steps - 1
        return None

    def check_finite(self) -> None:
        bad = self.first_bad_step()
        if bad is not None:
            raise SimulationError(
                f"{self.name}: the state became non-finite at step {bad} (time {self.time:.6g}); "
                "the simulation blew up: use a smaller dt or more substeps",
                bad,
            )

    def run(self, frames: int, dt: float, substeps: int | None = None, recorder=None, progress: bool = True) -> None:
        """Advance ``frames`` frames of length ``dt``, each in ``substeps`` steps (default: the
        scene's ``substeps``), recording frame
        0 (the initial state) and every frame after it. A blow-up raises ``SimulationError``
        before the bad frame is recorded, so the frames already written stay valid."""
        frames = check_count(frames, "frames")
        substeps = check_count(self.substeps if substeps is None else substeps, "substeps")
        dt = check_dt(dt)
        if recorder is not None and self.steps == 0:
            self.record(recorder, 0)
        for frame in tqdm(range(1, frames + 1), desc=self.name, unit="frame", disable=None if progress else True):
            for _ in range(substeps):
                self.step(dt / substeps)
            self.check_finite()
            if recorder is not None:
                self.record(recorder, frame)


# --- field geometry ------------------------------------------------------------------


def surface_mesh(field: Field, resolution: int = 96, device=None) -> tuple[np.ndarray, np.ndarray]:
    """The zero level set of a 3D field (marching cubes over its domain), in world coordinates."""
    if field.dim != 3:
        raise InputError(f"field: expected a 3D field, got a {field.dim}D one")
    vertices, faces = extract_level_set(field, resolution, device)
    return field.normalization.from_field(vertices), faces


# --- summary table -------------------------------------------------------------------


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_table(rows: list[tuple], headers: tuple[str, ...]) -> str:
    """A plain-text table; floats with 4 significant digits."""
    text = [tuple(map(_cell, row)) for row in [headers, *rows]]
    widths = [max(len(row[c]) for row in text) for c in range(len(headers))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in text]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_summary(title: str, rows: list[tuple], headers: tuple[str, ...] = ("metric", "value"), file=None) -> None:
    print(f"\n{title}\n{format_table(rows, headers)}", file=file or sys.stdout)


__all__ = [
    "Simulation",
    "SimulationError",
    "check_count",
    "check_dt",
    "format_table",
    "print_summary",
    "surface_mesh",
]
