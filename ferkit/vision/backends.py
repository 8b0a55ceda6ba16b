"""Classification backends: eager PyTorch, or ONNX Runtime on an exported copy of the model.

``auto`` picks ONNX Runtime when it is installed and the model exports: on this project's
CPU benchmark (``benchmarks/inference_speed.py``) it is faster at every batch size.  ``int8``
runs the model's quantised graph (:mod:`ferkit.vision.int8`): faster again, and about one
prediction in a hundred differs from the float model's, so it is a choice, never automatic.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

from ..backend_names import BACKEND_CHOICES
from ..models.inference import predict_probs
from ..models.io import LoadedModel

BACKENDS = BACKEND_CHOICES


class Backend(Protocol):
    """What the recognizer needs of an engine: its name and N x C probabilities for N uint8 faces."""

    name: str

    def probs(self, faces: np.ndarray, tta: str) -> np.ndarray: ...


class TorchBackend:
    name = "torch"

    def __init__(self, loaded: LoadedModel):
        self.loaded = loaded

    def probs(self, faces: np.ndarray, tta: str) -> np.ndarray:
        lm = self.loaded
        return predict_probs(lm.model, lm.normalizer, faces, tta=tta, temperature=lm.temperature)


def create_backend(loaded: LoadedModel, name: str = "auto") -> Backend:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    if name == "torch":
        return TorchBackend(loaded)
    from .onnx import OnnxBackend, onnx_available

    if name in ("onnx", "int8"):
        if not onnx_available():
            raise ValueError(f"the {name} backend needs onnxruntime: pip install onnxruntime")
        if name == "int8":
            from .int8 import load_int8_graph

            return OnnxBackend(loaded, load_int8_graph(loaded), name="int8")
        return OnnxBackend(loaded)
    if not onnx_available():
        return TorchBackend(loaded)
    try:
        return OnnxBackend(loaded)
    except Exception:  # an architecture the exporter cannot handle still runs in PyTorch
        return TorchBackend(loaded)
