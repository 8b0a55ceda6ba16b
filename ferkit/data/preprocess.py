"""Preprocessing from seed 000 (section 3.2, table 2): mean/std normalisation fitted on the
training split only, and optional histogram equalisation.

The fitted statistics travel with every model (see ``Normalizer.state_dict``) so inference
applies exactly what training did.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch


def equalize_histograms(faces: np.ndarray) -> np.ndarray:
    """Histogram-equalise each uint8 face of an N x H x W batch (OpenCV, per image)."""
    out = np.empty_like(faces)
    for i, face in enumerate(faces):
        out[i] = cv2.equalizeHist(np.ascontiguousarray(face))
    return out


@dataclass
class Normalizer:
    """``(x / 255 - mean) / std``; ``mean``/``std`` are per pixel (H x W) or scalars (1 x 1).

    Seed 000 subtracts each pixel's mean and divides by its standard deviation over the
    training set ("pixel"); "global" uses one mean and std, which suits random crops better.
    """

    mean: torch.Tensor
    std: torch.Tensor
    equalize: bool = False

    @classmethod
    def fit(cls, training_faces: np.ndarray, mode: str = "global", equalize: bool = False) -> "Normalizer":
        if mode not in ("global", "pixel"):
            raise ValueError(f"normalisation mode {mode!r}: choose 'global' or 'pixel'")
        if len(training_faces) == 0:
            raise ValueError("cannot fit normalisation on an empty training split")
        faces = equalize_histograms(training_faces) if equalize else training_faces
        data = faces.astype(np.float64) / 255.0
        if mode == "pixel":
            mean, std = data.mean(axis=0), data.std(axis=0)
        else:
            mean, std = np.full((1, 1), data.mean()), np.full((1, 1), data.std())
        std = np.maximum(std, 1e-3)  # constant pixels must not divide by zero
        return cls(torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32), equalize)

    @classmethod
    def identity(cls) -> "Normalizer":
        return cls(torch.full((1, 1), 0.5), torch.full((1, 1), 0.5))

    def prepare(self, faces: np.ndarray) -> np.ndarray:
        """The uint8 step that happens before augmentation (equalisation, if enabled)."""
        return equalize_histograms(faces) if self.equalize else faces

    def __call__(self, faces: torch.Tensor) -> torch.Tensor:
        """uint8 or float [0, 255] tensor N x 1 x H x W (H x W as fitted) -> normalised float."""
        x = faces.float() / 255.0
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def to_tensor(self, faces: np.ndarray) -> torch.Tensor:
        """uint8 faces N x H x W -> the network's normalised input N x 1 x H x W (:meth:`prepare`, then
        normalisation; read-only arrays, as decoded images may be, are copied, not viewed)."""
        prepared = np.ascontiguousarray(self.prepare(np.ascontiguousarray(faces)))
        if not prepared.flags.writeable:  # torch.from_numpy warns on read-only arrays
            prepared = prepared.copy()
        return self(torch.from_numpy(prepared).unsqueeze(1))

    def state_dict(self) -> dict:
        return {"mean": self.mean.clone(), "std": self.std.clone(), "equalize": torch.tensor(self.equalize)}

    @classmethod
    def from_state_dict(cls, state: dict) -> "Normalizer":
        return cls(state["mean"].float(), state["std"].float(), bool(state.get("equalize", torch.tensor(False))))
