"""Batched inference shared by training (validation), evaluation and the application."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
import torch.nn as nn

from ..data.augment import tta_views
from ..data.preprocess import Normalizer
from ..tta import resolve_tta


def _view_logits(model: nn.Module, normalizer: Normalizer, faces: np.ndarray, tta: str, batch_size: int,
                 bf16: bool) -> Iterator[torch.Tensor]:
    """Logits of every test-time view, one V x B x C tensor per batch of faces (``auto``: ten-crop, as
    for any still face)."""
    tta = resolve_tta(tta)
    size = getattr(model, "input_size", faces.shape[-1])
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(faces), batch_size):
                x = normalizer.to_tensor(faces[start:start + batch_size])
                views = tta_views(x, size, tta)
                flat = views.reshape(-1, *views.shape[2:]).contiguous(memory_format=torch.channels_last)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    logits = model(flat).float()
                yield logits.view(views.shape[0], views.shape[1], -1)
    finally:
        model.train(was_training)


def predict_logits(model: nn.Module, normalizer: Normalizer, faces: np.ndarray, *, tta: str = "none",
                   batch_size: int = 256, bf16: bool = False) -> torch.Tensor:
    """Logits averaged over test-time views for N x 48 x 48 uint8 faces: N x C float32."""
    parts = [v.mean(0) for v in _view_logits(model, normalizer, faces, tta, batch_size, bf16)]
    return torch.cat(parts) if parts else torch.empty(0, 0)


def predict_probs(model: nn.Module, normalizer: Normalizer, faces: np.ndarray, *, tta: str = "none",
                  temperature: float = 1.0, batch_size: int = 256, bf16: bool = False) -> np.ndarray:
    """Class probabilities N x C, the softmax (at ``temperature``) averaged over test-time views."""
    parts = [torch.softmax(v / temperature, dim=-1).mean(0).numpy()
             for v in _view_logits(model, normalizer, faces, tta, batch_size, bf16)]
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
