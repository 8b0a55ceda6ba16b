"""Load FER2013 in every form users have it.

* the challenge file ``fer2013.csv`` (columns ``emotion,pixels,Usage``);
* a dataset root with ``train/`` and ``test/`` (optionally ``val/``) class folders, the
  Kaggle layout of ``../shared/fer2013``;
* a single folder of class subfolders (one split, or several when file names carry the
  FER2013 usage prefix).

Everything comes back as uint8 ``N x 48 x 48`` faces with labels in the canonical order of
:data:`ferkit.data.classes.CLASSES`, split by FER2013 usage (``training``, ``publictest``,
``privatetest``).  Decoded arrays are cached (see :mod:`ferkit.data.cache`).
"""
from __future__ import annotations

import csv
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import ItemsView, Iterator, KeysView, Protocol

import numpy as np

from .classes import CLASSES, SPLITS, class_index
from .errors import DataError, os_problem
from .images import (FACE_SIZE, IMAGE_EXTENSIONS, UNREADABLE_PICTURE_EXTENSIONS, ImageDecodeError, decode_face,
                     read_image)

# Files that operating systems and tools drop into folders; never data.
_IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini"})

_USAGE_TO_SPLIT = {"training": "training", "publictest": "publictest", "privatetest": "privatetest"}
_FOLDER_TO_SPLIT = {
    "train": "training",
    "training": "training",
    "val": "publictest",
    "valid": "publictest",
    "validation": "publictest",
    "publictest": "publictest",
    "test": "publictest",
    "privatetest": "privatetest",
}
_PREFIX_TO_SPLIT = {"training_": "training", "publictest_": "publictest", "privatetest_": "privatetest"}


class FaceCropper(Protocol):
    """Turns any decoded picture (gray or BGR) into the 48x48 gray face it shows, e.g. by detecting
    it (:class:`ferkit.vision.crop.LargestFaceCropper`); ``last`` names how the last face was found
    and ``key`` what the crops depend on (part of the cache key)."""

    key: str
    last: str

    def __call__(self, image: np.ndarray) -> np.ndarray: ...


@dataclass
class Split:
    """One split: faces (N x 48 x 48 uint8) and labels (N int64), plus where each came from."""

    images: np.ndarray
    labels: np.ndarray
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:  # the arrays themselves would fill a notebook cell
        size = "x".join(map(str, self.images.shape[1:])) or "?"
        return f"Split({len(self)} faces, {size}, {self.class_counts()})"

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(CLASSES))
        return {name: int(counts[i]) for i, name in enumerate(CLASSES)}


@dataclass
class FER2013:
    """The splits found at a path, and the problems met while loading it."""

    splits: dict[str, Split]
    problems: list[str] = field(default_factory=list)
    converted: int = 0  # images that were not 48x48 grayscale and were converted
    cropped: dict[str, dict[str, int]] = field(default_factory=dict)  # with a FaceCropper: split -> way -> faces

    def __getitem__(self, name: str) -> Split:
        return self.split(name)

    # A mapping of split names to splits, as data["training"] suggests: iterate, ask "in", list the keys.
    def __iter__(self) -> Iterator[str]:
        return iter(self.splits)

    def __len__(self) -> int:
        return len(self.splits)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.split(name)
        except DataError:
            return False
        return True

    def keys(self) -> KeysView[str]:
        return self.splits.keys()

    def items(self) -> ItemsView[str, Split]:
        return self.splits.items()

    def __repr__(self) -> str:
        splits = ", ".join(f"{name}: {len(split)}" for name, split in self.splits.items())
        return f"FER2013({splits}; {len(self.problems)} problem(s), {self.converted} converted)"

    def _read_from_test_folder(self) -> str | None:
        """The split read from a ``test/`` folder, when exactly one was (Kaggle's test/ may hold two)."""
        names = [name for name, split in self.splits.items()
                 if split.sources and _normalise(_split_folder_name(split.sources[0])) == "test"]
        return names[0] if len(names) == 1 else None

    def cropped_total(self) -> dict[str, int]:
        """Faces per way the cropper found them, over all splits."""
        total: dict[str, int] = {}
        for counts in self.cropped.values():
            for way, n in counts.items():
                total[way] = total.get(way, 0) + n
        return total

    def split(self, name: str) -> Split:
        if not isinstance(name, str):
            raise DataError(f"split {name!r}: give a split's name ({', '.join(self.splits) or 'none here'})")
        key = name.strip().lower().replace("_", "").replace("-", "")
        if key == "test" and (from_test := self._read_from_test_folder()):
            key = from_test  # train/val/test: "test" is the test/ folder (PrivateTest), not val/
        key = _FOLDER_TO_SPLIT.get(key, key)
        if key not in self.splits:
            raise DataError(f"no split {name!r} here; splits found: {', '.join(self.splits) or 'none'}")
        return self.splits[key]


