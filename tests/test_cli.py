"""The command line under bad input, exhausted memory and interruption: one line, the right exit status, and
no output touched that should not be."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import warp as wp

from warpfields import runtime
from warpfields.cli import main
from warpfields.fields.hybrid import HybridConfig, HybridField
from warpfields.io.fieldfile import save_field


def run_cli(argv, capsys, tmp_path):
    status = main([str(a).replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return status, [line for line in err.splitlines() if line.strip()]


@pytest.fixture
def points_file(tmp_path):
    np.save(tmp_path / "p.npy", np.array([[0.5, 0.0, 0.0], [0.0, 0.3, 0.1]], dtype=np.float32))
    return tmp_path / "p.npy"


QUERY = ["query", "sphere", "--points", "{tmp}/p.npy", "--quantity", "normal", "--out", "{tmp}/o.npy"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--k", "0"], "k=0 is out of range: expected 1 <= k <= 4096"),
        (["--k", "2147483648"], "k=2147483648 is out of range"),
        (["--k", "4294967296"], "k=4294967296 is out of range"),
        (["--sigma", "1e-30"], "--sigma=1e-30 is out of range: expected 1e-05 <= --sigma <= 2"),
        (["--method", "fd", "--h", "1e-30"], "--h=1e-30 is out of range"),
        (["--sigma", "3"], "--sigma=3.0 is out of range"),
    ],
)
def test_query_refuses_arguments_outside_their_range(tmp_path, capsys, points_file, extra, message):
    """Values that would wrap a 32-bit count or underflow (all-zero normals, exit 0) are refused; k 0 is no default."""
    status, err = run_cli([*QUERY, *extra], capsys, tmp_path)
    assert status == 2 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "o.npy").exists()


def test_scales_are_checked_in_the_points_units(tmp_path, capsys, points_file):
    field = HybridField(HybridConfig(levels=2, features=2, log2_table=8, base_resolution=4, max_resolution=8))
    field.normalization = wf_normalization(scale=0.5)
    save_field(field, tmp_path / "f.wfield")
    argv = ["query", "{tmp}/f.wfield", "--points", "{tmp}/p.npy", "--quantity", "normal", "--out", "{tmp}/o.npy"]
    # The finest cell is 0.25 field units (0.5 in the points' units): at least 0.5 / 256 there.
    status, err = run_cli([*argv, "--sigma", "1.5e-3"], capsys, tmp_path)
    assert status == 2 and "expected 0.001953 <= --sigma <= 4 (the points' units" in err[0]
    assert run_cli([*argv, "--sigma", "2e-3"], capsys, tmp_path)[0] == 0


def wf_normalization(scale):
    from warpfields.fields.base import Normalization

    return Normalization(center=(0.0, 0.0, 0.0), scale=scale)


@pytest.mark.parametrize(
    "argv",
    [
        ["render", "sphere", "--k", "0", "--out", "{tmp}/i.png"],
        ["sim", "collision", "--field", "sphere", "--k", "0", "--out", "{tmp}/s.usd"],
    ],
)
def test_render_and_sim_refuse_k_0_like_query(tmp_path, capsys, argv):
    status, err = run_cli(argv, capsys, tmp_path)
    assert status == 2 and len(err) == 1 and "k=0 is out of range: expected 1 <= k <= 4096" in err[0]


def test_query_outside_the_domain_says_how_many(tmp_path, capsys):
    np.save(tmp_path / "far.npy", np.array([[1e6, 0, 0], [1e30, 0, 0], [0.5, 0, 0]], dtype=np.float32))
    argv = ["query", "sphere", "--points", "{tmp}/far.npy", "--method", "ad", "--out", "{tmp}/o.npy"]
    status, err = run_cli([*argv, "--quantity", "normal"], capsys, tmp_path)
    assert status == 0
    assert err == ["warpfields query: warning: 2 of 3 points lie outside the field's domain [-1, 1]^3 "
                   "(field coordinates): the results are NaN"]  # fmt: skip
    normals = np.load(tmp_path / "o.npy")
    assert np.isnan(normals[:2]).all() and np.allclose(normals[2], [1, 0, 0])
    status, err = run_cli([*argv, "--quantity", "value"], capsys, tmp_path)
    assert status == 0 and "their values are extended by the distance to it" in err[0]
    np.testing.assert_allclose(np.load(tmp_path / "o.npy"), [1e6 - 0.5, 1e30, 0.0], rtol=1e-6)


# --- bad input that would end in a traceback --------------------------------------------------------------------------


def unwritable_folder() -> str:
    if Path("/proc/self").is_dir():
        return "/proc"  # writable by its permission bits for root, yet no file can be made there
    pytest.skip("no /proc on this system")


@pytest.mark.parametrize(
    "argv, environment, message",
    [
        (["--device", "tpu", "info", "sphere"], {}, "device 'tpu': unknown or unavailable; this machine has cpu"),
        (["info", "sphere", "--device", "tpu"], {}, "device 'tpu': unknown or unavailable; this machine has cpu"),
        (["sim", "cloth", "--field", "sphere", "--out", "{tmp}/c.usd", "--device", "tpu"], {}, "device 'tpu'"),
        (["train", "sphere", "--seed", "-1", "--out", "{tmp}/x.wfield"], {}, "--seed -1: expected an integer in"),
        (["finetune", "sphere", "--out", "{tmp}/x.wfield"], {}, "needs a hybrid field file; this is a field of kind"),
        (QUERY, {"WARPFIELDS_THREADS": "abc"}, "WARPFIELDS_THREADS='abc': expected a whole number"),
        (QUERY, {"WARPFIELDS_THREADS": "0"}, "WARPFIELDS_THREADS='0': expected a whole number"),
        ([*QUERY[:3], "{tmp}/pts.npz", *QUERY[4:]], {}, "is an .npz archive (a field file?)"),
        ([*QUERY[:-1], "/proc/x.npy"], {}, "output '/proc/x.npy': cannot create files in '/proc'"),
        (["train", "sphere", "--steps", "1", "--out", "/proc/x.wfield"], {}, "cannot create files in '/proc'"),
    ],
)
def test_one_line_instead_of_a_traceback(tmp_path, capsys, monkeypatch, points_file, argv, environment, message):
    if any("/proc" in str(a) for a in argv):
        unwritable_folder()
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    np.savez(tmp_path / "pts.npz", x=np.zeros((3, 3)))
    status, err = run_cli(argv, capsys, tmp_path)
    assert status == 2 and len(err) == 1 and message in err[0], err


@pytest.mark.skipif(wp.is_cuda_available(), reason="this machine has a CUDA device")
def test_cuda_without_a_gpu_is_one_line(tmp_path, capsys):
    status, err = run_cli(["--device", "cuda", "info", "sphere"], capsys, tmp_path)
    assert status == 2 and err == [
        "warpfields info: error: device 'cuda': unknown or unavailable (no CUDA device is available); "
        "this machine has cpu"
    ]


# --- sizes checked against the memory there is, before allocating ----------------------------------------------


@pytest.fixture
def eight_gib(monkeypatch):
    monkeypatch.setattr(runtime, "host_available_bytes", lambda: 8 << 30)


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["sim", "collision", "--field", "sphere", "--particles", "1000000000", "--out", "{tmp}/s.usd"],
            "particles: 1000000000 need about 476.8 GiB (512 B each), more than the 8.0 GiB free on cpu",
        ),
        (
            ["render", "sphere", "--width", "100000", "--height", "100000", "--out", "{tmp}/i.png"],
            "render: a 100000x100000 image, pixels: 10000000000 need about 894.1 GiB (96 B each)",
        ),
        (
            ["render", "sphere", "--width", "50000", "--height", "50000", "--out", "{tmp}/i.png"],
            "pixels: 2500000000 need about 223.5 GiB",
        ),
        (
            ["sim", "collision", "--field", "sphere", "--mesh-resolution", "2048", "--out", "{tmp}/s.usd"],
            "a 2048^3 grid, cells: 8589934592 need about 192.0 GiB (24 B each)",
        ),
        (
            ["sim", "curvature-flow", "--field", "sphere", "--points", "100000000", "--out", "{tmp}/s.usd"],
            "--points: 100000000 need about 95.4 GiB",
        ),
    ],
)
def test_what_cannot_fit_is_refused_with_the_estimate(tmp_path, capsys, eight_gib, argv, message):
    status, err = run_cli(argv, capsys, tmp_path)
    assert status == 2 and len(err) == 1 and message in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_a_points_file_too_large_for_memory_is_refused_before_reading(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runtime, "host_available_bytes", lambda: 1 << 20)
    np.save(tmp_path / "many.npy", np.zeros((20000, 3), dtype=np.float32))
    argv = ["query", "sphere", "--points", "{tmp}/many.npy", "--quantity", "normal", "--out", "{tmp}/o.npy"]
    status, err = run_cli(argv, capsys, tmp_path)
    assert status == 2 and "points file" in err[0] and "20000 need about" in err[0] and "free on cpu" in err[0]


def test_the_hosts_free_memory_is_known_here():
    free = runtime.host_available_bytes()
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert free is not None and 0 < free <= total


# --- interruptions -----------------------------------------------------------------------------------------


def start(argv, cwd):
    """``warpfields ARGV`` in a fresh process, with the default SIGINT disposition a terminal gives."""
    process = subprocess.Popen(
        [sys.executable, "-m", "warpfields", *argv],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    err = []
    threading.Thread(target=lambda: err.extend(iter(lambda: process.stderr.read(1), "")), daemon=True).start()
    return process, err


def wait_for(condition, process, timeout=300.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "the command ended before it could be interrupted"
        assert time.monotonic() < deadline, "the command did not get going"
        time.sleep(0.1)


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_sim_leaves_the_old_stage(tmp_path, signum, status):
    """Ctrl-C and SIGTERM keep the old stage (not the partial run) and leave no temporary stage behind."""
    old = tmp_path / "run.usda"
    old.write_text("#usda 1.0\n")
    argv = ["sim", "collision", "--field", "sphere", "--particles", "64", "--mesh-resolution", "16"]
    process, err = start([*argv, "--frames", "100000", "--substeps", "1", "--out", "run.usda"], tmp_path)
    wait_for(lambda: len(list(tmp_path.glob(".run.usda.*.part.usda"))) == 1, process)  # the stage is being written
    time.sleep(1.0)
    process.send_signal(signum)
    assert process.wait(timeout=120) == status
    lines = [line for line in "".join(err).replace("\r", "\n").splitlines() if line.strip()]
    assert lines[-1] == "warpfields sim: interrupted; run.usda left unchanged"
    assert "Traceback" not in "".join(err)
    assert old.read_text() == "#usda 1.0\n" and [p.name for p in tmp_path.iterdir()] == ["run.usda"]


def test_interrupted_training_writes_nothing(tmp_path):
    process, err = start(["train", "sphere", "--preset", "tiny", "--steps", "100000", "--out", "f.wfield"], tmp_path)
    wait_for(lambda: "train:" in "".join(err), process)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 130
    assert "".join(err).replace("\r", "\n").splitlines()[-1] == "warpfields train: interrupted; f.wfield not written"
    assert list(tmp_path.iterdir()) == []
