"""Data-parallel training and sharded queries over torch.distributed, with 2 gloo ranks on CPU started by
torchrun, and how a job ends when a rank fails."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import warpfields as wf
from warpfields import ops
from warpfields.cli import main
from warpfields.distributed import BatchSampler, sharded_query, share_cpu_threads
from warpfields.fields.hybrid import HybridConfig, HybridField
from warpfields.io.fieldfile import load_field
from warpfields.torch.bridge import HybridModule
from warpfields.torch.train import TrainSettings, fit_module

HERE = Path(__file__).resolve().parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
NAMES = ("table", "w_in", "w_hidden", "b_hidden", "w_out", "b_out")
# The tiny field of tests/distributed_job.py.
CONFIG = HybridConfig(levels=2, features=2, log2_table=8, base_resolution=4, max_resolution=8, hidden_width=8)


def torchrun(*args, cwd, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, **env}
    return subprocess.run(
        [*TORCHRUN, *map(str, args)], cwd=cwd, env=environment, capture_output=True, text=True, timeout=1200
    )


def error_lines(result: subprocess.CompletedProcess, command: str) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith(f"warpfields {command}: error:")]


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """What each rank of tests/distributed_job.py saw (rank 0 also holds the single-process references)."""
    out = tmp_path_factory.mktemp("job")
    # One Warp thread per rank and for the reference: the ranks sum each half of a batch and add the halves,
    # the reference sums the whole batch in one pass.
    result = torchrun(HERE / "distributed_job.py", out, cwd=out, WARPFIELDS_THREADS="1")
    assert result.returncode == 0, result.stderr[-4000:]
    return [
        (dict(np.load(out / f"rank{rank}.npz")), json.loads((out / f"rank{rank}.json").read_text()))
        for rank in range(2)
    ]


@pytest.mark.parametrize("loop", ["train", "tune"])
def test_data_parallel_steps_equal_one_process_on_the_union_of_the_batches(job, loop):
    """Three Adam steps with 2 ranks equal three steps of one process on the union of the ranks' batches, to
    float32 summation tolerance.

    The only difference is the order of the float32 gradient sums (two halves of 2048 points added, against
    one pass over 4096): a relative 1e-7 typically, at most 4096 * 2**-24 = 2.4e-4 of the summed magnitudes.
    Adam's update is the learning rate times a ratio of gradient moments, so each step may move a parameter
    by at most lr * 2.4e-4 more (unless a gradient is zero to within rounding, which these batches do not
    produce); a missing or wrong all-reduce moves them by about lr per step. The last step's summed gradients
    and the losses agree to the same relative tolerance; they also catch a wrong loss scale, which Adam's
    updates do not show."""
    (ranks0, facts0), (ranks1, facts1) = job
    assert facts0["pool_digest"] == facts1["pool_digest"]
    lr = {"train": 1e-2, "tune": 1e-3}[loop]
    for name in NAMES:
        data_parallel, alone = ranks0[f"{loop}_{name}"], ranks0[f"union_{loop}_{name}"]
        np.testing.assert_array_equal(data_parallel, ranks1[f"{loop}_{name}"])  # every rank took the same steps
        np.testing.assert_allclose(data_parallel, alone, rtol=0, atol=3 * lr * 2.4e-4)
        gradient, alone_gradient = ranks0[f"{loop}_grad_{name}"], ranks0[f"union_{loop}_grad_{name}"]
        np.testing.assert_allclose(gradient, alone_gradient, rtol=0, atol=2.4e-4 * np.abs(alone_gradient).max())
    np.testing.assert_allclose(ranks0[f"{loop}_loss"], ranks0[f"union_{loop}_loss"], rtol=2.4e-4)
    # The steps did something: three Adam steps moved the table by about the learning rate.
    initial = HybridField(CONFIG, seed=5 if loop == "train" else 6).parameters["table"]
    assert np.abs(ranks0[f"{loop}_table"] - initial).max() > 0.5 * lr


def test_sharded_queries_equal_one_process_exactly(job):
    """Rows split over the ranks come back in the caller's order, as the caller's kind, bit for bit equal to
    one query (polyfit seeds follow each row's index in the whole batch)."""
    (ranks0, facts0), (ranks1, facts1) = job
    for name, kind in [
        ("normal_numpy", "ndarray"),
        ("curvature_torch", "Tensor"),
        ("gradient_warp", "array"),
        ("hessian_hybrid", "ndarray"),
    ]:
        assert facts0[f"{name}_kind"] == kind and facts1[f"{name}_kind"] == "NoneType"
        assert ranks0[name].tobytes() == ranks0[f"{name}_alone"].tobytes(), name
    values = ops.value(wf.torus(), np.random.default_rng(1).uniform(-0.9, 0.9, (5001, 3)).astype(np.float32))
    assert facts0["targets_equal"] and facts1["targets_equal"]
    # Evaluation rows: rank 0 gets the single process's metrics, the others none.
    assert facts0["metrics_equal"] and facts0["metrics"] == [True, True] and facts1["metrics"] == [False, False]
    for ranks in (ranks0, ranks1):
        np.testing.assert_array_equal(ranks["value_all_ranks"], values)
        np.testing.assert_array_equal(ranks["after_failures"], values)


def test_a_failing_rank_stops_every_rank_with_its_error(job):
    (_, facts0), (_, facts1) = job
    step = "rank 1 of 2 failed: RuntimeError: simulated fault in the second step"
    assert facts0["failed_step"] == {"type": "JobError", "input": False, "message": step}
    assert facts1["failed_step"]["message"] == step
    for facts in (facts0, facts1):
        failed = facts["failed_query"]
        assert failed["type"] == "JobInputError" and failed["input"]
        assert (
            failed["message"].startswith("rank 1 of 2 (points[2500:5001]) failed: ") and "finite" in failed["message"]
        )
    lost = facts0["lost_rank"]
    assert lost["type"] == "JobError" and lost["message"].startswith("lost contact with the other ranks (")


def test_batch_shares_make_one_batch_from_the_whole_pool():
    pool, batch = 1001, 64
    shares = [BatchSampler(pool, batch, 3, rank, 3) for rank in range(3)]
    drawn = [torch.cat([share() for _ in range(20)]) for share in shares]
    assert [len(d) for d in drawn] == [20 * 21, 20 * 21, 20 * 22]
    for rank, rows in enumerate(drawn):
        assert (rows % 3 == rank).all() and rows.min() >= 0 and rows.max() < pool
        assert len(torch.unique(rows)) > 200  # draws spread over the share's 334 rows
    # Each rank has a stream of its own, not the same draws shifted to its rows.
    assert not torch.equal(drawn[0][:400] // 3, drawn[1][:400] // 3)
    # One process draws the stream of a generator seeded with the seed, as before there were ranks.
    generator = torch.Generator().manual_seed(3)
    alone = BatchSampler(pool, batch, 3)
    for _ in range(3):
        assert torch.equal(alone(), torch.randint(0, pool, (batch,), generator=generator))


def test_one_process_trains_exactly_as_without_ranks():
    """``fit_module`` in one process is the plain algorithm: the same seeded batches, the L1 mean, Adam with the
    decoder's smaller rate and the exponential decay, bit for bit."""
    settings = TrainSettings(steps=4, batch_size=512, pool_size=4096)
    rng = np.random.default_rng(0)
    pool_x = torch.from_numpy(rng.uniform(-1, 1, (4096, 3)).astype(np.float32))
    pool_y = pool_x.norm(dim=1) - 0.5
    module = HybridModule(HybridField(CONFIG, seed=2))
    fit_module(module, pool_x, pool_y, settings, seed=7, progress=False)

    plain = HybridModule(HybridField(CONFIG, seed=2))
    decoder = [p for name, p in plain.named_parameters() if name != "table"]
    groups = [{"params": [plain.table], "lr": 1e-2}, {"params": decoder, "lr": 1e-3}]
    optimizer = torch.optim.Adam(groups, betas=(0.9, 0.99), eps=1e-15)
    decay = np.log(1e-4 / 1e-2) / 3
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: float(np.exp(decay * step)))
    generator = torch.Generator().manual_seed(7)
    for _ in range(4):
        batch = torch.randint(0, 4096, (512,), generator=generator)
        loss = (plain(pool_x[batch]) - pool_y[batch]).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    for name in NAMES:
        assert torch.equal(getattr(module, name), getattr(plain, name)), name


def test_without_a_process_group_a_sharded_query_is_a_plain_query():
    points = np.random.default_rng(2).uniform(-0.9, 0.9, (300, 3))
    spec = ops.OperatorSpec(method="polyfit", k=16, sigma=0.05, stencil="gauss", seed=4)
    np.testing.assert_array_equal(
        sharded_query(wf.torus(), points, "normal", spec), ops.query(wf.torus(), points, "normal", spec)
    )


def test_ranks_share_the_cores_of_their_machine(monkeypatch):
    monkeypatch.setenv("WARPFIELDS_THREADS", "")  # unset for the function, and restored afterwards
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    cores = len(os.sched_getaffinity(0))
    threads = torch.get_num_threads()
    try:
        assert share_cpu_threads() == max(1, cores // 2) == torch.get_num_threads()
        assert os.environ["WARPFIELDS_THREADS"] == str(max(1, cores // 2))
        monkeypatch.setenv("WARPFIELDS_THREADS", "3")
        assert share_cpu_threads() == 3 == torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)


def test_torchrun_train_then_query_rank_0_writes_and_prints(tmp_path, monkeypatch):
    trained = torchrun(
        "-m", "warpfields", "train", "circle", "--preset", "tiny", "--steps", "3", "--out", "c.wfield", cwd=tmp_path
    )
    assert trained.returncode == 0, trained.stderr[-4000:]
    assert sum(line.startswith("trained tiny hash field of circle") for line in trained.stdout.splitlines()) == 1
    assert trained.stderr.count("3/3") >= 1 and trained.stderr.count("train:   0%") == 1  # one progress bar
    field = load_field(tmp_path / "c.wfield")
    assert field.dim == 2 and field.metadata["training"]["settings"]["steps"] == 3

    points = np.random.default_rng(0).uniform(-0.8, 0.8, (3001, 2))
    np.save(tmp_path / "p.npy", points)
    query = ["query", "c.wfield", "--points", "p.npy", "--quantity", "mean-curvature", "--out"]
    queried = torchrun("-m", "warpfields", *query, "ranks.npy", cwd=tmp_path)
    assert queried.returncode == 0, queried.stderr[-4000:]
    assert queried.stdout.count("->") == 1
    monkeypatch.chdir(tmp_path)
    assert main([*query, "alone.npy"]) == 0
    assert (tmp_path / "ranks.npy").read_bytes() == (tmp_path / "alone.npy").read_bytes()


def test_a_rank_without_the_input_ends_the_job_with_one_line(tmp_path):
    np.save(tmp_path / "p.npy", np.zeros((10, 3)))
    (tmp_path / "elsewhere").mkdir()
    args = ["query", "torus", "--points", "p.npy", "--quantity", "normal", "--out", "n.npy"]
    result = torchrun(HERE / "distributed_cli.py", *args, cwd=tmp_path, FAULT="elsewhere")
    assert result.returncode != 0
    assert error_lines(result, "query") == [
        "warpfields query: error: rank 1 of 2 failed: points file 'p.npy' does not exist"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "p.npy"]


def test_a_killed_rank_ends_the_job_with_one_line_and_no_output(tmp_path):
    args = ["train", "circle", "--preset", "tiny", "--steps", "6", "--out", "c.wfield"]
    result = torchrun(HERE / "distributed_cli.py", *args, cwd=tmp_path, FAULT="killed")
    assert result.returncode != 0
    (line,) = error_lines(result, "train")
    assert line == (
        "warpfields train: error: stopped by the launcher (SIGTERM): another rank failed or the job was interrupted"
    )
    assert list(tmp_path.iterdir()) == []
