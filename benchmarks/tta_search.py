"""PublicTest accuracy of denser and multi-scale test-time views than ferkit's ``flip`` and ``tencrop``.

    python benchmarks/tta_search.py --models default default-b fast [--data ../shared/fer2013] [--threads 2]

For each model, the calibrated probabilities of every 44 px crop position on a 5 x 5 grid of the
48 px face (offsets 0-4), mirrored and not (50 views), and of the ten-crop of the face upscaled to
50, 52 and 56 px, are computed once; each scheme averages a subset of them, as ``ferkit evaluate
--tta`` averages probabilities.  ``fixed / broken`` counts the faces a scheme gets right that
ten-crop gets wrong, and the reverse: a gain of a few faces out of 3,589, with as many changing
both ways, is noise.  Everything here is chosen on PublicTest, the split the models were selected
on.  Pause any training first.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from ferkit.data.augment import ten_crop
from ferkit.evaluation.evaluate import select_split
from ferkit.models.hub import load_model
from ferkit.vision.onnx import OnnxBackend, normalised

from common import parse_with_fer2013

GRID = range(5)  # 44 px crop offsets in a 48 px face
SCALES = (50, 52, 56)  # upscaled face sizes for the multi-scale ten-crops
CORNERS = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2)]


def view_probs(spec: str, faces: np.ndarray, threads: int) -> dict[tuple, np.ndarray]:
    """Probabilities N x C per view: (flip, top, left) on the 48 px face, ("ten", size, k) for upscaled ten-crops."""
    loaded = load_model(spec)
    size = loaded.input_size
    if size != 44:  # the grid of offsets and the corners are those of a 44 px crop in a 48 px face
        raise SystemExit(f"{spec}: takes {size} px faces; this search is for 44 px models (crops of the 48 px face)")
    backend = OnnxBackend(loaded, threads=threads)

    def probs(view: torch.Tensor) -> np.ndarray:
        logits = backend.session.run(None, {"faces": np.ascontiguousarray(view.numpy(), dtype=np.float32)})[0]
        return torch.softmax(torch.from_numpy(logits) / loaded.temperature, -1).numpy()

    parts: dict[tuple, list[np.ndarray]] = {}
    for start in range(0, len(faces), 256):
        x = normalised(loaded, faces[start:start + 256])
        for flip in (0, 1):
            mirrored = x.flip(-1) if flip else x
            for top in GRID:
                for left in GRID:
                    parts.setdefault((flip, top, left), []).append(
                        probs(mirrored[..., top:top + size, left:left + size]))
        for side in SCALES:
            upscaled = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
            for k, view in enumerate(ten_crop(upscaled, size)):
                parts.setdefault(("ten", side, k), []).append(probs(view))
    return {key: np.concatenate(value) for key, value in parts.items()}


def schemes() -> dict[str, list[tuple]]:
    tencrop = [(f, t, l) for f in (0, 1) for t, l in CORNERS]
    found = {
        "centre": [(0, 2, 2)],
        "flip": [(0, 2, 2), (1, 2, 2)],
        "tencrop": tencrop,
        "grid 3x3 (offsets 0,2,4) x flip": [(f, t, l) for f in (0, 1) for t in (0, 2, 4) for l in (0, 2, 4)],
        "grid 3x3 (offsets 1,2,3) x flip": [(f, t, l) for f in (0, 1) for t in (1, 2, 3) for l in (1, 2, 3)],
        "grid 5x5 x flip": [(f, t, l) for f in (0, 1) for t in GRID for l in GRID],
    }
    for side in SCALES:
        found[f"tencrop at {side} px"] = [("ten", side, k) for k in range(10)]
        found[f"tencrop at 48 + {side} px"] = tencrop + [("ten", side, k) for k in range(10)]
    found["tencrop at 48 + 52 + 56 px"] = tencrop + [("ten", s, k) for s in (52, 56) for k in range(10)]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["default", "default-b", "fast"])
    args, data = parse_with_fer2013(parser)
    split_name, split = select_split(data)
    labels = split.labels
    print(f"{split_name}: {len(labels):,} faces; accuracy, and faces fixed / broken against ten-crop")
    for spec in args.models:
        views = view_probs(spec, split.images, args.threads)
        right = {name: np.mean([views[v] for v in keys], 0).argmax(1) == labels for name, keys in schemes().items()}
        print(f"\n{spec}")
        for name, correct in right.items():
            fixed, broken = int((correct & ~right["tencrop"]).sum()), int((~correct & right["tencrop"]).sum())
            print(f"  {name:34s} {len(schemes()[name]):3d} views  {correct.mean():.4f}  {fixed:4d} / {broken:<4d}")


if __name__ == "__main__":
    main()
