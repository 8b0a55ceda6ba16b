"""Add the samples of face hashes that evaluate's caveats go by to shipped models that predate them.

    python scripts/add_face_sample.py NAME [NAME ...] [--data ../shared/fer2013]

Two samples: of the training faces (``meta["face_sample"]``: "learnt from these faces") and of the
PublicTest faces the temperature was fitted on (``meta["calibration"]["face_sample"]``: "this ECE is
optimistic"), each taken from ``--data`` only when that is the dataset the model was trained and
shipped with.  Only the metadata changes: the tensors are written back byte for byte, so the
weights, the int8 graph beside them and every recorded figure stay valid.  A model in use as a
running training's teacher must wait: the teacher's fingerprint is the file's bytes.
"""
from __future__ import annotations

import argparse
import json

from safetensors.torch import save as st_save

from ferkit.atomic import atomic_write_bytes
from ferkit.data import load_fer2013
from ferkit.data.overlap import training_sample
from ferkit.models.hub import WEIGHTS_DIR
from ferkit.models.io import read_model_file
from ship_model import face_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+")
    parser.add_argument("--data", default="../shared/fer2013")
    args = parser.parse_args()
    for name in args.names:
        path = WEIGHTS_DIR / f"{name}.safetensors"
        header, tensors = read_model_file(path)
        meta = header.setdefault("meta", {})
        added = []
        if not isinstance(meta.get("face_sample"), dict):
            sample = face_sample(meta, meta.get("train_config") or {}, args.data)
            if sample is not None:
                meta["face_sample"] = sample
                added.append(f"{len(sample['hashes'])} of {sample['of']} training faces")
        calibration = meta.get("calibration")
        # ship_model.py fitted every shipped temperature on --data's PublicTest, the dataset it trained on
        # (face_sample above checked that it is this --data).
        if isinstance(calibration, dict) and calibration.get("split") == "publictest" and \
                not isinstance(calibration.get("face_sample"), dict) and isinstance(meta.get("face_sample"), dict):
            calibration["face_sample"] = training_sample(load_fer2013(args.data)["publictest"].images)
            added.append(f"{len(calibration['face_sample']['hashes'])} of {calibration['face_sample']['of']} "
                         "calibration faces")
        if not added:
            print(f"{name}: nothing to add")
            continue
        atomic_write_bytes(path, st_save(tensors, metadata={"ferkit": json.dumps(header)}))
        print(f"{name}: sampled {' and '.join(added)}")


if __name__ == "__main__":
    main()
