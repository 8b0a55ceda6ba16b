"""Cut faces out of a photo framed the way FER2013 frames its faces.

FER2013 faces are tight crops (Goodfellow et al., 2013, "Challenges in Representation
Learning"): the face fills the 48x48 frame from the eyebrows to the chin.  A detector's box
is framed differently (each detector in its own way), so the crop is a square around the box
centre, scaled and shifted by a per-detector ``Framing`` measured by running the detector on
upscaled FER2013 faces (``benchmarks/measure_framing.py``; numbers in ``FRAMINGS``).
With landmarks (RetinaFace), the square is also rotated so the eyes are level.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..data.images import FACE_SIZE, rescale, to_face_size, to_gray
from .detect import Detection, Detector


def clip_box(box: tuple[int, int, int, int], width: int, height: int) -> tuple[int, int, int, int]:
    """The part of an ``(x, y, w, h)`` box inside a ``width`` x ``height`` picture (detectors' boxes may
    reach past the edge; the crops use the whole box, reported boxes lie inside the picture)."""
    x0, y0 = max(0, box[0]), max(0, box[1])
    x1, y1 = min(width, box[0] + box[2]), min(height, box[1] + box[3])
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


def min_face_at(min_face: int, scale: float) -> int:
    """``min_face`` (in a file's pixels) in an image decoded at ``scale`` of the file's size."""
    return max(1, round(min_face * scale))


def faces_in_order(detections: list[Detection], width: int, height: int, min_face: int) -> list[Detection]:
    """The detections at least ``min_face`` pixels on a side inside the picture, left to right:
    how ``predict`` numbers faces (its ``face`` column) and ``explain --face`` counts them."""
    found = [d for d in detections if min(clip_box(d.box, width, height)[2:]) >= min_face]
    return sorted(found, key=lambda d: (d.box[0], d.box[1]))


CROP_VERSION = 2  # raised whenever the same settings cut faces out differently (part of the dataset cache's key)


@dataclass(frozen=True)
class Framing:
    scale: float = 1.0  # crop side / box side (max of w, h)
    shift_y: float = 0.0  # crop centre minus box centre, in box sides (positive = down)
    shift_x: float = 0.0


# First measured on 210 upscaled PublicTest faces (median frame side 1.005 / 1.000 of the box's long
# side, Haar / RetinaFace; centre offsets within 0.011 box sides); re-measured on 280 Training faces
# so that no setting is chosen on the split it is scored on (benchmarks/measure_framing.py,
# 2026-11-24): 1.013 / 0.995, offsets within 0.018 box sides. FER2013 frames faces as these detectors
# box them; the values below did not need to change.
FRAMINGS: dict[str, Framing] = {
    "haar": Framing(1.0, 0.0),
    "retinaface": Framing(1.0, -0.01),
    "none": Framing(1.0, 0.0),
}


def crop_faces(image: np.ndarray, detections: list[Detection], framing: Framing = Framing(), *,
               align: bool = True, size: int = FACE_SIZE) -> np.ndarray:
    """N x size x size uint8 grayscale crops, one per detection."""
    gray = to_gray(image)
    out = np.empty((len(detections), size, size), dtype=np.uint8)
    for i, det in enumerate(detections):
        out[i] = crop_face(gray, det, framing, align=align, size=size)
    return out


def eye_angle(landmarks: np.ndarray | None) -> float:
    """Angle (radians) the face is turned by in the picture: that of the line from the left to the right
    eye, checked against the mouth past 45 degrees; 0 without landmarks or when they disagree."""
    if landmarks is None or len(landmarks) < 2:
        return 0.0
    (lx, ly), (rx, ry) = landmarks[0], landmarks[1]
    eye_line = math.atan2(ry - ly, rx - lx)
    small_turn = eye_line if abs(eye_line) < math.pi / 4 else 0.0  # what the eyes alone are trusted for
    if len(landmarks) < 5:
        return small_turn
    # With the mouth, any turn (a photo taken sideways, a face upside down) is trusted when the mouth sits
    # below the eyes as in a frontal face: 0.5-2.5 eye distances below them, and between them. A profile's
    # landmarks are not (faces past 45 degrees were not aligned at all, and read worse: helper audit,
    # portraits.jpg turned 60-90 degrees). The detector lists the eye on the picture's left first, so a face
    # turned 90 degrees or more comes with its eyes swapped: the mouth says which way is down.
    eye_gap = math.hypot(rx - lx, ry - ly)
    dx, dy = (landmarks[3] + landmarks[4]) / 2 - (landmarks[0] + landmarks[1]) / 2
    down = -dx * math.sin(eye_line) + dy * math.cos(eye_line)  # along the eye line turned 90 degrees (y points down)
    along = dx * math.cos(eye_line) + dy * math.sin(eye_line)  # a frontal mouth is between the eyes, more or less
    angle = eye_line
    if down < 0:
        angle, down = eye_line - math.copysign(math.pi, eye_line), -down
    frontal = 0.5 * eye_gap <= down <= 2.5 * eye_gap and abs(along) <= 0.5 * eye_gap
    return angle if frontal else small_turn


def crop_face(gray: np.ndarray, det: Detection, framing: Framing = Framing(), *, align: bool = True,
              size: int = FACE_SIZE) -> np.ndarray:
    x, y, w, h = det.box
    side = max(w, h, 1) * framing.scale
    cx = x + w / 2 + framing.shift_x * max(w, h)
    cy = y + h / 2 + framing.shift_y * max(w, h)
    angle = eye_angle(det.landmarks) if align else 0.0
    # Shrink large faces with area averaging first: warpAffine's bilinear sampling aliases
    # when it downscales by more than about 2x.
    factor = side / size
    if factor > 2:
        half = side * (abs(math.cos(angle)) + abs(math.sin(angle))) / 2 + 2
        x0, y0 = math.floor(cx - half), math.floor(cy - half)
        x1, y1 = math.ceil(cx + half), math.ceil(cy + half)
        roi = _padded_roi(gray, x0, y0, x1, y1)
        shrink = 1.0 / (factor / 1.5)
        roi = rescale(roi, shrink)
        sx, sy = roi.shape[1] / (x1 - x0), roi.shape[0] / (y1 - y0)
        gray_in, cx, cy, side = roi, (cx - x0) * sx, (cy - y0) * sy, side * sx
    else:
        gray_in = gray
    k = size / side
    cos, sin = math.cos(angle) * k, math.sin(angle) * k
    # OpenCV puts pixel i's centre at coordinate i, so a region's centre in edge coordinates
    # (cx, cy) is (cx - 0.5, cy - 0.5) there; the same holds for the output's centre.
    cx, cy, mid = cx - 0.5, cy - 0.5, size / 2 - 0.5
    # dst = k * R(-angle) (src - c) + mid, written as a 2 x 3 matrix.
    matrix = np.array([[cos, sin, mid - cos * cx - sin * cy],
                       [-sin, cos, mid + sin * cx - cos * cy]], dtype=np.float64)
    return cv2.warpAffine(gray_in, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _padded_roi(gray: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    h, w = gray.shape
    top, left = max(0, -y0), max(0, -x0)
    bottom, right = max(0, y1 - h), max(0, x1 - w)
    roi = gray[max(0, y0):min(h, y1), max(0, x0):min(w, x1)]
    if roi.size == 0:
        return np.zeros((max(1, y1 - y0), max(1, x1 - x0)), dtype=gray.dtype)
    if top or left or bottom or right:
        roi = cv2.copyMakeBorder(roi, top, bottom, left, right, cv2.BORDER_REPLICATE)
    return roi


class LargestFaceCropper:
    """The face a labelled picture shows, as a 48x48 gray FER2013-framed crop.

    A 48x48 picture is taken as the crop it already is; in a larger one the largest face the
    detector finds is cut out as :func:`crop_faces` frames it (so photo datasets such as full
    video frames are scored on their faces, not on the whole frame shrunk to 48 px); where no face
    is found (or with ``detector="none"``), the central square stands in.  ``last`` says which of
    the three happened (``"crop"``, ``"detected"``, ``"centre"``).  Used for ``ferkit evaluate`` on
    folders of photos and for ``ferkit explain``.  The detector is built on the first picture that
    needs it.
    """

    def __init__(self, detector: str = "auto", *, align: bool = True, min_face: int = 20,
                 max_side: int | None = None):
        from .detect import DETECTORS, DetectorError, check_detection_sizes

        if detector.lower() not in (*DETECTORS, "none"):
            raise DetectorError(f"unknown detector {detector!r}; choose one of: {', '.join(DETECTORS)}, none")
        check_detection_sizes(min_face, max_side)
        self.detector_name, self.align = detector.lower(), align
        self.min_face, self.max_side = int(min_face), max_side  # as EmotionRecognizer's min_face, detect_size
        self._detector = None
        self.last, self.last_box, self.faces_in_last = "crop", None, 0

    @property
    def detector(self) -> Detector | None:
        """The detector (None for ``"none"``), built when first asked for."""
        from .detect import create_detector

        if self._detector is None and self.detector_name != "none":
            self._detector = create_detector(self.detector_name, self.min_face, self.max_side)
        return self._detector

    @property
    def key(self) -> str:
        """What the crops depend on, for the dataset cache."""
        name = self.detector.name if self.detector is not None else "none"
        # Sizes only when not the defaults, so that caches made before they were options stay valid.
        sizes = ("" if (self.min_face, self.max_side) == (20, None)
                 else f"|min_face={self.min_face}|max_side={self.max_side}")
        # CROP_VERSION: the crops of the same settings changed (faces turned past 45 degrees aligned, straddling
        # boxes dropped), so caches of the old ones are not served.
        return f"largest-face|{name}|align={self.align}|{FRAMINGS.get(name, Framing())}{sizes}|v{CROP_VERSION}"

    def detect(self, image: np.ndarray) -> list[Detection]:
        """The faces the detector finds whose side inside the picture is at least ``min_face``, left
        to right: the faces ``predict`` reports, in its order (its ``face`` column)."""
        if self.detector is None:
            return []
        return faces_in_order(self.detector.detect(image), image.shape[1], image.shape[0], self.min_face)

    def face_at(self, image: np.ndarray, index: int) -> np.ndarray:
        """The ``index``-th face the detector finds, counted from 0 left to right as ``predict``
        numbers faces (its ``face`` column), cut out as :meth:`__call__` cuts the largest."""
        detections = self.detect(image)
        if not 0 <= index < len(detections):
            raise ValueError(f"face {index}: {len(detections)} face(s) found (numbered 0 to "
                             f"{len(detections) - 1}, left to right)" if detections else f"face {index}: no face found")
        self.last, self.last_box, self.faces_in_last = "detected", detections[index].box, len(detections)
        framing = FRAMINGS.get(self.detector.name, Framing())
        return crop_faces(image, [detections[index]], framing, align=self.align)[0]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        gray = to_gray(image)
        self.last_box, self.faces_in_last = None, 0
        if gray.shape == (FACE_SIZE, FACE_SIZE):
            self.last = "crop"
            return np.array(gray)  # a writable copy: decoded images may be read-only views
        detections = self.detect(image)
        if detections:
            best = max(detections, key=lambda d: d.box[2] * d.box[3])
            self.last, self.last_box, self.faces_in_last = "detected", best.box, len(detections)
            framing = FRAMINGS.get(self.detector.name, Framing())
            return crop_faces(image, [best], framing, align=self.align)[0]
        self.last = "centre"
        height, width = gray.shape
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        return to_face_size(gray[top:top + side, left:left + side])
