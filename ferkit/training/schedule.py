"""Learning-rate schedules as pure functions of the step, plus halve-on-plateau.

Keeping them as plain functions (rather than stateful scheduler objects) makes resuming exact:
the rate at step ``s`` is ``lr_at(config, s, total)``; only the plateau rule has state, a small
dict saved in every checkpoint.
"""
from __future__ import annotations

import math

SCHEDULES = ("onecycle", "cosine", "plateau", "constant", "time-decay")


def lr_at(schedule: str, base_lr: float, step: int, total_steps: int, warmup_steps: int,
          min_lr: float = 0.0, plateau_scale: float = 1.0, decay: float = 0.0) -> float:
    """The rate at ``step``; ``plateau_scale`` is :class:`Plateau`'s ``scale`` (plateau only), and the
    plateau rate stops at ``min_lr``, as Keras' ReduceLROnPlateau(min_lr=...) that seed 000 uses.
    ``time-decay`` is Keras' legacy optimiser ``decay`` (seed 004: 1e-6): ``lr / (1 + decay * step)``."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}: choose {', '.join(SCHEDULES)}")
    if schedule == "plateau":
        return max(min_lr, base_lr * plateau_scale)
    if schedule == "constant":
        return base_lr
    if schedule == "time-decay":
        return base_lr / (1.0 + decay * step)
    if schedule == "onecycle":
        # One-cycle (Smith 2018): cosine warm-up from lr/25 as torch's OneCycleLR, then cosine annealing
        # to lr/1e4 (torch goes on to lr/25/1e4); --min-lr applies to cosine only.
        start, end = base_lr / 25.0, base_lr / 1e4
        if step < warmup_steps:
            return start + (base_lr - start) * (1 - math.cos(math.pi * step / max(1, warmup_steps))) / 2
        progress = (step - warmup_steps) / max(1, total_steps - 1 - warmup_steps)  # the last step is total - 1
        return end + (base_lr - end) * (1 + math.cos(math.pi * min(1.0, progress))) / 2
    # cosine with linear warm-up
    if step < warmup_steps:
        return base_lr * (step + 1) / max(1, warmup_steps)
    progress = (step - warmup_steps) / max(1, total_steps - 1 - warmup_steps)  # ends at min_lr on the last step
    return min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * min(1.0, progress))) / 2


class Plateau:
    """Multiply the rate by ``factor`` after ``patience`` epochs without a new best score."""

    def __init__(self, patience: int, factor: float):
        self.patience, self.factor = patience, factor
        self.best, self.bad_epochs, self.scale = -math.inf, 0, 1.0

    def step(self, score: float) -> None:
        if score > self.best:
            self.best, self.bad_epochs = score, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            self.scale *= self.factor
            self.bad_epochs = 0

    def state_dict(self) -> dict:
        return {"best": self.best, "bad_epochs": self.bad_epochs, "scale": self.scale}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.bad_epochs, self.scale = float(state["best"]), int(state["bad_epochs"]), float(state["scale"])
