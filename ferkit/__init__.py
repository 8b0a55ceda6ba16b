"""ferkit: facial expression recognition on FER2013 and in the wild.

Imports flow one way: ``app`` -> ``vision``/``explain``/``evaluation``/``training``
-> ``models`` -> ``data``, and every layer may use the leaf modules beside this file, which import
nothing of ferkit's (``atomic``: file writes; ``options``: config fields; ``tta``, ``detectors``,
``backend_names``: the names the command line lists without loading torch or OpenCV; tests/test_layers.py
checks it all).  The package root only re-exports the public API lazily so
that ``import ferkit`` stays cheap (no torch import until it is needed).
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["EmotionRecognizer", "load_fer2013", "create_model", "CLASSES", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "EmotionRecognizer":
        from .vision.recognizer import EmotionRecognizer

        return EmotionRecognizer
    if name == "load_fer2013":
        from .data import load_fer2013

        return load_fer2013
    if name == "create_model":
        from .models import create_model

        return create_model
    if name == "CLASSES":
        from .data.classes import CLASSES

        return CLASSES
    raise AttributeError(f"module 'ferkit' has no attribute {name!r}")


def __dir__() -> list[str]:  # tab completion offers the lazy exports too
    return sorted(set(globals()) | set(__all__))
