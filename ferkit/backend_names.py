"""Inference engine names (names only, no imports, so the command line can list them without loading
torch or ONNX Runtime; the engines themselves are in :mod:`ferkit.vision.backends`).

``auto`` is ONNX Runtime when installed (the model exported once and cached), else PyTorch; ``int8``
is the model's quantised graph, stored beside its file by ``ferkit export --int8``.
"""
from __future__ import annotations

BACKEND_CHOICES: tuple[str, ...] = ("auto", "torch", "onnx", "int8")
