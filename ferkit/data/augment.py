"""On-the-fly augmentation of whole batches, with independent random parameters per image.

One affine sampling grid + ``grid_sample`` call applies flip, shift (seed 000: 10%), rotation,
zoom and the random crop (seed 001: 44x44 from 48x48) to the whole batch at once; random
erasing is a broadcast mask.  Plain torch ops: no per-pixel Python loops, no extra library.

Inputs are normalised float batches ``N x 1 x 48 x 48`` (so zero padding equals the mean
face); the deterministic test-time views (centre crop, flip, ten-crop) live here too.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from .augment_config import AugmentConfig

__all__ = ["AugmentConfig", "BatchAugmenter", "center_crop", "ten_crop", "tta_views"]


@functools.lru_cache(maxsize=8)
def _base_grid(size: int, dtype: torch.dtype) -> torch.Tensor:
    """Homogeneous output-pixel coordinates (size*size x 3), as ``affine_grid`` builds them
    (align_corners=False); cached because ``affine_grid`` rebuilds them on every call."""
    lin = (torch.arange(size, dtype=dtype) * 2 + 1) / size - 1
    xs, ys = lin.view(1, size).expand(size, size), lin.view(size, 1).expand(size, size)
    return torch.stack([xs, ys, torch.ones(size, size, dtype=dtype)], dim=-1).view(-1, 3)


class BatchAugmenter:
    """Random geometric augmentation + random erasing for N x C x H x W float batches."""

    def __init__(self, config: AugmentConfig | None = None, generator: torch.Generator | None = None):
        self.config = config or AugmentConfig()
        self.generator = generator

    def _uniform(self, n: int, low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=self.generator) * (high - low) + low

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        n, channels, height, width = x.shape
        crop = min(cfg.crop, height, width)
        angle = self._uniform(n, -cfg.rotate, cfg.rotate) * (math.pi / 180.0)
        zoom = self._uniform(n, 1.0 - cfg.scale, 1.0 + cfg.scale)
        flip = torch.ones(n)
        if cfg.flip:
            flip = torch.where(torch.rand(n, generator=self.generator) < 0.5, -1.0, 1.0)
        upside = torch.ones(n)
        if cfg.vflip:  # drawn only when asked for: runs without it keep their random stream, so resume exactly
            upside = torch.where(torch.rand(n, generator=self.generator) < 0.5, -1.0, 1.0)
        # Translation in normalised coordinates: the crop's own play plus the requested shift.
        reach_x = (width - crop) / width + 2 * cfg.shift
        reach_y = (height - crop) / height + 2 * cfg.shift
        tx = self._uniform(n, -reach_x, reach_x)
        ty = self._uniform(n, -reach_y, reach_y)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        sx, sy = crop / width, crop / height
        theta = torch.stack(
            [
                torch.stack([cos * sx * flip, -sin * sy * upside, tx], dim=1),
                torch.stack([sin * sx * flip, cos * sy * upside, ty], dim=1),
            ],
            dim=1,
        ).to(x.dtype)
        grid = torch.matmul(_base_grid(crop, x.dtype), theta.transpose(1, 2)).view(n, crop, crop, 2)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if cfg.erase_p > 0:
            out = self._erase(out)
        return out

    def _erase(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        n, _, height, width = x.shape
        low, high = min(cfg.erase_min, height), min(cfg.erase_max, height)
        h = torch.randint(low, high + 1, (n,), generator=self.generator)
        w = torch.randint(low, high + 1, (n,), generator=self.generator)
        top = (torch.rand(n, generator=self.generator) * (height - h + 1)).long()
        left = (torch.rand(n, generator=self.generator) * (width - w + 1)).long()
        apply = torch.rand(n, generator=self.generator) < cfg.erase_p
        rows = torch.arange(height).view(1, height, 1)
        cols = torch.arange(width).view(1, 1, width)
        mask = ((rows >= top.view(n, 1, 1)) & (rows < (top + h).view(n, 1, 1))
                & (cols >= left.view(n, 1, 1)) & (cols < (left + w).view(n, 1, 1)) & apply.view(n, 1, 1))
        return x.masked_fill(mask.unsqueeze(1), 0.0)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    height, width = x.shape[-2:]
    top, left = (height - size) // 2, (width - size) // 2
    return x[..., top:top + size, left:left + size]


def ten_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The four corner crops and the centre crop, each also mirrored: 10 x N x C x size x size."""
    height, width = x.shape[-2:]
    crops = [
        x[..., :size, :size],
        x[..., :size, width - size:],
        x[..., height - size:, :size],
        x[..., height - size:, width - size:],
        center_crop(x, size),
    ]
    crops += [c.flip(-1) for c in crops]
    return torch.stack(crops)


def tta_views(x: torch.Tensor, size: int, tta: str = "none") -> torch.Tensor:
    """Deterministic views for evaluation: V x N x C x size x size, V = 1, 2 or 10 (2 for ten-crop when
    ``size`` is the whole face: its five crops would all be the face, see :func:`ferkit.tta.views_for`)."""
    if tta == "tencrop" and size >= min(x.shape[-2:]):
        tta = "flip"
    if tta == "none":
        return center_crop(x, size).unsqueeze(0)
    if tta == "flip":
        crop = center_crop(x, size)
        return torch.stack([crop, crop.flip(-1)])
    if tta == "tencrop":
        return ten_crop(x, size)
    raise ValueError(f"unknown test-time augmentation {tta!r}: choose none, flip or tencrop")
