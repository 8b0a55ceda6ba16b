"""ResNets (He et al. 2016, "Deep Residual Learning for Image Recognition") for gray faces.

``resnet50`` is model B of seed 001, Liu, Zhang & Xin, "Face Expression Recognition Based on
Improved Convolutional Neural Network" (AIPR 2019): an ImageNet ResNet-50 fine-tuned on faces that
were first enlarged 2x by super-resolution (SRGAN in the paper).  The enlargement happens inside the
model: ``upscale="bilinear"`` (default) or ``upscale="espcn"``, a small learnable 2x module
(``superres.ESPCN``) standing in for SRGAN; then the gray channel is repeated to three.  The paper
quotes 25,636,712 parameters for the Keras ResNet-50 with its 1000-class top; ours has a 7-class
head (23.5M; 25.56M with 1000 classes, as torchvision's).

``resnet18`` is not from the seed papers: the same layout at 11M parameters, a cheaper transfer
backbone for the CPU; it takes the 48 px faces as they are unless given ``upscale``.

Module and parameter names follow torchvision's ``resnet18``/``resnet50`` (``conv1``, ``bn1``,
``layer1.0.conv1``..., ``fc``), so an ImageNet state dict converted to safetensors loads with
``ferkit.models.io.load_pretrained`` (``fc.*`` is the new head and may differ).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .adapter import InputAdapter
from .registry import register_model


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 - 3x3 - 1x1 with the stride on the 3x3 (ResNet v1.5, as torchvision)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv1x1(cin, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    head_prefixes: tuple[str, ...] = ("fc.",)

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: tuple[int, int, int, int],
                 num_classes: int = 7, upscale: str | None = None, scale: int = 2, size: int | None = None,
                 dropout: float = 0.0, input_size: int = 48):
        super().__init__()
        self.input_adapter = InputAdapter(upscale, scale, size)
        if self.input_adapter.sr is not None:
            # ImageNet files have no super-resolution weights: let load_pretrained leave them new.
            self.head_prefixes = ("fc.", "input_adapter.")
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        own_init = set(self.input_adapter.modules())  # ESPCN keeps its own (bilinear-start) init
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m not in own_init:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block, planes: int, count: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, count)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_adapter(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.dropout(self.avgpool(x).flatten(1)))

    def blocks(self) -> list[nn.Module]:
        """Stem, the four stages, the head.  The super-resolution module (if any) is left out: it
        has no pretrained weights, so freezing it would freeze random filters."""
        return [nn.ModuleList([self.conv1, self.bn1]), self.layer1, self.layer2, self.layer3, self.layer4, self.fc]


SEED_001 = "seed 001: Face Expression Recognition Based on Improved Convolutional Neural Network"


@register_model("resnet50", input_size=48, source=SEED_001, paper_params=25_636_712)
def resnet50(num_classes: int = 7, **options) -> nn.Module:
    """Model B: ResNet-50 on 2x-upscaled faces (bilinear, or upscale=espcn for learnt super-resolution)."""
    options.setdefault("upscale", "bilinear")
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes, **options)


@register_model("resnet18", input_size=48, source="ferkit extra: He et al. 2016 (ResNet-18 transfer backbone)")
def resnet18(num_classes: int = 7, **options) -> nn.Module:
    """ResNet-18 (torchvision layout) on the 48 px faces; a cheaper ImageNet transfer backbone."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, **options)
