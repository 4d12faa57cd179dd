"""One rank of the job that tests/test_distributed.py starts with torchrun (2 gloo ranks on CPU).

It joins a process group of its own, as a user of the library would, trains and fine-tunes a tiny field
data-parallel, runs sharded queries (and the fine-tuning targets and evaluation rows through them), makes
rank 1 fail in a training step and in a query, and saves what it saw to OUT/rank<r>.npz and
OUT/rank<r>.json; then rank 1 leaves and rank 0 finds it gone. Rank 0 also saves the single-process
references: the same steps on the union of the ranks' batches, and plain queries.
"""

import datetime
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import warp as wp

import warpfields as wf
from warpfields import geometry, ops
from warpfields.distributed import BatchSampler, sharded_query
from warpfields.errors import InputError, JobError
from warpfields.evaluate import Row, evaluate_rows, reference_on_surface
from warpfields.fields.hybrid import HybridConfig, HybridField
from warpfields.torch.bridge import HybridModule
from warpfields.torch.finetune import FinetuneSettings, target_normals, tune_module
from warpfields.torch.train import TrainSettings, fit_module

CONFIG = HybridConfig(levels=2, features=2, log2_table=8, base_resolution=4, max_resolution=8, hidden_width=8)
TRAIN = TrainSettings(steps=3, batch_size=4096, pool_size=1 << 14)
TUNE = FinetuneSettings(steps=3, batch_size=4096, pool_size=1 << 14, learning_rate=1e-3)
SEED = 5


def state(prefix: str, module: HybridModule, *losses) -> dict:
    """The parameters, the last step's (summed) gradients and the last losses."""
    arrays = {f"{prefix}_loss": np.array([loss.item() for loss in losses])}
    for name, p in module.parameter_dict().items():
        arrays[f"{prefix}_{name}"] = p.detach().numpy().copy()
        arrays[f"{prefix}_grad_{name}"] = p.grad.numpy().copy()
    return arrays


def union_sampler(pool_size: int, batch_size: int, size: int):
    shares = [BatchSampler(pool_size, batch_size, SEED, rank, size) for rank in range(size)]
    return lambda: torch.cat([share() for share in shares])


def train(prefix, pool_x, pool_y, group=None, sampler=None) -> dict:
    module = HybridModule(HybridField(CONFIG, seed=SEED))
    loss = fit_module(module, pool_x, pool_y, TRAIN, SEED, progress=False, group=group, sampler=sampler)
    return state(prefix, module, loss)


def tune(prefix, pool_x, pool_f0, pool_n, group=None, sampler=None) -> dict:
    module = HybridModule(HybridField(CONFIG, seed=SEED + 1))
    losses = tune_module(module, pool_x, pool_f0, pool_n, TUNE, SEED, progress=False, group=group, sampler=sampler)
    return state(prefix, module, *losses)


def failure_message(action) -> dict:
    try:
        action()
    except JobError as error:
        return {"type": type(error).__name__, "input": isinstance(error, InputError), "message": str(error)}
    return {"type": None}


def main(out: Path) -> None:
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=120))
    group = dist.group.WORLD
    rank, size = dist.get_rank(), dist.get_world_size()
    arrays, facts = {}, {}

    points, values = geometry.sample_training_points(wf.sphere(0.5), TRAIN.pool_size, SEED)
    pool_x, pool_y = torch.from_numpy(points), torch.from_numpy(values)
    pool_n = torch.nn.functional.normalize(pool_x, dim=1)
    arrays.update(train("train", pool_x, pool_y, group))
    arrays.update(tune("tune", pool_x, pool_y, pool_n, group))
    # Every rank makes the same pool (the test compares them).
    facts["pool_digest"] = hashlib.sha256(points.tobytes() + values.tobytes()).hexdigest()
    if rank == 0:
        union = union_sampler(TRAIN.pool_size, TRAIN.batch_size, size)
        arrays.update(train("union_train", pool_x, pool_y, sampler=union))
        union = union_sampler(TRAIN.pool_size, TUNE.batch_size, size)
        arrays.update(tune("union_tune", pool_x, pool_y, pool_n, sampler=union))

    hybrid = HybridField(CONFIG, seed=SEED)
    queries = np.random.default_rng(1).uniform(-0.9, 0.9, (5001, 3)).astype(np.float32)
    spec = ops.OperatorSpec(method="polyfit", k=16, sigma=0.05, stencil="gauss", seed=9)
    cases = {
        "normal_numpy": (wf.torus(), queries, "normal"),
        "curvature_torch": (wf.torus(), torch.from_numpy(queries), "mean_curvature"),
        "gradient_warp": (hybrid, wp.array(queries, dtype=wp.vec3), "gradient"),
        "hessian_hybrid": (hybrid, queries, "hessian"),
    }
    for name, (field, xs, quantity) in cases.items():
        result = sharded_query(field, xs, quantity, spec)
        facts[f"{name}_kind"] = type(result).__name__
        if rank == 0:
            arrays[name] = np.asarray(result.numpy() if hasattr(result, "numpy") else result)
            alone = ops.query(field, xs, quantity, spec)
            arrays[f"{name}_alone"] = np.asarray(alone.numpy() if hasattr(alone, "numpy") else alone)
    arrays["value_all_ranks"] = sharded_query(wf.torus(), queries, "value", all_ranks=True)
    targets = target_normals(hybrid, queries, TUNE, None, SEED, None, group)
    facts["targets_equal"] = bool(np.array_equal(targets, target_normals(hybrid, queries, TUNE, None, SEED, None)))
    reference = reference_on_surface(wf.torus(), 400, SEED)
    rows = [Row("ad", ops.OperatorSpec(method="ad")), Row("polyfit", spec)]
    evaluate_rows(wf.torus(), reference, rows, group=group)
    if rank == 0:
        alone = evaluate_rows(wf.torus(), reference, [Row(row.label, row.spec) for row in rows])
        rates = ("normal_queries_per_s", "curvature_queries_per_s")
        facts["metrics_equal"] = all(
            {k: v for k, v in row.metrics.items() if k not in rates}
            == {k: v for k, v in a.metrics.items() if k not in rates}
            for row, a in zip(rows, alone)
        )
    facts["metrics"] = [bool(row.metrics) for row in rows]

    def failing_step():
        module = HybridModule(HybridField(CONFIG, seed=SEED))
        if rank == 1:
            calls = []

            def forward(x):
                calls.append(x)
                if len(calls) == 2:
                    raise RuntimeError("simulated fault in the second step")
                return HybridModule.forward(module, x)

            module.forward = forward
        fit_module(module, pool_x, pool_y, TRAIN, SEED, progress=False, group=group)

    facts["failed_step"] = failure_message(failing_step)
    bad = queries.copy()
    bad[4000, 1] = np.nan
    facts["failed_query"] = failure_message(lambda: sharded_query(wf.torus(), bad, "normal", spec))
    # The group still works after an agreed failure.
    arrays["after_failures"] = sharded_query(wf.torus(), queries, "value", all_ranks=True)

    if rank == 1:
        save(out, rank, arrays, facts)
        # Leave without a word, as a rank that dies would (status 0, so that torchrun lets rank 0 carry on).
        os._exit(0)
    facts["lost_rank"] = failure_message(lambda: sharded_query(wf.torus(), queries, "value"))
    save(out, rank, arrays, facts)


def save(out: Path, rank: int, arrays: dict, facts: dict) -> None:
    np.savez(out / f"rank{rank}.npz", **arrays)
    (out / f"rank{rank}.json").write_text(json.dumps(facts))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
