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
The options that shape the rows are kept in a hidden ``.FILE.settings.json``; ``--resume`` with
other ones is refused, so FILE never mixes the rows of two models.
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


def settings_path(path: str | os.PathLike) -> Path:
    """Where the options that made FILE's rows are kept (hidden beside it), for ``--resume`` to compare."""
    path = Path(path)
    return path.with_name(f".{path.name}.settings.json")


def check_same_settings(path: str | os.PathLike, settings: dict[str, object]) -> None:
    """Refuse to resume FILE with options that give other rows (another model, other views, every
    other frame...): a CSV whose rows came from two models would read as one model's.  FILE from a
    ferkit that kept no settings, or whose settings cannot be read, is resumed as it is."""
    import json

    try:
        earlier = json.loads(settings_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(earlier, dict):
        return
    if isinstance(earlier.get("--model"), str):  # written by a ferkit that kept the path as typed
        from .errors import resolved_model_spec

        earlier["--model"] = resolved_model_spec(earlier["--model"])
    changed = [_difference(flag, settings[flag], earlier[flag]) for flag in settings
               if flag in earlier and _differs(flag, earlier[flag], settings[flag])]
    if changed:
        raise UsageError(f"--resume: {path} was written with other options: {'; '.join(changed)}. Give the same "
                         "options, or write these rows to another --csv FILE")


def _differs(flag: str, then: object, now: object) -> bool:
    """Whether a setting gives other rows: the float32 backends (auto, onnx, torch) give the same numbers up to
    float rounding, int8 others; a weights digest that could not be taken (an unreadable model, which loading
    it then names) is no evidence of a change."""
    if flag == "--backend":
        return (then == "int8") != (now == "int8")
    if flag == "weights" and not (then and now):
        return False
    return then != now


def _difference(flag: str, now: object, then: object) -> str:
    if flag == "weights":  # digests of the model files
        return "the model's weights (the file at that path was retrained or replaced since its rows were written)"
    return f"{flag} {_shown(now)} (its rows: {_shown(then)})"


def _shown(value: object) -> str:
    return "unset" if value is None else "on" if value is True else "off" if value is False else str(value)


def _read_rows(path: Path, columns: tuple[str, ...]) -> list[list[str]]:
    """The rows of a predict CSV up to the first line that is not whole (a kill, a power cut or a
    full disk can leave a line cut short, or zeros, at the end of a ``.partial``): the rest is dropped."""
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as handle:
            text = handle.read()
    except OSError as exc:
        raise UsageError(f"--resume: cannot read {path} ({exc.strerror or exc})") from None
    text = text.split("\x00", 1)[0]
    rows: list[list[str]] = []
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        if next(reader, None) != list(columns):
            raise UsageError(f"--resume: {path} is not a ferkit predict CSV (its columns differ): "
                             "cannot continue from it")
        for row in reader:
            if len(row) != len(columns):
                break
            rows.append(row)
    except csv.Error:
        pass  # a quote left open by a cut: the rows before it stand
    return rows


def _finished(rows: list[list[str]], columns: tuple[str, ...], drop_last: bool) -> dict[str, list[list[str]]]:
    """Rows per source, for the sources none of whose rows has an error; with ``drop_last``, not the
    last source either (its rows may be cut short)."""
    source_at, error_at = columns.index("source"), columns.index("error")
    by_source: dict[str, list[list[str]]] = {}
    failed = {rows[-1][source_at]} if drop_last and rows else set()
    for row in rows:
        by_source.setdefault(row[source_at], []).append(row)
        if row[error_at]:
            failed.add(row[source_at])
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
    run's source names, the order FILE lists sources in (kept sources that are not among them, from
    a run with other sources, come last: resuming never drops rows).  Set ``source_index`` to the
    place in ``order`` of the source whose rows :meth:`write` is given."""

    def __init__(self, path: str | os.PathLike, columns: tuple[str, ...],
                 kept: dict[str, list[list[str]]] | None = None, order: Sequence[str] = (),
                 settings: dict[str, object] | None = None):
        import json

        from ..atomic import atomic_write_text, make_folder

        self.path, self.columns = Path(path), columns
        if self.path.is_dir():
            raise UsageError(f"--csv {path}: is a folder; give a file name (rows.csv)")
        self.partial = partial_path(self.path)
        kept = kept or {}
        first = {name: i for i, name in reversed(list(enumerate(order)))}
        names = sorted(kept, key=lambda name: first.get(name, len(first)))  # stable: others keep their order
        # Where each row goes in FILE once the run is over (None: not resumed, rows already in order).
        self.positions: list[int] | None = [first.get(n, len(first)) for n in names for _ in kept[n]] if kept else None
        self.count = sum(len(rows) for rows in kept.values())
        self.source_index = 0
        try:
            make_folder(self.path.parent)
            atomic_write_text(self.partial, _csv_text([list(columns)] + [row for n in names for row in kept[n]]))
            if settings is not None:  # what --resume compares; the kept rows were checked against it
                atomic_write_text(settings_path(self.path), json.dumps(settings, indent=1) + "\n")
            self.file = open(self.partial, "a", encoding="utf-8", newline="")
        except OSError as exc:  # the filename names the blocking part of the path ("afile" is a file)
            where = f"{exc.filename}: " if exc.filename and Path(exc.filename) != self.partial else ""
            raise OSError(f"--csv {self.path}: cannot write the rows ({where}{exc.strerror or exc})") from None
        self.writer = csv.writer(self.file, lineterminator="\n")
        self.video = False
        self._synced = time.monotonic()

    def write(self, row: dict) -> None:
        self.writer.writerow(["" if row.get(c) is None else row.get(c) for c in self.columns])
        self.count += 1
        if self.positions is not None:
            self.positions.append(self.source_index)

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
            if self.positions is not None:  # resumed: kept rows came first; put every source in its place
                rows = _read_rows(self.partial, self.columns)
                if len(rows) != len(self.positions):
                    raise OSError(f"{self.partial} changed while ferkit wrote it")
                ranked = sorted(range(len(rows)), key=self.positions.__getitem__)  # stable: frames stay in order
                atomic_write_text(self.path, _csv_text([list(self.columns)] + [rows[i] for i in ranked]))
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
