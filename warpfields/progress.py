"""Progress lines for long commands: a line when Warp starts compiling kernels, and a heartbeat when
nothing else has been printed for a while, so that a command never sits silent.

Warp compiles each kernel module with LLVM (or NVRTC) on first use, for seconds to tens of seconds, and
caches the result; it prints nothing before it starts. ``watch()`` runs a daemon thread that looks at
the stacks of the running threads a few times a second: a thread inside Warp's ``Module._compile`` is
compiling. Output on ``sys.stdout`` and ``sys.stderr`` (progress bars included) counts as a sign of life.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time

COMPILING = "compiling kernels (first run only) ..."
HEARTBEAT_SECONDS = 10.0
POLL_SECONDS = 0.2


def warp_is_compiling() -> bool:
    """Whether a thread is inside Warp's kernel compiler right now."""
    for frame in list(sys._current_frames().values()):
        while frame is not None:
            code = frame.f_code
            if code.co_name == "_compile" and frame.f_globals.get("__name__", "").startswith("warp."):
                return True
            frame = frame.f_back
    return False


class _Stream:
    """Passes writes through to ``stream`` and records when the last one happened."""

    def __init__(self, stream, watcher: Watcher):
        self._stream = stream
        self._watcher = watcher

    def write(self, text: str) -> int:
        if text:
            self._watcher.last_output = time.monotonic()
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


class Watcher:
    """What ``watch()`` yields: ``compiling_seconds`` is the time (to within a poll) Warp spent compiling."""

    def __init__(self, heartbeat: float, poll: float):
        self.heartbeat = heartbeat
        self.poll = poll
        self.started = time.monotonic()
        self.last_output = self.started
        self.last_notice = -float("inf")
        self.compiling_seconds = 0.0
        self.stop = threading.Event()
        self.out = sys.stderr

    def say(self, text: str) -> None:
        from tqdm import tqdm

        # Above any progress bar on the same stream, not appended to its line.
        tqdm.write(text, file=self.out)
        self.out.flush()

    def run(self) -> None:
        was_compiling = False
        previous = self.started
        while not self.stop.wait(self.poll):
            compiling = warp_is_compiling()
            now = time.monotonic()
            if compiling:
                self.compiling_seconds += now - previous
            previous = now
            # One notice for a run of modules compiled back to back; the heartbeat covers the rest.
            if compiling and not was_compiling and now - self.last_notice >= self.heartbeat:
                self.say(COMPILING)
                self.last_notice = now
            elif now - self.last_output >= self.heartbeat:
                what = "compiling kernels" if compiling else "working"
                self.say(f"... still {what} ({now - self.started:.0f} s in)")
            was_compiling = compiling


@contextlib.contextmanager
def quiet_warp(verbose: bool = False):
    """Within the block, Warp prints warnings and errors only (no line per module loaded), unless ``verbose``."""
    import warp as wp

    level = wp.config.log_level
    if not verbose:
        wp.config.log_level = max(level, wp.LOG_WARNING)
    try:
        yield
    finally:
        wp.config.log_level = level


_active: Watcher | None = None


@contextlib.contextmanager
def watch(heartbeat: float = HEARTBEAT_SECONDS, poll: float = POLL_SECONDS):
    """Within the block: say when Warp compiles, and print a heartbeat after ``heartbeat`` seconds of silence.

    Yields the ``Watcher``; a ``watch()`` inside another one yields the outer one's.
    """
    global _active
    if _active is not None:
        yield _active
        return
    watcher = Watcher(heartbeat, poll)
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Stream(stdout, watcher), _Stream(stderr, watcher)
    watcher.out = sys.stderr
    thread = threading.Thread(target=watcher.run, name="warpfields-progress", daemon=True)
    _active = watcher
    thread.start()
    try:
        yield watcher
    finally:
        watcher.stop.set()
        thread.join()
        _active = None
        sys.stdout, sys.stderr = stdout, stderr


__all__ = ["COMPILING", "Watcher", "quiet_warp", "warp_is_compiling", "watch"]
