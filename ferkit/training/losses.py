"""Losses: cross-entropy (label smoothing, class weights, soft targets for mixup) and the
center loss of Wen et al. (2016) used as joint supervision in seed 001 (equation 4):

    L = L_softmax + (lambda / 2) * sum_i ||x_i - c_{y_i}||^2
"""
from __future__ import annotations

import torch
import torch.distributed
import torch.nn as nn
import torch.nn.functional as F


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, *, label_smoothing: float = 0.0,
                       weights: torch.Tensor | None = None, label_targets: torch.Tensor | None = None,
                       weight_total: torch.Tensor | float | None = None) -> torch.Tensor:
    """Cross-entropy against N x C target distributions (one-hot, mixed or distilled), with label
    smoothing and class weights.

    Each face is weighted by its *label's* class weight (``label_targets``, the labels as one-hot
    rows mixed like the batch; default ``targets``), never by the smoothing or a teacher's
    probabilities, which would move weight between classes.  The weighted sum is divided by
    ``weight_total`` (default: this batch's weight sum); a process of a distributed run passes
    the global batch's sum divided by the number of processes, so that the averaged gradients
    equal one process's.
    """
    num_classes = logits.shape[1]
    sample_weights = None if weights is None else (targets if label_targets is None else label_targets) @ weights
    if label_smoothing:
        targets = targets * (1 - label_smoothing) + label_smoothing / num_classes
    log_probs = F.log_softmax(logits.float(), dim=1)
    per_sample = -(targets * log_probs).sum(dim=1)
    if sample_weights is None:
        return per_sample.mean()
    total = sample_weights.sum() if weight_total is None else weight_total
    return (per_sample * sample_weights).sum() / total


class CenterLoss(nn.Module):
    """One centre per class in feature space; the loss pulls features towards their class centre.

    The loss term is ``0.5 * ||x_i - c_{y_i}||^2`` averaged over the batch (so its scale does not
    depend on the batch size; the trainer multiplies it by lambda).  The centres are not learnt by
    the optimiser: they follow Wen et al.'s update rule at their own rate ``alpha``, independent
    of lambda (see :meth:`update`).
    """

    def __init__(self, num_classes: int, feature_dim: int):
        super().__init__()
        # A buffer, not a parameter: it is saved and restored with the run but moved by ``update``.
        self.register_buffer("centers", torch.zeros(num_classes, feature_dim))

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        diff = features.float() - self.centers[labels]
        return 0.5 * diff.pow(2).sum(dim=1).mean()

    @torch.no_grad()
    def update(self, features: torch.Tensor, labels: torch.Tensor, alpha: float, *,
               distributed: bool = False) -> None:
        """Wen et al. (2016), eq. 4: ``c_j -= alpha * sum_{y_i=j} (c_j - x_i) / (1 + n_j)``.

        Under DDP the sums and counts are added over all processes first, so every process
        moves its centres by the same amount, as one process would on the whole batch.
        """
        x = features.detach().float()
        sums = torch.zeros_like(self.centers).index_add_(0, labels, self.centers[labels] - x)
        counts = torch.bincount(labels, minlength=self.centers.shape[0]).to(sums.dtype)
        if distributed:
            torch.distributed.all_reduce(sums)
            torch.distributed.all_reduce(counts)
        self.centers -= alpha * sums / (1 + counts).unsqueeze(1)


class PenultimateFeatures:
    """Captures the deep features the classifier sees: the input of a model's last ``nn.Linear``, or
    of the dropout just before it.  Center loss wants the features themselves (Wen et al. 2016, seed
    001 eq. 4): after dropout, half the units are zeroed and the rest doubled, which adds a pull of
    the features' norm towards zero that the paper's loss does not have."""

    def __init__(self, model: nn.Module):
        leaves = [m for m in model.modules() if not list(m.children())]  # in registration (= forward) order
        linears = [i for i, m in enumerate(leaves) if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError("center loss needs a model whose classifier is an nn.Linear layer")
        self.classifier = leaves[linears[-1]]
        first = linears[-1]
        while first > 0 and isinstance(leaves[first - 1], nn.Dropout):
            first -= 1
        self.layer = leaves[first]
        self.value: torch.Tensor | None = None
        self._hook = self.layer.register_forward_hook(self._capture)

    @property
    def dim(self) -> int:
        return self.classifier.in_features

    def _capture(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self.value = inputs[0]

    def remove(self) -> None:
        self._hook.remove()
