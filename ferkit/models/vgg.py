"""Seed 002: the ImageNet VGG-11 and VGG-16 (Simonyan & Zisserman 2015) that Russo, van Kampen &
Mivelaz fine-tune in "Emotion Detection in Human Faces' Low-resolution Images Using Deep Neural
Networks" (HEC Lausanne): the 48x48 gray faces, repeated to three channels, go straight into the
ImageNet layout (VGG-11 with its convolutions frozen reached little; VGG-16 fine-tuned end to end
reached 64% validation accuracy).

The layout, parameter names and initialisation are torchvision's ``vgg11``/``vgg16``
(``features.N``, ``classifier.0/3/6``), so a converted ImageNet state dict loads with
``load_pretrained``; ``classifier.6`` is the new 7-class head.  A 48 px face leaves a 1x1 map after
the five pools, which the 7x7 adaptive pool repeats, as in the paper.  The paper gives no parameter
figure ("over a hundred million"): 128.8M (VGG-11) and 134.3M (VGG-16) here with 7 classes.

``vgg19`` (configuration "E") is the VGG19 baseline of seed 001's Table 1.

Options: ``head="gap"`` swaps the three 4096-wide FC layers (89% of the weights) for global average
pooling and one linear layer, which is far cheaper on a CPU; ``batch_norm=True`` gives the
``vgg11_bn``/``vgg16_bn`` layouts; ``upscale``/``size`` enlarge the faces first (``InputAdapter``).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .adapter import InputAdapter
from .registry import register_model

# torchvision's configurations "A" (VGG-11), "D" (VGG-16) and "E" (VGG-19); "M" is a 2x2 max-pool.
LAYOUTS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
HEADS = ("imagenet", "gap")


class VGG(nn.Module):
    head_prefixes: tuple[str, ...] = ("classifier.6.",)

    def __init__(self, layout: list[int | str], num_classes: int = 7, head: str = "imagenet",
                 batch_norm: bool = False, dropout: float = 0.5, upscale: str | None = None, scale: int = 2,
                 size: int | None = None, input_size: int = 48):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}: choose {' or '.join(HEADS)}")
        self.input_adapter = InputAdapter(upscale, scale, size)
        layers: list[nn.Module] = []
        cin = 3
        for item in layout:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers.append(nn.Conv2d(cin, int(item), 3, padding=1))
                layers += [nn.BatchNorm2d(int(item)), nn.ReLU(inplace=True)] if batch_norm else [nn.ReLU(inplace=True)]
                cin = int(item)
        self.features = nn.Sequential(*layers)
        if head == "imagenet":
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
                nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
                nn.Linear(4096, num_classes),
            )
        else:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(512, num_classes))
            # ImageNet's three FC layers have no place here: all of ``classifier.*`` is new.
            self.head_prefixes = ("classifier.",)
        if self.input_adapter.sr is not None:
            self.head_prefixes = (*self.head_prefixes, "input_adapter.")
        own_init = set(self.input_adapter.modules())
        for m in self.modules():
            if m in own_init:
                continue
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(self.input_adapter(x)))
        return self.classifier(x.flatten(1))

    def blocks(self) -> list[nn.Module]:
        """The five conv stages (each ending at its max-pool), then the classifier."""
        stages, start = [], 0
        for i, layer in enumerate(self.features):
            if isinstance(layer, nn.MaxPool2d):
                stages.append(self.features[start:i + 1])
                start = i + 1
        return [*stages, self.classifier]


SOURCE = "seed 002: Emotion Detection in Human Faces' Low-resolution Images Using Deep Neural Networks"


@register_model("vgg11", input_size=48, source=SOURCE)
def vgg11(num_classes: int = 7, **options) -> nn.Module:
    """ImageNet VGG-11 layout (torchvision names) on gray faces repeated to 3 channels."""
    return VGG(LAYOUTS["vgg11"], num_classes, **options)


@register_model("vgg16", input_size=48, source=SOURCE)
def vgg16(num_classes: int = 7, **options) -> nn.Module:
    """ImageNet VGG-16 layout (torchvision names) on gray faces repeated to 3 channels."""
    return VGG(LAYOUTS["vgg16"], num_classes, **options)


@register_model("vgg19", input_size=48,
                source="seed 001: Face Expression Recognition Based on Improved Convolutional Neural Network "
                       "(Table 1's VGG19 baseline)")
def vgg19(num_classes: int = 7, **options) -> nn.Module:
    """ImageNet VGG-19 layout (torchvision names), the baseline seed 001's Table 1 compares its nets with
    (20,024,384 parameters in the convolutions, as here; ``head="gap"`` adds only the 7-class layer)."""
    return VGG(LAYOUTS["vgg19"], num_classes, **options)
