"""Gradient-based views into a network.

* Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via
  Gradient-based Localization"): the layer's feature maps weighted by the spatial mean of the
  class score's gradient, summed, passed through ReLU and upsampled to the input (seed 003
  fig. 13 applies it to a FER2013 CNN).
* Guided backpropagation (Springenberg et al. 2015, "Striving for Simplicity: The All
  Convolutional Net"): the input gradient with every ReLU letting back only positive
  gradients where its input was positive (seed 001 fig. 4); other activations (PReLU, SiLU...)
  pass back only positive gradients, times their own slope.
* Guided Grad-CAM: their product, class-discriminative and sharp (Selvaraju et al. 2017).

All functions take a normalised batch ``N x C x S x S`` as the model sees it (see
:func:`model_input`) and return numpy arrays ``N x S x S``.  Guided backpropagation rewires activation
modules; activations called as functions inside ``forward`` keep their normal gradient.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.augment import center_crop
from ..data.preprocess import Normalizer
from .layers import explainable_copy, resolve_layer


def model_input(normalizer: Normalizer, faces: np.ndarray, size: int) -> torch.Tensor:
    """uint8 faces (N x 48 x 48, or one 48 x 48) -> the normalised centre view the model sees."""
    faces = faces[None] if faces.ndim == 2 else faces
    return center_crop(normalizer.to_tensor(faces), size).contiguous()  # the view predict_probs uses without TTA


@dataclass
class Explanation:
    """Maps at the network's input (its S x S view of the face); see ``explain_faces`` for maps over
    the whole face beside the probabilities ``predict`` states."""

    maps: np.ndarray  # N x S x S
    targets: np.ndarray  # N class indices explained
    probs: np.ndarray  # N x C softmax of the logits of the view explained (temperature 1, no TTA)
    layer: str = ""
    filters: np.ndarray | None = None  # guided backpropagation from a layer: the filter explained, per face


def _targets(logits: torch.Tensor, target: int | torch.Tensor | np.ndarray | None) -> torch.Tensor:
    if target is None:
        return logits.argmax(1)
    t = torch.as_tensor(target, dtype=torch.long).reshape(-1)
    t = t.expand(logits.shape[0]) if t.numel() == 1 else t
    if t.numel() != logits.shape[0] or (t < 0).any() or (t >= logits.shape[1]).any():
        raise ValueError(f"target class {target!r} does not fit a model with {logits.shape[1]} outputs")
    return t


def grad_cam(model: nn.Module, x: torch.Tensor, target: int | None = None, layer: str | None = None) -> Explanation:
    """Grad-CAM maps in [0, 1] (each map divided by its maximum; all-zero when nothing supports
    the class), at the input's resolution.  ``layer`` defaults to the last convolution layer."""
    net = explainable_copy(model)
    name, module = resolve_layer(net, layer)
    captured: list[torch.Tensor] = []
    hook = module.register_forward_hook(lambda m, i, o: captured.append(o))
    try:
        with torch.enable_grad():
            # The copy's parameters are frozen, so the input carries the graph.
            logits = net(x.detach().float().requires_grad_(True))
            if not captured or not isinstance(captured[-1], torch.Tensor) or captured[-1].dim() != 4:
                raise ValueError(f"layer {name!r} does not produce N x C x H x W feature maps")
            activations = captured[-1]
            targets = _targets(logits, target)
            score = logits.gather(1, targets[:, None]).sum()
            (gradients,) = torch.autograd.grad(score, activations)
    finally:
        hook.remove()
    weights = gradients.mean(dim=(2, 3), keepdim=True)  # alpha_k^c: global-average-pooled gradients
    cam = F.relu((weights * activations).sum(1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).max(1).values.clamp_min(1e-12)[:, None, None]
    cam = cam / peak
    return Explanation(cam.numpy(), targets.numpy(), torch.softmax(logits.detach(), 1).numpy(), name)


class _PositiveGradient(torch.autograd.Function):
    """Identity forward; backward lets only positive gradients through (the "guided" rule)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.clamp(min=0)


class GuidedActivation(nn.Module):
    """An activation whose backward pass takes only the positive part of the gradient arriving at it,
    then the activation's own derivative.  For a ReLU that is Springenberg et al.'s rule exactly
    (positive gradient where the input was positive); for PReLU, ELU, SiLU and the like, the same
    rule with their own slope (sepconv's PReLUs, EfficientNet's SiLUs would otherwise be left
    plain, and "guided" would be the plain gradient)."""

    def __init__(self, activation: nn.Module) -> None:
        super().__init__()
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _PositiveGradient.apply(self.activation(x))


# Element-wise activations that guided backpropagation rewires (ReLUs called as functions inside a
# forward cannot be reached, and keep their normal gradient).
GUIDED_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
                      nn.Mish, nn.Hardswish, nn.Softplus)


def _guided_copy(model: nn.Module) -> nn.Module:
    net = explainable_copy(model)
    for parent in list(net.modules()):
        for child_name, child in parent.named_children():
            if isinstance(child, GUIDED_ACTIVATIONS):
                setattr(parent, child_name, GuidedActivation(child))
    return net


def guided_backprop(model: nn.Module, x: torch.Tensor, target: int | None = None,
                    layer: str | None = None) -> Explanation:
    """Guided-backpropagation gradients of the class score w.r.t. the input (signed, summed
    over input channels), N x S x S.  With ``layer``, of that layer's strongest activation in each
    face instead, one unit at one place, as Springenberg et al. reconstruct a layer (``filters``
    names its filter): what the layer picks out of this face, an edge early on, parts of the face
    deeper in (seed 001 fig. 4 shows layers so); ``targets`` then only names the class reported.
    (The sum of a filter's map would not do: through a convolution it back-projects to the same
    kernel everywhere.)"""
    from .filters import layer_activations  # (filters imports nothing of this module)

    net = _guided_copy(model)
    inputs = x.detach().float().clone().requires_grad_(True)
    filters, name = None, ""
    with torch.enable_grad():
        logits = net(inputs)
        targets = _targets(logits, target)
        if layer is None:
            objective = logits.gather(1, targets[:, None]).sum()
        else:
            name, module = resolve_layer(net, layer)
            activations = layer_activations(net, module, inputs, name).flatten(2)  # N x C x (H W)
            strongest = activations.detach().flatten(1).argmax(1)  # the strongest unit, filter and place
            objective = activations.flatten(1).gather(1, strongest[:, None]).sum()
            filters = (strongest // activations.shape[2]).numpy()
        (gradient,) = torch.autograd.grad(objective, inputs)
    return Explanation(gradient.sum(1).numpy(), targets.numpy(), torch.softmax(logits.detach(), 1).numpy(), name,
                       filters)


def guided_grad_cam(model: nn.Module, x: torch.Tensor, target: int | None = None,
                    layer: str | None = None) -> Explanation:
    """Guided backpropagation masked by Grad-CAM, for the same target classes."""
    cam = grad_cam(model, x, target, layer)
    guided = guided_backprop(model, x, cam.targets)
    return Explanation(guided.maps * cam.maps, cam.targets, cam.probs, cam.layer)


METHODS = {"gradcam": grad_cam, "guided-backprop": guided_backprop, "guided-gradcam": guided_grad_cam}


def check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown explanation method {method!r}: choose {', '.join(METHODS)}")


def explain(model: nn.Module, x: torch.Tensor, method: str = "gradcam", target: int | None = None,
            layer: str | None = None) -> Explanation:
    """The ``method`` map (``gradcam``, ``guided-backprop`` or ``guided-gradcam``) for a normalised
    batch; ``explain_faces`` does the same from face crops and a model name."""
    check_method(method)
    return METHODS[method](model, x, target, layer)
