"""FER2013's faces repeated across splits, and the shipped models' PublicTest accuracy without them.

    python benchmarks/split_duplicates.py [--models default default-b fast] [--tta none,tencrop]
        [--data ../shared/fer2013] [--threads 2] [--list-repeats tests/data/publictest_repeats.txt]

Counts PublicTest faces that are pixel for pixel a Training face (blank faces apart: they are alike
everywhere), how often the repeated face carries the same label in both splits, and faces repeated
within Training; then scores each model on all of PublicTest, on its repeats of Training faces
and on the rest.  Every FER2013 figure, the papers' included, is measured with these repeats in the
test split; the last column is the figure a model earns on faces it has never seen in any form.
Also the reason ``evaluate``'s caveat by pixels (:mod:`ferkit.data.overlap`) waits for most of the
scored faces to look learnt.  Pause any training first.
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path


from ferkit.atomic import atomic_write_text
from ferkit.data.overlap import blank, face_hashes, repeats_of
from ferkit.models.hub import load_model
from ferkit.models.inference import predict_probs

from common import parse_with_fer2013


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["default", "default-b", "fast"])
    parser.add_argument("--tta", default="none,tencrop", help="test-time views to score (comma-separated)")
    parser.add_argument("--list-repeats", metavar="FILE",
                        help="also write the repeated PublicTest faces' files (CLASS/NAME, one a line) to FILE, "
                             "e.g. tests/data/publictest_repeats.txt, which the tests' real faces avoid")
    args, data = parse_with_fer2013(parser)
    train, test = data["training"], data["publictest"]

    train_labels: dict[str, set[int]] = defaultdict(set)
    for digest, label, empty in zip(face_hashes(train.images), train.labels, blank(train.images)):
        if not empty:
            train_labels[digest].add(int(label))
    test_hashes = face_hashes(test.images)
    repeated = repeats_of(test.images, train.images)  # as `ferkit evaluate` counts them
    if args.list_repeats:
        names = sorted(f"{Path(s).parent.name}/{Path(s).name}" for s, r in zip(test.sources, repeated) if r)
        atomic_write_text(Path(args.list_repeats), "".join(f"{n}\n" for n in names))
        print(f"wrote {len(names)} names to {args.list_repeats}")
    same_label = sum(int(label) in train_labels[h] for h, label, r in zip(test_hashes, test.labels, repeated) if r)
    within = len(train) - int(blank(train.images).sum()) - len(train_labels)
    print(f"PublicTest faces that are Training faces: {int(repeated.sum())} of {len(test):,} "
          f"({repeated.mean():.1%}); same label there: {same_label} ({same_label / max(1, repeated.sum()):.0%})")
    print(f"blank faces: {int(blank(train.images).sum())} in Training, {int(blank(test.images).sum())} in PublicTest; "
          f"Training faces repeating another Training face: {within}")
    print(f"\n{'model':<12}{'tta':<9}{'all':>8}{'repeats':>9}{'unseen':>8}")
    for spec in args.models:
        loaded = load_model(spec)
        for tta in args.tta.split(","):
            probs = predict_probs(loaded.model, loaded.normalizer, test.images, tta=tta,
                                  temperature=loaded.temperature)
            right = probs.argmax(1) == test.labels
            print(f"{spec:<12}{tta:<9}{right.mean():>8.4f}{right[repeated].mean():>9.4f}"
                  f"{right[~repeated].mean():>8.4f}", flush=True)


if __name__ == "__main__":
    main()
