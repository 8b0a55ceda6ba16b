"""File size and PublicTest accuracy of a model stored as float32, float16 and int8 weights.

    python benchmarks/weight_storage.py [--models default fast] [--data ../shared/fer2013] [--threads 2]

Each model is re-saved with ``save_model_file(storage=...)`` into a temporary folder, loaded back
the way ``ferkit`` loads any model file, and evaluated on PublicTest (centre view, PyTorch).  The
shipped files are float16 or int8 already, so "float32" here is those values widened: the
comparison shows what each storage costs against the next, not against the training run's weights.
Pause any training first (the accuracies do not depend on it, the run time does).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


from ferkit.evaluation.evaluate import evaluate_split, select_split
from ferkit.models.hub import load_model, model_path
from ferkit.models.io import STORAGES, load_model_file, save_model_file, stored_as

from common import parse_with_fer2013


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["default", "fast"],
                        help="shipped names, run directories or model files")
    args, data = parse_with_fer2013(parser)
    split_name, split = select_split(data)
    print(f"{split_name}: {len(split):,} faces, centre view")
    for spec in args.models:
        source = model_path(spec)
        loaded = load_model(spec)
        print(f"{spec} ({loaded.name}, {loaded.parameters:,} parameters; stored as {stored_as(source)})")
        with tempfile.TemporaryDirectory() as folder:
            for storage in STORAGES:
                path = Path(folder) / f"{storage}.safetensors"
                save_model_file(path, loaded.model, name=loaded.name, options=loaded.options,
                                normalizer=loaded.normalizer, classes=loaded.classes,
                                temperature=loaded.temperature, meta=loaded.meta, storage=storage)
                result = evaluate_split([load_model_file(path)], split, split_name=split_name)
                print(f"  {storage:>7}: {path.stat().st_size / 1e6:6.2f} MB  accuracy {result.metrics['accuracy']:.4f}"
                      f"  macro-F1 {result.metrics['macro_f1']:.4f}")


if __name__ == "__main__":
    main()
