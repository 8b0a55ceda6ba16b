"""Tidy prediction rows: one per face per frame, the same columns in CSV, JSON and pandas.

A source or frame with no face still gives one row (face fields empty) and an unreadable
source gives one row with ``error`` set, so every input is accounted for.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    import pandas

from ..atomic import atomic_write_text
from ..data.classes import CLASSES

BASE_COLUMNS: tuple[str, ...] = ("source", "frame", "time_s", "face", "track", "x", "y", "w", "h",
                                 "emotion", "confidence", *CLASSES)
COLUMNS: tuple[str, ...] = (*BASE_COLUMNS, "error")


def face_row(source: str, frame: int | None, time_s: float | None, index: int | None, face: Any = None,
             error: str | None = None) -> dict:
    """One row; ``face`` is a :class:`~ferkit.vision.recognizer.Face` or None (no face / error).
    An error row names no frame (``frame`` None): a video's frames before the error have rows of their own."""
    row: dict[str, Any] = {c: None for c in COLUMNS}
    row.update(source=source, frame=frame, time_s=None if time_s is None else round(float(time_s), 4),
               error=error)
    if face is not None:
        x, y, w, h = face.box
        row.update(face=index, track=face.track, x=x, y=y, w=w, h=h, emotion=face.emotion,
                   confidence=round(float(face.confidence), 6))
        for name in CLASSES:
            row[name] = round(float(face.scores[name]), 6)
    return row


class Rows(list):
    """A list of row dicts with exports; columns always in :data:`COLUMNS` order."""

    columns = COLUMNS

    # Slices, sums and copies stay Rows, so rows[:10].to_pandas() works as rows.to_pandas() does.
    def __getitem__(self, index):
        item = super().__getitem__(index)
        return Rows(item) if isinstance(index, slice) else item

    def __add__(self, other):
        return Rows(list.__add__(self, list(other)))

    def copy(self) -> "Rows":
        return Rows(self)

    @property
    def errors(self) -> list[dict]:
        return [r for r in self if r.get("error")]

    def to_records(self) -> list[dict]:
        return [{c: _clean(r.get(c)) for c in COLUMNS} for r in self]

    def to_pandas(self) -> "pandas.DataFrame":
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Rows.to_pandas() needs pandas, which ferkit does not install: pip install pandas "
                              "(or ferkit[pandas]); to_records() gives the same rows as dicts") from None

        frame = pd.DataFrame(self.to_records(), columns=list(COLUMNS))
        # Whole numbers that may be missing (no face, an error row): pandas' nullable integers, not floats.
        return frame.astype({c: "Int64" for c in ("frame", "face", "track", "x", "y", "w", "h")})

    def to_json(self, path: str | Path | None = None, indent: int | None = None) -> str:
        text = json.dumps(self.to_records(), indent=indent)
        if path is not None:
            atomic_write_text(Path(path).expanduser(), text + "\n")
        return text

    def to_csv(self, path: str | Path | None = None) -> str:
        buffer = io.StringIO()
        write_csv_header(buffer)
        for row in self:
            write_csv_row(buffer, row)
        text = buffer.getvalue()
        if path is not None:
            atomic_write_text(Path(path).expanduser(), text)
        return text


def write_csv_header(out: TextIO) -> None:
    csv.writer(out, lineterminator="\n").writerow(COLUMNS)


def write_csv_row(out: TextIO, row: dict) -> None:
    csv.writer(out, lineterminator="\n").writerow(["" if row.get(c) is None else row.get(c) for c in COLUMNS])


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


