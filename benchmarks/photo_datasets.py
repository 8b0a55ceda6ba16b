"""How `ferkit evaluate` scores a labelled dataset of photos rather than of 48x48 crops.

Datasets such as CK+, JAFFE or KDEF hold whole frames or portraits, not FER2013's tight crops.
This benchmark makes two such datasets out of PublicTest faces and scores the shipped model on
each, with the pictures taken whole (resized to 48 px: `--detector none`, as `ferkit train`
reads them) and with the largest face a detector finds (`--detector haar|retinaface`):

* frames: each face upscaled to 96-160 px and pasted at a random place on a 480x360 picture
  with a smooth random background (a face in a larger scene);
* portraits: each face upscaled to 144 px and nothing else (a dataset of larger face crops).

The faces themselves are FER2013's, so the 48x48 originals give the reference accuracy.

    python benchmarks/photo_datasets.py [--data ../shared/fer2013] [--faces 700] [--model default]
"""
from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import cv2
import numpy as np

from ferkit.data import Split, load_fer2013
from ferkit.data.fer2013 import describe_cropped
from ferkit.data.classes import CLASSES
from ferkit.evaluation import evaluate, evaluate_split
from ferkit.models.hub import load_model
from ferkit.vision import retinaface
from ferkit.vision.crop import LargestFaceCropper


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random gray scene: a gradient plus blurred noise."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    a, b, c = rng.uniform(-80, 80, 3)
    scene = 120 + a * x + b * y + c * x * y
    noise = cv2.GaussianBlur(rng.normal(0, 40, (height, width)), (0, 0), 12)
    return np.clip(scene + noise, 0, 255).astype(np.uint8)


def write_dataset(root: Path, faces: np.ndarray, labels: np.ndarray, kind: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for i, (face, label) in enumerate(zip(faces, labels)):
        if kind == "frames":
            side = int(rng.integers(96, 161))
            picture = background(rng, 360, 480)
            x, y = int(rng.integers(0, 480 - side)), int(rng.integers(0, 360 - side))
            picture[y:y + side, x:x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
        else:
            picture = cv2.resize(face, (144, 144), interpolation=cv2.INTER_CUBIC)
        folder = root / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(picture, cv2.COLOR_GRAY2BGR))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/fer2013")
    parser.add_argument("--faces", type=int, default=700, help="PublicTest faces to use (a seeded random sample)")
    parser.add_argument("--model", default="default")
    parser.add_argument("--tta", default="none", help="test-time views (default none: the centre view)")
    args = parser.parse_args()

    warnings.simplefilter("ignore")  # the loader warns that every picture was converted: that is the point here
    public = load_fer2013(args.data)["publictest"]
    pick = np.sort(np.random.default_rng(0).choice(len(public), size=min(args.faces, len(public)), replace=False))
    faces, labels = public.images[pick], public.labels[pick]
    reference = evaluate_split([load_model(args.model)], Split(faces, labels), split_name="publictest", tta=args.tta)
    print(f"{args.model}, {len(faces)} PublicTest faces, tta {args.tta}")
    print(f"  48x48 originals: accuracy {reference.metrics['accuracy']:.4f}")
    detectors = ["none", "haar"] + (["retinaface"] if retinaface.available() else [])
    for kind in ("frames", "portraits"):
        with tempfile.TemporaryDirectory() as folder:
            write_dataset(Path(folder), faces, labels, kind, seed=1)
            for detector in detectors:
                cropper = None if detector == "none" else LargestFaceCropper(detector)
                result = evaluate(folder, models=[args.model], tta=args.tta, cropper=cropper)
                found = describe_cropped(result.cropped) if result.cropped else "whole pictures"
                print(f"  {kind:<9} --detector {detector:<10}: accuracy {result.metrics['accuracy']:.4f}  "
                      f"macro-F1 {result.metrics['macro_f1']:.4f}  ({found})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
