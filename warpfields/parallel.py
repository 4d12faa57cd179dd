"""Batched launches that use every CPU core.

A Warp CPU launch runs on one thread. Launching disjoint index ranges of the same kernel
from several Python threads runs them in parallel. Atomics are not atomic across such
launches, so only kernels whose writes are disjoint per index are sharded; reductions
take one buffer per shard (see ``reduction_shard_count``) and sum them afterwards. A
reduction's shards do not depend on the thread count, so its result does not either.

Every shardable kernel takes ``start: int`` as its first argument and works on index
``start + wp.tid()``.
"""

import os
import platform
import types
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import warp as wp

from .errors import InputError
from .runtime import build_lock, check_launch_size, get_device

_MIN_SHARD = 2048


def bulk_module_options(**options) -> dict:
    """Warp module options for kernels that evaluate fields over many points (plus ``options``).

    On CPUs, fused multiply-adds and 512-bit vectors where the CPU has them: the MLP's column
    updates on hidden-width vectors then take half the instructions. Results differ from a
    default build only by float rounding.

    Optimisation level 2: the CPU's default (-O2), and on CUDA NVRTC's ``--Ofast-compile=min``
    instead of -O3. A local fit inlines the whole field (encoding and MLP) into its loop over
    samples, which NVRTC's -O3 takes more than 15 minutes to compile for a `fast` field's polyfit
    gradient (sm_90); level 2 takes 33 s.
    """
    flags = wp.config.cpu_compiler_flags if wp.config.cpu_compiler_flags is not None else "-march=native"
    flags += " -ffp-contract=fast"
    if platform.machine().lower() in ("x86_64", "amd64"):
        flags += " -mprefer-vector-width=512"
    return {"cpu_compiler_flags": flags, "optimization_level": 2, **options}


_pool: ThreadPoolExecutor | None = None
_specialized: dict = {}


