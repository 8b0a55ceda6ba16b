"""Cache decoded datasets as compressed ``.npz`` files.

The key is a hash of every source file's path, size and modification time (and the loader
options), so any change to the data makes a new entry.  The cache folder is
``$FERKIT_CACHE_DIR`` or ``~/.cache/ferkit``.  A damaged cache entry is ignored and rebuilt.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable

if TYPE_CHECKING:
    from .fer2013 import FER2013

import numpy as np

from ..atomic import atomic_write

_UNWRITABLE_SAID: set[str] = set()  # cache folders already reported as unwritable in this process


class CacheWarning(UserWarning):
    """The cache cannot be written: news about this machine, not a problem of the data being read."""

# Bumped whenever what a load produces changes (2: a folder's split wins over a file name's prefix;
# 3: CSV emotions as class names, __MACOSX never read, problems worded anew).
_FORMAT_VERSION = "3"


def default_cache_dir() -> Path:
    return Path(os.environ.get("FERKIT_CACHE_DIR") or Path.home() / ".cache" / "ferkit")


def save_in_cache(file: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write a cache entry atomically.  A cache that cannot be written (read-only, full, or
    ``FERKIT_CACHE_DIR`` naming a file) costs only time, so the work goes on, but the user is told
    once per folder: every run would otherwise decode or export again without a word of why."""
    try:
        atomic_write(file, write)
    except OSError as exc:
        folder = str(file.parent)
        if folder not in _UNWRITABLE_SAID:
            _UNWRITABLE_SAID.add(folder)
            where = exc.filename if exc.filename and str(exc.filename) != str(file) else folder
            warnings.warn(f"cache {where}: cannot write ({exc.strerror or exc}); going on without it, so the "
                          "work is done again next time (set FERKIT_CACHE_DIR to a writable folder)",
                          CacheWarning, stacklevel=2)


# One (path, size, last change in ns) per source file.
Signature = list[tuple[str, int, int]]


def cache_key(signature: Signature, skip_bad: bool) -> str:
    text = "\n".join(f"{path}|{size}|{mtime}" for path, size, mtime in signature)
    # surrogateescape: a file name in another encoding than UTF-8 (an old zip's) is bytes Python keeps as is.
    return hashlib.sha256(f"{_FORMAT_VERSION}|{skip_bad}\n{text}".encode("utf-8", "surrogateescape")).hexdigest()[:32]


def cached_load(signature: Signature, skip_bad: bool, load: Callable[[], "FER2013"], *, enabled: bool = True,
                cache_dir: str | os.PathLike | None = None, root: str = "") -> "FER2013":
    """Return ``load()``'s dataset, from the cache when the sources have not changed.  ``root``: the data's
    path as given now; the names of sources and problems a cached entry keeps are given with it, not with
    the path the first load was given (another folder's relative path, say)."""
    from .fer2013 import FER2013, Split

    if not enabled:
        return load()
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    file = folder / f"fer2013-{cache_key(signature, skip_bad)}.npz"
    if file.exists():
        try:
            with np.load(file, allow_pickle=False) as stored:
                meta = json.loads(str(stored["meta"]))
                renamed = _renamer(meta.get("root", ""), root)
                splits = {
                    name: Split(stored[f"{name}_images"], stored[f"{name}_labels"],
                                [renamed(source) for source in meta["sources"][name]])
                    for name in meta["splits"]
                }
            return FER2013(splits, [renamed(p) for p in meta["problems"]], meta["converted"], meta.get("cropped", {}))
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error):
            pass  # damaged entry: fall through and rebuild it
    dataset = load()
    meta = {
        "splits": list(dataset.splits),
        "problems": dataset.problems,
        "converted": dataset.converted,
        "cropped": dataset.cropped,
        "sources": {name: split.sources for name, split in dataset.splits.items()},
        "root": root,
    }
    arrays = {"meta": np.asarray(json.dumps(meta))}
    for name, split in dataset.splits.items():
        arrays[f"{name}_images"] = split.images
        arrays[f"{name}_labels"] = split.labels
    save_in_cache(file, lambda out: np.savez_compressed(out, **arrays))
    return dataset


def _renamer(stored_root: str, root: str) -> Callable[[str], str]:
    """Text that begins with the path an entry was stored under, begun with ``root`` instead."""
    if not stored_root or not root or stored_root == root:
        return lambda text: text
    return lambda text: root + text[len(stored_root):] if text.startswith(stored_root) else text
