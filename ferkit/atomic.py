"""Atomic file writes (write to a temporary file in the same folder, then rename): a kill
mid-write leaves the previous file intact.  Used by every layer, so it depends on nothing."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from glob import escape as glob_escape
from typing import BinaryIO, Callable, Iterable


_UMASK = os.umask(0)
os.umask(_UMASK)


def temp_beside(path: str | os.PathLike, suffix: str = ".tmp") -> tuple[int, str]:
    """A new temporary file in ``path``'s folder (so ``os.replace`` onto ``path`` is atomic),
    with the permissions a normally created file gets; returns (descriptor, name).

    For writers that stream (CSV rows, video frames) and rename when complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600
    return handle, tmp


def remove_stale_temps(folder: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Delete the temporary files ``temp_beside`` left for ``names`` in ``folder`` when a process
    was killed mid-write (SIGKILL, power loss): a resumed run would otherwise pile them up."""
    removed = []
    for name in names:
        for stale in Path(folder).glob(f".{glob_escape(name)}.*.tmp"):
            stale.unlink(missing_ok=True)
            removed.append(stale)
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    path = Path(path)
    handle, tmp = temp_beside(path)
    try:
        with os.fdopen(handle, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda out: out.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
