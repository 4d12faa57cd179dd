"""Batched launches that use every CPU core.

A Warp CPU launch runs on one thread. Launching disjoint index ranges of the same kernel
from several Python threads runs them in parallel. Atomics are not atomic across such
launches, so only kernels whose writes are disjoint per index are sharded; reductions
take one buffer per shard (see ``shard_count``) and sum them afterwards.

Every shardable kernel takes ``start: int`` as its first argument and works on index
``start + wp.tid()``.
"""

import os
import threading
import types
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import warp as wp

_MIN_SHARD = 2048
_load_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_specialized: dict = {}


def cpu_threads() -> int:
    """Threads used for CPU launches: ``WARPFIELDS_THREADS`` or the core count."""
    env = os.environ.get("WARPFIELDS_THREADS")
    if env:
        return max(1, int(env))
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def shard_count(n: int, device, threads: int | None = None) -> int:
    """How many shards a batch of ``n`` is split into on ``device``."""
    device = wp.get_device(device)
    if not device.is_cpu:
        return 1
    threads = cpu_threads() if threads is None else max(1, threads)
    return max(1, min(threads, n // _MIN_SHARD))


_MORTON_BITS = 10
_MORTON_MIN_POINTS = 4096


def _spread_bits(values: np.ndarray, dim: int) -> np.ndarray:
    """Interleaves the low 10 bits of ``values`` with ``dim - 1`` zero bits between them."""
    spread = np.zeros_like(values)
    for bit in range(_MORTON_BITS):
        spread |= ((values >> bit) & 1) << (dim * bit)
    return spread


def locality_order(points: np.ndarray) -> np.ndarray | None:
    """Permutation putting ``points`` (n, dim) in Morton (Z-curve) order over [-1, 1]^dim, or None when small.

    Neighbouring queries then share grid cells and cache lines of the field's tables; bulk
    paths evaluate in this order and write each result back to its caller's index.
    """
    n, dim = points.shape
    if n < _MORTON_MIN_POINTS:
        return None
    cells = (np.clip((points + 1.0) * 0.5, 0.0, 1.0 - 1e-7) * (1 << _MORTON_BITS)).astype(np.int64)
    code = np.zeros(n, dtype=np.int64)
    for axis in range(dim):
        code |= _spread_bits(cells[:, axis], dim) << axis
    return np.argsort(code, kind="stable").astype(np.int32)


def _executor() -> ThreadPoolExecutor:
    global _pool
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
    if key not in _specialized:
        func = kernel.func
        concrete = types.FunctionType(
            func.__code__, func.__globals__, func.__name__, func.__defaults__, func.__closure__
        )
        concrete.__annotations__ = dict(zip([a.label for a in kernel.adj.args], arg_types))
        concrete.__qualname__ = func.__qualname__
        concrete.__module__ = func.__module__
        _specialized[key] = wp.kernel(concrete, enable_backward=False, module="unique")
    return _specialized[key]


def _resolve(kernel: wp.Kernel, args: Sequence, device) -> wp.Kernel:
    # Specialise and compile once, before threads race to it.
    with _load_lock:
        kernel = specialize(kernel, args)
        device = wp.get_device(device)
        kernel.module.load(device, block_dim=1 if device.is_cpu else 256)
    return kernel


def launch(
    kernel: wp.Kernel,
    n: int,
    inputs: Sequence | Callable[[int], Sequence],
    device=None,
    threads: int | None = None,
) -> int:
    """Launch ``kernel`` over ``n`` indices, split over CPU threads.

    ``inputs`` is the argument list after ``start``, or a function of the shard index that
    returns it (for kernels that write into a per-shard reduction buffer). Returns the
    number of shards used.
    """
    device = wp.get_device(device)
    shards = shard_count(n, device, threads)
    args_of = inputs if callable(inputs) else (lambda _s: inputs)
    if n == 0:
        return shards
    kernel = _resolve(kernel, [0, *args_of(0)], device)
    if shards == 1:
        wp.launch(kernel, dim=n, inputs=[0, *args_of(0)], device=device)
        return 1
    bounds = [n * s // shards for s in range(shards + 1)]

    def run(s: int) -> None:
        wp.launch(kernel, dim=bounds[s + 1] - bounds[s], inputs=[bounds[s], *args_of(s)], device=device)

    list(_executor().map(run, range(shards)))
    return shards
