"""Learnable 2x super-resolution of the 48x48 faces, as seed 001 (Liu, Zhang & Xin 2019, "Face Expression
Recognition Based on Improved Convolutional Neural Network") enlarges them with SRGAN (Ledig et al. 2017,
"Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial Network") before its ResNet-50.

- ``SRGenerator`` + ``SRDiscriminator``: SRGAN's two networks, trained adversarially by ``ferkit superres``
  (``ferkit.training.superres``).  With no high-resolution face corpus here, the generator learns 24 -> 48 px
  from FER2013's own faces shrunk by half, and is then applied 48 -> 96 px.
- ``ESPCN`` (Shi et al. 2016, "Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel
  Convolutional Neural Network"): three convolutions and a sub-pixel layer, about 21k parameters, trained end
  to end with the classifier.

Both predict a residual on top of bilinear upsampling and their last convolution starts at zero, so an
untrained module is exactly bilinear upsampling and training can only add detail to it.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..atomic import atomic_write_bytes
from ..data.preprocess import Normalizer

GENERATOR_FORMAT = "ferkit-superres/1"


class ESPCN(nn.Module):
    """``N x C x H x W`` -> ``N x C x 2H x 2W`` (scale ``r``), ESPCN layout 5-3-3 with 64/32 maps."""

    def __init__(self, channels: int = 1, scale: int = 2, features: tuple[int, int] = (64, 32),
                 residual: bool = True):
        super().__init__()
        f1, f2 = features
        self.scale = scale
        self.residual = residual
        self.body = nn.Sequential(
            nn.Conv2d(channels, f1, 5, padding=2), nn.Tanh(),
            nn.Conv2d(f1, f2, 3, padding=1), nn.Tanh(),
            nn.Conv2d(f2, channels * scale * scale, 3, padding=1),
        )
        self.shuffle = nn.PixelShuffle(scale)
        if residual:
            # Start as plain bilinear upsampling (see module docstring).
            nn.init.zeros_(self.body[-1].weight)
            nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.shuffle(self.body(x))
        if self.residual:
            out = out + F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return out


class ResidualBlock(nn.Module):
    """conv-PReLU-conv plus the input: SRResNet's block without its batch norm (as EDSR, Lim et al. 2017, found
    better for super-resolution), so the generator computes the same in training and evaluation mode."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.PReLU(channels),
                                  nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SRGenerator(nn.Module):
    """SRGAN's generator (SRResNet), ``N x 1 x H x W`` -> ``N x 1 x 2H x 2W``: a 9x9 convolution, residual
    blocks with a skip over them all, one sub-pixel 2x step and a 9x9 convolution back to one channel.

    Ledig et al. use 16 blocks of 64 maps; the default here is 8 of 32 (about a seventh of the work), which the
    ResNet-50 behind it can afford on a CPU.  ``in_scale``/``in_shift`` (buffers) map the classifier's
    normalisation of a face to the one the generator was trained with, and back on the way out."""

    def __init__(self, blocks: int = 8, channels: int = 32):
        super().__init__()
        self.blocks, self.channels = int(blocks), int(channels)
        self.head = nn.Sequential(nn.Conv2d(1, channels, 9, padding=4), nn.PReLU(channels))
        self.body = nn.Sequential(*[ResidualBlock(channels) for _ in range(blocks)],
                                  nn.Conv2d(channels, channels, 3, padding=1))
        self.upsample = nn.Sequential(nn.Conv2d(channels, channels * 4, 3, padding=1), nn.PixelShuffle(2),
                                      nn.PReLU(channels))
        self.tail = nn.Conv2d(channels, 1, 9, padding=4)
        nn.init.zeros_(self.tail.weight)  # start as bilinear upsampling (see the module docstring)
        nn.init.zeros_(self.tail.bias)
        self.register_buffer("in_scale", torch.ones(()))
        self.register_buffer("in_shift", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.in_scale + self.in_shift
        features = self.head(x)
        out = self.tail(self.upsample(features + self.body(features)))
        out = out + F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return (out - self.in_shift) / self.in_scale


class SRDiscriminator(nn.Module):
    """SRGAN's discriminator, narrowed for 48 px faces: strided conv-BN-LeakyReLU stages (no batch norm on the
    first), then two dense layers to one logit ("a real face, not an enlarged one")."""

    def __init__(self, width: int = 32):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for i, (cout, stride) in enumerate([(width, 1), (width, 2), (2 * width, 1), (2 * width, 2),
                                            (4 * width, 1), (4 * width, 2)]):
            layers += [nn.Conv2d(cin, cout, 3, stride, 1)]
            layers += [nn.BatchNorm2d(cout)] if i else []
            layers += [nn.LeakyReLU(0.2, inplace=True)]
            cin = cout
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(6))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(cin * 36, 256), nn.LeakyReLU(0.2, inplace=True),
                                        nn.Linear(256, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x)).squeeze(1)


