"""Seed 004: EfficientNet-B1 (Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for
Convolutional Neural Networks"), the transfer backbone of Khaled, Camara, Djibrine & Sow, "Face
Emotion Recognition Using Deep Learning" (IUT): ImageNet weights, the top trained first, then the
layers after the first 200 (Keras count) fine-tuned; 64% on FER2013.

Plain-torch EfficientNet-B1: width 1.0, depth 1.1 (stage repeats 2-3-3-4-4-5-2), MBConv blocks
(1x1 expansion, depthwise kxk, squeeze-and-excitation to a quarter of the block's input width, 1x1
projection), SiLU, stochastic depth rising linearly to 0.2, dropout 0.2 before the classifier.
Module and parameter names follow torchvision's ``efficientnet_b1`` (``features.0.0``,
``features.2.1.block.2.fc1``, ``classifier.1``...), so a converted ImageNet state dict loads with
``load_pretrained``; with 1000 classes the parameter count equals torchvision's (7,794,184).

The paper feeds 224x224 RGB images; here the gray faces are repeated to three channels and by
default used at 48 px (a 2x2 final map) because 224 px costs ~22x more compute on a CPU;
``upscale="bilinear", size=224`` restores the paper's input.  The paper gives no parameter figure.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from .adapter import InputAdapter
from .registry import register_model

# (expand ratio, kernel, stride, in channels, out channels, repeats) of EfficientNet-B0, Table 1.
B0_STAGES = [
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
]


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a scaled width to a multiple of 8, never more than 10% below it (as the reference code)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


def conv_bn_act(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                act: bool = True) -> nn.Sequential:
    """torchvision's Conv2dNormActivation: keys ``0`` (conv), ``1`` (BN)."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.SiLU(inplace=True))
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.SiLU(inplace=True)
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return x * scale


class StochasticDepth(nn.Module):
    """Drop the residual branch of whole samples with probability ``p`` while training (Huang et al. 2016)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int, drop: float):
        super().__init__()
        self.use_residual = stride == 1 and cin == cout
        hidden = make_divisible(cin * expand)
        layers: list[nn.Module] = []
        if hidden != cin:
            layers.append(conv_bn_act(cin, hidden))
        layers.append(conv_bn_act(hidden, hidden, kernel, stride, groups=hidden))
        layers.append(SqueezeExcitation(hidden, max(1, cin // 4)))
        layers.append(conv_bn_act(hidden, cout, act=False))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.use_residual:
            out = self.stochastic_depth(out) + x
        return out


class EfficientNet(nn.Module):
    head_prefixes: tuple[str, ...] = ("classifier.",)

    def __init__(self, num_classes: int = 7, width_mult: float = 1.0, depth_mult: float = 1.1,
                 dropout: float = 0.2, stochastic_depth: float = 0.2, upscale: str | None = None,
                 scale: int = 2, size: int | None = None, input_size: int = 48):
        super().__init__()
        self.input_adapter = InputAdapter(upscale, scale, size)
        if self.input_adapter.sr is not None:
            self.head_prefixes = ("classifier.", "input_adapter.")
        stages = [(e, k, s, make_divisible(i * width_mult), make_divisible(o * width_mult),
                   int(math.ceil(n * depth_mult))) for e, k, s, i, o, n in B0_STAGES]
        total = sum(stage[-1] for stage in stages)
        layers: list[nn.Module] = [conv_bn_act(3, stages[0][3], 3, 2)]
        index = 0
        for expand, kernel, stride, cin, cout, repeats in stages:
            blocks = []
            for r in range(repeats):
                blocks.append(MBConv(cin if r == 0 else cout, cout, expand, kernel, stride if r == 0 else 1,
                                     stochastic_depth * index / total))
                index += 1
            layers.append(nn.Sequential(*blocks))
        last_in = stages[-1][4]
        layers.append(conv_bn_act(last_in, 4 * last_in))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * last_in, num_classes))
        own_init = set(self.input_adapter.modules())
        for m in self.modules():
            if m in own_init:
                continue
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(self.input_adapter(x)))
        return self.classifier(x.flatten(1))

    def blocks(self) -> list[nn.Module]:
        """Stem, the seven MBConv stages, the 1x1 head convolution, the classifier."""
        return [*self.features, self.classifier]


# bf16 autocast made a training step slower, not faster (108 against 192 images/s on an Intel Xeon with AMX:
# README, training throughput): its depthwise convolutions and squeeze-excitation gain nothing from it.
@register_model("efficientnet_b1", input_size=48, source="seed 004: Face Emotion Recognition Using Deep Learning",
                bf16=False)
def efficientnet_b1(num_classes: int = 7, **options) -> nn.Module:
    """EfficientNet-B1 (MBConv + squeeze-excitation, torchvision names) on gray faces as 3 channels."""
    return EfficientNet(num_classes, **options)
