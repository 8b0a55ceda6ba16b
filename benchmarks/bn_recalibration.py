"""PublicTest accuracy before and after re-estimating a model's batch-norm statistics on clean training faces.

    python benchmarks/bn_recalibration.py --models default [--tta none,tencrop] [--views flip]
        [--data ../shared/fer2013] [--threads 2]

Training sees augmented faces (crops, affine jitter, random erasing) and the batch-norm running
statistics follow them, in the exponential moving average too; test faces are clean.  Here every
batch-norm layer's statistics are averaged over one pass of the Training split's faces, ``--views``
of each (``flip``: the centre crop and its mirror), by
:func:`ferkit.models.batch_norm.recalibrate_batch_norm`; the weights are untouched.  ``fixed / broken`` counts the
faces the recalibrated model gets right that the original gets wrong, and the reverse.  PublicTest
is the split the models were selected on.  Pause any training first.
"""
from __future__ import annotations

import argparse

import numpy as np

from ferkit.models.batch_norm import recalibrate_batch_norm
from ferkit.models.hub import load_model
from ferkit.models.inference import predict_probs

from common import parse_with_fer2013


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["default"])
    parser.add_argument("--tta", default="none,tencrop", help="test-time views to score (comma-separated)")
    parser.add_argument("--views", default="flip", help="views of each training face for the statistics")
    args, data = parse_with_fer2013(parser)
    test, train_faces = data["publictest"], data["training"].images
    for spec in args.models:
        loaded = load_model(spec)
        model = loaded.model

        def correct(tta: str) -> np.ndarray:
            probs = predict_probs(model, loaded.normalizer, test.images, tta=tta, temperature=loaded.temperature)
            return probs.argmax(1) == test.labels

        before = {tta: correct(tta) for tta in args.tta.split(",")}
        saved = {k: v.clone() for k, v in model.state_dict().items()}
        recalibrate_batch_norm(model, loaded.normalizer, train_faces, views=args.views)
        for tta, was in before.items():
            now = correct(tta)
            print(f"{spec} {tta}: {was.mean():.4f} -> {now.mean():.4f} (fixed {int((now & ~was).sum())} / "
                  f"broken {int((~now & was).sum())} of {len(now):,})", flush=True)
        model.load_state_dict(saved)  # the cached model is shared: leave it as loaded


if __name__ == "__main__":
    main()
