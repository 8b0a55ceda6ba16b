"""Measure how each detector's box relates to the FER2013 frame, to crop faces the same way.

FER2013 faces are tight 48x48 crops. Each face is upscaled (x4) into the middle of a larger
canvas padded by edge replication, the detector runs on it, and the script reports the
median ratio (frame side / box side) and the median offset of the frame centre from the box
centre (in box sides). Those medians are ``ferkit.vision.crop.FRAMINGS``.

    python benchmarks/measure_framing.py [--per-class 40] [--fer ../shared/fer2013]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from ferkit.data.classes import CLASSES
from ferkit.data.images import decode_face
from ferkit.vision.detect import create_detector

UPSCALE = 4
PAD = 96


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fer", default=str(Path(__file__).resolve().parents[2] / "shared" / "fer2013"))
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--detectors", default="haar,retinaface")
    args = parser.parse_args()
    # Training faces: the framing is a setting of the pipeline, so it must not be chosen on the
    # PublicTest faces it is then scored on (benchmarks/photo_datasets.py).
    paths = [p for name in CLASSES for p in sorted((Path(args.fer) / "train" / name).iterdir())[:args.per_class]]
    faces = [decode_face(p)[0] for p in paths]
    side = 48 * UPSCALE
    for name in args.detectors.split(","):
        detector = create_detector(name, min_face=40)
        scales, dx, dy, found = [], [], [], 0
        for face in faces:
            big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
            canvas = cv2.copyMakeBorder(big, PAD, PAD, PAD, PAD, cv2.BORDER_REPLICATE)
            dets = detector.detect(canvas)
            if not dets:
                continue
            det = max(dets, key=lambda d: d.box[2] * d.box[3])
            x, y, w, h = det.box
            s = max(w, h)
            found += 1
            scales.append(side / s)
            dx.append((PAD + side / 2 - (x + w / 2)) / s)
            dy.append((PAD + side / 2 - (y + h / 2)) / s)
        if not found:
            print(f"{name}: no face found")
            continue
        q = lambda v: " ".join(f"{x:+.3f}" for x in np.percentile(v, [25, 50, 75]))  # noqa: E731
        print(f"{name}: found {found}/{len(faces)}; frame/box side (q25 q50 q75) {q(scales)}; "
              f"centre shift x {q(dx)}; y {q(dy)}")


if __name__ == "__main__":
    main()
