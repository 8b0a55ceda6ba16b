"""Draw predictions as the papers' live application shows them (seed 000 section 6): a box
per face and, beside the picture, bars of all seven probabilities with the dominant emotion.
For video, also a timeline plot of each tracked face's emotions over time.
"""
from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..atomic import atomic_write_bytes, temp_beside
from ..data.classes import CLASSES
from ..data.images import rescale

# BGR colours, one per class; the dominant emotion's colour also draws the face's box.
COLORS: dict[str, tuple[int, int, int]] = {
    "angry": (40, 40, 220), "disgust": (40, 150, 40), "fear": (160, 60, 160), "happy": (0, 200, 240),
    "sad": (200, 110, 30), "surprise": (0, 140, 255), "neutral": (150, 150, 150),
}
FONT = cv2.FONT_HERSHEY_SIMPLEX
PANEL_WIDTH = 250
ROW = 17  # bar row height in pixels
MIN_HEIGHT, MAX_HEIGHT = 360, 1080  # drawings are made at a readable scale
MAX_WIDTH = 4096  # ...but a thin strip is not blown up past that
MAX_ENCODABLE = 65_000  # JPEG's limit is 65,500 pixels a side (the panel adds its width)


def _color(name: str) -> tuple[int, int, int]:
    return COLORS.get(name, (200, 200, 200))


def _label(face, index: int) -> str:
    return f"#{face.track}" if face.track is not None else f"{index + 1}"


def face_block_height() -> int:
    return ROW * (len(CLASSES) + 1) + 12


