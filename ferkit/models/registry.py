"""One registry for every architecture, in the manner of timm's ``create_model``.

Each architecture is a small module that registers a builder with the paper it comes from.
All models take normalised grayscale faces ``N x 1 x S x S`` (S = the model's input size)
and return ``N x num_classes`` logits.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn


@dataclass(frozen=True)
class ModelInfo:
    name: str
    builder: Callable[..., nn.Module]
    input_size: int
    source: str  # the paper (or "ferkit") the architecture comes from
    paper_params: int | None = None  # the parameter count the paper reports, when it does
    description: str = ""
    # bf16 autocast speeds it up on CPUs with native bf16; False where it was measured to slow it down
    # (train's --precision auto then keeps fp32).
    bf16: bool = True
    # Options that build a representative network, for models that cannot be built without some
    # (a fusion needs its members): what ``list_models`` counts.
    example_options: dict = field(default_factory=dict)


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(name: str, *, input_size: int, source: str, paper_params: int | None = None,
                   description: str = "", bf16: bool = True, example_options: dict | None = None) -> Callable:
    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelInfo(name, builder, input_size, source, paper_params,
                                    description or (builder.__doc__ or "").strip().splitlines()[0], bf16,
                                    dict(example_options or {}))
        return builder

    return wrap


def model_names() -> list[str]:
    return sorted(_REGISTRY)


def model_info(name: str) -> ModelInfo:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(model_names())}")
    return _REGISTRY[name]


def create_model(name: str, num_classes: int = 7, **options) -> nn.Module:
    """Build a registered model; ``options`` go to its builder (e.g. ``width``, ``dropout``)."""
    info = model_info(name)
    model = info.builder(num_classes=num_classes, **options)
    # A builder may know its size better than the registry (a fusion takes its members' size).
    model.input_size = options.get("input_size", getattr(model, "input_size", info.input_size))
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def list_models() -> list[dict]:
    """Every registered model with its parameter count (7 classes), input size and source."""
    rows = []
    for name in model_names():
        info = _REGISTRY[name]
        with torch.device("meta"):  # shapes only: no memory or init time for 100M-parameter VGGs
            model = create_model(name, **info.example_options)
        rows.append({
            "name": name,
            "params": count_parameters(model),
            "paper_params": info.paper_params,
            "input_size": int(model.input_size),
            "source": info.source,
            "description": info.description,
        })
    return rows
