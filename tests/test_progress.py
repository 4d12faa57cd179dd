"""Progress lines: Warp's compiles are announced (first run only) and silence gets a heartbeat."""

import os
import subprocess
import sys

SCRIPT = """
import sys, time
import warp as wp
from warpfields import progress

@wp.kernel
def scaled(a: wp.array(dtype=float), factor: float):
    i = wp.tid()
    a[i] = float(i) * factor

with progress.quiet_warp(), progress.watch(heartbeat=1.0, poll=0.05) as watcher:
    print("start", flush=True)
    a = wp.zeros(8, dtype=float, device="cpu")
    wp.launch(scaled, 8, [a, 2.0], device="cpu")
    time.sleep(float(sys.argv[1]))
    print("end", flush=True)
print(f"compiling seconds {watcher.compiling_seconds:.2f}")
"""


def run(tmp_path, sleep: float) -> list[str]:
    env = {**os.environ, "WARP_CACHE_PATH": str(tmp_path / "kernels")}
    script = tmp_path / "compile_and_wait.py"  # Warp reads a kernel's source from its file
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(sleep)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout
    return done.stdout.splitlines()


def test_first_compile_is_announced_and_silence_gets_a_heartbeat(tmp_path):
    first = run(tmp_path, sleep=2.5)
    assert "compiling kernels (first run only) ..." in first
    assert any(line.startswith("... still working") for line in first)
    assert not any(line.startswith("Module ") for line in first)  # Warp's own load lines are quiet
    assert float(first[-1].split()[-1]) > 0.0
    # The same kernel is cached now: no announcement, no compile time.
    second = run(tmp_path, sleep=0.0)
    assert not any("compiling" in line for line in second[:-1]) and second[-1] == "compiling seconds 0.00"


def test_only_rank_zero_prints_progress(tmp_path, monkeypatch):
    import contextlib

    from warpfields import progress
    from warpfields.cli import main

    watched = []
    monkeypatch.setattr(progress, "watch", lambda: watched.append(True) or contextlib.nullcontext())
    command = ["train", str(tmp_path / "missing.obj"), "--out", str(tmp_path / "f.wfield")]
    for rank, expected in (("0", 1), ("1", 1)):
        monkeypatch.setenv("RANK", rank)
        assert main(command) == 2  # the missing mesh, after the watch has started
        assert len(watched) == expected
