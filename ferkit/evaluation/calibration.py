"""Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks"): one
scalar T divides the logits so that the softmax confidence matches the accuracy.  T is fitted
on PublicTest by minimising the negative log-likelihood with a bounded 1-D search; it never
changes which class wins, so accuracy is untouched.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..data import Split
from ..data.overlap import training_sample
from ..models.inference import predict_logits
from ..models.io import LoadedModel, ModelFileError
from .evaluate import check_input_size, class_columns
from .metrics import expected_calibration_error

# Far outside anything a trained network needs; bounds a degenerate fit (e.g. all-correct data).
T_MIN, T_MAX = 0.05, 20.0
# Below this many faces a fitted T moves with the sample (one temperature from a handful of faces is
# mostly noise); `calibrate` still fits it but says so.  PublicTest has 3,589.
FEW_FACES_FOR_TEMPERATURE = 500


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor | np.ndarray) -> float:
    """The temperature that minimises the NLL of ``labels`` under ``softmax(logits / T)``.

    The NLL is convex in the inverse temperature (a log-sum-exp of functions linear in it), so
    a bounded 1-D search (Brent's method) finds the global minimum in a few dozen evaluations.
    """
    from scipy.optimize import minimize_scalar  # scipy comes with scikit-learn; imported late, it is slow

    logits = torch.as_tensor(logits).detach().float().clone()  # clone: may be an inference-mode tensor
    labels = torch.as_tensor(labels, dtype=torch.long)
    if len(labels) == 0:
        raise ValueError("cannot fit a temperature on no faces")

    def nll(inverse_t: float) -> float:
        with torch.no_grad():
            return float(F.cross_entropy(logits * inverse_t, labels))

    best = minimize_scalar(nll, bounds=(1.0 / T_MAX, 1.0 / T_MIN), method="bounded",
                           options={"xatol": 1e-5})
    return float(1.0 / best.x)


@dataclass
class Calibration:
    """The outcome of fitting a temperature on a split: the fitted T, and ECE / NLL before and after."""

    temperature: float
    previous_temperature: float
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    n: int
    # ECE after scaling with a T fitted on the other half of the split (two folds, averaged): the
    # honest figure, since ``ece_after`` is measured on the faces T was fitted on.
    ece_after_heldout: float | None = None  # None: too few faces to fit on one half and score the other

    def to_dict(self) -> dict:
        return dict(vars(self))

    def heldout_text(self) -> str:
        """The held-out ECE as printed: ``n/a`` when there were too few faces to split in two."""
        return "n/a" if self.ece_after_heldout is None else f"{self.ece_after_heldout:.4f}"

    def record(self, split_name: str, faces: np.ndarray) -> dict:
        """What a model file keeps as ``meta["calibration"]``: the figures, the split's name and the hashes of
        a sample of its faces, by which evaluate knows those faces again (moved, reordered or a few missing)
        and says that an ECE measured on them is optimistic."""
        return {"split": split_name, "face_sample": training_sample(faces), **self.to_dict()}


def calibrate_model(loaded: LoadedModel, split: Split, bins: int = 15) -> Calibration:
    """Fit T for ``loaded`` on ``split`` and measure ECE with the model's current temperature and
    with the fitted one.

    T is fitted on the centre view, the one ``predict`` uses by default.  Averaging the views of
    flip or ten-crop TTA already softens the probabilities, so under TTA the stored T is a little
    not fitted for them; ``ferkit evaluate --tta ...`` reports the ECE actually reached there.
    """
    if len(split) == 0:
        raise ValueError("cannot calibrate on an empty split")
    columns = class_columns(loaded)
    check_input_size(loaded, split.images.shape[-1])
    logits = predict_logits(loaded.model, loaded.normalizer, split.images)[:, columns]
    if not torch.isfinite(logits).all():
        raise ModelFileError(f"{loaded.path or loaded.name}: non-finite logits on some of {len(split)} faces; "
                             "cannot fit a temperature")
    labels = torch.from_numpy(split.labels)
    temperature = fit_temperature(logits, labels)

    def scores(t: float) -> tuple[float, float]:
        scaled = logits / t
        probs = torch.softmax(scaled, dim=1).numpy()
        return expected_calibration_error(probs, split.labels, bins), float(F.cross_entropy(scaled, labels))

    ece_before, nll_before = scores(loaded.temperature)
    ece_after, nll_after = scores(temperature)
    folds = [np.arange(len(labels))[parity::2] for parity in (0, 1)]
    heldout = []
    for fit_on, score_on in (folds, folds[::-1]):
        if len(fit_on) and len(score_on):
            t = fit_temperature(logits[fit_on], labels[fit_on])
            probs = torch.softmax(logits[score_on] / t, dim=1).numpy()
            heldout.append(expected_calibration_error(probs, split.labels[score_on], bins))
    return Calibration(temperature, loaded.temperature, ece_before, ece_after, nll_before, nll_after, len(split),
                       float(np.mean(heldout)) if heldout else None)
