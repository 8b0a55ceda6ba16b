"""Losses: cross-entropy (label smoothing, class weights, soft targets for mixup) and the
center loss of Wen et al. (2016) used as joint supervision in seed 001 (equation 4):

    L = L_softmax + (lambda / 2) * sum_i ||x_i - c_{y_i}||^2
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, *, label_smoothing: float = 0.0,
                       weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy against N x C target distributions (one-hot or mixed), with smoothing and class weights."""
    num_classes = logits.shape[1]
    if label_smoothing:
        targets = targets * (1 - label_smoothing) + label_smoothing / num_classes
    log_probs = F.log_softmax(logits.float(), dim=1)
    per_sample = -(targets * log_probs).sum(dim=1)
    if weights is None:
        return per_sample.mean()
    sample_weights = targets @ weights  # a mixed target gets the mixed weight
    return (per_sample * sample_weights).sum() / sample_weights.sum()


class CenterLoss(nn.Module):
    """One learnable centre per class in feature space; pulls features towards their class centre.

    The centres get their own optimiser and learning rate (``alpha`` in Wen et al.); the loss
    is averaged over the batch so its scale does not depend on the batch size.
    """

    def __init__(self, num_classes: int, feature_dim: int):
        super().__init__()
        self.centers = nn.Parameter(torch.randn(num_classes, feature_dim) * 0.01)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        diff = features.float() - self.centers[labels]
        return 0.5 * diff.pow(2).sum(dim=1).mean()


class PenultimateFeatures:
    """Captures the input of a model's last ``nn.Linear`` (the features the classifier sees)."""

    def __init__(self, model: nn.Module):
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError("center loss needs a model whose classifier is an nn.Linear layer")
        self.layer = linears[-1]
        self.value: torch.Tensor | None = None
        self._hook = self.layer.register_forward_hook(self._capture)

    @property
    def dim(self) -> int:
        return self.layer.in_features

    def _capture(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self.value = inputs[0]

    def remove(self) -> None:
        self._hook.remove()