def save_generator(path: str | Path, generator: SRGenerator, normalizer: Normalizer, meta: dict) -> None:
    """A generator file: its weights (safetensors: no code), the normalisation it was trained on, and ``meta``."""
    from safetensors.torch import save

    tensors = {f"generator.{k}": v.detach().contiguous() for k, v in generator.state_dict().items()
               if k not in ("in_scale", "in_shift")}
    tensors.update({f"normalizer.{k}": v.contiguous() for k, v in normalizer.state_dict().items()})
    header = {"format": GENERATOR_FORMAT, "blocks": generator.blocks, "channels": generator.channels, "meta": meta}
    atomic_write_bytes(Path(path), save(tensors, metadata={"ferkit": json.dumps(header)}))


def load_generator(path: str | Path) -> tuple[dict[str, torch.Tensor], Normalizer, dict]:
    """A generator file's weights, normalisation and header; ``ValueError`` naming the file if it is none."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    if path.is_dir():  # a ferkit superres run folder
        path = path / "generator.safetensors"
    if not path.is_file():
        raise ValueError(f"{path}: no such generator file (ferkit superres writes RUN/generator.safetensors)")
    raw = path.read_bytes()
    try:
        tensors = load(raw)
        metadata = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")]).get("__metadata__") or {}
        header = json.loads(metadata.get("ferkit", "{}"))
    except (SafetensorError, ValueError, AttributeError, TypeError) as exc:
        raise ValueError(f"{path}: not a generator file ({str(exc)[:120]})") from None
    if not isinstance(header, dict) or header.get("format") != GENERATOR_FORMAT:
        raise ValueError(f"{path}: not a ferkit superres generator (a file of format "
                         f"{header.get('format') if isinstance(header, dict) else None!r})")
    if not isinstance(header.get("meta", {}), dict):
        raise ValueError(f"{path}: bad generator header (meta must be an object)")
    try:
        normalizer = Normalizer.from_state_dict({k[len("normalizer."):]: v for k, v in tensors.items()
                                                 if k.startswith("normalizer.")})
    except KeyError:
        raise ValueError(f"{path}: a generator file without its normalisation") from None
    if not (torch.isfinite(normalizer.mean).all() and torch.isfinite(normalizer.std).all()
            and (normalizer.std > 0).all()):
        raise ValueError(f"{path}: bad normalisation in the generator file (a finite mean and a std above 0)")
    weights = {k[len("generator."):]: v.float() for k, v in tensors.items() if k.startswith("generator.")}
    return weights, normalizer, header


def attach_generator(generator: SRGenerator, path: str | Path, normalizer: Normalizer) -> dict:
    """Load a trained generator file into ``generator`` (a model's ``upscale="srgan"`` module), mapping the
    faces ``normalizer`` prepares to the normalisation it was trained on; returns the file's header."""
    weights, own, header = load_generator(path)
    if (header.get("blocks"), header.get("channels")) != (generator.blocks, generator.channels):
        raise ValueError(f"{path}: a generator of {header.get('blocks')} blocks of {header.get('channels')} maps; "
                         f"upscale='srgan' takes {generator.blocks} of {generator.channels}")
    if own.mean.numel() != 1 or normalizer.mean.numel() != 1:
        raise ValueError(f"{path}: the generator and the run need global normalisation (--normalize global)")
    if own.equalize != normalizer.equalize:
        raise ValueError(f"{path}: the generator learnt faces {'with' if own.equalize else 'without'} histogram "
                         f"equalisation, the run {'has' if normalizer.equalize else 'has not'} it (--equalize)")
    try:
        generator.load_state_dict({**weights, "in_scale": generator.in_scale, "in_shift": generator.in_shift})
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not fit the generator ({str(exc).splitlines()[0][:150]})") from None
    with torch.no_grad():
        generator.in_scale.fill_(float(normalizer.std.reshape(()) / own.std.reshape(())))
        generator.in_shift.fill_(float((normalizer.mean.reshape(()) - own.mean.reshape(())) / own.std.reshape(())))
    return header
