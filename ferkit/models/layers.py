"""Small helpers shared by the model modules."""
from __future__ import annotations

import torch
import torch.nn as nn


def flat_size(features: nn.Module, input_size: int, in_channels: int = 1) -> int:
    """Length of ``features``' flattened output for a ``input_size`` face, found by one dry run.

    Safer than redoing the padding/pooling arithmetic by hand for every layout (Keras ``same``
    pooling, asymmetric padding...), and it makes the flatten-then-FC models work at any input size.
    """
    was_training = features.training
    features.eval()
    with torch.no_grad():
        out = features(torch.zeros(1, in_channels, input_size, input_size))
    features.train(was_training)
    return out.numel()