def load_fer2013(
    path: str | os.PathLike,
    *,
    skip_bad: bool = False,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    cropper: FaceCropper | None = None,
) -> FER2013:
    """Load FER2013 from a CSV file, a dataset root, or one folder of class subfolders.

    With ``skip_bad=False`` (the default) the first bad item raises :class:`DataError` naming
    the file (and row) and the problem; with ``skip_bad=True`` bad items are skipped and each
    is listed in ``problems``.  Image files become 48x48 gray faces whole (resized), or, with
    a ``cropper``, as it cuts them out (``cropped`` counts the faces per way it found them).
    """
    from .cache import cached_load

    if not os.fspath(path).strip():  # Path("") is the current folder: never read it unasked
        raise DataError("no dataset given (the path is empty)")
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"{root}: no such file or directory")
    if not root.is_file() and not root.is_dir():  # a pipe or device: it has no size or date to cache by
        raise DataError(f"{root}: not a regular file or folder")
    if root.is_file():
        if root.suffix.lower() != ".csv":
            archive = root.suffix.lower() in (".zip", ".tar", ".gz", ".tgz", ".7z", ".rar", ".xz", ".bz2")
            raise DataError(f"{root}: " + ("an archive: extract it, then give the folder or fer2013.csv it holds"
                                           if archive else "not a FER2013 CSV file or dataset folder"))
        stat = root.stat()
        signature = [(str(root.resolve()), stat.st_size, _changed_ns(stat))]
        result = cached_load(signature, skip_bad, lambda: _load_csv(root, skip_bad), enabled=cache,
                             cache_dir=cache_dir, root=str(root))
    else:
        layout = _folder_layout(root)
        base = str(root.resolve())
        signature = [(f"{base}|{p}", size, mtime) for _, _, files, _ in layout for p, _, size, mtime in files or []]
        signature += [(f"{base}|{folder}|not a class", 0, 0) for _, folder, files, _ in layout if files is None]
        # Every class folder, empty ones too, and the split it is read as (whether val/ has faces decides what test/ is).
        signature += [(f"{base}|{folder}|{hint}", 0, 0) for hint, folder, files, _ in layout if files is not None]
        signature += [(f"{base}|{problem}", 0, 0) for _, _, _, problems in layout for problem in problems]
        result = cached_load(signature, skip_bad, lambda: _load_folders(root, layout, skip_bad), enabled=cache,
                             cache_dir=cache_dir, root=str(root))
        overruled = _names_overruled(layout)
        if overruled:
            warnings.warn(f"{root}: {overruled}", stacklevel=2)
        if cropper is not None and result.converted:
            # Some pictures are not 48x48 gray faces: load again, letting the cropper find their faces.
            # (Data that is all FER2013-style crops, FER2013 itself, never pays for this, nor is cached twice.)
            result = cached_load(signature + [(f"cropper|{cropper.key}", 0, 0)], skip_bad,
                                 lambda: _load_folders(root, layout, skip_bad, cropper), enabled=cache,
                                 cache_dir=cache_dir, root=str(root))
        elif cropper is not None:
            result.cropped = {name: {"crop": len(split)} for name, split in result.splits.items()}
    if result.converted:
        total = result.cropped_total()
        how = f" ({describe_cropped(total)})" if total else ""
        warnings.warn(
            f"{root}: {result.converted} image(s) were not 48x48 grayscale and were converted{how}",
            stacklevel=2,
        )
    return result


def _changed_ns(stat: os.stat_result) -> int:
    """When a file last changed, for the cache key: its modification time, or its status-change time when
    later (a file copied over another with ``cp -p`` or ``rsync -a`` keeps the old one's size and date)."""
    return max(stat.st_mtime_ns, stat.st_ctime_ns)


