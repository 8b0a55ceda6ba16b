"""Expand a SOURCE (image, folder, glob, video, camera index) into items, and read them.

Videos and cameras are streamed frame by frame, so memory stays bounded whatever their length.
"""
from __future__ import annotations

import glob
import numbers
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from ..data.errors import os_problem
from ..data.images import IMAGE_EXTENSIONS, UNREADABLE_PICTURE_EXTENSIONS, starts_like_a_picture

# FFmpeg prints its own complaints about broken files to stderr; ferkit reports them as rows.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv",
                              ".3gp", ".3g2", ".ogv", ".mjpeg", ".mjpg", ".ts", ".mts", ".m2ts", ".vob", ".mxf",
                              ".asf", ".f4v", ".divx", ".dv"})


LINUX_CAMERA_DEVICE = re.compile(r"/dev/video(\d+)")


class SourceError(ValueError):
    """A source that cannot be read (missing, not a video, a camera that does not exist)."""


@dataclass(frozen=True)
class SourceItem:
    # "image", "video", "unknown" (an explicit file with another extension), "camera", "missing",
    # "empty" (a folder with no image or video in it), "unreadable" (a picture format ferkit cannot
    # decode) or "error" (a path that cannot be reached or is not a file: ``problem`` says why)
    kind: str
    name: str  # shown in the ``source`` column
    target: str | int  # path or camera index
    problem: str = ""


def is_camera(source: str | int) -> bool:
    if isinstance(source, numbers.Integral) and not isinstance(source, (bool, np.bool_)):
        return True
    return isinstance(source, str) and is_index(source) and not os.path.exists(source)


