"""Warp's runtime as warpfields shares it between threads: initialisation, code generation, devices, memory.

Warp initialises itself lazily and without a lock, and registering a generated overload
mutates the overload tables of the protocol functions that other threads may be reading:
two threads making their first query at once built two runtimes and two copies of a
field's struct type, one of them without its overloads. Warp is therefore initialised
here, once, at import (imports are serialised by Python), and every cache of generated
Warp code (struct types, overloads, kernels) and of per-device field objects fills under
``build_lock``.
"""

from __future__ import annotations

import contextlib
import threading

import warp as wp

from .errors import InputError

wp.init()

build_lock = threading.RLock()
"""Held while Warp code is generated, registered, specialised or loaded and while per-device caches fill
(reentrant: generators nest)."""


def get_device(device=None):
    """The Warp device named ``device`` (default: Warp's default), or an InputError naming the devices there are."""
    try:
        return wp.get_device(device)
    except (ValueError, RuntimeError, TypeError) as error:
        names = ", ".join(d.alias for d in wp.get_devices())
        reason = "" if "cuda" not in str(device) or wp.is_cuda_available() else " (no CUDA device is available)"
        raise InputError(f"device {device!r}: unknown or unavailable{reason}; this machine has {names}") from error


def torch_stream(device):
    """Make the stream torch is using on ``device`` Warp's current one there (CUDA; the CPU has no streams), so
    that Warp launches are ordered with the torch work that produces their inputs and consumes their outputs."""
    device = get_device(device)
    if not device.is_cuda:
        return contextlib.nullcontext()
    return wp.ScopedStream(wp.stream_from_torch(wp.device_to_torch(device)))


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available() -> int | None:
    # A container's limit is lower than the host's free memory that /proc/meminfo reports.
    try:
        with open("/sys/fs/cgroup/memory.max") as handle:
            limit = handle.read().strip()
        with open("/sys/fs/cgroup/memory.current") as handle:
            used = int(handle.read().strip())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(int(limit) - used, 0)


def host_available_bytes() -> int | None:
    """Memory the host can still give this process (None where the system does not say)."""
    candidates = [_meminfo_available(), _cgroup_available()]
    if all(c is None for c in candidates):
        try:
            import psutil

            candidates.append(int(psutil.virtual_memory().available))
        except ImportError:
            pass
    known = [c for c in candidates if c is not None]
    return min(known) if known else None


def available_bytes(device=None) -> int | None:
    """Free memory of ``device``: the GPU's for CUDA devices, the host's for the CPU."""
    device = get_device(device)
    if device.is_cuda:
        return int(device.free_memory)
    return host_available_bytes()


def format_bytes(n: float) -> str:
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    power = 0
    while abs(n) >= 1024 and power < len(units) - 1:
        n /= 1024
        power += 1
    return f"{n:.0f} B" if power == 0 else f"{n:.1f} {units[power]}"


def check_memory(what: str, count: int, bytes_each: float, device=None) -> None:
    """Refuse ``count`` items of ``bytes_each`` (an estimate of everything the work allocates per item) when they
    cannot fit in the memory ``device`` has free (and, on a GPU, in the host's, which holds their copies)."""
    need = float(count) * bytes_each
    device = get_device(device)
    places = [(device.alias, available_bytes(device))]
    if device.is_cuda:
        places.append(("the host", host_available_bytes()))
    for place, free in places:
        if free is not None and need > free:
            raise InputError(
                f"{what}: {count} need about {format_bytes(need)} ({format_bytes(bytes_each)} each), "
                f"more than the {format_bytes(free)} free on {place}"
            )


MAX_LAUNCH = 2**31 - 1
"""The most indices one Warp launch (and one Warp array) can have: a signed 32-bit count."""


def check_launch_size(what: str, count: int) -> None:
    if count > MAX_LAUNCH:
        raise InputError(f"{what}: {count} is more than one Warp launch can cover (at most {MAX_LAUNCH})")
