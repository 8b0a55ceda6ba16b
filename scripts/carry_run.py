"""Copy a training run into a small, committable folder that resumes on another machine.

    python scripts/carry_run.py RUN_DIR DEST_DIR [--keep-best]
    cp -r DEST_DIR /somewhere/RUN && ferkit train --resume /somewhere/RUN   # later, anywhere

For a run longer than a session whose run folder does not survive it: ``DEST_DIR`` gets the
run's config and history and a compact ``last.pt`` (``ferkit.training.checkpoint.compact_checkpoint``:
float16 averaged weights, no momentum; ~15 MB for ``vgg_fer`` instead of ~90 MB). Not
``best.safetensors``: the resumed run writes its own, and its best epoch stays in the history.
``--keep-best`` also keeps the best weights so far, in float16, as ``best_carried.safetensors``
(another ~15 MB): near a run's end its best epoch may be behind the resume point, and the resumed
run chooses among the epochs it trains; ship whichever of the two scores better on PublicTest.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ferkit.training.checkpoint import (CheckpointError, atomic_write_bytes, compact_checkpoint, load_checkpoint,
                                        save_checkpoint)


def carry(run: Path, dest: Path, keep_best: bool = False) -> Path:
    if dest.resolve() == run.resolve():
        raise CheckpointError(f"{dest}: the copy must go to another folder than the run")
    state = load_checkpoint(run / "last.pt")
    try:
        small = compact_checkpoint(state)
    except CheckpointError as exc:
        raise CheckpointError(f"{run / 'last.pt'}: {exc}") from None
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "history.csv", "history.json"):
        if (run / name).exists():
            atomic_write_bytes(dest / name, (run / name).read_bytes())
    save_checkpoint(dest / "last.pt", small)
    if keep_best:
        from ferkit.models.io import load_model_file, save_model_file

        best = load_model_file(run / "best.safetensors")
        save_model_file(dest / "best_carried.safetensors", best.model, name=best.name, options=best.options,
                        normalizer=best.normalizer, classes=best.classes, temperature=best.temperature,
                        meta=best.meta, storage="float16")
    return dest / "last.pt"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--keep-best", action="store_true",
                        help="also keep the best weights so far (float16) as best_carried.safetensors")
    args = parser.parse_args(argv)
    try:
        path = carry(args.run, args.dest, args.keep_best)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    state = torch.load(path, map_location="cpu", weights_only=True)
    print(f"{path}: {path.stat().st_size / 1e6:.1f} MB, resumes at epoch {state['epoch'] + 1} "
          f"of {state['config']['epochs']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
