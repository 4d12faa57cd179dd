"""The ``warpfields`` command. Each subcommand lives in ``warpfields/commands/<name>.py`` and
exposes ``register(subparsers)`` (modules starting with ``_`` are helpers); heavy imports
(torch) happen inside the commands that need them."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import commands
from .errors import InputError, JobError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="warpfields",
        description="Accurate spatial derivatives of hybrid neural fields, in Warp.",
    )
    parser.add_argument("--device", default=None, help="Warp device, e.g. cpu or cuda:0 (default: Warp's default)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        importlib.import_module(f"{commands.__name__}.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (InputError, JobError) as error:
        print(f"warpfields {args.command}: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, InputError) else 1


if __name__ == "__main__":
    sys.exit(main())
