"""Face detector names (names only, no imports, so the command line and the training config can
check a name without loading OpenCV; the detectors themselves are built in
:mod:`ferkit.vision.detect`).

``auto`` is RetinaFace when its weights are installed, else OpenCV's Haar cascade.  Where a
picture may be read whole instead (``train``, ``evaluate``, ``data crop``), ``none`` says so.
"""
from __future__ import annotations

FACE_DETECTORS: tuple[str, ...] = ("auto", "retinaface", "haar")
NO_DETECTOR = "none"  # read the whole picture, resized
DETECTOR_CHOICES: tuple[str, ...] = (*FACE_DETECTORS, NO_DETECTOR)
