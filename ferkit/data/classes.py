"""The seven FER2013 classes in the challenge's label order, and name matching."""
from __future__ import annotations

CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# Folder names seen in the many re-packagings of FER2013 and similar datasets.
_SYNONYMS = {
    "anger": "angry",
    "angry": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "neutral": "neutral",
    "neutrality": "neutral",
}

# Split names follow the challenge's ``Usage`` column.
SPLITS: tuple[str, ...] = ("training", "publictest", "privatetest")


def class_index(name: str) -> int | None:
    """Index of a class folder name (case-insensitive, synonyms allowed), or None."""
    canonical = _SYNONYMS.get(name.strip().lower())
    return None if canonical is None else CLASSES.index(canonical)
