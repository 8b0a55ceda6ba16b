"""Add the sample of training-face hashes (evaluate's caveat by pixels) to shipped models that predate it.

    python scripts/add_face_sample.py NAME [NAME ...] [--data ../shared/fer2013]

Only the metadata changes: the tensors are written back byte for byte, so the weights, the int8
graph beside them and every recorded figure stay valid.  A model in use as a running training's
teacher must wait: the teacher's fingerprint is the file's bytes.
"""
from __future__ import annotations

import argparse
import json

from safetensors.torch import save as st_save

from ferkit.atomic import atomic_write_bytes
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
        if isinstance(meta.get("face_sample"), dict):
            print(f"{name}: has its sample already")
            continue
        sample = face_sample({}, meta.get("train_config") or {}, args.data)
        if sample is None:
            continue
        meta["face_sample"] = sample
        atomic_write_bytes(path, st_save(tensors, metadata={"ferkit": json.dumps(header)}))
        print(f"{name}: {len(sample['hashes'])} of {sample['of']} training faces sampled")


if __name__ == "__main__":
    main()