def cpu_cores() -> int:
    """The CPU cores this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def cpu_threads() -> int:
    """Threads used for CPU launches: ``WARPFIELDS_THREADS`` or the core count."""
    env = os.environ.get("WARPFIELDS_THREADS")
    if env:
        try:
            threads = int(env)
        except ValueError:
            threads = 0
        if threads < 1:
            raise InputError(f"WARPFIELDS_THREADS={env!r}: expected a whole number of threads >= 1")
        return threads
    return cpu_cores()


def shard_count(n: int, device, threads: int | None = None, min_shard: int = _MIN_SHARD) -> int:
    """How many shards a batch of ``n`` is split into on ``device``, each of at least ``min_shard`` indices
    (smaller shards of a cheap kernel cost more in handing them to threads than they save)."""
    device = get_device(device)
    if not device.is_cpu:
        return 1
    threads = cpu_threads() if threads is None else max(1, threads)
    return max(1, min(threads, n // min_shard))


def reduction_shard_count(n: int, device) -> int:
    """How many shards, each with its own buffer, a reduction over ``n`` indices is split into on ``device``.

    One per core, never per thread: float sums grouped the same way give the same bits, so a reduction's
    result does not depend on ``WARPFIELDS_THREADS`` (training with 1 and 2 threads used to end 0.02 apart in
    table entries). A fixed count for every machine cost a 2-core machine 30% of a training step in buffers.
    """
    return shard_count(n, device, cpu_cores())


_MORTON_MIN_POINTS = 4096
# The sort keeps the top bits of the Z-curve codes (30 bits: 10 per axis in 3D, 15 in 2D): the cells of a
# 64^dim grid. Visiting points in a finer order did not make field evaluation measurably faster, and the
# sort's time grows with its key bits.
_SORTED_BITS_PER_AXIS = 6


@wp.func
def _spread_bits_3d(v: int) -> int:
    # The low 10 bits of v, two zero bits between neighbours.
    x = v & 0x3FF
    x = (x | (x << 16)) & 0x030000FF
    x = (x | (x << 8)) & 0x0300F00F
    x = (x | (x << 4)) & 0x030C30C3
    return (x | (x << 2)) & 0x09249249


@wp.func
def _spread_bits_2d(v: int) -> int:
    # The low 15 bits of v, one zero bit between neighbours.
    x = v & 0x7FFF
    x = (x | (x << 8)) & 0x00FF00FF
    x = (x | (x << 4)) & 0x0F0F0F0F
    x = (x | (x << 2)) & 0x33333333
    return (x | (x << 1)) & 0x55555555


@wp.kernel(enable_backward=False)
def _morton_codes(
    start: int,
    points: wp.array(dtype=Any),
    keys: wp.array(dtype=int),
    order: wp.array(dtype=int),
    first_non_finite: wp.array(dtype=int),
):
    t = wp.tid()
    p = points[start + t]
    if not wp.isfinite(p):
        wp.atomic_min(first_non_finite, 0, start + t)
    code = int(0)
    for axis in range(wp.static(len(points.dtype))):
        if wp.static(len(points.dtype) == 3):
            cell = wp.clamp(int((p[axis] + 1.0) * 512.0), 0, 1023)
            code = code | (_spread_bits_3d(cell) << axis)
        else:
            cell = wp.clamp(int((p[axis] + 1.0) * 16384.0), 0, 32767)
            code = code | (_spread_bits_2d(cell) << axis)
    keys[t] = code
    order[t] = start + t


@wp.kernel(enable_backward=False)
def _first_non_finite(start: int, points: wp.array(dtype=Any), first: wp.array(dtype=int)):
    i = start + wp.tid()
    if not wp.isfinite(points[i]):
        wp.atomic_min(first, 0, i)


def shard_bounds(n: int, shards: int) -> list[int]:
    """Where ``launch`` splits ``n`` indices into ``shards`` ranges."""
    return [n * s // shards for s in range(shards + 1)]


def locality_order(points: wp.array, shards: int | None = None) -> wp.array:
    """Indices of ``points`` (a Warp array of vectors in [-1, 1]^dim) in Morton (Z-curve) order of their cells
    in a 64^dim grid, per shard.

    Neighbouring queries then share grid cells and cache lines of the field's tables; bulk
    paths evaluate ``points[order[i]]`` in this order and write each result back to its
    caller's index. Each of the ranges that ``launch`` gives a CPU thread is sorted on its own,
    in that thread: the threads then each visit their own points in Z order, and the sort
    is parallel too. ``shards`` overrides the number of ranges (1: one Z curve over all points,
    an order that does not depend on the thread count). Small batches keep the caller's order.
    """
    return _locality_order(points, shards)[0]


def checked_locality_order(points: wp.array, shards: int | None = None) -> tuple[wp.array, int]:
    """``locality_order(points, shards)`` and the first row of ``points`` with a non-finite coordinate
    (``len(points)`` when there is none), found in the same pass over the points (reads the device)."""
    order, first_non_finite = _locality_order(points, shards)
    return order, int(first_non_finite.numpy().min())


def _locality_order(points: wp.array, shards: int | None) -> tuple[wp.array, wp.array]:
    n, device, dim = points.shape[0], points.device, wp.types.type_size(points.dtype)
    if n < _MORTON_MIN_POINTS:
        first_non_finite = wp.full(1, n, dtype=int, device=device)
        launch(_first_non_finite, n, [points, first_non_finite], device, threads=1)
        return wp.array(np.arange(n, dtype=np.int32), dtype=int, device=device), first_non_finite
    keys = wp.empty(2 * n, dtype=int, device=device)
    scratch = wp.empty(2 * n, dtype=int, device=device)
    order = wp.empty(n, dtype=int, device=device)
    bounds = shard_bounds(n, shard_count(n, device) if shards is None else shards)
    # One entry per shard: CPU atomics are not atomic across the shards' concurrent launches.
    first_non_finite = wp.full(len(bounds) - 1, n, dtype=int, device=device)
    kernel = _resolve(_morton_codes, [0, points, keys, scratch, first_non_finite], device)

    def sort_shard(s: int) -> None:
        # Shard s sorts in its own stretch [2 lo, 2 hi) of the buffers, which radix sort needs twice the size of.
        lo, hi = bounds[s], bounds[s + 1]
        shard_keys, shard_order = keys[2 * lo : 2 * hi], scratch[2 * lo : 2 * hi]
        inputs = [lo, points, shard_keys, shard_order, first_non_finite[s : s + 1]]
        wp.launch(kernel, hi - lo, inputs=inputs, device=device)
        begin_bit = 30 - dim * _SORTED_BITS_PER_AXIS
        wp.utils.radix_sort_pairs(shard_keys, shard_order, hi - lo, begin_bit=begin_bit, end_bit=30)
        wp.copy(order, shard_order, dest_offset=lo, src_offset=0, count=hi - lo)

    if len(bounds) == 2:
        sort_shard(0)
    else:
        list(_executor().map(sort_shard, range(len(bounds) - 1)))
    return order, first_non_finite


@wp.kernel(enable_backward=False)
def _gather_rows(start: int, values: wp.array(dtype=Any), order: wp.array(dtype=int), out: wp.array(dtype=Any)):
    j = start + wp.tid()
    out[j] = values[order[j]]


@wp.kernel(enable_backward=False)
def _scatter_rows(start: int, values: wp.array(dtype=Any), order: wp.array(dtype=int), out: wp.array(dtype=Any)):
    j = start + wp.tid()
    out[order[j]] = values[j]


# A kernel that visits rows in a locality order reads and writes copies in that order instead of the
# caller's rows: a tight copy loop has many of its cache misses in flight, where a kernel with long
# iterations waits on each (a missed store also holds back the stores behind it).


def in_order(values: wp.array, order: wp.array) -> wp.array:
    """``values[order]``."""
    out = wp.empty(order.shape[0], dtype=values.dtype, device=values.device)
    launch(_gather_rows, order.shape[0], [values, order, out], values.device)
    return out


def from_order(values: wp.array, order: wp.array, out: wp.array) -> wp.array:
    """``out[order] = values``; returns ``out``."""
    launch(_scatter_rows, order.shape[0], [values, order, out], values.device)
    return out


def _executor() -> ThreadPoolExecutor:
    global _pool
    with build_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(2, cpu_threads()), thread_name_prefix="warpfields")
    return _pool


def specialize(kernel: wp.Kernel, args: Sequence) -> wp.Kernel:
    """The concrete kernel for these arguments, in a Warp module of its own.

    Warp's own overloads of a generic kernel share one module, so every new field type
    would recompile all earlier ones and change the cache key; one module per
    (kernel, argument types) keeps each compiled once and cached across processes.
    """
    if not kernel.is_generic:
        return kernel
    arg_types = tuple(kernel.infer_argument_types(list(args)))
    key = (kernel, arg_types)
    with build_lock:
        if key not in _specialized:
            func = kernel.func
            concrete = types.FunctionType(
                func.__code__, func.__globals__, func.__name__, func.__defaults__, func.__closure__
            )
            concrete.__annotations__ = dict(zip([a.label for a in kernel.adj.args], arg_types))
            concrete.__qualname__ = func.__qualname__
            concrete.__module__ = func.__module__
            _specialized[key] = wp.kernel(
                concrete, enable_backward=False, module="unique", module_options=bulk_module_options()
            )
        return _specialized[key]


def _resolve(kernel: wp.Kernel, args: Sequence, device) -> wp.Kernel:
    # Specialise and compile once, before threads race to it.
    with build_lock:
        kernel = specialize(kernel, args)
        kernel.module.load(device, block_dim=1 if device.is_cpu else 256)
    return kernel


def _shard_plan(n: int, inputs, device, threads: int | None, min_shard: int) -> tuple:
    """(shards, workers, inputs of a shard, shard bounds) of a launch over ``n`` indices."""
    shards = reduction_shard_count(n, device) if callable(inputs) else shard_count(n, device, threads, min_shard)
    workers = min(shards, shard_count(n, device, threads, min_shard))
    args_of = inputs if callable(inputs) else (lambda _s: inputs)
    return shards, workers, args_of, shard_bounds(n, shards)


class RecordedLaunch:
    """A launch of ``kernel`` over ``n`` indices, split into shards as ``launch`` splits it, recorded once
    and run again by ``run`` with some scalar arguments changed. An optimiser's steps are short launches
    whose Python side (specialising, loading the module, packing every argument: 45 us on a 2-core VM)
    would take longer than the work itself; a replay sets the changed values and calls the kernel (6 us)."""

    def __init__(self, kernel: wp.Kernel, n: int, inputs, device=None, threads: int | None = None):
        device = get_device(device)
        check_launch_size("launch size", n)
        self.shards, self.workers, args_of, bounds = _shard_plan(n, inputs, device, threads, _MIN_SHARD)
        kernel = _resolve(kernel, [0, *args_of(0)], device)
        self.index = {arg.label: i for i, arg in enumerate(kernel.adj.args)}
        self.commands = [
            wp.launch(kernel, bounds[s + 1] - bounds[s], [bounds[s], *args_of(s)], device=device, record_cmd=True)
            for s in range(self.shards)
            if bounds[s + 1] > bounds[s]
        ]

    def run(self, **changed) -> None:
        """Launch again, with the scalar arguments named in ``changed`` set to their new values."""
        for name, value in changed.items():
            for command in self.commands:
                command.set_param_at_index(self.index[name], value)

        def run_shards(worker: int) -> None:
            for command in self.commands[worker :: self.workers]:
                command.launch()

        _run_workers(run_shards, self.workers)


def launch(
    kernel: wp.Kernel,
    n: int,
    inputs: Sequence | Callable[[int], Sequence],
    device=None,
    threads: int | None = None,
    min_shard: int = _MIN_SHARD,
) -> int:
    """Launch ``kernel`` over ``n`` indices, split over CPU threads.

    ``inputs`` is the argument list after ``start``, or, for kernels that write into a
    per-shard reduction buffer, a function of the shard index that returns it; a reduction has
    ``reduction_shard_count(n, device)`` shards, which the threads share. Kernels that spend
    microseconds per index (local fits) pass a smaller ``min_shard``. Returns the number of
    shards used.
    """
    device = get_device(device)
    check_launch_size("launch size", n)
    shards, workers, args_of, bounds = _shard_plan(n, inputs, device, threads, min_shard)
    if n == 0:
        return shards
    kernel = _resolve(kernel, [0, *args_of(0)], device)

    def run(worker: int) -> None:
        for s in range(worker, shards, workers):
            wp.launch(kernel, dim=bounds[s + 1] - bounds[s], inputs=[bounds[s], *args_of(s)], device=device)

    _run_workers(run, workers)
    return shards


def _run_workers(run: Callable[[int], None], workers: int) -> None:
    # The calling thread only waits, so that a Ctrl-C lands in the wait: running a shard itself (6% faster
    # refit steps) put it inside Warp's launch code, and interrupted commands then failed to exit cleanly.
    if workers == 1:
        run(0)
    else:
        list(_executor().map(run, range(workers)))