def is_index(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts "²", which ``int`` refuses."""
    text = text.strip()
    return text.isascii() and text.isdecimal()


# Video names whose files may begin as a picture does: a raw MJPEG stream starts as its first JPEG,
# and a BDAV stream (.mts, .m2ts) with a 4-byte timestamp that can be any bytes.
_MAY_START_LIKE_A_PICTURE = frozenset({".mjpeg", ".mjpg", ".mts", ".m2ts"})


def kind_of(path: Path) -> str:
    """``image`` or ``video`` by extension; ``unknown`` (try both) for any other name.  A file named
    like a video that begins as a picture (a photo saved as .mp4) is an image: read as a video it
    would be one frame, classified without the test-time views photos get."""
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "image" if suffix not in _MAY_START_LIKE_A_PICTURE and _starts_like_a_picture(path) else "video"
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in UNREADABLE_PICTURE_EXTENSIONS:
        return "unreadable"
    return "unknown"


def _starts_like_a_picture(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return starts_like_a_picture(handle.read(16))
    except OSError:  # unreadable: the reader reports it, as for any video
        return False


def expand_sources(sources: str | os.PathLike | int | Iterable) -> list[SourceItem]:
    """Every item named by ``sources`` in a stable order; a missing path gives a ``missing`` item."""
    if isinstance(sources, (str, os.PathLike, numbers.Integral)):
        sources = [sources]
    # Any collection or stream of names (a generator, Path.glob(...), a set, a pandas Series); not the
    # things that iterate but are one picture or one name (bytes, an array, a PIL image).
    if isinstance(sources, Iterable) and not isinstance(sources, (bytes, bytearray, np.ndarray, dict)) and \
            not hasattr(sources, "getpixel"):
        sources = list(sources)
    else:
        raise TypeError(f"sources: a path, camera index or list of them, not {type(sources).__name__} (a picture "
                        "already in memory goes to predict())")
    items: list[SourceItem] = []
    for source in sources:
        if not isinstance(source, (str, os.PathLike, numbers.Integral)) or isinstance(source, (bool, np.bool_)):
            raise TypeError(f"source {type(source).__name__}: sources are paths, globs or camera indexes (a picture "
                            "already in memory goes to predict())")
        if is_camera(source):
            index = int(source)
            items.append(SourceItem("camera", f"camera:{index}", index))
            continue
        if not str(os.fspath(source)).strip():  # an unset shell variable, say: never "the current folder"
            items.append(SourceItem("error", repr(str(source)), str(source), "empty source name"))
            continue
        path = Path(os.fspath(source)).expanduser()
        try:
            exists = path.exists()
        except OSError as exc:  # e.g. a file inside a folder that may not be searched
            items.append(SourceItem("error", str(source), str(source), os_problem(exc)))
            continue
        if exists:
            items.extend(path_items(path))
        elif glob.has_magic(str(source)):
            matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(str(source)), recursive=True))
            if not matches:
                items.append(SourceItem("missing", str(source), str(source)))
            seen: set[str] = set()  # "data/**" matches a folder and the files in it: each file once
            for match in matches:  # a matched folder is searched like a folder given by name
                found = [i for i in path_items(match) if i.target not in seen]
                seen.update(i.target for i in found)
                items.extend(found)
        else:
            items.append(SourceItem("missing", str(source), str(source)))
    return items


def path_items(path: Path) -> list[SourceItem]:
    """A file's item, or a folder's images and videos (recursively), and its pictures in formats
    ferkit cannot decode (each an ``unreadable`` item, so none is missed in silence); a folder with
    none of them is one ``empty`` item, so it is accounted for in the output.  What is named like a
    picture or video but cannot be read as a file (a broken link, a pipe) and sub-folders that
    cannot be listed are ``error`` items.  Other files (notes, annotations) are not sources."""
    if not path.is_dir():
        if path.is_file():
            return [SourceItem(kind_of(path), str(path), str(path))]
        camera = LINUX_CAMERA_DEVICE.fullmatch(str(path))
        if camera:  # /dev/video2 is what Linux users call camera 2
            return [SourceItem("camera", f"camera:{camera[1]}", int(camera[1]))]
        # A pipe, socket or device given by name: reading it would block or read a stream, not a file.
        return [SourceItem("error", str(path), str(path), "not a regular file")]
    wanted = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS | UNREADABLE_PICTURE_EXTENSIONS
    items: list[SourceItem] = []

    def unlisted(exc: OSError) -> None:
        where = exc.filename or str(path)
        items.append(SourceItem("error", str(where), str(where), f"folder cannot be listed ({os_problem(exc)})"))

    for folder, _, files in os.walk(path, onerror=unlisted):
        for name in files:
            if name.startswith(".") or Path(name).suffix.lower() not in wanted:
                continue
            file = Path(folder) / name
            try:
                regular = file.is_file()
                broken_link = not regular and file.is_symlink() and not file.exists()
            except OSError as exc:
                items.append(SourceItem("error", str(file), str(file), os_problem(exc)))
                continue
            if regular:
                items.append(SourceItem(kind_of(file), str(file), str(file)))
            else:
                problem = "broken link" if broken_link else "not a regular file"
                items.append(SourceItem("error", str(file), str(file), problem))
    items.sort(key=lambda item: Path(item.name))  # the order rglob gave, folder by folder
    return items or [SourceItem("empty", str(path), str(path))]


@dataclass
class Frame:
    index: int
    time_s: float
    image: np.ndarray


# A damaged frame is skipped; the end of a file reads the same way (each read fails), so this many
# failures in a row end a camera, or a file past the frames it announces.  Within the frames a file
# announces, or where it announces none (WebM from a browser), a damaged stretch may be far longer:
# the reader goes on through this many (about a minute and a half at 30 fps; a failed read at the
# real end costs 0.3-23 microseconds, so waiting them out costs a file at most a tenth of a second).
MAX_FAILED_FRAMES_IN_A_ROW = 25
MAX_DAMAGED_FRAMES_IN_A_ROW = 3000


def check_every(every: object) -> None:
    """``every`` (keep one frame in N) must be a whole number of at least 1."""
    if not isinstance(every, numbers.Integral) or isinstance(every, (bool, np.bool_)) or every < 1:
        raise ValueError(f"every={every!r}: must be a whole number of at least 1")


class VideoReader:
    """Stream frames from a video file or camera; ``every`` keeps one frame in N.

    Opening fails with :class:`SourceError` for a missing file, an unknown codec or a camera
    index that does not exist; a video that opens but yields no frame raises it on iteration.
    """

    def __init__(self, target: str | int, every: int = 1):
        check_every(every)
        self.target, self.every = target, every
        self.is_camera = isinstance(target, int)
        if not self.is_camera and Path(target).is_dir():
            raise SourceError("a folder, not a video file (predict_many reads the videos in a folder)")
        if not self.is_camera and not Path(target).is_file():
            raise SourceError("no such file")
        if not self.is_camera and Path(target).stat().st_size == 0:
            raise SourceError("empty file")
        self.capture = cv2.VideoCapture(target) if not self.is_camera else _open_camera(target)
        if not self.capture.isOpened():
            self.capture.release()
            raise SourceError(f"camera {target} not found or busy" if self.is_camera
                              else "cannot open video (not a video, an unknown codec, or a recording cut short "
                                   "before its index was written)")
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and np.isfinite(fps) and 0 < fps < 1000 else 0.0
        count = self.capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if count and count > 0 and not self.is_camera else None

    def __iter__(self) -> Iterator[Frame]:
        """The frames; a frame that does not decode is skipped, not the end of the video.

        After the last frame, :class:`SourceError` reports frames that were lost: damaged ones
        between good ones, or a tail missing from a file that announced more frames.
        """
        start = time.monotonic()
        index = last_good = -1
        last_time = None  # a file's timestamp of its last good frame
        yielded = False
        failures = lost = 0  # failures: the current run of undecodable frames; lost: all skipped ones
        try:
            while failures <= self._failures_allowed(index - failures):
                ok = self.capture.grab()
                if ok and not (index + 1) % self.every:
                    ok, image = self.capture.retrieve()
                    ok = ok and image is not None
                if not ok:
                    failures += 1
                    if self.is_camera:
                        time.sleep(0.02)  # a camera glitch: give the device a moment
                    else:
                        index += 1  # a damaged frame still takes its place (and time) in the file
                    continue
                index += 1
                lost, failures, last_good = lost + failures, 0, index
                last_time = None if self.is_camera else self._file_time(index)
                if index % self.every:
                    continue
                yielded = True
                yield Frame(index, time.monotonic() - start if self.is_camera else last_time, image)
        finally:
            self.capture.release()
        if not yielded:
            raise SourceError("no frame could be decoded (empty video or unknown codec)"
                              if not self.is_camera else f"camera {self.target} gave no frame")
        if self.is_camera and failures > MAX_FAILED_FRAMES_IN_A_ROW:
            raise SourceError(f"camera {self.target} stopped giving frames (unplugged or taken by another program?)")
        missing = (self.frame_count or 0) - (last_good + 1)
        tail_lost = missing > max(2, 0.02 * (self.frame_count or 0))  # a header's count may be off by a frame or two
        announced = self.frame_count / self.fps if self.frame_count and self.fps else None
        if tail_lost and announced and last_time is not None:
            # Matroska/WebM headers give no frame count: OpenCV derives one from the duration and the
            # nominal rate, which overstates a variable-frame-rate video's frames. Its clock does not lie:
            # the tail is lost only if the last frame comes well before the announced end.
            tail_lost = last_time + max(0.5, 0.02 * announced) < announced
        if lost or tail_lost:
            problems = [f"{lost} damaged frame(s) skipped"] if lost else []
            if tail_lost and announced and last_time is not None:
                problems.append(f"the video stops at {last_time:.1f} s of the {announced:.1f} s it announces "
                                f"(about {missing} of {self.frame_count} frames could not be read)")
            elif tail_lost:
                problems.append(f"the last {missing} of {self.frame_count} frames could not be read")
            raise SourceError("; ".join(problems) + " (the other frames were read)")

    def _failures_allowed(self, last_good: int) -> int:
        """Unreadable frames in a row after frame ``last_good`` before the reader takes it for the end."""
        if self.is_camera or (self.frame_count and last_good + 1 >= self.frame_count):
            return MAX_FAILED_FRAMES_IN_A_ROW
        return MAX_DAMAGED_FRAMES_IN_A_ROW

    def _file_time(self, index: int) -> float:
        """Seconds from the start of the file to frame ``index``: its own timestamp, which stays right
        for variable-frame-rate video, or index / rate where the backend gives none."""
        position = self.capture.get(cv2.CAP_PROP_POS_MSEC)
        if np.isfinite(position) and position >= 0 and (position > 0 or index == 0):
            return position / 1000.0
        return index / self.fps if self.fps else 0.0

    def close(self) -> None:
        self.capture.release()


def first_interval(path: str, every: int = 1) -> float | None:
    """Seconds between a video file's first two kept frames (frames 0 and ``every``) by their own
    timestamps, or None where it has fewer or none: a variable-frame-rate file announces its average
    rate, which may be far below the rate it starts at."""
    capture = cv2.VideoCapture(path)
    try:
        times = []
        for index in range(every + 1):
            if not capture.grab():
                return None
            if index % every == 0:
                times.append(capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
        return times[1] - times[0] if times[1] > times[0] else None
    finally:
        capture.release()


def _open_camera(index: int) -> cv2.VideoCapture:
    # OpenCV logs warnings to stderr when a camera index does not exist; ferkit reports it as
    # a row, so silence them while opening.
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    previous = logging.getLogLevel() if logging is not None else None
    try:
        if logging is not None:
            logging.setLogLevel(logging.LOG_LEVEL_SILENT)
        return cv2.VideoCapture(index)
    finally:
        if logging is not None:
            logging.setLogLevel(previous)
