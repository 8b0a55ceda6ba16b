"""Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks"): one
scalar T divides the logits so that the softmax confidence matches the accuracy.  T is fitted
on PublicTest by minimising the negative log-likelihood with L-BFGS over log T (which keeps T
positive); it never changes which class wins, so accuracy is untouched.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..data import Split
from ..models.inference import predict_logits
from ..models.io import LoadedModel
from .evaluate import check_input_size, class_columns
from .metrics import expected_calibration_error

# Far outside anything a trained network needs; bounds a degenerate fit (e.g. all-correct data).
T_MIN, T_MAX = 0.05, 20.0


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor | np.ndarray, max_iter: int = 200) -> float:
    """The temperature that minimises the NLL of ``labels`` under ``softmax(logits / T)``."""
    logits = logits.detach().float()
    labels = torch.as_tensor(labels, dtype=torch.long)
    if len(labels) == 0:
        raise ValueError("cannot fit a temperature on no faces")
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(np.clip(log_t.exp().item(), T_MIN, T_MAX))


@dataclass
class Calibration:
    temperature: float
    previous_temperature: float
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    n: int

    def to_dict(self) -> dict:
        return dict(vars(self))


def calibrate_model(loaded: LoadedModel, split: Split, bins: int = 15) -> Calibration:
    """Fit T for ``loaded`` on ``split`` (no test-time augmentation) and measure ECE with the
    model's current temperature and with the fitted one."""
    if len(split) == 0:
        raise ValueError("cannot calibrate on an empty split")
    columns = class_columns(loaded)
    check_input_size(loaded, split.images.shape[-1])
    logits = predict_logits(loaded.model, loaded.normalizer, split.images)[:, columns]
    labels = torch.from_numpy(split.labels)
    temperature = fit_temperature(logits, labels)

    def scores(t: float) -> tuple[float, float]:
        scaled = logits / t
        probs = torch.softmax(scaled, dim=1).numpy()
        return expected_calibration_error(probs, split.labels, bins), float(F.cross_entropy(scaled, labels))

    ece_before, nll_before = scores(loaded.temperature)
    ece_after, nll_after = scores(temperature)
    return Calibration(temperature, loaded.temperature, ece_before, ece_after, nll_before, nll_after, len(split))
