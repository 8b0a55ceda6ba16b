"""Re-estimate a trained model's batch-norm statistics on clean faces.

Training sees augmented faces (random crops, affine jitter, random erasing) and the batch-norm
running statistics follow them, in an exponential moving average of the weights too; test faces
are clean.  Averaging the statistics over one pass of clean training faces (the centre crop and
its mirror) makes them those of the faces the model is shown at test time.  Only the statistics
change; the weights are untouched.  Measured in ``benchmarks/bn_recalibration.py``.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from ..data.augment import tta_views
from ..data.preprocess import Normalizer


def batch_norm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def recalibrate_batch_norm(model: nn.Module, normalizer: Normalizer, faces: np.ndarray, *, views: str = "flip",
                           batch_size: int = 256) -> int:
    """Replace every batch-norm layer's running statistics by their mean over ``views`` of ``faces``
    (uint8, N x H x W, as the model's training split holds them); returns the number of layers.

    The model is left in eval mode; each layer's momentum is restored after the pass."""
    layers = batch_norm_layers(model)
    if not layers or len(faces) == 0:
        return 0
    size = getattr(model, "input_size", faces.shape[-1])
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average over all batches, each batch weighted alike
    model.train()
    try:
        with torch.no_grad():
            for start in range(0, len(faces), batch_size):
                x = tta_views(normalizer.to_tensor(faces[start:start + batch_size]), size, views)
                model(x.reshape(-1, *x.shape[2:]).contiguous(memory_format=torch.channels_last))
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        model.eval()
    return len(layers)
