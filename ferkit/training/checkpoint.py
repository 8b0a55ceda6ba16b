"""Atomic writes and safe loads: a kill during a save never corrupts the last good file, and
loading never unpickles arbitrary code (``weights_only=True``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write, atomic_write_bytes, atomic_write_text  # noqa: F401  (re-exported)


class CheckpointError(ValueError):
    """A missing, corrupt or incompatible checkpoint; the message names the file."""


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda out: torch.save(state, out))


def load_checkpoint(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files; all mean the same here
        # torch's first sentence says what failed; the rest is advice written for its own users
        first_sentence = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else ""
        if not any(c.isalpha() for c in first_sentence):  # e.g. a bare number from a truncated zip archive
            first_sentence = f"{type(exc).__name__} {first_sentence}".strip()
        raise CheckpointError(f"{path}: corrupt or unreadable checkpoint ({first_sentence[:200]})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a ferkit checkpoint")
    return state


def compact_checkpoint(state: dict[str, Any]) -> dict[str, Any]:
    """A resumable checkpoint small enough to commit, for a run that must outlive its machine.

    Keeps one set of weights in float16 -- the moving average when the run has one, since that is
    what the run evaluates and ships -- and drops the optimiser's momentum. Resuming from it starts
    both the model and its average from those weights with fresh momentum, so the continued run
    differs slightly from an uninterrupted one (the loop says so); a 7.5M-parameter run shrinks
    from ~90 MB to ~15 MB. The best weights so far (``best.safetensors``) stay behind, so the
    resumed run picks its best among the epochs it trains; the history keeps every epoch's figures.
    """
    if not isinstance(state.get("config"), dict) or "model" not in state:
        raise CheckpointError("not a ferkit training checkpoint")
    weights = state.get("ema") or state["model"]
    half = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    small = {k: v for k, v in state.items() if k not in ("model", "ema", "optimizer")}
    # Early stopping counts from the resume point, and the first resumed epoch writes best.safetensors.
    # (best_score -1.0 reads as "none chosen yet" in every ferkit since: the loop resets it.)
    small.update(model=half, optimizer=None, compact=True, best_score=-1.0, best_epoch=int(state["epoch"]))
    if "ema" in state:
        small["ema"] = half  # the same tensors: torch.save stores them once
    return small
