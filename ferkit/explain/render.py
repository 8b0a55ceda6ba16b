"""Pictures of explanations: maps over the face (viridis, as seed 003 fig. 13) and filter grids."""
from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np

from ..atomic import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# Picture formats by file suffix (matplotlib writes each without extra packages).
FORMATS = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".pdf": "pdf", ".svg": "svg"}


def picture_format(path: str | Path) -> str:
    """The format ``path``'s suffix asks for; ValueError naming the suffixes ferkit can write."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: cannot write a {suffix or 'suffix-less'} picture; end the name in "
                         f"{', '.join(FORMATS)}")
    return FORMATS[suffix]


def _save(fig, path: str | Path) -> None:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format=picture_format(path), dpi=100)
    plt.close(fig)
    atomic_write(Path(path), lambda out: out.write(buffer.getvalue()))


def gradient_image(gradient: np.ndarray) -> np.ndarray:
    """Signed gradients -> [0, 1] with 0.5 for zero, as guided-backprop figures show them."""
    scale = np.abs(gradient).max()
    return 0.5 + 0.5 * gradient / scale if scale > 0 else np.full_like(gradient, 0.5, dtype=np.float64)


def stretch(image: np.ndarray) -> np.ndarray:
    low, high = float(image.min()), float(image.max())
    return (image - low) / (high - low) if high > low else np.zeros_like(image, dtype=np.float64)


def save_explanation(path: str | Path, face: np.ndarray, method: str, saliency: np.ndarray, title: str) -> None:
    """Face, the map, and (Grad-CAM) the map overlaid on the face, side by side."""
    plt = _pyplot()
    if method == "gradcam":
        panels = [("face", face, "gray"), ("Grad-CAM", saliency, "viridis"), ("overlay", None, None)]
    elif method == "guided-backprop":
        panels = [("face", face, "gray"), ("guided backpropagation", gradient_image(saliency), "gray")]
    else:
        panels = [("face", face, "gray"), ("guided Grad-CAM", gradient_image(saliency), "gray")]
    fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.4))
    for ax, (label, image, cmap) in zip(axes, panels):
        if image is None:
            ax.imshow(face, cmap="gray", vmin=0, vmax=255)
            # Opacity follows the map, so unimportant pixels show the face unchanged.
            ax.imshow(saliency, cmap="viridis", alpha=0.7 * np.clip(saliency, 0, 1), vmin=0, vmax=1)
        else:
            ax.imshow(image, cmap=cmap, **({"vmin": 0, "vmax": 255} if label == "face" else {"vmin": 0, "vmax": 1}))
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    fig.suptitle(textwrap.fill(title, 26 * len(panels)), fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def save_filter_grid(path: str | Path, images: np.ndarray, labels: Sequence[str], title: str) -> None:
    """Each image contrast-stretched on its own, in a near-square grid."""
    plt = _pyplot()
    count = len(images)
    cols = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < count:
            ax.imshow(stretch(images[k]), cmap="gray", vmin=0, vmax=1)
            ax.set_title(labels[k], fontsize=7)
    fig.suptitle(textwrap.fill(title, max(30, 18 * cols)), fontsize=9)
    fig.tight_layout()
    _save(fig, path)
