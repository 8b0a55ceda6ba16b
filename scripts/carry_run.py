"""Copy a training run into a small, committable folder that resumes on another machine.

    python scripts/carry_run.py RUN_DIR DEST_DIR [--keep-best]
    cp -r DEST_DIR /somewhere/RUN && ferkit train --resume /somewhere/RUN   # later, anywhere

For a run longer than a session whose run folder does not survive it: ``DEST_DIR`` gets the
run's config and history and a compact ``last.pt`` (``ferkit.training.checkpoint.compact_checkpoint``:
float16 averaged weights, no momentum; ~15 MB for ``vgg_fer`` instead of ~90 MB). Not
``best.safetensors``: the resumed run writes its own, and its best epoch stays in the history.
``--keep-best`` also keeps the best weights so far, in float16, as ``best_carried.safetensors``
(another ~15 MB): near a run's end its best epoch may be behind the resume point, and the resumed
run chooses among the epochs it trains; the better of this leg's best and the one carried before
(by validation accuracy) is kept; a best carried into DEST by another run (another config) is not.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ferkit.training.checkpoint import (CheckpointError, atomic_write_bytes, compact_checkpoint, load_checkpoint,
                                        save_checkpoint)


def carry(run: Path, dest: Path, keep_best: bool = False) -> Path:
    """Everything is read (and the best weights chosen) before anything is written into ``dest``."""
    if dest.resolve() == run.resolve():
        raise CheckpointError(f"{dest}: the copy must go to another folder than the run")
    state = load_checkpoint(run / "last.pt")
    try:
        small = compact_checkpoint(state)
    except CheckpointError as exc:
        raise CheckpointError(f"{run / 'last.pt'}: {exc}") from None
    best = best_so_far(run, dest, state["config"]) if keep_best else None
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "history.csv", "history.json"):
        if (run / name).exists():
            atomic_write_bytes(dest / name, (run / name).read_bytes())
    save_checkpoint(dest / "last.pt", small)
    if best is not None:
        from ferkit.models.io import save_model_file

        save_model_file(dest / "best_carried.safetensors", best.model, name=best.name, options=best.options,
                        normalizer=best.normalizer, classes=best.classes, temperature=best.temperature,
                        meta=best.meta, storage="float16")
        score = best.meta.get("val_acc")
        print(f"best weights kept: epoch {best.meta.get('epoch')}, validation accuracy "
              f"{'n/a' if score is None else format(score, '.4f')}")
    return dest / "last.pt"


def best_so_far(run: Path, dest: Path, config: dict):
    """The best of the run's ``best.safetensors`` (the best epoch of this leg only, after a resume from a
    compact carry) and the ``best_carried.safetensors`` earlier legs kept (in the run folder, copied there
    with ``cp -r``, and in ``dest`` when ``dest`` carried this same run: its config.json says so), by the
    validation accuracy each records."""
    import json

    from ferkit.models.io import ModelFileError, load_model_file
    from ferkit.training.config import config_differences

    candidates = [run / "best.safetensors", run / "best_carried.safetensors"]
    carried_before = dest / "best_carried.safetensors"
    if carried_before.is_file():
        try:
            same_run = not config_differences(json.loads((dest / "config.json").read_text()), config)
        except (OSError, ValueError):
            same_run = False
        if same_run:
            candidates.append(carried_before)
        else:  # another run's best (dest reused for a new run): never kept in this one's name
            print(f"note: {carried_before} is another run's (its config.json differs); replaced")
    candidates = [path for path in candidates if path.is_file()]
    if not candidates:
        raise CheckpointError(f"{run}: no best.safetensors or best_carried.safetensors to keep")
    loaded = []
    for path in candidates:
        try:
            loaded.append(load_model_file(path))
        except ModelFileError as exc:
            raise CheckpointError(str(exc)) from None
    return max(loaded, key=_score)


def _score(model) -> float:
    """What the run chose its best epoch by (``--monitor``): the validation accuracy, or minus the loss;
    null for a run without validation, where every candidate then counts alike."""
    key = "val_loss" if model.meta.get("monitor") == "loss" else "val_acc"
    value = model.meta.get(key)
    if value is None:
        return -float("inf")
    return -float(value) if key == "val_loss" else float(value)


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
    done, total = state["epoch"], state["config"]["epochs"]  # epochs finished, of the run's
    where = f"resumes at epoch {done + 1} of {total}" if done < total else f"finished: all {total} epochs"
    print(f"{path}: {path.stat().st_size / 1e6:.1f} MB, {where}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
