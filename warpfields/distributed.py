"""Data-parallel training and sharded queries over ``torch.distributed``.

A command started by ``torchrun`` (which sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT) runs as one
rank of a job (``run_command``): it joins the process group (NCCL on the GPU ``LOCAL_RANK`` when the device
is CUDA, gloo on CPU), takes its share of the machine's cores, and leaves printing and writing to rank 0.

Replicated on every rank: the inputs (each rank reads the field, mesh and points files itself), the model
and the optimiser state, the sample pool (made from the seed). Split: each training step's batch
(``BatchSampler``), whose gradient sums are all-reduced so that every rank takes the same optimiser step;
the fine-tuning targets (normals of the pool); the rows of a query (``Ranks.query``, ``sharded_query``),
gathered back in the caller's order.

Failures: every collective comes after a checkpoint (``Ranks.checkpoint``), an all-reduced error flag. A
rank that fails inside a checkpointed block still joins the checkpoint, with its flag set, so every rank
stops there with the same ``JobError``. A rank that dies or hangs makes the others' collectives fail: at
once when its connection closes, else after ``WARPFIELDS_TIMEOUT`` seconds (default 600).

torch is imported only where a process group is in use, so single-process commands do not load it.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import re
import signal
import traceback

import numpy as np
import warp as wp

from . import parallel
from .errors import InputError, JobError, JobInputError
from .ops.host import query

LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
DEFAULT_TIMEOUT = 600.0


def launched() -> bool:
    """Whether this process is one rank of a job that ``torchrun`` (or a launcher setting the same variables)
    started."""
    return all(name in os.environ for name in LAUNCHER_VARIABLES)


def collective_timeout() -> float:
    """Seconds a collective waits for the other ranks: ``WARPFIELDS_TIMEOUT`` or ``DEFAULT_TIMEOUT``."""
    text = os.environ.get("WARPFIELDS_TIMEOUT", "")
    if not text:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise InputError(f"WARPFIELDS_TIMEOUT={text!r}: expected a positive number of seconds")
    return seconds


class _LocalFailure(JobError):
    """The ``JobError`` a rank raises for its own unexpected exception (a bug, not bad input): its traceback is
    worth printing."""


def _describe(error: BaseException) -> str:
    # One line: the CLI prints the agreed message as its one line.
    text = (str(error).strip().splitlines() or [""])[0]
    return text if isinstance(error, InputError) else f"{type(error).__name__}: {text}"


def _first_sentence(error: BaseException) -> str:
    # Backend messages start with a source location ("[.../pair.cc:553] Connection closed by peer ...").
    text = re.sub(r"^\[[^\]]*\]\s*", "", str(error).strip())
    return text.split(". ")[0].strip() or type(error).__name__


class Ranks:
    """The processes of a ``torch.distributed`` process group working on one job, or this process alone.

    ``Ranks()`` (no group) is a job of one: checkpoints re-raise the block's own exception, queries and
    gradient sums are local, and nothing imports torch.
    """

    def __init__(self, group=None):
        self.group = group
        self.rank = 0
        self.size = 1
        if group is not None:
            import torch
            import torch.distributed as dist

            self.rank = dist.get_rank(group)
            self.size = dist.get_world_size(group)
            nccl = dist.get_backend(group) == "nccl"
            self.device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")

    def block(self, n: int) -> tuple[int, int]:
        """This rank's rows ``[lo, hi)`` of ``n``: contiguous blocks in rank order, sizes differing by at most one."""
        return n * self.rank // self.size, n * (self.rank + 1) // self.size

    def _collective(self, function, *args, **kwargs):
        try:
            return function(*args, group=self.group, **kwargs)
        except RuntimeError as error:
            raise JobError(
                f"lost contact with the other ranks ({_first_sentence(error)}): "
                "a rank died, was stopped, or did not answer in time"
            ) from error

    @contextlib.contextmanager
    def checkpoint(self, context: str = ""):
        """Run the block, then agree with the other ranks: if the block failed on any rank, every rank raises a
        ``JobError`` (a ``JobInputError`` when every failure was bad input) naming the first failing rank and
        its error; ``context`` (e.g. which rows this rank had) is added to that rank's message. One rank alone
        re-raises the block's exception unchanged."""
        try:
            yield
        except JobError:
            # Already agreed on every rank (a checkpoint nested in this one) or a lost connection.
            raise
        except Exception as error:
            self._agree(error, context)
            raise
        self._agree(None, context)

    def _agree(self, error: Exception | None, context: str) -> None:
        if self.size == 1:
            return
        import torch
        import torch.distributed as dist

        flag = torch.tensor([0 if error is None else 1], dtype=torch.int32, device=self.device)
        self._collective(dist.all_reduce, flag)
        if not flag.item():
            return
        report = None if error is None else (self.rank, context, _describe(error), isinstance(error, InputError))
        reports = [None] * self.size
        self._collective(dist.all_gather_object, reports, report)
        failed = [r for r in reports if r is not None]
        rank, where, message, _ = failed[0]
        if len(failed) < self.size or any(r[2] != message for r in failed):
            where = f" ({where})" if where else ""
            others = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            message = f"rank {rank} of {self.size}{where}{others} failed: {message}"
        if all(r[3] for r in failed):
            raise JobInputError(message) from error
        raise (JobError if error is None or isinstance(error, InputError) else _LocalFailure)(message) from error

    def everywhere(self, condition: bool) -> bool:
        """Whether ``condition`` holds on every rank (a collective: every rank calls it, outside checkpoints)."""
        if self.size == 1:
            return bool(condition)
        import torch
        import torch.distributed as dist

        misses = torch.tensor([0 if condition else 1], dtype=torch.int32, device=self.device)
        self._collective(dist.all_reduce, misses)
        return not misses.item()

    def sum_gradients(self, parameters, *scalars):
        """All-reduce (sum) the gradients of ``parameters`` over the ranks, in place, with the 0-d tensors
        ``scalars`` (e.g. the ranks' shares of the loss) in the same message; returns the summed scalars."""
        if self.size == 1:
            return scalars
        import torch
        import torch.distributed as dist

        parameters = list(parameters)
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
        flat = torch.cat([*(g.reshape(-1) for g in grads), *(s.detach().reshape(1) for s in scalars)])
        flat = flat.to(self.device)
        self._collective(dist.all_reduce, flat)
        pieces = flat.to(parameters[0].device).split([g.numel() for g in grads] + [1] * len(scalars))
        for p, piece in zip(parameters, pieces):
            p.grad = piece.view_as(p)
        return tuple(piece[0] for piece in pieces[len(parameters) :])

    def query(self, field, points, quantity: str, spec=None, device=None, all_ranks: bool = False):
        """``ops.query`` with the rows of ``points`` split over the ranks (each rank passes the same points and
        computes its ``block``). The whole result, of the same kind as ``points``, comes back on the group's
        rank 0 (on every rank with ``all_ranks``), None elsewhere; it equals one ``ops.query`` of all the
        points exactly (polyfit seeds follow each row's index in ``points``)."""
        if self.size == 1:
            return query(field, points, quantity, spec, device)
        shape = points.shape if hasattr(points, "shape") else np.shape(points)
        if len(shape) == 0:
            raise InputError(f"points must be an (N, dim) array, got {type(points).__name__} of shape ()")
        lo, hi = self.block(int(shape[0]))
        with self.checkpoint(f"points[{lo}:{hi}]"):
            piece = query(field, points[lo:hi], quantity, spec, device, first_index=lo)
        return self._gather_rows(piece, int(shape[0]), all_ranks)

    def _gather_rows(self, piece, n: int, all_ranks: bool):
        import torch
        import torch.distributed as dist

        if isinstance(piece, np.ndarray):
            local = torch.from_numpy(np.ascontiguousarray(piece))
        elif isinstance(piece, wp.array):
            local = wp.to_torch(piece)
        else:
            local = piece
        block = -(-n // self.size)
        padded = torch.zeros((block, *local.shape[1:]), dtype=local.dtype, device=self.device)
        padded[: local.shape[0]] = local.to(self.device)
        parts = [torch.empty_like(padded) for _ in range(self.size)]
        if all_ranks:
            self._collective(dist.all_gather, parts, padded)
        else:
            gather_list = parts if self.rank == 0 else None
            self._collective(dist.gather, padded, gather_list, dst=dist.get_global_rank(self.group, 0))
            if self.rank != 0:
                return None
        sizes = [n * (r + 1) // self.size - n * r // self.size for r in range(self.size)]
        whole = torch.cat([part[:size] for part, size in zip(parts, sizes)])
        if isinstance(piece, np.ndarray):
            return whole.cpu().numpy()
        if isinstance(piece, wp.array):
            return wp.array(whole.cpu().numpy(), dtype=piece.dtype, device=piece.device)
        return whole.to(piece.device)


def sharded_query(field, points, quantity: str, spec=None, group=None, device=None, all_ranks: bool = False):
    """``ops.query`` of ``field`` at ``points``, split over the ranks of a process group.

    Call it on every rank of ``group`` (default: the default group; without an initialised process group it
    is a plain ``ops.query``) with the same ``points`` (N, dim): each rank computes a contiguous block of rows
    on its ``device``. Returns the whole result, in the order of ``points`` and of the same kind (numpy,
    torch or Warp), on the group's rank 0, and None on the others (with ``all_ranks=True``, on every rank).
    The result equals one ``ops.query`` of all the points exactly. If the query fails on any rank (bad
    input, a lost rank), every rank raises a ``warpfields.errors.JobError`` naming the first failing rank.
    """
    if group is None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            group = dist.group.WORLD
    return Ranks(group).query(field, points, quantity, spec, device, all_ranks)


class BatchSampler:
    """Each step's batch indices into a pool of ``pool_size`` rows: this rank's share of a batch of
    ``batch_size``.

    Rank ``r`` of ``size`` draws ``batch_size * (r + 1) // size - batch_size * r // size`` rows, uniformly with
    replacement, from the pool rows ``r, r + size, r + 2 size, ...`` with a generator seeded by ``(seed, r)``:
    the ranks' shares make one batch drawn from the whole pool, with the pool's mix of surface, near and
    uniform points in every share. One rank draws from the whole pool with a generator seeded by ``seed``.
    """

    def __init__(self, pool_size: int, batch_size: int, seed: int, rank: int = 0, size: int = 1):
        import torch

        self.stride, self.offset = size, rank
        self.count = batch_size * (rank + 1) // size - batch_size * rank // size
        self.rows = len(range(rank, pool_size, size))
        if size > 1:
            seed = int(np.random.SeedSequence([seed % 2**63, rank]).generate_state(1, np.uint64)[0])
        self.generator = torch.Generator(device="cpu").manual_seed(seed)

    def __call__(self):
        import torch

        return torch.randint(0, self.rows, (self.count,), generator=self.generator) * self.stride + self.offset


class _Stopped(BaseException):
    """SIGTERM: torchrun ends the surviving ranks this way when one fails (a BaseException, so that checkpoints
    do not try to agree on it with ranks that may be gone)."""


def _raise_stopped(signum, frame):
    # The process is ending: a second signal must not interrupt the clean-up and the report.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise _Stopped


def share_cpu_threads() -> int:
    """Give this rank its share of the machine's cores (``WARPFIELDS_THREADS``, unless already set, and torch's
    threads): the cores divided by the ranks on this machine (``LOCAL_WORLD_SIZE``)."""
    import torch

    if not os.environ.get("WARPFIELDS_THREADS"):
        local_ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        os.environ["WARPFIELDS_THREADS"] = str(max(1, parallel.cpu_threads() // local_ranks))
    threads = parallel.cpu_threads()
    torch.set_num_threads(threads)
    return threads


def _rank_device(requested, local_rank: int):
    device = wp.get_device(requested)
    if device.is_cuda and (requested is None or str(requested) == "cuda"):
        count = wp.get_cuda_device_count()
        if local_rank >= count:
            raise InputError(
                f"LOCAL_RANK {local_rank} has no GPU: this machine has {count}; start at most {count} ranks"
            )
        device = wp.get_device(f"cuda:{local_rank}")
    return device


def _join(requested_device) -> str:
    """Join the job's process group; returns this rank's device."""
    import torch
    import torch.distributed as dist

    device = _rank_device(requested_device, int(os.environ.get("LOCAL_RANK", "0")))
    share_cpu_threads()
    if device.is_cuda:
        torch.cuda.set_device(device.ordinal)
    timeout = datetime.timedelta(seconds=collective_timeout())
    dist.init_process_group("nccl" if device.is_cuda else "gloo", timeout=timeout)
    return str(device)


def run_command(args, body) -> int:
    """Run a command's ``body(args, ranks)``: in this process alone, or, under ``torchrun``, as one rank of
    the job (``args.device`` becomes this rank's device).

    Every rank runs ``body``, which checkpoints its work, prints and writes on rank 0 only. When the job
    fails, rank 0 raises the agreed error for the CLI to print as one line; the other ranks exit with the
    same status, silently (a rank's own unexpected exception keeps its traceback, printed where it
    happened).
    """
    if not launched():
        return body(args, Ranks())
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    if rank != 0:
        # Warp's banner and module-load lines: rank 0's are enough (older Warp has ``quiet``, not ``log_level``).
        if hasattr(wp, "LOG_WARNING"):
            wp.config.log_level = wp.LOG_WARNING
        else:
            wp.config.quiet = True
    previous = signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        args.device = _join(args.device)
        status = body(args, Ranks(dist.group.WORLD))
    except BaseException as error:
        # The job is ending: torchrun's SIGTERM must not cut the report short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        failure = error
    else:
        signal.signal(signal.SIGTERM, previous)
        dist.destroy_process_group()
        return status
    if isinstance(failure, _Stopped):
        failure = JobError("stopped by the launcher (SIGTERM): another rank failed or the job was interrupted")
    elif isinstance(failure, KeyboardInterrupt) and rank != 0:
        # Ctrl-C reaches every rank; rank 0 reports it.
        raise SystemExit(130)
    elif not isinstance(failure, (InputError, JobError)):
        raise failure
    if isinstance(failure, _LocalFailure):
        traceback.print_exception(failure.__cause__)
    if rank == 0:
        raise failure
    raise SystemExit(2 if isinstance(failure, InputError) else 1)


__all__ = ["BatchSampler", "Ranks", "collective_timeout", "launched", "run_command", "sharded_query"]
