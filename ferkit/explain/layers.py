"""Finding and hooking the layers of any registered model, generically.

Explanations run on a private copy of the model with in-place activations turned off: an
in-place ReLU overwrites the very activations Grad-CAM needs, and the copy leaves the cached
model that other code shares untouched.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from ..models.adapter import InputAdapter


def explainable_copy(model: nn.Module) -> nn.Module:
    """A copy in eval mode with every ``inplace`` flag cleared and no parameter gradients."""
    clone = copy.deepcopy(model).eval()
    for module in clone.modules():
        if getattr(module, "inplace", False):
            module.inplace = False
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


def input_channels(model: nn.Module) -> int:
    """Channels of the model's input.  ferkit models take gray faces; an ``InputAdapter`` repeats
    them to 3 channels for ImageNet backbones, so those take 1 channel too, not their first conv's 3."""
    if any(isinstance(m, InputAdapter) for m in model.modules()):
        return 1
    first = next((m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)
    return int(first.in_channels) if first is not None else 1


def _forward_calls(model: nn.Module) -> list[tuple[str, nn.Module, tuple | None]]:
    """(name, module, output shape) of every leaf module call in one dry forward pass on a blank input,
    in the order they run (registration order usually is execution order, but need not be)."""
    names = {module: name for name, module in model.named_modules() if not list(module.children()) and name}
    calls: list[tuple[str, nn.Module, tuple | None]] = []
    hooks = [m.register_forward_hook(
        lambda m, i, o: calls.append((names[m], m, tuple(o.shape) if isinstance(o, torch.Tensor) else None)))
        for m in names]
    size = int(getattr(model, "input_size", 48))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, input_channels(model), size, size))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return calls


def _is_conv(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.conv._ConvNd)


def conv_layers(model: nn.Module) -> list[str]:
    """Names of the convolution layers in the order a forward pass runs them (a layer called twice
    counts once, at its first use)."""
    return list(dict.fromkeys(name for name, module, _ in _forward_calls(model) if _is_conv(module)))


def default_layer(model: nn.Module) -> str:
    """The layer Grad-CAM explains by default: the activation that follows the last convolution (its
    normalisation and non-linearity applied; in a residual block, the block's output after the skip
    connection joins), i.e. the last module whose output keeps that convolution's feature-map shape.
    The raw convolution output is not it: batch norm's shift would then enter the weighted sum before
    Grad-CAM's ReLU, which can blank the map or move it (Selvaraju et al. use VGG's last ReLU'd maps)."""
    calls = _forward_calls(model)
    last = max((i for i, (_, module, _) in enumerate(calls) if _is_conv(module)), default=None)
    if last is None:
        raise ValueError(f"{type(model).__name__} has no convolution layer to explain")
    chosen, _, shape = calls[last]
    for name, _, out in calls[last + 1:]:
        if out is None or len(out) != 4 or out[-2:] != shape[-2:]:
            break  # pooled, flattened: past the last feature maps
        chosen = name
    return chosen


def resolve_layer(model: nn.Module, name: str | None = None) -> tuple[str, nn.Module]:
    """The named layer, or :func:`default_layer` when ``name`` is None."""
    modules = dict(model.named_modules())
    if name is None:
        name = default_layer(model)
    if name not in modules or name == "":
        choices = ", ".join(conv_layers(model)) or "none"
        raise ValueError(f"no layer {name!r} in {type(model).__name__}; convolution layers: {choices}")
    return name, modules[name]
