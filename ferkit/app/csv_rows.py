"""``predict --csv FILE``: rows written as they come, and picked up again by ``--resume``.

Rows stream into ``FILE.partial``, flushed after every source (and forced to disk every few
seconds), which replaces FILE only when the run is complete: FILE is never half-written, and a
run that is killed, loses power or fills the disk leaves its finished sources' rows behind.
``--resume`` keeps the rows of every source that finished without an error, from FILE and from a
``FILE.partial`` left behind, and runs only the others.  A source's rows are contiguous (sources
run one after another), so the last source in a ``.partial`` may be cut short: it runs again.

A resumed run first writes all the rows it keeps into a new ``.partial`` (replacing the old one
atomically), then appends: killed again at any point, it loses none of them.  On completion the
rows are put back in the order of the sources, as a run that was never interrupted writes them.
"""
from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Sequence
from pathlib import Path

from .errors import UsageError

FSYNC_EVERY_S = 5.0  # flushing is per source; forcing to disk per photo would cost more than the photo


def partial_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".partial")


def _read_rows(path: Path, columns: tuple[str, ...]) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header != list(columns):
                raise UsageError(f"--resume: {path} is not a ferkit predict CSV (its columns differ): "
                                 "cannot continue from it")
            return [row for row in reader if row]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"--resume: cannot read {path} ({getattr(exc, 'strerror', None) or exc})") from None


def _finished(rows: list[list[str]], columns: tuple[str, ...], drop_last: bool) -> dict[str, list[list[str]]]:
    """Rows per source, for the sources none of whose rows has an error (and whose rows are whole)."""
    source_at, error_at = columns.index("source"), columns.index("error")
    by_source: dict[str, list[list[str]]] = {}
    failed: set[str] = set()
    for row in rows:
        if len(row) != len(columns):  # a line cut short by a kill
            failed.add(row[source_at] if len(row) > source_at else "")
            continue
        by_source.setdefault(row[source_at], []).append(row)
        if row[error_at]:
            failed.add(row[source_at])
    if drop_last and rows:
        failed.add(rows[-1][source_at] if len(rows[-1]) > source_at else "")
    return {source: kept for source, kept in by_source.items() if source not in failed}


def finished_sources(path: str | os.PathLike, columns: tuple[str, ...]) -> dict[str, list[list[str]]]:
    """The rows (CSV values) of every source an earlier run into ``path`` finished without an error:
    from FILE, then from a ``FILE.partial`` left by a later, unfinished run (it wins where both have a source)."""
    path = Path(path)
    kept: dict[str, list[list[str]]] = {}
    if path.is_file():
        kept.update(_finished(_read_rows(path, columns), columns, drop_last=False))
    partial = partial_path(path)
    if partial.is_file():
        kept.update(_finished(_read_rows(partial, columns), columns, drop_last=True))
    return kept


class CsvRows:
    """The ``--csv`` sink: rows stream into ``FILE.partial``, which becomes FILE on :meth:`close`.

    ``kept`` (``--resume``): rows per source from an earlier run, written first; ``order``: the
    run's source names, the order FILE lists sources in."""

    def __init__(self, path: str | os.PathLike, columns: tuple[str, ...],
                 kept: dict[str, list[list[str]]] | None = None, order: Sequence[str] = ()):
        from ..atomic import atomic_write_text, make_folder

        self.path, self.columns = Path(path), columns
        if self.path.is_dir():
            raise UsageError(f"--csv {path}: is a folder; give a file name (rows.csv)")
        self.partial = partial_path(self.path)
        self.order = list(order) if kept else []
        self.count = sum(len(rows) for rows in (kept or {}).values())
        make_folder(self.path.parent)  # its errors name the folder ("afile: a file, not a folder")
        try:
            atomic_write_text(self.partial, _csv_text([list(columns)] + [
                row for name in dict.fromkeys(self.order) for row in (kept or {}).get(name, [])]))
            self.file = open(self.partial, "a", encoding="utf-8", newline="")
        except OSError as exc:
            raise OSError(f"--csv {self.path}: cannot write the rows ({exc.strerror or exc})") from None
        self.writer = csv.writer(self.file, lineterminator="\n")
        self.video = False
        self._synced = time.monotonic()

    def write(self, row: dict) -> None:
        self.writer.writerow(["" if row.get(c) is None else row.get(c) for c in self.columns])
        self.count += 1

    def source_done(self) -> None:
        """A source's rows are all written: make them survive a kill (and, every few seconds, a power cut)."""
        self.file.flush()
        if time.monotonic() - self._synced >= FSYNC_EVERY_S:
            os.fsync(self.file.fileno())
            self._synced = time.monotonic()

    def close(self) -> None:
        from ..atomic import atomic_write_text

        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            if self.order:  # resumed: kept rows came first; list every source in the run's order
                rows = _read_rows(self.partial, self.columns)
                source_at = self.columns.index("source")
                rank = {name: i for i, name in reversed(list(enumerate(self.order)))}
                rows.sort(key=lambda row: rank.get(row[source_at], len(rank)))  # stable: frames stay in order
                atomic_write_text(self.path, _csv_text([list(self.columns)] + rows))
                self.partial.unlink()
            else:
                os.replace(self.partial, self.path)
        except OSError as exc:
            self.abort()
            raise OSError(f"--csv {self.path}: cannot write the rows ({exc.strerror or exc})") from None

    def abort(self) -> None:
        """Stop without replacing FILE; the rows of finished sources stay in ``FILE.partial`` for --resume."""
        try:
            self.file.close()
        except OSError:
            pass
        if self.count == 0 and self.partial.exists():
            self.partial.unlink()


def _csv_text(rows: list[list]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()
