"""Cost of one refit step of a level-set state: the field with all its levels against the state's
levels (``HybridField.coarse_levels``, those up to the refit resolution), in one run.

    python benchmarks/level_set_refit.py FIELD [--refit-resolution 128] [--batch 8192] [--steps 20]

A refit step is a forward pass, the backward into the table and an Adam step; the state's levels give
the same values as the field with the others zeroed, so the ratio is what dropping them saves.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from warpfields.io.fieldfile import load_field
from warpfields.sims.base import print_summary
from warpfields.sims.level_set import coarse_mask, refit
from warpfields.torch import HybridModule


def seconds_per_step(field, refit_resolution: int, batch: int, steps: int, device) -> float:
    module = HybridModule(field, device)
    mask = coarse_mask(module, refit_resolution)
    x = torch.rand(batch, field.dim, generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    y = torch.zeros(batch)
    refit(module, lambda k: (x, y), 2, 1e-4, mask)  # first use compiles the kernels
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        refit(module, lambda k: (x, y), steps, 1e-4, mask)
        best = min(best, (time.perf_counter() - start) / steps)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("field", help="hybrid field file")
    parser.add_argument("--refit-resolution", type=int, default=128, help="finest level the refit moves")
    parser.add_argument("--batch", type=int, default=8192, help="points per refit step (default 8192)")
    parser.add_argument("--steps", type=int, default=20, help="refit steps per timing (best of 3)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    field = load_field(args.field)
    coarse = field.coarse_levels(args.refit_resolution)
    if coarse is None:
        raise SystemExit(f"{args.field}: its levels up to {args.refit_resolution} are no level series of their own")
    rows = []
    for name, candidate in (("all levels", field), ("state's levels", coarse)):
        seconds = seconds_per_step(candidate, args.refit_resolution, args.batch, args.steps, args.device)
        rows.append((name, candidate.config.levels, candidate.config.table_length, 1e3 * seconds))
    rows = [(*row, rows[0][-1] / row[-1]) for row in rows]
    title = f"refit step, {args.field}, batch {args.batch}, refit resolution {args.refit_resolution}"
    print_summary(title, rows, ("table", "levels", "entries x features", "ms per refit step", "speed-up"))


if __name__ == "__main__":
    main()
