"""Data-parallel scaling on one machine: N ranks x 1 thread (torchrun, gloo) against 1 process x N threads,
with 1 process x 1 thread as the base, in one run (the three alternate, ``--rounds`` times; medians).

    python benchmarks/distributed.py [--ranks 2] [--rounds 3] [--steps 8] [--points 65536] [--json F]

Training: ``fit_module`` steps of the ``fast`` preset's field and batch (2^15 points) on a sphere's signed
distance (the cost does not depend on the target). Queries: values and polyfit normals (k = 32) of that
field at ``--points`` points, split over the ranks and gathered on rank 0 (``Ranks.query``). Efficiency is
the throughput over N times the single-thread throughput. The ranks' own costs are measured apart: the
all-reduce of the gradients and the optimiser step, which every rank repeats on the whole field.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

METRICS = (
    ("train_steps_per_s", "train steps/s"),
    ("values_per_s", "values/s"),
    ("normals_per_s", "polyfit normals/s"),
)


def measure(steps: int, points: int) -> dict:
    """One configuration's figures (every rank runs this; rank 0's are returned)."""
    import numpy as np
    import torch
    import torch.distributed as dist

    from warpfields.distributed import Ranks, launched, share_cpu_threads
    from warpfields.fields.hybrid import HybridField, preset_config
    from warpfields.ops.host import OperatorSpec
    from warpfields.torch.bridge import HybridModule
    from warpfields.torch.train import TRAIN_PRESETS, fit_module

    share_cpu_threads()
    group = None
    if launched():
        dist.init_process_group("gloo")
        group = dist.group.WORLD
    ranks = Ranks(group)

    def synchronised(action) -> float:
        if group is not None:
            dist.barrier()
        started = time.perf_counter()
        action()
        return time.perf_counter() - started

    settings = replace(TRAIN_PRESETS["fast"], steps=steps)
    rng = np.random.default_rng(0)
    pool_x = torch.from_numpy(rng.uniform(-1, 1, (1 << 18, 3)).astype(np.float32))
    pool_y = pool_x.norm(dim=1) - 0.5
    module = HybridModule(HybridField(preset_config("fast"), seed=0))
    fit_module(module, pool_x, pool_y, replace(settings, steps=2), 0, progress=False, group=group)
    train_seconds = synchronised(lambda: fit_module(module, pool_x, pool_y, settings, 1, progress=False, group=group))

    parameters = list(module.parameters())
    loss = torch.zeros(())
    reduce_seconds = synchronised(lambda: [ranks.sum_gradients(parameters, loss) for _ in range(steps)]) / steps
    optimizer = torch.optim.Adam(parameters, betas=(0.9, 0.99), eps=1e-15)
    step_seconds = synchronised(lambda: [optimizer.step() for _ in range(steps)]) / steps

    field = module.to_field()
    xs = rng.uniform(-0.9, 0.9, (points, 3)).astype(np.float32)
    rates = {}
    for name, quantity, spec in (
        ("values_per_s", "value", OperatorSpec(method="ad")),
        ("normals_per_s", "normal", OperatorSpec.for_field(field, k=32)),
    ):
        ranks.query(field, xs[:4096], quantity, spec)
        rates[name] = points / synchronised(lambda q=quantity, s=spec: ranks.query(field, xs, q, s))
    return {
        "train_steps_per_s": steps / train_seconds,
        **rates,
        "all_reduce_ms": 1e3 * reduce_seconds,
        "optimizer_step_ms": 1e3 * step_seconds,
        "parameters": sum(p.numel() for p in parameters),
        "rank": ranks.rank,
    }


def run_configuration(ranks: int, threads: int, args) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "figures.json"
        launcher = [sys.executable]
        if ranks > 1:
            launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks)]
        command = [*launcher, __file__, "--worker", str(out), "--steps", str(args.steps), "--points", str(args.points)]
        env = {**os.environ, "WARPFIELDS_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
        subprocess.run(command, env=env, check=True, capture_output=True, text=True)
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=2, help="ranks (and threads of the single process)")
    parser.add_argument("--rounds", type=int, default=3, help="times each configuration runs (medians)")
    parser.add_argument("--steps", type=int, default=8, help="timed training steps")
    parser.add_argument("--points", type=int, default=1 << 16, help="query points")
    parser.add_argument("--json", default=None, help="also write every run's figures here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        figures = measure(args.steps, args.points)
        if figures["rank"] == 0:
            Path(args.worker).write_text(json.dumps(figures))
        return

    n = args.ranks
    configurations = {
        "1 process x 1 thread": (1, 1),
        f"1 process x {n} threads": (1, n),
        f"{n} ranks x 1 thread": (n, 1),
    }
    runs = {name: [] for name in configurations}
    for round_index in range(args.rounds):
        for name, (ranks, threads) in configurations.items():
            runs[name].append(run_configuration(ranks, threads, args))
            print(f"round {round_index + 1}/{args.rounds}: {name} done", file=sys.stderr, flush=True)
    medians = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()}
    base = medians["1 process x 1 thread"]
    print(f"fast field ({base['parameters']:.0f} parameters), batch 2^15, {args.points} query points, ", end="")
    print(f"medians of {args.rounds} rounds; efficiency: throughput over {n} x the single-thread throughput")
    print(f"{'configuration':24s}" + "".join(f"{title:>26s}" for _, title in METRICS) + "  all-reduce ms  Adam ms")
    for name, figures in medians.items():
        cells = []
        for key, _ in METRICS:
            efficiency = "" if figures is base else f" ({figures[key] / (n * base[key]):.0%})"
            cells.append(f"{figures[key]:.3g}{efficiency}".rjust(26))
        print(f"{name:24s}{''.join(cells)}{figures['all_reduce_ms']:>15.1f}{figures['optimizer_step_ms']:>9.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "medians": medians}, indent=2))


if __name__ == "__main__":
    main()
