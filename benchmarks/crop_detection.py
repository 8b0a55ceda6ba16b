"""How often the face detectors find a face in a picture that *is* a tight face crop.

Datasets of face crops come in many sizes (FER2013 48 px, others 64-224 px). A face that fills
the picture leaves a detector no context, so ``ferkit predict`` takes 48x48 pictures as crops
without detecting, and the README advises ``--no-detect`` for crops of other sizes. This prints
the detection rate on PublicTest faces upscaled to several sizes, as they are and with a border
added around them (padding, the usual remedy).

    python benchmarks/crop_detection.py [--data ../shared/fer2013] [--faces 200]
"""
from __future__ import annotations

import argparse
import warnings

import cv2
import numpy as np

from ferkit.data import load_fer2013
from ferkit.vision import retinaface
from ferkit.vision.detect import create_detector

SIZES = (48, 56, 64, 80, 96, 144)


def padded(image: np.ndarray, fraction: float) -> np.ndarray:
    """``image`` with a border of ``fraction`` of its side on every edge, in its mean gray."""
    border = int(round(image.shape[0] * fraction))
    return cv2.copyMakeBorder(image, border, border, border, border, cv2.BORDER_CONSTANT, value=int(image.mean()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/fer2013")
    parser.add_argument("--faces", type=int, default=200, help="PublicTest faces (a seeded random sample)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    public = load_fer2013(args.data)["publictest"]
    faces = public.images[np.random.default_rng(0).choice(len(public), min(args.faces, len(public)), replace=False)]
    names = (["retinaface"] if retinaface.available() else []) + ["haar"]
    for name in names:
        detector = create_detector(name)
        for fraction in (0.0, 0.25, 0.5):
            found = []
            for side in SIZES:
                crops = [cv2.resize(f, (side, side), interpolation=cv2.INTER_CUBIC) for f in faces]
                found.append(sum(bool(detector.detect(padded(c, fraction) if fraction else c)) for c in crops))
            border = f"border {fraction:.0%}" if fraction else "as they are"
            cells = "  ".join(f"{side} px {n / len(faces):4.0%}" for side, n in zip(SIZES, found))
            print(f"{name:<10} {border:<12} {cells}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
