"""``warpfields info FIELD``: print a field file's header and arrays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..io.fieldfile import WRITTEN_BY

_SHOWN_ELSEWHERE = {"format", "format_version", WRITTEN_BY, "kind", "dim", "normalization", "metadata"}


def register(subparsers) -> None:
    p = subparsers.add_parser("info", help="print a field file's header: kind, config, normalisation, training, arrays")
    p.add_argument("field", help="field file (or 'sphere', 'torus', 'circle')")
    p.set_defaults(func=run)


def _block(title: str, value, indent: str = "") -> list[str]:
    if not isinstance(value, dict):
        return [f"{indent}{title}: {json.dumps(value)}"]
    lines = [f"{indent}{title}:"]
    for key in sorted(value):
        lines += _block(key, value[key], indent + "  ")
    return lines


def describe(header: dict, arrays: dict[str, np.ndarray]) -> str:
    """Readable text for a field file's header and arrays."""
    normalization = header.get("normalization", {})
    if "format" in header:
        lines = [
            f"format:        {header['format']} v{header['format_version']}",
            f"written by:    {header.get(WRITTEN_BY, 'not recorded (an older file)')}",
        ]
    else:
        lines = ["format:        built-in shape"]
    lines += [
        f"kind:          {header['kind']}",
        f"dimension:     {header.get('dim', '?')}",
        f"normalization: center {normalization.get('center')}, scale {normalization.get('scale')}"
        "  (field coords = (x - center) * scale)",
    ]
    for key in sorted(set(header) - _SHOWN_ELSEWHERE):
        lines += _block(key, header[key])
    metadata = header.get("metadata") or {}
    for key in sorted(metadata):
        lines += _block(key, metadata[key])
    if arrays:
        lines.append("arrays:")
        width = max(len(name) for name in arrays)
        lines += [f"  {name:<{width}}  {a.dtype}  {tuple(a.shape)}" for name, a in arrays.items()]
    lines.append(f"parameters:    {sum(a.size for a in arrays.values())}")
    return "\n".join(lines)


def run(args) -> int:
    from ..io.fieldfile import SHAPE_WORDS, load_field, read_arrays

    if args.field in SHAPE_WORDS and not Path(args.field).exists():
        field = load_field(args.field)
        header, arrays = field.header(), field.arrays()
    else:
        header, arrays = read_arrays(args.field)
    print(describe(header, arrays))
    return 0
