"""Field files: one ``.npz`` archive (no pickle) holding a JSON header and the field's arrays.

The ``__header__`` entry is UTF-8 JSON stored as uint8 bytes: ``{"format": "warpfields-field",
"format_version": 1, **field.header()}``; every other entry is one of ``field.arrays()``.
Field kinds are rebuilt by ``FIELD_KINDS[kind].from_parts(header, arrays)``.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..fields.base import Field
from ..fields.shapes import AnalyticField
from ..runtime import format_bytes
from .atomic import atomic_path

FORMAT = "warpfields-field"
FORMAT_VERSION = 1
HEADER_KEY = "__header__"
SHAPE_WORDS = ("sphere", "torus", "circle")

FIELD_KINDS: dict[str, type] = {"analytic": AnalyticField}
# Kinds imported on first use, so that reading a header never imports what it does not need.
_LAZY_KINDS = {"hybrid": ("warpfields.fields.hybrid", "HybridField")}


def register_kind(kind: str, cls: type) -> None:
    """Make ``load_field`` rebuild fields of ``kind`` with ``cls.from_parts(header, arrays)``."""
    FIELD_KINDS[kind] = cls


def _kind_class(kind: str, what: str) -> type:
    if kind not in FIELD_KINDS and kind in _LAZY_KINDS:
        module, name = _LAZY_KINDS[kind]
        register_kind(kind, getattr(importlib.import_module(module), name))
    if kind not in FIELD_KINDS:
        raise InputError(f"{what}: unknown field kind {kind!r}; known kinds: {sorted(FIELD_KINDS)}")
    return FIELD_KINDS[kind]


def save_field(field: Field, path: str | os.PathLike) -> Path:
    """Write ``field`` to ``path`` atomically (any extension; ``.wfield`` by convention)."""
    what = f"field file {str(path)!r}"
    _kind_class(field.kind, f"{what}: a {field.kind} field cannot be saved;")
    arrays = {name: np.ascontiguousarray(a) for name, a in field.arrays().items()}
    for name, array in arrays.items():
        if name == HEADER_KEY or array.dtype.hasobject:
            raise InputError(f"{what}: array {name!r} ({array.dtype}) cannot be stored")
    _check_finite(arrays, f"{what}: cannot save the field;")
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, **field.header()}
    encoded = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    with atomic_path(path, "field file") as tmp:
        # Through a file object numpy writes exactly this path instead of appending ".npz".
        with open(tmp, "wb") as out:
            np.savez(out, allow_pickle=False, **{HEADER_KEY: encoded}, **arrays)
    return Path(path)


def _open(path: Path, what: str):
    if not path.exists():
        raise InputError(f"{what}: file not found")
    if not path.is_file() or not os.access(path, os.R_OK):
        raise InputError(f"{what}: not a readable file")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            if f.read(4) == b"PK\x03\x04":
                raise InputError(f"{what}: truncated or damaged archive (no zip directory)")
        raise InputError(f"{what}: not a warpfields field file (not an npz archive)")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise InputError(f"{what}: damaged or truncated archive ({error})") from error


_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _check_declared_size(data, name: str, what: str) -> None:
    """Refuse an entry whose header declares more data than the entry holds, before numpy allocates it."""
    info = data.zip.getinfo(f"{name}.npy")
    with data.zip.open(info) as entry:
        version = np.lib.format.read_magic(entry)
        if version not in _HEADER_READERS:
            raise InputError(f"{what}: entry {name!r} has .npy format version {version}; expected 1.0 or 2.0")
        shape, _, dtype = _HEADER_READERS[version](entry)
        if dtype.hasobject:
            raise InputError(f"{what}: entry {name!r} holds Python objects; field files hold numbers only")
        declared = math.prod(shape) * dtype.itemsize
        held = info.file_size - entry.tell()
    if declared > held:
        raise InputError(
            f"{what}: entry {name!r} declares {shape} {dtype} ({format_bytes(declared)}) but holds "
            f"{format_bytes(held)}; the file is damaged"
        )


def _check_finite(arrays: dict[str, np.ndarray], what: str) -> None:
    for name, array in arrays.items():
        if array.dtype.kind in "fc":
            bad = int(array.size - np.count_nonzero(np.isfinite(array)))
            if bad:
                raise InputError(
                    f"{what} array {name!r} holds {bad} non-finite values (NaN or infinity) among {array.size}"
                )


def _read(data, name: str, what: str) -> np.ndarray:
    try:
        _check_declared_size(data, name, what)
        return data[name]
    except InputError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as error:
        raise InputError(f"{what}: entry {name!r} is damaged or truncated ({error})") from error


def _header(data, what: str) -> dict:
    if HEADER_KEY not in data.files:
        raise InputError(f"{what}: no {HEADER_KEY} entry; not a warpfields field file")
    raw = _read(data, HEADER_KEY, what)
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{what}: the header is not valid JSON ({error})") from error
    if not isinstance(header, dict):
        raise InputError(f"{what}: the header is not a JSON object")
    if header.get("format") != FORMAT:
        raise InputError(f"{what}: format {header.get('format')!r}; expected {FORMAT!r}")
    if header.get("format_version") != FORMAT_VERSION:
        raise InputError(
            f"{what}: format version {header.get('format_version')!r}; this warpfields reads version {FORMAT_VERSION}"
        )
    if not isinstance(header.get("kind"), str):
        raise InputError(f"{what}: the header names no field kind")
    return header


def read_header(path: str | os.PathLike) -> dict:
    """The checked JSON header of a field file."""
    what = f"field file {str(path)!r}"
    with _open(Path(path), what) as data:
        return _header(data, what)


def read_arrays(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """The checked header and all arrays of a field file."""
    what = f"field file {str(path)!r}"
    with _open(Path(path), what) as data:
        header = _header(data, what)
        return header, {name: _read(data, name, what) for name in data.files if name != HEADER_KEY}


def load_field(source: str | os.PathLike) -> Field:
    """A field from a field file, or the default analytic ``sphere``, ``torus`` or ``circle``."""
    if str(source) in SHAPE_WORDS and not Path(source).exists():
        return AnalyticField(str(source))
    what = f"field file {str(source)!r}"
    header, arrays = read_arrays(source)
    _check_finite(arrays, f"{what}: damaged parameters:")
    cls = _kind_class(header["kind"], what)
    try:
        return cls.from_parts(header, arrays)
    except (KeyError, TypeError, ValueError) as error:
        detail = f"missing entry {error}" if isinstance(error, KeyError) else str(error)
        raise InputError(f"{what}: cannot rebuild the {header['kind']} field: {detail}") from error


__all__ = [
    "FIELD_KINDS",
    "FORMAT",
    "FORMAT_VERSION",
    "load_field",
    "read_arrays",
    "read_header",
    "register_kind",
    "save_field",
]
