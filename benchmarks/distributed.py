"""Data-parallel scaling on one machine: N ranks x 1 thread (torchrun, gloo) against 1 process x N threads,
with 1 process x 1 thread as the base, in one run (the three alternate, ``--rounds`` times; medians).

    python benchmarks/distributed.py [--ranks 2] [--rounds 3] [--steps 8] [--points 65536] [--json F]

Training: ``fit_module`` steps of the ``fast`` preset's field and batch (2^15 points) on a sphere's signed
distance (the cost does not depend on the target). Queries: values and polyfit normals (k = 32) of that
field at ``--points`` points, split over the ranks and gathered on rank 0 (``Ranks.query``). Efficiency is
the throughput over N times the single-thread throughput. The throughput per CPU second of all the
processes (their work, spinning included) does not depend on how much of a shared machine each one gets.
The ranks' own costs are measured apart: the all-reduce of the gradients and the optimiser step, which
every rank repeats on the whole field.
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

METRICS = (("train_steps_per_s", "train steps"), ("values_per_s", "values"), ("normals_per_s", "polyfit normals"))


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

    def synchronised(action) -> tuple[float, float]:
        """Wall-clock seconds of ``action`` on every rank at once, and the CPU seconds all the ranks spent."""
        if group is not None:
            dist.barrier()
        started, cpu_started = time.perf_counter(), time.process_time()
        action()
        seconds = time.perf_counter() - started
        cpu = torch.tensor([time.process_time() - cpu_started], dtype=torch.float64)
        if group is not None:
            dist.all_reduce(cpu)
        return seconds, cpu.item()

    settings = replace(TRAIN_PRESETS["fast"], steps=steps)
    rng = np.random.default_rng(0)
    pool_x = torch.from_numpy(rng.uniform(-1, 1, (1 << 18, 3)).astype(np.float32))
    pool_y = pool_x.norm(dim=1) - 0.5
    module = HybridModule(HybridField(preset_config("fast"), seed=0))
    fit_module(module, pool_x, pool_y, replace(settings, steps=2), 0, progress=False, group=group)
    train_seconds, train_cpu = synchronised(
        lambda: fit_module(module, pool_x, pool_y, settings, 1, progress=False, group=group)
    )

    parameters = list(module.parameters())
    loss = torch.zeros(())
    reduce_seconds = synchronised(lambda: [ranks.sum_gradients(parameters, loss) for _ in range(steps)])[0] / steps
    optimizer = torch.optim.Adam(parameters, betas=(0.9, 0.99), eps=1e-15)
    step_seconds = synchronised(lambda: [optimizer.step() for _ in range(steps)])[0] / steps

    field = module.to_field()
    xs = rng.uniform(-0.9, 0.9, (points, 3)).astype(np.float32)
    figures = {"train_steps_per_s": steps / train_seconds, "train_steps_per_cpu_s": steps / train_cpu}
    for name, quantity, spec in (
        ("values", "value", OperatorSpec(method="ad")),
        ("normals", "normal", OperatorSpec.for_field(field, k=32)),
    ):
        ranks.query(field, xs[:4096], quantity, spec)
        seconds, cpu = synchronised(lambda q=quantity, s=spec: ranks.query(field, xs, q, s))
        figures[f"{name}_per_s"], figures[f"{name}_per_cpu_s"] = points / seconds, points / cpu
    return {
        **figures,
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
        # A process group of its own (setsid), as torchrun gives each rank: on a shared machine the scheduler shares
        # the cores between such groups, so the ranks get one share each (the CPU-time figures do not depend on it).
        subprocess.run(command, env=env, check=True, capture_output=True, text=True, start_new_session=True)
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
    print(f"medians of {args.rounds} rounds")
    for unit, note in (
        ("s", f"wall clock; in brackets: over {n} x the single thread's"),
        ("cpu_s", "per CPU second of all the processes; in brackets: over the single thread's"),
    ):
        print(f"\nthroughput {note}")
        print(f"{'configuration':24s}" + "".join(f"{title:>22s}" for _, title in METRICS))
        for name, figures in medians.items():
            cells = []
            for key, _ in METRICS:
                key = key.replace("_per_s", f"_per_{unit}")
                ratio = figures[key] / ((n if unit == "s" else 1) * base[key])
                cells.append(f"{figures[key]:.3g}{'' if figures is base else f' ({ratio:.0%})'}".rjust(22))
            print(f"{name:24s}{''.join(cells)}")
    reduce_ms = medians[f"{n} ranks x 1 thread"]["all_reduce_ms"]
    adam = ", ".join(f"{name} {figures['optimizer_step_ms']:.0f} ms" for name, figures in medians.items())
    print(f"\nper training step and rank: all-reduce of the gradients {reduce_ms:.0f} ms; Adam step {adam}")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "medians": medians}, indent=2))


if __name__ == "__main__":
    main()
