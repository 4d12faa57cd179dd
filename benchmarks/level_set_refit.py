"""Cost of the level-set refit on a hybrid field, in one run: an exact Adam step through the torch bridge
(forward, backward into every parameter, torch's Adam on the refit's table entries) against a step of
``TableRefit`` (the decoder linearised: the encoding's gathers and scatters and a Warp Adam on the same
entries), and the linearisation that starts each of its rounds; for the field with all its levels and for
the state's levels (``HybridField.coarse_levels``, those up to the refit resolution).

    python benchmarks/level_set_refit.py FIELD [--refit-resolution 128] [--batch 8192] [--round 65536]
        [--steps 20]

Times are the best of 3 (wall) of ``--steps`` steps, and the process's CPU time of those 3 runs.
"""

import argparse
import time

import numpy as np
import torch
import warp as wp

from warpfields.io.fieldfile import load_field
from warpfields.sims.base import print_summary
from warpfields.sims.level_set import StateField, TableRefit, refit_entries
from warpfields.torch import HybridModule


def best_of_three(run, steps: int) -> tuple[float, float]:
    """Milliseconds per step: the best wall time of 3 runs of ``run(steps)`` and the mean CPU time."""
    run(2)  # the first use compiles kernels
    wall, cpu = np.inf, 0.0
    for _ in range(3):
        start, start_cpu = time.perf_counter(), time.process_time()
        run(steps)
        wp.synchronize()
        wall = min(wall, time.perf_counter() - start)
        cpu += time.process_time() - start_cpu
    return 1e3 * wall / steps, 1e3 * cpu / (3 * steps)


def exact_steps(field, entries: int, x: torch.Tensor, y: torch.Tensor, device):
    module = HybridModule(field, device)
    optimizer = torch.optim.Adam([module.table], lr=1e-4, betas=(0.9, 0.99), eps=1e-15)
    mask = torch.zeros_like(module.table)
    mask[:entries] = 1.0

    def run(steps: int) -> None:
        for _ in range(steps):
            loss = ((module(x) - y) ** 2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            module.table.grad.mul_(mask)
            optimizer.step()

    return run


def linearized_steps(field, entries: int, batch: int, points: wp.array, targets: wp.array, device):
    """A function running that many linearised steps, and one running that many linearisations."""
    state = StateField(field.config, field.warp(device), device, field.normalization, field.metadata)
    refit = TableRefit(field.config, state.warp(device), entries, batch, len(points), device)
    refit.linearize(points, targets)

    def linearize(rounds: int) -> None:
        for _ in range(rounds):
            refit.linearize(points, targets)

    return lambda steps: refit.steps(points, np.full(steps, 1e-4)), linearize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("field", help="hybrid field file")
    parser.add_argument("--refit-resolution", type=int, default=128, help="finest level the refit moves")
    parser.add_argument("--batch", type=int, default=8192, help="points per refit step (default 8192)")
    parser.add_argument("--round", type=int, default=65536, help="points of a linearised round (default 65536)")
    parser.add_argument("--steps", type=int, default=20, help="refit steps per timing (best of 3)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    field = load_field(args.field)
    coarse = field.coarse_levels(args.refit_resolution)
    if coarse is None:
        raise SystemExit(f"{args.field}: its levels up to {args.refit_resolution} are no level series of their own")
    generator = np.random.default_rng(0)
    x = generator.uniform(-0.8, 0.8, size=(args.round, field.dim)).astype(np.float32)
    points = wp.array(x, dtype=wp.vec3 if field.dim == 3 else wp.vec2, device=args.device)
    targets = wp.zeros(args.round, dtype=float, device=args.device)
    x_batch = torch.tensor(x[: args.batch], device=wp.device_to_torch(args.device))
    y_batch = torch.zeros(args.batch, device=x_batch.device)
    rows = []
    for name, candidate in (("all levels", field), ("state's levels", coarse)):
        entries = refit_entries(candidate.config, args.refit_resolution)
        exact = best_of_three(exact_steps(candidate, entries, x_batch, y_batch, args.device), args.steps)
        step, linearize = linearized_steps(candidate, entries, args.batch, points, targets, args.device)
        linear = best_of_three(step, args.steps)
        rounds = best_of_three(linearize, 2)
        levels, length = candidate.config.levels, candidate.config.table_length
        rows.append((name, levels, length, *exact, *linear, *rounds, exact[1] / linear[1]))
    title = (
        f"refit step, {args.field}, batch {args.batch}, round {args.round}, refit resolution {args.refit_resolution}"
    )
    headers = ("table", "levels", "entries x features", "exact ms/step", "CPU ms", "linearised ms/step", "CPU ms")
    print_summary(title, rows, (*headers, "linearisation ms/round", "CPU ms", "CPU speed-up per step"))


if __name__ == "__main__":
    main()
