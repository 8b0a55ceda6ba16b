"""Classification backends: PyTorch, or ONNX Runtime on an exported copy of the model."""
from __future__ import annotations

import numpy as np

from ..models.inference import predict_probs
from ..models.io import LoadedModel

BACKENDS = ("auto", "torch", "onnx")


class TorchBackend:
    name = "torch"

    def __init__(self, loaded: LoadedModel):
        self.loaded = loaded

    def probs(self, faces: np.ndarray, tta: str) -> np.ndarray:
        lm = self.loaded
        return predict_probs(lm.model, lm.normalizer, faces, tta=tta, temperature=lm.temperature)


def create_backend(loaded: LoadedModel, name: str = "auto"):
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    return TorchBackend(loaded)
