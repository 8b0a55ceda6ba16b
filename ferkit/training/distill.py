"""Knowledge distillation (Hinton, Vinyals & Dean, 2015, "Distilling the Knowledge in a Neural
Network"): a small student learns from a teacher's class probabilities as well as from the labels.

The teacher's probabilities are computed once, before training, on each clean training face
(its centre view and mirror image, averaged) rather than on every augmented view: a forward pass
of a 7.5M-parameter teacher per training image would cost more CPU time than training a small
student, and FER2013's soft targets mostly carry label ambiguity (fear vs surprise, sad vs neutral),
which the clean face shows as well as an augmented one.
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.classes import CLASSES
from ..models.hub import load_model
from ..models.io import ModelFileError
from ..models.inference import predict_probs


def teacher_probabilities(teacher: str, faces: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """N x C probabilities of the ``teacher`` model (shipped name, run directory or model file) on
    N x 48 x 48 uint8 faces, softened by ``temperature`` on top of the teacher's calibrated one."""
    loaded = load_model(teacher)
    if list(loaded.classes) != list(CLASSES):
        raise ModelFileError(f"{loaded.path}: the teacher's classes ({', '.join(loaded.classes)}) are not the "
                             f"seven FER2013 classes in their order")
    return predict_probs(loaded.model, loaded.normalizer, faces, tta="flip",
                         temperature=temperature * loaded.temperature).astype(np.float32)


def distilled_targets(targets: torch.Tensor, teacher: torch.Tensor, weight: float) -> torch.Tensor:
    """Each face's target distribution: ``(1 - weight)`` of its label, ``weight`` of the teacher's
    probabilities. Cross-entropy against it is the label loss plus ``weight`` times the teacher
    term (up to the teacher's entropy, a constant)."""
    return (1.0 - weight) * targets + weight * teacher