def describe_cropped(cropped: dict[str, int]) -> str:
    """``{"detected": 40, "centre": 2}`` -> ``"faces: 40 detected, 2 central squares (no face found)"``."""
    words = {"crop": "48x48 crops", "detected": "detected", "centre": "central squares (no face found)"}
    order = sorted(cropped, key=lambda way: (list(words).index(way) if way in words else len(words), way))
    return "faces: " + ", ".join(f"{cropped[way]} {words.get(way, way)}" for way in order)


# ----------------------------------------------------------------------------- CSV


def _bad_item_handler(skip_bad: bool, problems: list[str]):
    """What to do with a bad item (a row, a file, a folder): stop the load with a one-line error
    that says how to go on without it, or, with ``skip_bad``, list it in ``problems``."""
    def bad(message: str) -> None:
        if not skip_bad:
            raise DataError(f"{message} (to leave bad items out: --skip-bad, or skip_bad=True in Python)")
        problems.append(message)

    return bad



def _load_csv(path: Path, skip_bad: bool) -> FER2013:
    faces: dict[str, list[np.ndarray]] = {}
    labels: dict[str, list[int]] = {}
    sources: dict[str, list[str]] = {}
    problems: list[str] = []

    bad = _bad_item_handler(skip_bad, problems)

    try:
        # Bytes that are not UTF-8 become U+FFFD, so their row fails to parse and is reported by number.
        handle = open(path, newline="", encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    with handle:
        # One physical line is one row (FER2013 has no field that spans lines): a stray quote then costs its own
        # row, named by its line, instead of swallowing the rows after it or stopping the whole load.
        lines = enumerate(handle, start=1)
        first = next((line for _, line in lines if line.strip()), "")
        header = [h.strip().lower() for h in _csv_fields(first)] if first else []
        missing = [c for c in ("emotion", "pixels") if c not in header]
        if missing:
            found = ", ".join(header) or "none"
            found = found if len(found) <= 120 else found[:120] + "..."  # a binary file's "header" is kilobytes
            if not found.isprintable():  # a binary file's bytes would reach the terminal as control codes
                found = f"not text: {found.encode('unicode_escape').decode('ascii')[:120]}"
            other = next((name for mark, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars"))
                          if len(header) == 1 and mark in first), None)
            why = f"; its fields are separated by {other}, FER2013's by commas" if other else ""
            raise DataError(f"{path}: missing column(s) {', '.join(missing)} (found: {found}){why}")
        has_usage = "usage" in header
        for line_number, line in lines:
            if not line.strip():
                continue
            where = f"{path}:{line_number}"
            try:
                fields = _csv_fields(line)
            except csv.Error as exc:
                bad(f"{where}: malformed CSV line ({exc})")
                continue
            if len(fields) != len(header):
                bad(f"{where}: {len(fields)} field(s) where the header has {len(header)}")
                continue
            row = dict(zip(header, fields))
            label = _csv_label(row.get("emotion") or "")
            if label is None:
                bad(f"{where}: emotion {row.get('emotion')!r} is neither a number 0..{len(CLASSES) - 1} nor a class "
                    f"name ({', '.join(CLASSES)})")
                continue
            if not 0 <= label < len(CLASSES):
                bad(f"{where}: emotion {label} is outside 0..{len(CLASSES) - 1}")
                continue
            usage = row["usage"].strip().lower() if has_usage else "training"
            split = _USAGE_TO_SPLIT.get(usage)
            if split is None:
                bad(f"{where}: unknown Usage {row.get('usage')!r} (expected Training, PublicTest or PrivateTest)")
                continue
            pixel_text = row.get("pixels") or ""
            try:
                pixels = np.array(pixel_text.split(), dtype=np.int64)
            except (ValueError, OverflowError):
                bad(f"{where}: pixels contain non-integer values")
                continue
            if pixels.size != FACE_SIZE * FACE_SIZE:
                bad(f"{where}: expected {FACE_SIZE * FACE_SIZE} pixels, got {pixels.size}")
                continue
            if pixels.min() < 0 or pixels.max() > 255:
                bad(f"{where}: pixel values outside 0..255")
                continue
            faces.setdefault(split, []).append(pixels.astype(np.uint8).reshape(FACE_SIZE, FACE_SIZE))
            labels.setdefault(split, []).append(label)
            sources.setdefault(split, []).append(where)
    if not faces:
        raise DataError(f"{path}: no faces found{_first_of(problems)}")
    splits = {name: Split(np.stack(faces[name]), np.asarray(labels[name], dtype=np.int64), sources[name])
              for name in SPLITS if name in faces}
    return FER2013(splits, problems)


def _csv_label(text: str) -> int | None:
    """A CSV's emotion: FER2013's number, or a class name as re-packagings write it ("Angry", "happiness")."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        return class_index(text)


def _csv_fields(line: str) -> list[str]:
    """One CSV line's fields (strict: a quote out of place is a :class:`csv.Error`, not a merged field)."""
    return next(csv.reader([line], strict=True), [])


# ----------------------------------------------------------------------------- folders

# (split hint from the folder, folder path, [(file, class index, size, mtime_ns)], problems) per
# class folder; None instead of the files for a folder that is not named after a class; problems:
# what is in the folder but cannot be read as a file (all reported when loading).
_Layout = list[tuple[str | None, Path, list[tuple[str, int, int, int]] | None, list[str]]]


def _folder_layout(root: Path) -> _Layout:
    """Find the class folders below ``root`` and the files in each (nothing is decoded here)."""
    children = _subdirs(root)
    split_dirs = [d for d in children if _normalise(d.name) in _FOLDER_TO_SPLIT]
    class_dirs = [d for d in children if class_index(d.name) is not None]
    # Pictures beside the class folders have no class: said, so that they do not vanish without a word.
    loose = [name for folder in [root, *(split_dirs if not class_dirs else [])] for name in _pictures_in(folder)] \
        if split_dirs or class_dirs else []  # (not in a folder that is no dataset: that error comes below)
    if loose:
        warnings.warn(f"{root}: {len(loose)} picture(s) outside the class folders not read (they have no class), e.g. "
                      f"{loose[0]}", stacklevel=3)
    if split_dirs and not class_dirs:
        others = [d.name + "/" for d in children if d not in split_dirs]
        if others:  # a folder of faces under another name would otherwise vanish without a word
            warnings.warn(f"{root}: folder(s) {', '.join(others)} not read: not a split (train/, test/, val/, "
                          "PrivateTest/ ...)", stacklevel=3)
        scanned: dict[Path, _Layout] = {}
        refusals: list[DataError] = []
        for split_dir in split_dirs:
            try:
                scanned[split_dir] = _class_folders(split_dir, None)
            except DataError as exc:  # an empty split folder is one bad item (--skip-bad goes on without it)
                scanned[split_dir] = [(None, split_dir, [], [str(exc)])]
                refusals.append(exc)
        if len(refusals) == len(split_dirs):  # no split has class folders: --skip-bad could not help
            raise refusals[0]
        # train/val/test: val plays PublicTest and test PrivateTest; a val/ with no file in it does not count.
        has_val = any(_FOLDER_TO_SPLIT[_normalise(d.name)] == "publictest" and _normalise(d.name) != "test"
                      and any(files for _, _, files, _ in scanned[d]) for d in split_dirs)
        layout: _Layout = []
        for split_dir in split_dirs:
            hint = _FOLDER_TO_SPLIT[_normalise(split_dir.name)]
            if _normalise(split_dir.name) == "test" and has_val:
                hint = "privatetest"
            layout.extend((hint, folder, files, problems) for _, folder, files, problems in scanned[split_dir])
        return layout
    if class_dirs:
        hint = _FOLDER_TO_SPLIT.get(_normalise(root.name))
        return _class_folders(root, hint)
    if class_index(root.name) is not None:  # the user gave one class's folder, not the folder that holds them
        raise DataError(f"{root}: this is the folder of one class ({root.name}); give the folder that holds the "
                        f"class folders ({root.parent})")
    raise DataError(
        f"{root}: no FER2013 layout found (expected train/ and test/ folders, or class folders such as "
        f"{', '.join(CLASSES)}){_numbered(children) or _what_is_here(root, children)}"
    )


def _what_is_here(root: Path, children: list[Path]) -> str:
    """What a folder that is no dataset holds, when that tells the user what to do: a dataset one
    level down (an archive extracted into a folder of its own name), or loose pictures."""
    def holds_data(folder: Path) -> bool:
        try:
            return any(_normalise(d.name) in _FOLDER_TO_SPLIT or class_index(d.name) is not None
                       for d in _subdirs(folder))
        except DataError:  # a folder that cannot be listed is no hint
            return False

    below = [child for child in children if holds_data(child)]
    if below:
        return f"; the dataset seems to be one level down: give {below[0]}"
    pictures = _pictures_in(root)
    if pictures:
        return (f"; it holds {len(pictures)} picture(s) but no class folders: ferkit takes each face's class from "
                "the name of the folder it is in (a label file beside them is not read), so sort them into "
                "folders named after their class")
    return ""


def _numbered(folders: list[Path]) -> str:
    """Why folders named 1, 2, ... are not read as classes, when they are."""
    numbered = sorted((f.name for f in folders if f.name.isascii() and f.name.isdigit()), key=int)
    if not numbered:
        return ""
    return (f"; its folders are numbered ({', '.join(numbered)}), and datasets number emotions differently "
            f"(FER2013's 0-6: {', '.join(CLASSES)}; RAF-DB's 1-7: surprise, fear, disgust, happy, sad, angry, "
            "neutral; AffectNet's 0-7: neutral, happy, sad, surprise, fear, disgust, angry, contempt): rename them "
            "after their classes")


def _class_folders(parent: Path, hint: str | None) -> _Layout:
    layout: _Layout = []
    for folder in _subdirs(parent):
        index = class_index(folder.name)
        if index is None:  # e.g. contempt, a class FER2013 does not have
            layout.append((hint, folder, None, []))
            continue
        files: list[tuple[str, int, int, int]] = []
        problems: list[str] = []
        _scan_class_folder(folder, index, files, problems)
        files.sort()  # plain strings: sorting Path objects costs seconds on 32k files
        layout.append((hint, folder, files, problems))
    if not any(files is not None for _, _, files, _ in layout):
        raise DataError(f"{parent}: no class folders found (expected folders named {', '.join(CLASSES)})"
                        f"{_numbered([folder for _, folder, _, _ in layout])}")
    return layout


def _scan_class_folder(folder: str | Path, index: int, files: list, problems: list[str]) -> None:
    """Every file below a class folder (its sub-folders too, e.g. one per subject), and what cannot
    be read as a file: a broken link, a pipe, a folder that cannot be listed.  os.scandir gives file
    type and stat without extra system calls per file: listing the 32k files of FER2013 must stay
    fast, since it happens on every (cached) load."""
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith(".") or entry.name.lower() in _IGNORED_NAMES:
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        _scan_class_folder(entry.path, index, files, problems)
                    elif entry.is_file():
                        stat = entry.stat()
                        files.append((entry.path, index, stat.st_size, _changed_ns(stat)))
                    elif entry.is_dir():  # a link to a folder: not followed, it could loop
                        problems.append(f"{entry.path}: a link to a folder (not followed)")
                    elif entry.is_symlink():
                        problems.append(f"{entry.path}: broken link")
                    else:
                        problems.append(f"{entry.path}: not a regular file")
                except OSError as exc:
                    problems.append(f"{entry.path}: cannot read ({os_problem(exc)})")
    except OSError as exc:
        problems.append(f"{folder}: cannot list folder ({os_problem(exc)})")


def _load_folders(root: Path, layout: _Layout, skip_bad: bool, cropper: FaceCropper | None = None) -> FER2013:
    faces: dict[str, list[np.ndarray]] = {}
    labels: dict[str, list[int]] = {}
    sources: dict[str, list[str]] = {}
    problems: list[str] = []
    converted = 0
    cropped: dict[str, dict[str, int]] = {}

    bad = _bad_item_handler(skip_bad, problems)

    for hint, folder, files, folder_problems in layout:
        if files is None:
            bad(f"{folder}: unknown class folder (expected one of {', '.join(CLASSES)}){_numbered([folder])}")
            continue
        for problem in folder_problems:
            bad(problem)
        if not files and not folder_problems:
            bad(f"{folder}: empty class folder")
            continue
        for file_name, index, _, _ in files:
            file = Path(file_name)
            if file.suffix.lower() in UNREADABLE_PICTURE_EXTENSIONS:
                bad(f"{file}: a picture format ferkit cannot decode ({file.suffix.lower()[1:].upper()}); "
                    "convert it to JPEG or PNG")
                continue
            if file.suffix.lower() not in IMAGE_EXTENSIONS:
                bad(f"{file}: not an image file")
                continue
            try:
                face, was_converted, way = _read_face(file, cropper)
            except ImageDecodeError as exc:
                bad(f"{file}: {exc}")
                continue
            converted += was_converted
            split = _split_of(file.name, hint, folder)
            if way is not None:
                counts = cropped.setdefault(split, {})
                counts[way] = counts.get(way, 0) + 1
            faces.setdefault(split, []).append(face)
            labels.setdefault(split, []).append(index)
            sources.setdefault(split, []).append(str(file))
    if not faces:
        raise DataError(f"{root}: no readable images found{_first_of(problems)}")
    order = [s for s in SPLITS if s in faces] + sorted(s for s in faces if s not in SPLITS)
    splits = {name: Split(np.stack(faces[name]), np.asarray(labels[name], dtype=np.int64), sources[name])
              for name in order}
    return FER2013(splits, problems, converted, cropped)


def _read_face(file: Path, cropper: FaceCropper | None) -> tuple[np.ndarray, bool, str | None]:
    """A 48x48 face from an image file, whether the picture had to be converted, and how the
    cropper found the face (None without one)."""
    if cropper is None:
        face, converted = decode_face(file)
        return face, converted, None
    picture = read_image(file)
    try:
        face = cropper(picture)
    except Exception as exc:  # noqa: BLE001 - a picture that breaks the detector is one bad item
        raise ImageDecodeError(f"cannot find the face ({type(exc).__name__}: {exc})") from None
    return face, picture.shape != (FACE_SIZE, FACE_SIZE), cropper.last


def _first_of(problems: list[str]) -> str:
    """What to add to "nothing could be read": the first reason (the others are alike, as a rule)."""
    if not problems:
        return ""
    return f" ({len(problems)} bad item(s); the first: {problems[0]})"


def _named_split(file_name: str) -> str | None:
    """The split a FER2013 usage prefix in a file name (``PublicTest_12.jpg``) names, if any."""
    lowered = file_name.lower()
    return next((split for prefix, split in _PREFIX_TO_SPLIT.items() if lowered.startswith(prefix)), None)


def _split_of(file_name: str, hint: str | None, folder: Path) -> str:
    """The folder decides the split; a file name's usage prefix decides only where the folder does
    not: a folder of classes whose name is no split, and a ``test/`` folder read as PublicTest,
    which may be Kaggle's, holding PrivateTest faces too.  So a ``val/`` made of ``Training_``
    files moved out of ``train/`` stays the validation split the user made.  ``folder`` is the
    class folder the file was found in."""
    named = _named_split(file_name)
    if hint is None:
        return named or "all"
    if hint == "publictest" and _normalise(folder.parent.name) == "test" and named in ("publictest", "privatetest"):
        return named
    return hint


def _names_overruled(layout: _Layout) -> str | None:
    """A warning when file names name another split than the folder they are read as (see
    :func:`_split_of`): a layout the user made by moving files, or files put in the wrong folder."""
    overruled, example = 0, ""
    for hint, folder, files, _ in layout:
        for file_name, _, _, _ in files or []:
            named = _named_split(os.path.basename(file_name))
            if named is not None and _split_of(os.path.basename(file_name), hint, folder) != named:
                overruled += 1
                example = example or f"{file_name} read as {hint}"
    if not overruled:
        return None
    return (f"{overruled} file(s) are named for another split than their folder's (e.g. {example}): "
            "the folder decides")


def _split_folder_name(source: str) -> str:
    """The name of the folder that holds a picture's class folder (``test`` for test/angry/subject1/a.png)."""
    for parent in Path(source).parents:
        if class_index(parent.name) is not None:
            return parent.parent.name
    return ""


def _pictures_in(folder: Path) -> list[str]:
    """The picture files directly in ``folder`` (not in its sub-folders)."""
    pictures = IMAGE_EXTENSIONS | UNREADABLE_PICTURE_EXTENSIONS
    try:
        with os.scandir(folder) as entries:
            return sorted(entry.path for entry in entries if not entry.name.startswith(".")
                          and os.path.splitext(entry.name)[1].lower() in pictures)
    except OSError:  # a folder that cannot be listed is said where its faces are read
        return []


def _subdirs(path: Path) -> list[Path]:
    """The sub-folders that may hold data: not hidden ones, nor the ``__MACOSX`` of a zip made on a Mac
    (its ``._`` files are metadata, never pictures)."""
    try:
        return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")
                      and p.name.lower() != "__macosx")
    except OSError as exc:
        raise DataError(f"{path}: cannot list folder ({exc.strerror})") from None


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "").replace("-", "")