def draw_panel(faces: Sequence, height: int, columns: int | None = None) -> np.ndarray:
    """The side panel: per face, its label, dominant emotion and seven probability bars."""
    block = face_block_height()
    per_column = max(1, (height - 8) // block)
    if columns is None:
        columns = max(1, math.ceil(len(faces) / per_column))
    panel = np.full((height, PANEL_WIDTH * columns, 3), 32, dtype=np.uint8)
    if not faces:
        cv2.putText(panel, "no face found", (10, 24), FONT, 0.55, (220, 220, 220), 1, cv2.LINE_AA)
        return panel
    slots = per_column * columns
    shown = faces[:slots] if len(faces) <= slots else faces[:slots - 1]  # the last slot says what is left out
    if len(shown) < len(faces):
        x0, y0 = ((slots - 1) // per_column) * PANEL_WIDTH + 8, ((slots - 1) % per_column) * block + 6
        cv2.putText(panel, f"+{len(faces) - len(shown)} more face(s)", (x0, y0 + 13), FONT, 0.5, (255, 255, 255), 1,
                    cv2.LINE_AA)
        cv2.putText(panel, "(all are in the rows)", (x0, y0 + 13 + ROW), FONT, 0.4, (220, 220, 220), 1, cv2.LINE_AA)
    for i, face in enumerate(shown):
        x0 = (i // per_column) * PANEL_WIDTH + 8
        y0 = (i % per_column) * block + 6
        color = _color(face.emotion)
        cv2.rectangle(panel, (x0, y0 + 2), (x0 + 12, y0 + 14), color, -1)
        title = f"{_label(face, i)} {face.emotion} {face.confidence:.0%}"
        cv2.putText(panel, title, (x0 + 18, y0 + 13), FONT, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        for k, name in enumerate(face.scores):
            y = y0 + ROW * (k + 1) + 4
            p = float(face.scores[name])
            cv2.putText(panel, name, (x0, y + 11), FONT, 0.4, (220, 220, 220), 1, cv2.LINE_AA)
            bar_x, bar_w = x0 + 62, PANEL_WIDTH - 62 - 58
            cv2.rectangle(panel, (bar_x, y + 2), (bar_x + bar_w, y + 12), (70, 70, 70), -1)
            cv2.rectangle(panel, (bar_x, y + 2), (bar_x + round(bar_w * p), y + 12), _color(name), -1)
            cv2.putText(panel, f"{p:5.1%}", (bar_x + bar_w + 4, y + 11), FONT, 0.38, (220, 220, 220), 1,
                        cv2.LINE_AA)
    return panel


def display_scale(height: int, width: int) -> float:
    """The factor that brings a picture to a readable height, without enlarging it past
    ``MAX_WIDTH`` or leaving it wider than an image file can be."""
    if height < MIN_HEIGHT:
        scale = min(MIN_HEIGHT / height, max(1.0, MAX_WIDTH / width))
    elif height > MAX_HEIGHT:
        scale = MAX_HEIGHT / height
    else:
        scale = 1.0
    return min(scale, (MAX_ENCODABLE - PANEL_WIDTH * 4) / width)


def annotate(image: np.ndarray, faces: Sequence, columns: int | None = None, box_scale: float = 1.0) -> np.ndarray:
    """BGR picture: the image (rescaled to a readable height) with boxes, and the panel on its right.
    ``box_scale``: pixels of ``image`` per pixel of the boxes (below 1 when the image was decoded smaller
    than its file, whose pixels the boxes are in)."""
    bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image
    scale = display_scale(*bgr.shape[:2])
    if scale != 1.0:
        bgr = rescale(bgr, scale)
    else:
        bgr = bgr.copy()
    thickness = max(2, round(bgr.shape[0] / 300))
    for i, face in enumerate(faces):
        x, y, w, h = (round(v * scale * box_scale) for v in face.box)
        color = _color(face.emotion)
        cv2.rectangle(bgr, (x, y), (x + w, y + h), color, thickness)
        text = f"{_label(face, i)} {face.emotion}"
        (tw, th), base = cv2.getTextSize(text, FONT, 0.6, 2)
        ty = y - 6 if y - th - 10 > 0 else y + h + th + 6
        cv2.rectangle(bgr, (x, ty - th - 4), (x + tw + 6, ty + base), color, -1)
        cv2.putText(bgr, text, (x + 3, ty - 1), FONT, 0.6, (0, 0, 0), 2, cv2.LINE_AA)
    panel = draw_panel(list(faces), bgr.shape[0], columns)
    return np.hstack([bgr, panel])


def write_image(path: str | Path, picture: np.ndarray) -> None:
    """Encode by extension (jpg, png, ...) and write atomically."""
    suffix = Path(path).suffix.lower() or ".png"
    try:
        ok, data = cv2.imencode(suffix, picture)
    except cv2.error:
        ok = False
    if not ok:
        raise ValueError(f"{path}: cannot encode a {picture.shape[1]}x{picture.shape[0]} picture as {suffix!r} "
                         "(use .jpg or .png)")
    atomic_write_bytes(path, data.tobytes())


class VideoAnnotator:
    """Write annotated frames to a video file (atomically: a temporary file renamed at the end)."""

    FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}

    def __init__(self, path: str | Path, fps: float):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in self.FOURCC:
            raise ValueError(f"{path}: annotated video must end in {', '.join(self.FOURCC)}")
        self.fourcc, self.fps = cv2.VideoWriter_fourcc(*self.FOURCC[suffix]), fps if fps > 0 else 25.0
        self.writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None
        self.tmp: str | None = None
        self.frames = 0

    def write(self, frame: np.ndarray, faces: Sequence, repeat: int = 1) -> None:
        """Add the annotated frame ``repeat`` times (a camera's slow frames fill real time)."""
        picture = annotate(frame, sorted(faces, key=lambda f: (f.track is None, f.track)), columns=1)
        if self.writer is None:
            handle, self.tmp = temp_beside(self.path, suffix=self.path.suffix)
            os.close(handle)
            self.size = (picture.shape[1], picture.shape[0])
            self.writer = cv2.VideoWriter(self.tmp, self.fourcc, self.fps, self.size)
            if not self.writer.isOpened():
                self.abort()
                raise ValueError(f"{self.path}: OpenCV cannot write this video format here")
        if (picture.shape[1], picture.shape[0]) != self.size:
            picture = cv2.resize(picture, self.size)
        for _ in range(repeat):
            self.writer.write(picture)
        self.frames += repeat

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
            # cv2.VideoWriter reports no write error (a full disk only logs a line), so the file
            # is read back before it replaces anything: it must hold every frame written.
            readable = _frames_in(self.tmp)
            if readable < self.frames:
                self.abort()
                raise OSError(f"{self.path}: not written: the video holds {readable} of {self.frames} frames "
                              "(disk full?)")
            with open(self.tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(self.tmp, self.path)
            self.tmp = None

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.tmp and os.path.exists(self.tmp):
            os.unlink(self.tmp)
        self.tmp = None


def _frames_in(path: str) -> int:
    capture = cv2.VideoCapture(path)
    try:
        count = capture.get(cv2.CAP_PROP_FRAME_COUNT) if capture.isOpened() else 0
        return int(count) if count and count > 0 else 0
    finally:
        capture.release()


class Timeline:
    """Per-track probabilities over time, plotted as one panel per tracked face.

    Memory stays bounded however long the video or camera session: a track's points are halved
    (neighbours averaged) whenever they reach ``2 * max_points``, and only the ``4 * max_tracks``
    most recently seen tracks are kept.
    """

    def __init__(self, classes: Sequence[str] = CLASSES, max_tracks: int = 8, max_points: int = 2000):
        self.classes, self.max_tracks, self.max_points = list(classes), max_tracks, max_points
        self.series: dict[int, list[tuple[float, list[float]]]] = {}

    def add(self, time_s: float, faces: Sequence) -> None:
        for face in faces:
            if face.track is None:
                continue
            points = self.series.setdefault(face.track, [])
            points.append((float(time_s), [float(face.scores[c]) for c in self.classes]))
            if len(points) >= 2 * self.max_points:
                self.series[face.track] = [((a[0] + b[0]) / 2, [(p + q) / 2 for p, q in zip(a[1], b[1])])
                                           for a, b in zip(points[0::2], points[1::2])]
        if len(self.series) > 4 * self.max_tracks:  # forget the face seen longest ago
            stalest = min(self.series, key=lambda t: self.series[t][-1][0])
            del self.series[stalest]

    def save(self, path: str | Path, title: str = "") -> bool:
        """Write the PNG; False (and no file) when no face was tracked."""
        if not self.series:
            return False
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        # The longest-lived tracks first: brief ones are usually detector flickers.
        tracks = sorted(self.series, key=lambda t: -len(self.series[t]))[:self.max_tracks]
        fig, axes = plt.subplots(len(tracks), 1, figsize=(9, 2.2 * len(tracks) + 0.6), sharex=True, squeeze=False)
        for ax, track in zip(axes[:, 0], sorted(tracks)):
            times = [t for t, _ in self.series[track]]
            probs = np.array([p for _, p in self.series[track]])
            for k, name in enumerate(self.classes):
                b, g, r = _color(name)
                ax.plot(times, probs[:, k], label=name, color=(r / 255, g / 255, b / 255), linewidth=1.5)
            ax.set_ylim(0, 1)
            ax.set_ylabel(f"face #{track}")
            ax.grid(alpha=0.3)
        axes[0, 0].legend(ncol=7, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, 1.35), frameon=False)
        axes[-1, 0].set_xlabel("time (s)")
        if title:
            fig.suptitle(title, fontsize=10, y=0.995)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        plt.close(fig)
        atomic_write_bytes(path, buffer.getvalue())
        return True
