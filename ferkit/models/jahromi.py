"""Seed 000: the three CNNs of Honari Jahromi & Fyshe, "Facial Emotion recognition with
convolutional Neural Networks" (University of Victoria), compared by depth on FER2013.

Table 1 of the paper gives their sizes: shallow 4.7M, medium 2.4M, deep 9.4M parameters.  The
text gives the layer sequences; the choices it leaves open (``same`` padding, 2x2 pooling in the
shallow and deep nets, 3x3/2 ``same`` pooling in the medium net, ELU after the hidden fully
connected layer, a BatchNorm next to the dropout) come from the authors' released Keras code
(github.com/mahon94/empathy, ``src/model_7class.py``: ``shallow()``, ``kim()`` and ``vggnet()``)
and reproduce the paper's figures: 4.74M, 2.44M and 9.41M here.  Table 1 calls the deep network 11
layers deep; the layer sequence its text gives (and the code, and the 9.4M parameters) has 8
convolutions and 2 hidden fully connected layers, which is what is built here (ferkit's own depth
column, in ``evaluate --report``, counts 8).

The paper also puts L2 regularisation on the fully connected layers of the deep network (the code
does so in all three): here that is the training option ``--weight-decay``, which applies to every
weight rather than to the FC layers only, not part of the model.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import flat_size
from .registry import register_model

SOURCE = "seed 000: Facial Emotion recognition with convolutional Neural Networks"


class ShallowCNN(nn.Module):
    """Two 3x3 conv -> 2x2 max-pool -> BN stages (32, 64 maps), FC 512 with BN and dropout, FC 7."""

    def __init__(self, num_classes: int = 7, fc: int = 512, dropout: float = 0.5, input_size: int = 48):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.BatchNorm2d(32),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.BatchNorm2d(64),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat_size(self.features, input_size), fc), nn.ELU(inplace=True), nn.BatchNorm1d(fc),
            nn.Dropout(dropout),
            nn.Linear(fc, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class SamePaddedMaxPool(nn.Module):
    """Max pooling with Keras ``same`` padding: ``ceil(n / stride)`` outputs, the padding split with the
    odd pixel after (bottom/right).  ``MaxPool2d(padding=1)`` pads both sides, which shifts every
    window of an even-sized input by one pixel."""

    def __init__(self, kernel: int, stride: int):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The padding before goes to max_pool2d, the odd pixel after to ceil_mode (a last window cut at the
        # edge): the same windows as explicit -inf padding, which gave the int8 graph infinite ranges to
        # quantise (every face then answered the same), and no padded values in the graph at all.
        before = [max((-(-size // self.stride) - 1) * self.stride + self.kernel - size, 0) // 2
                  for size in map(int, x.shape[-2:])]  # plain ints: the ONNX export needs constant padding
        return F.max_pool2d(x, self.kernel, self.stride, padding=tuple(before), ceil_mode=True)


class MediumCNN(nn.Module):
    """32C5-MP3-BN-32C4-MP3-BN-64C5-MP3-BN-FC1024-D-FC7 (after Kim et al. 2016).

    Keras ``same`` padding of the even 4x4 kernel puts the extra row/column at the bottom/right,
    reproduced with an explicit ``ZeroPad2d``; the 3x3 pools have stride 2 (48 -> 24 -> 12 -> 6).
    """

    def __init__(self, num_classes: int = 7, fc: int = 1024, dropout: float = 0.5, input_size: int = 48):
        super().__init__()

        def pool_bn(channels: int) -> list[nn.Module]:
            return [SamePaddedMaxPool(3, 2), nn.BatchNorm2d(channels)]

        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(inplace=True), *pool_bn(32),
            nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(32, 32, 4), nn.ReLU(inplace=True), *pool_bn(32),
            nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(inplace=True), *pool_bn(64),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat_size(self.features, input_size), fc), nn.ELU(inplace=True), nn.Dropout(dropout),
            nn.BatchNorm1d(fc),
            nn.Linear(fc, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class DeepCNN(nn.Module):
    """VGG-B (Simonyan & Zisserman 2015) without its last CC-MP block: four blocks of two 3x3 convs
    (64, 128, 256, 512), each followed by max-pool, BN and dropout; then FC 1024 with dropout, FC 7."""

    def __init__(self, num_classes: int = 7, widths: tuple[int, ...] = (64, 128, 256, 512), fc: int = 1024,
                 dropout: float = 0.5, block_dropout: float = 0.25, input_size: int = 48):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for width in widths:
            layers += [nn.Conv2d(cin, width, 3, padding=1), nn.ReLU(inplace=True),
                       nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2), nn.BatchNorm2d(width), nn.Dropout(block_dropout)]
            cin = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat_size(self.features, input_size), fc), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(fc, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model("shallow", input_size=48, source=SOURCE, paper_params=4_700_000)
def shallow(num_classes: int = 7, **options) -> nn.Module:
    """Shallow CNN: 2 conv + 2 FC layers with BN and dropout (48.1% in the paper)."""
    return ShallowCNN(num_classes, **options)


@register_model("medium", input_size=48, source=SOURCE, paper_params=2_400_000)
def medium(num_classes: int = 7, **options) -> nn.Module:
    """Medium CNN: 3 conv (5x5, 4x4, 5x5) + 2 FC layers (63.1% with augmentation in the paper)."""
    return MediumCNN(num_classes, **options)


@register_model("deep", input_size=48, source=SOURCE, paper_params=9_400_000)
def deep(num_classes: int = 7, **options) -> nn.Module:
    """Deep CNN: VGG-B minus its last block, BN + dropout per block (68.2% with augmentation)."""
    return DeepCNN(num_classes, **options)
