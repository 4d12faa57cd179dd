"""The level-set refit's optimiser: a lazy Adam over the table rows that a step's points reach."""

import numpy as np
import pytest
import warp as wp

from warpfields.fields.hybrid import HybridConfig, HybridField
from warpfields.ops import value
from warpfields.sims.level_set import TableRefit, refit_entries

# Three dense 2D levels (5^2, 9^2 and 17^2 rows): every row is one grid corner, none shared through a hash.
CONFIG = HybridConfig(dim=2, levels=3, log2_table=10, base_resolution=4, max_resolution=16, hidden_width=8)


def corner_x(config: HybridConfig) -> np.ndarray:
    """The x coordinate in [-1, 1] of the grid corner each table row stores."""
    xs = []
    for grid in config.grids():
        corners = grid.resolution + 1
        xs.append(np.arange(grid.entries) % corners * (2.0 / grid.resolution) - 1.0)
    return np.concatenate(xs)


def band(x_low: float, x_high: float, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(x_low, x_high, n), rng.uniform(-0.9, 0.9, n)], axis=1).astype(np.float32)


@pytest.fixture
def refit():
    field = HybridField(CONFIG, seed=3)
    struct = field._make_struct("cpu")
    entries = refit_entries(CONFIG, 16)
    assert entries == CONFIG.table_length
    return field, struct, TableRefit(CONFIG, struct, entries, 4096, 4096, "cpu")


def run(field, refit: TableRefit, points: np.ndarray, lr: float, steps: int) -> None:
    xs = wp.array(points, dtype=wp.vec2, device="cpu")
    targets = wp.array(value(field, points) + 0.05, dtype=float, device="cpu")
    refit.linearize(xs, targets)
    refit.steps(xs, [lr] * steps)


def table(struct) -> np.ndarray:
    return struct.table.numpy().copy()


def test_rows_away_from_the_points_keep_their_values_and_moments(refit):
    field, struct, optimiser = refit
    run(field, optimiser, band(-0.95, -0.6, 512, 0), 1e-2, 5)
    # The left band's rows now carry moments; a dense Adam would keep moving them on the right band's steps.
    before = table(struct)
    run(field, optimiser, band(0.6, 0.95, 512, 1), 1e-2, 5)
    moved = np.abs(table(struct) - before).max(axis=1) > 0
    x = corner_x(CONFIG)
    assert moved[x > 0.5].any()
    assert not moved[x < 0.3].any()


def test_first_step_moves_each_reached_entry_by_the_rate_and_clears_its_buffers(refit):
    field, struct, optimiser = refit
    before = table(struct)
    run(field, optimiser, band(-0.95, 0.95, 1024, 2), 1e-3, 1)
    step = np.abs(table(struct) - before)
    # Adam's first step from fresh moments is the rate times the gradient's sign.
    assert (step > 0).sum() > 100
    np.testing.assert_allclose(step[step > 0], 1e-3, rtol=1e-3)
    assert not optimiser.grads.numpy().any()
    assert not optimiser.touched.numpy().any()


def test_each_step_takes_its_own_rate(refit):
    # The steps on one array of points replay one recorded launch: each must take its own rate and bias
    # corrections. After a reset, two short steps (the gradient barely changes) each move a reached entry
    # by their rate; with the first step's corrections kept, the second would move it 1.35 times as far.
    field, struct, optimiser = refit
    points = band(-0.95, 0.95, 1024, 2)
    xs = wp.array(points, dtype=wp.vec2, device="cpu")
    optimiser.linearize(xs, wp.array(value(field, points) + 0.05, dtype=float, device="cpu"))
    optimiser.steps(xs, [1e-3, 2e-3])
    optimiser.reset()
    before = table(struct)
    optimiser.steps(xs, [4e-4, 4e-4])
    step = np.abs(table(struct) - before)
    assert (step > 0).sum() > 100
    np.testing.assert_allclose(np.median(step[step > 0]), 8e-4, rtol=0.02)


def test_steps_lower_the_loss(refit):
    field, struct, optimiser = refit
    points = band(-0.95, 0.95, 2048, 4)
    run(field, optimiser, points, 1e-2, 1)
    first = optimiser.loss()
    optimiser.steps(wp.array(points, dtype=wp.vec2, device="cpu"), [1e-2] * 20)
    assert optimiser.loss() < 0.2 * first
