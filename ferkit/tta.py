"""Test-time augmentation modes: which views of a face a model averages (names only, no imports,
so the command line can list them without loading torch; the views themselves are made in
:func:`ferkit.data.augment.tta_views`).

``auto``, the default everywhere a user classifies faces, is ten-crop for still faces (photos,
face crops, ``ferkit evaluate``) and a single centre view for video and camera frames: ten-crop
adds 1.3 points of PublicTest accuracy to ``default`` (v5), 0.8 to ``default-b`` and 1.2 to ``fast``, for ten
times the classifier's cost: small beside face detection on a photo, but what bounds a video's frame rate.
"""
from __future__ import annotations

TTA_MODES: tuple[str, ...] = ("none", "flip", "tencrop")  # centre crop; + its mirror; 4 corners + centre, x2 flip
TTA_CHOICES: tuple[str, ...] = ("auto", *TTA_MODES)
AUTO_STILL, AUTO_VIDEO = "tencrop", "none"


def resolve_tta(tta: str, *, video: bool = False) -> str:
    """The views mode ``tta`` stands for: ``auto`` picks by still face or video frame; the rest are themselves."""
    if tta not in TTA_CHOICES:
        raise ValueError(f"unknown test-time augmentation {tta!r}: choose {', '.join(TTA_CHOICES)}")
    if tta == "auto":
        return AUTO_VIDEO if video else AUTO_STILL
    return tta


def views_for(tta: str, input_size: int, face_size: int = 48) -> str:
    """The views a model whose input is ``input_size`` px really gets from mode ``tta`` on ``face_size`` px
    faces: a model that takes the whole face has no room to crop, so its five ten-crop crops are all
    the face, and ten-crop is the flip pair (computed as such, at a fifth of the cost)."""
    tta = resolve_tta(tta)
    return "flip" if tta == "tencrop" and input_size >= face_size else tta
