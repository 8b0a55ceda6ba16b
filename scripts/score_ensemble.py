"""Score a shipped ensemble (``SHIPPED_ENSEMBLES`` in ``ferkit/models/hub.py``) on PublicTest and
store its figures in ``ferkit/weights/ensembles.json``, which ``ferkit models --shipped`` reads.

    python scripts/score_ensemble.py best [--data ../shared/fer2013] [--tta none,flip,tencrop]

Run it after shipping any of the members.  PublicTest is the split the members were selected on;
PrivateTest is withheld and scored from outside.
"""
from __future__ import annotations

import argparse
import json
import os

from ferkit.atomic import atomic_write_bytes
from ferkit.data import load_fer2013
from ferkit.data.overlap import LEARNT_SHARE, learnt_share
from ferkit.evaluation import evaluate_split
from ferkit.models.hub import ENSEMBLE_FIGURES, SHIPPED_ENSEMBLES, load_model, member_digests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(SHIPPED_ENSEMBLES))
    parser.add_argument("--data", default="../shared/fer2013")
    parser.add_argument("--tta", default="none,flip,tencrop", help="test-time views to evaluate (comma-separated)")
    args = parser.parse_args()
    members = SHIPPED_ENSEMBLES[args.name]
    loaded = [load_model(m) for m in members]
    dataset = load_fer2013(args.data)
    split = dataset["publictest"]
    # Stored as the ensemble's PublicTest figures: only those of the dataset its members trained on.
    for name, member in zip(members, loaded):
        sample = member.meta.get("face_sample")
        if isinstance(sample, dict) and learnt_share(sample, dataset["training"].images) < LEARNT_SHARE:
            raise SystemExit(f"{args.data}: not the dataset {name} trained on (its Training split lacks {name}'s "
                             "training faces): score the ensemble on that dataset")
    figures: dict = {"members": list(members), "files": member_digests(members),
                     "scored_on": {"data": os.path.basename(os.path.realpath(args.data)), "publictest_faces": len(split)}}
    for tta in args.tta.split(","):
        result = evaluate_split(loaded, split, split_name="publictest", tta=tta).metrics
        figures[f"publictest_acc_{tta}"] = round(result["accuracy"], 4)
        figures[f"publictest_macro_f1_{tta}"] = round(result["macro_f1"], 4)
        print(f"{args.name} ({' + '.join(members)}): PublicTest tta={tta:<8} accuracy {result['accuracy']:.4f}  "
              f"macro-F1 {result['macro_f1']:.4f}")
    stored = json.loads(ENSEMBLE_FIGURES.read_text()) if ENSEMBLE_FIGURES.is_file() else {}
    stored[args.name] = figures
    atomic_write_bytes(ENSEMBLE_FIGURES, (json.dumps(stored, indent=1, sort_keys=True) + "\n").encode())
    print(f"wrote {ENSEMBLE_FIGURES}")


if __name__ == "__main__":
    main()
