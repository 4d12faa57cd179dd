"""The ``warpfields`` command. Each subcommand lives in ``warpfields/commands/<name>.py`` and
exposes ``register(subparsers)`` (modules starting with ``_`` are helpers); heavy imports
(torch) happen inside the commands that need them.

Bad input ends in one line and exit status 2; warnings are one line each; Ctrl-C (SIGINT) and
SIGTERM end in one line saying what became of the output, with status 130 and 143, after the
outputs' temporary files are removed and the old output is left as it was.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import signal
import sys
import warnings

from . import commands
from .errors import InputError, JobError, Terminated

SEED_RANGE = (0, 2**31 - 1)
DEVICE_HELP = "Warp device, e.g. cpu or cuda:0 (default: Warp's default)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="warpfields",
        description="Accurate spatial derivatives of hybrid neural fields, in Warp.",
    )
    parser.add_argument("--device", default=None, help=DEVICE_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        importlib.import_module(f"{commands.__name__}.{info.name}").register(sub)
    _accept_device_everywhere(sub)
    return parser


def _accept_device_everywhere(subparsers: argparse._SubParsersAction) -> None:
    """``--device`` is accepted after any subcommand too; SUPPRESS keeps a value given before it."""
    for command in subparsers.choices.values():
        command.add_argument("--device", default=argparse.SUPPRESS, help=DEVICE_HELP)
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                _accept_device_everywhere(action)


def _file_state(path) -> tuple | None:
    try:
        stat = os.stat(path)
    except (OSError, TypeError, ValueError):
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def _after_interruption(out, before) -> str:
    if out is None:
        return "interrupted"
    now = _file_state(out)
    if now is None:
        return f"interrupted; {out} not written"
    return f"interrupted; {out} left unchanged" if now == before else f"interrupted after {out} was written"


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM raises ``Terminated`` in the main thread, so that cleanup runs as for Ctrl-C."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _one_line_warnings(prefix: str):
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"{prefix}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _check_common(args: argparse.Namespace) -> None:
    from .runtime import get_device

    if args.device is not None:
        get_device(args.device)
    seed = getattr(args, "seed", None)
    if seed is not None and not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise InputError(f"--seed {seed}: expected an integer in [{SEED_RANGE[0]}, {SEED_RANGE[1]}]")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    name = f"warpfields {args.command}"
    out = getattr(args, "out", None)
    before = _file_state(out)
    with _terminate_as_interrupt(), _one_line_warnings(name):
        try:
            _check_common(args)
            return int(args.func(args) or 0)
        except (InputError, JobError) as error:
            print(f"{name}: error: {error}", file=sys.stderr)
            return 2 if isinstance(error, InputError) else 1
        except KeyboardInterrupt as interruption:
            status = 128 + (signal.SIGTERM if isinstance(interruption, Terminated) else signal.SIGINT)
        # Out of the handler the interrupted frames are released, and their progress bars end their lines.
        print(f"{name}: {_after_interruption(out, before)}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
