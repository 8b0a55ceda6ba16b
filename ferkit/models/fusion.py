"""Seed 001's feature fusion: Liu et al., "Face Expression Recognition Based on Improved Convolutional
Neural Network", fuse "the feature vectors derived from the network models" A and B with one classifier
learnt on both, rather than averaging the two networks' answers.

``FusedNet`` holds trained member networks with their own classifiers taken off, so each gives the
features its classifier read (the input of its last ``nn.Linear``); their concatenation goes through
dropout to one new linear classifier (``head``).  ``ferkit train --fuse A+B`` builds it from model files
(shipped names, run folders or ``.safetensors``), loads the members' weights and trains the head with the
members frozen (``--freeze -1``, its default there); ``--unfreeze-epoch`` can fine-tune all of it later.

The fused model takes faces of its largest member's size; a member trained on smaller crops gets the
centre crop of its size.  Members need global normalisation (one mean and std): each is fed its own
normalisation of the face through a scale and shift kept as buffers, so the fused model, like every ferkit
model, takes one normalised face and is saved, loaded, exported and explained as any.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from ..data.preprocess import Normalizer
from .io import LoadedModel
from .registry import create_model, register_model

SOURCE = "seed 001: Face Expression Recognition Based on Improved Convolutional Neural Network (fusion of A and B)"


def strip_classifier(model: nn.Module) -> tuple[str, int]:
    """Replace ``model``'s last ``nn.Linear`` (its classifier) by an identity, so the model returns the
    features the classifier read; returns the replaced layer's name and the features' width."""
    linears = [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear classifier to take features from")
    name, layer = linears[-1]
    parent_name, _, attribute = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attribute, nn.Identity())
    return name, int(layer.in_features)


class FusedNet(nn.Module):
    """Member networks without their classifiers, side by side, and one classifier over their features."""

    def __init__(self, members: Sequence[dict], num_classes: int = 7, dropout: float = 0.5):
        super().__init__()
        if len(members) < 2:
            raise ValueError("a fusion needs at least two member networks (ferkit train --fuse A+B)")
        nets, self.stripped, widths = [], [], []
        for i, member in enumerate(members):
            if not isinstance(member, dict) or not isinstance(member.get("model"), str):
                raise ValueError(f"fusion member {i}: expected {{'model': name, 'options': {{...}}}}, got {member!r}")
            net = create_model(member["model"], num_classes=int(member.get("classes", 7)),
                               **member.get("options", {}))
            if "input_size" in member:  # as its model file's header said (load_model_file does the same)
                net.input_size = int(member["input_size"])
            name, width = strip_classifier(net)
            nets.append(net)
            self.stripped.append(name)
            widths.append(width)
        self.members = nn.ModuleList(nets)
        # The fused model takes the largest member's faces; a member trained on smaller crops (seed 001's model
        # A takes 44 px crops, its ResNet-50 the whole 48 px face) gets the centre crop of its size, which is how
        # ferkit scores that member alone.
        self.member_sizes = [int(net.input_size) for net in nets]
        self.input_size = max(self.member_sizes)
        # Member i sees ``x * input_scale[i] + input_shift[i]``: its own normalisation of the face that the
        # fused model's normaliser gave (identity when both were fitted on the same faces).
        self.register_buffer("input_scale", torch.ones(len(nets)))
        self.register_buffer("input_shift", torch.zeros(len(nets)))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(sum(widths), num_classes))
        self.head_prefixes = ("head.",)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = []
        for i, net in enumerate(self.members):
            start = (x.shape[-1] - self.member_sizes[i]) // 2
            crop = x[..., start:start + self.member_sizes[i], start:start + self.member_sizes[i]]
            features.append(net(crop * self.input_scale[i] + self.input_shift[i]).flatten(1))
        return self.head(torch.cat(features, dim=1))

    def load_members(self, members: Sequence[LoadedModel], normalizer: Normalizer) -> None:
        """Copy the trained members' weights in (all but their classifiers) and set each one's input scale
        and shift, so that a face ``normalizer`` prepared reaches member i normalised as its training did."""
        if len(members) != len(self.members):
            raise ValueError(f"{len(members)} model files for a fusion of {len(self.members)} members")
        for i, (net, member, stripped) in enumerate(zip(self.members, members, self.stripped)):
            state = {k: v for k, v in member.model.state_dict().items() if not k.startswith(stripped + ".")}
            try:
                net.load_state_dict(state)
            except RuntimeError as exc:
                raise ValueError(f"{member.path}: weights do not fit fusion member {i} "
                                 f"({str(exc).splitlines()[0][:150]})") from None
            own = member.normalizer
            if own.mean.numel() != 1 or normalizer.mean.numel() != 1:
                raise ValueError(f"{member.path}: a fusion needs members and a run with global normalisation "
                                 "(one mean and std; --normalize global), not a per-pixel map")
            if own.equalize != normalizer.equalize:
                raise ValueError(f"{member.path}: trained {'with' if own.equalize else 'without'} histogram "
                                 f"equalisation, the fusion run {'with' if normalizer.equalize else 'without'} "
                                 "(--equalize must match)")
            self.input_scale[i] = (normalizer.std / own.std).reshape(())
            self.input_shift[i] = ((normalizer.mean - own.mean) / own.std).reshape(())

    def blocks(self) -> list[nn.Module]:
        """Each member, then the head: ``--freeze -1`` trains the head alone."""
        return [*self.members, self.head]


# What ``ferkit models`` counts: two of the shipped architecture, as ``--fuse default+default-b`` builds.
EXAMPLE = {"members": [{"model": "vgg_fer", "options": {}}, {"model": "vgg_fer", "options": {}}]}


@register_model("fusion", input_size=44, source=SOURCE, example_options=EXAMPLE,
                description="Trained networks' features joined under one new classifier (counted for two vgg_fer)")
def fusion(num_classes: int = 7, members: Sequence[dict] = (), dropout: float = 0.5,
           input_size: int | None = None) -> nn.Module:
    """Seed 001's fusion of trained networks' feature vectors under one classifier (``train --fuse A+B``)."""
    model = FusedNet(members, num_classes, dropout)
    if input_size is not None and int(input_size) != model.input_size:
        raise ValueError(f"input_size {input_size}: the largest member takes {model.input_size}x{model.input_size} "
                         "faces, and a fusion takes those")
    return model


def fusion_options(members: Sequence[LoadedModel], dropout: float = 0.5) -> dict:
    """The ``model_options`` of a fusion of these trained models: each member's architecture, as its file
    says (the weights come separately, through :meth:`FusedNet.load_members`)."""
    return {
        "members": [{"model": m.name, "options": dict(m.options), "classes": len(m.classes),
                     "input_size": m.input_size} for m in members],
        "dropout": dropout,
        "input_size": max((m.input_size for m in members), default=44),
    }
