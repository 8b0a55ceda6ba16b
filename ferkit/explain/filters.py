"""Activation maximisation: the input pattern each filter of a layer responds to most.

Seed 000 (section 5, fig. 5) visualises the last convolution layer of its medium network this
way, after Yosinski et al. 2015 ("Understanding Neural Networks Through Deep Visualization"):
start from faint noise and follow the gradient of one filter's mean activation with respect
to the input, with a small L2 decay and an occasional Gaussian blur so the result is an
image rather than high-frequency noise.  All chosen filters are optimised at once, one
image per filter, in a single batch.  The paper keeps the filters whose images reach the highest
activation ("images with higher loss value on selected layer are assumed to be better looking"):
:func:`best_reached_filters` optimises every filter of the layer and ranks them so.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import conv_layers, explainable_copy, input_channels, resolve_layer


class _Stop(Exception):
    """Raised by the capture hook: the layers after the one we watch need not run."""


def layer_activations(net: nn.Module, module: nn.Module, x: torch.Tensor, name: str = "") -> torch.Tensor:
    """The output of ``module`` (a layer of ``net``, called ``name``) for input ``x``, without running the rest."""
    captured: list[torch.Tensor] = []

    def hook(m, i, o):
        captured.append(o)
        raise _Stop

    handle = module.register_forward_hook(hook)
    try:
        net(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not captured or captured[0].dim() != 4:
        raise ValueError(f"layer {name!r} does not produce N x C x H x W feature maps: choose a convolution "
                         "layer or one after it")
    return captured[0]


def _last_conv(model: nn.Module) -> str:
    """The layer whose filters are shown by default: the last convolution (its weights rank them)."""
    convs = conv_layers(model)
    if not convs:
        raise ValueError(f"{type(model).__name__} has no convolution layer to explain")
    return convs[-1]


def strongest_filters(model: nn.Module, layer: str | None = None, count: int = 16,
                      inputs: torch.Tensor | None = None) -> tuple[str, np.ndarray, np.ndarray]:
    """The ``count`` strongest filters of ``layer``: (layer name, filter indices, scores).

    With ``inputs`` (normalised faces), strength is the filter's mean activation over them;
    without, it is the L2 norm of the filter's weights (convolution layers only).
    """
    net = explainable_copy(model)
    name, module = resolve_layer(net, layer or _last_conv(net))
    if inputs is not None:
        with torch.no_grad():
            scores = layer_activations(net, module, inputs.float(), name).mean(dim=(0, 2, 3))
    elif isinstance(getattr(module, "weight", None), torch.Tensor) and module.weight.dim() == 4:
        scores = module.weight.detach().flatten(1).norm(dim=1)
    else:
        size = int(getattr(model, "input_size", 48))
        with torch.no_grad():  # a layer with no feature maps at all cannot be shown: say so before --data is asked for
            layer_activations(net, module, torch.zeros(1, input_channels(net), size, size), name)
        raise ValueError(f"layer {name!r} has no convolution weights: rank its filters by activation "
                         "on some faces instead (give --data)")
    order = torch.argsort(scores, descending=True, stable=True)[:count]
    return name, order.numpy(), scores[order].numpy()


def _gaussian_kernel(sigma: float, channels: int) -> torch.Tensor:
    radius = max(1, int(round(2 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-t ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, -1, -1).contiguous()


def maximize_filters(model: nn.Module, filters: Sequence[int], layer: str | None = None, *, steps: int = 100,
                     lr: float = 0.05, decay: float = 0.005, blur_every: int = 8, blur_sigma: float = 0.5,
                     bounds: tuple[float, float] = (-3.0, 3.0), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (normalised, F x S x S for one-channel models) that maximise each filter's mean
    activation, and the activation each reaches.

    Each step moves every image along its own gradient scaled to unit RMS (so deep and shallow
    filters progress alike), then applies Yosinski et al.'s L2 decay ``x *= 1 - decay``, an
    occasional Gaussian blur, and clips to ``bounds`` (the range of normalised real pixels).
    """
    net = explainable_copy(model)
    name, module = resolve_layer(net, layer or _last_conv(net))
    size = int(getattr(model, "input_size", 48))
    channels = input_channels(net)
    index = torch.as_tensor(list(filters), dtype=torch.long)
    if index.numel() == 0:
        raise ValueError("no filters to visualise")
    generator = torch.Generator().manual_seed(seed)
    x = 0.1 * torch.randn(len(index), channels, size, size, generator=generator)
    kernel = _gaussian_kernel(blur_sigma, channels)
    rows = torch.arange(len(index))

    def objective(images: torch.Tensor) -> torch.Tensor:
        activations = layer_activations(net, module, images, name)
        if index.max() >= activations.shape[1]:
            raise ValueError(f"layer {name!r} has {activations.shape[1]} filters; "
                             f"asked for filter {int(index.max())}")
        return activations[rows, index].mean(dim=(1, 2))

    for step in range(steps):
        with torch.enable_grad():
            images = x.requires_grad_(True)
            (gradient,) = torch.autograd.grad(objective(images).sum(), images)
        with torch.no_grad():
            rms = gradient.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-12)
            x = (x.detach() + lr * gradient / rms) * (1.0 - decay)
            if blur_every and (step + 1) % blur_every == 0:
                pad = kernel.shape[-1] // 2
                x = F.conv2d(F.pad(x, [pad] * 4, mode="reflect"), kernel, groups=channels)
            x = x.clamp(*bounds)
    with torch.no_grad():
        final = objective(x)
    return x.mean(1).numpy(), final.numpy()


def best_reached_filters(model: nn.Module, layer: str | None = None, count: int = 16, *, steps: int = 100,
                         chunk: int = 64) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """Seed 000's choice: every filter of ``layer`` optimised from noise, the ``count`` whose images
    reach the highest mean activation kept.  Returns (layer name, filter indices, images, activations
    reached), best first.  Filters are optimised ``chunk`` at a time to bound memory."""
    net = explainable_copy(model)
    name, module = resolve_layer(net, layer or _last_conv(net))
    size = int(getattr(model, "input_size", 48))
    with torch.no_grad():
        total = layer_activations(net, module, torch.zeros(1, input_channels(net), size, size), name).shape[1]
    images, reached = [], []
    for start in range(0, total, chunk):
        part = range(start, min(total, start + chunk))
        chunk_images, chunk_reached = maximize_filters(model, part, name, steps=steps, seed=start)
        images.append(chunk_images)
        reached.append(chunk_reached)
    all_images, all_reached = np.concatenate(images), np.concatenate(reached)
    order = np.argsort(-all_reached, kind="stable")[:count]
    return name, order, all_images[order], all_reached[order]
