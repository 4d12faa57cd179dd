"""Write outputs so that a failure or an interruption never leaves a partial file or clobbers an old one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import InputError


def _temporary(path: Path, what: str, suffix: str) -> Path:
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as error:
        reason = f"cannot create files in {str(path.parent)!r} ({error.strerror})"
        raise InputError(f"{what} {str(path)!r}: {reason}") from error
    os.close(fd)
    return Path(name)


def check_output_path(path: str | os.PathLike, what: str = "output") -> Path:
    """Fail early, before any work, when ``path`` cannot be written: the folder must exist and take a new file."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"{what} {str(path)!r}: folder {str(folder)!r} does not exist")
    if path.is_dir():
        raise InputError(f"{what} {str(path)!r} is a folder; expected a file path")
    # Permission bits do not tell (root passes os.access on /proc, where no file can be made): try it.
    _temporary(path, what, ".probe").unlink()
    return path


class PendingFile:
    """A temporary file next to ``path`` that ``commit`` renames over ``path`` and ``discard`` removes."""

    def __init__(self, path: str | os.PathLike, what: str = "output"):
        self.path = check_output_path(path, what)
        self.what = what
        self.temporary = _temporary(self.path, what, ".part" + self.path.suffix)

    def commit(self) -> Path:
        # mkstemp makes owner-only files; give the output the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        try:
            os.chmod(self.temporary, 0o666 & ~umask)
            os.replace(self.temporary, self.path)
        except OSError as error:
            self.discard()
            raise InputError(f"{self.what} {str(self.path)!r}: cannot be written ({error.strerror})") from error
        return self.path

    def discard(self) -> None:
        self.temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, what: str = "output") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    On an exception (an interruption included) the temporary file is removed and ``path`` is left as it was.
    """
    pending = PendingFile(path, what)
    try:
        yield pending.temporary
        pending.commit()
    finally:
        pending.discard()
