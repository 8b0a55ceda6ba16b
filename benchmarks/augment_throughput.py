"""Augmentation throughput: images/s for 64-image batches of 48x48 faces, full training pipeline
(uint8 -> normalise -> flip/shift/rotate/zoom/crop 44 -> random erasing).

    python benchmarks/augment_throughput.py [--batch 64] [--seconds 5] [--threads 2]

The pipeline must never be the training bottleneck: target over 10,000 images/s on 2 cores
(training itself runs at a few hundred images/s on this machine).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ferkit.data.augment import AugmentConfig, BatchAugmenter
from ferkit.data.preprocess import Normalizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, size=(4096, 48, 48), dtype=np.uint8)
    normalizer = Normalizer.fit(faces)
    augmenter = BatchAugmenter(AugmentConfig(), torch.Generator().manual_seed(0))
    batch = normalizer(torch.from_numpy(faces[: args.batch]).unsqueeze(1))

    def augment_only() -> None:
        augmenter(batch)

    def full_pipeline() -> None:
        idx = rng.integers(0, len(faces), args.batch)
        augmenter(normalizer(torch.from_numpy(faces[idx]).unsqueeze(1)))

    for name, step in (("augment (flip/shift/rotate/zoom/crop/erase)", augment_only),
                       ("sample + normalise + augment (uint8 in)", full_pipeline)):
        step()  # warm-up
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < args.seconds:
            step()
            count += args.batch
        rate = count / (time.perf_counter() - started)
        print(f"{name:<45} batch {args.batch:>4}  {args.threads} threads  {rate:>10,.0f} images/s")

if __name__ == "__main__":
    main()
