"""PublicTest accuracy of every ensemble that can be formed from a few candidate models.

    python benchmarks/ensemble_search.py --models default default-b runs/vgg_fer_kd [--tta none,tencrop]
        [--data ../shared/fer2013] [--threads 2] [--min-size 1]

Each candidate runs once per test-time view (its calibrated probabilities are kept); every subset
is then scored by averaging those probabilities, exactly as ``ferkit evaluate --model a b`` does,
so the search costs one evaluation per model, not one per subset.  PublicTest is the split the
members were selected on, so a subset picked here is selected on PublicTest too: report its
figures as such (PrivateTest is withheld).  Pause any training first (the figures do not depend on
it, the run time does).
"""
from __future__ import annotations

import argparse
import itertools

import numpy as np
import torch

from ferkit.data import load_fer2013
from ferkit.data.classes import CLASSES
from ferkit.evaluation import classification_metrics
from ferkit.evaluation.evaluate import ensemble_probs, select_split
from ferkit.models.hub import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True, help="shipped names, run directories or model files")
    parser.add_argument("--data", default="../shared/fer2013")
    parser.add_argument("--tta", default="none,tencrop", help="test-time views (comma-separated)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-size", type=int, default=1, help="smallest ensemble to print")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    split_name, split = select_split(load_fer2013(args.data))
    views = args.tta.split(",")
    loaded = {spec: load_model(spec) for spec in args.models}
    probs = {(spec, tta): ensemble_probs([model], split.images, tta=tta)
             for spec, model in loaded.items() for tta in views}
    print(f"{split_name}: {len(split):,} faces; accuracy / macro-F1 per test-time view")
    print(" | ".join(["ensemble", *views]))
    for size in range(max(1, args.min_size), len(args.models) + 1):
        for subset in itertools.combinations(args.models, size):
            cells = []
            for tta in views:
                averaged = np.mean([probs[spec, tta] for spec in subset], axis=0)
                m = classification_metrics(split.labels, averaged.argmax(1), CLASSES)
                cells.append(f"{m['accuracy']:.4f} / {m['macro_f1']:.3f}")
            print(" | ".join([" + ".join(subset), *cells]))


if __name__ == "__main__":
    main()
