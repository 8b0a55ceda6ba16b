"""Class balancing (seed 003, section 4.2): under-sampling, over-sampling, loss weights."""
from __future__ import annotations

import numpy as np

BALANCING = ("none", "undersample", "oversample", "weights")


def balanced_indices(labels: np.ndarray, mode: str, rng: np.random.Generator, num_classes: int = 7) -> np.ndarray:
    """Indices of one epoch's training faces after balancing (shuffled).

    ``undersample`` draws every class down to the minority class's count, ``oversample``
    draws every class up to the majority class's count (with replacement); ``none`` and
    ``weights`` keep every face once (``weights`` balances through the loss instead).
    """
    if mode not in BALANCING:
        raise ValueError(f"unknown balancing {mode!r}: choose {', '.join(BALANCING)}")
    if mode in ("none", "weights"):
        return rng.permutation(len(labels))
    by_class = [np.flatnonzero(labels == c) for c in range(num_classes)]
    present = [idx for idx in by_class if len(idx)]
    if mode == "undersample":
        target = min(len(idx) for idx in present)
        chosen = [rng.choice(idx, target, replace=False) for idx in present]
    else:
        target = max(len(idx) for idx in present)
        chosen = [np.concatenate([idx, rng.choice(idx, target - len(idx), replace=True)]) for idx in present]
    return rng.permutation(np.concatenate(chosen))


def class_weights(labels: np.ndarray, num_classes: int = 7) -> np.ndarray:
    """Inverse-frequency weights, scaled so the average weight per face is 1 (over the classes present)."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = max(1, int((counts > 0).sum()))
    weights = np.where(counts > 0, len(labels) / (present * np.maximum(counts, 1)), 0.0)
    return weights.astype(np.float32)


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out), sorted: ``fraction`` of each class's faces held out (at least one
    from every class with two or more), drawn with ``seed``, so a resumed run holds out the same ones."""
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        count = max(1, int(round(fraction * len(members)))) if len(members) > 1 else 0
        held.append(rng.permutation(members)[:count])
    held_out = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    return np.setdiff1d(np.arange(len(labels)), held_out), held_out
