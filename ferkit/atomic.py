"""Atomic file writes (write to a temporary file in the same folder, then rename): a kill
mid-write leaves the previous file intact.  Used by every layer, so it depends on nothing."""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from glob import escape as glob_escape
from typing import BinaryIO, Callable, Iterable

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; FolderLock does nothing there
    fcntl = None  # type: ignore[assignment]


_UMASK = os.umask(0)
os.umask(_UMASK)


def temp_beside(path: str | os.PathLike, suffix: str = ".tmp") -> tuple[int, str]:
    """A new temporary file in ``path``'s folder (so ``os.replace`` onto ``path`` is atomic),
    with the permissions a normally created file gets; returns (descriptor, name).

    For writers that stream (CSV rows, video frames) and rename when complete.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder; give a file name", str(path))
    make_folder(path.parent)
    try:
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    except OSError as exc:  # name the file the user asked for, not the hidden temporary one
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600
    return handle, tmp


def make_folder(folder: Path) -> None:
    """``mkdir -p``, with an error that says which part of the path is a file where a folder must be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        check_folder_path(folder)
        raise NotADirectoryError(errno.ENOTDIR, "a file, not a folder", str(folder)) from None


def check_folder_path(folder: Path) -> None:
    """:func:`make_folder`'s error, raised before anything is made: for commands that would write the
    folder only after minutes of work."""
    blocking = next((p for p in [folder, *folder.parents] if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise NotADirectoryError(errno.ENOTDIR, "a file, not a folder", str(blocking))


def remove_stale_temps(folder: str | os.PathLike, names: Iterable[str], suffix: str = ".tmp") -> list[Path]:
    """Delete the temporary files ``temp_beside`` left for ``names`` in ``folder`` (with ``suffix``, as they
    were made) when a process was killed mid-write (SIGKILL, power loss): a resumed run would otherwise
    pile them up."""
    removed = []
    for name in names:
        for stale in Path(folder).glob(f".{glob_escape(name)}.*{glob_escape(suffix)}"):
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
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda out: out.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


class FolderLock:
    """An exclusive lock on ``folder/.lock`` for one process at a time (``flock``: the system drops it
    when the process ends, however it ends, so a killed run never leaves its folder locked).

    ``acquire`` does nothing while the folder does not exist (nobody can be working in it yet), so it
    can be called again once the folder is made. It raises ``BlockingIOError`` naming the holder's pid."""

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / ".lock"
        self._handle: BinaryIO | None = None

    def acquire(self) -> None:
        if self._handle is not None or fcntl is None or not self.path.parent.is_dir():
            return
        try:
            handle = open(self.path, "a+b")
        except OSError:  # a folder we may not write: the run's own writes will say so, in their words
            return
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read(32).decode("ascii", "replace").strip() or "unknown"
            handle.close()
            raise BlockingIOError(errno.EWOULDBLOCK, f"in use by another process (pid {holder})",
                                  str(self.path.parent)) from None
        except OSError:  # a file system without locks (some network mounts): the run goes on unlocked
            handle.close()
            return
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()).encode())
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file drops the lock
            self._handle = None
