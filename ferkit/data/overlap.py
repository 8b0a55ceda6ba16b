"""Recognise the faces a model learnt from by their pixels, wherever and however they are read now.

A model file keeps the hashes of a fixed sample of its training faces (256 of them, about 4 KB);
``evaluate`` hashes the faces it scores and counts how many of that sample are among them.  The path
a model was trained from says nothing once the data is copied, moved, renamed or converted without
loss between ``fer2013.csv`` and a folder of PNG images; the pixels still match (JPEG re-encoding
changes them: such a copy is not recognised).  ``ferkit calibrate`` keeps a sample of the faces it
fitted the temperature on the same way.  FER2013 holds a few faces twice
across its splits and blank faces are alike everywhere, so the figure is an estimate of the share
of the scored faces the model learnt from, said when it is most of them; blank faces are never sampled.
"""
from __future__ import annotations

import hashlib

import numpy as np

SAMPLE_SIZE = 256
# The share of the scored faces that must look learnt before evaluate says so.  FER2013 itself repeats
# faces across splits: 279 of PublicTest's 3,589 (7.8%) are pixel for pixel Training faces
# (benchmarks/split_duplicates.py), so a model trained on Training "learnt" about 8% of PublicTest,
# as every paper's model did; the caveat is for scoring mostly the faces trained on.
LEARNT_SHARE = 0.5
MIN_FOUND = 2  # one sampled face found could be a duplicate across splits: no evidence of its own


def face_hashes(faces: np.ndarray) -> list[str]:
    """One short hash per face of the pixels and their shape (uint8 faces, as the loader reads them)."""
    faces = np.ascontiguousarray(faces)
    shape = repr(faces.shape[1:]).encode()
    return [hashlib.blake2b(face.tobytes() + shape, digest_size=8).hexdigest() for face in faces]


def faces_digest(faces: np.ndarray) -> str:
    """One short hash of a whole set of faces (pixels, order and shape): which faces a temperature was
    fitted on, so that evaluate can tell when it scores those very faces."""
    faces = np.ascontiguousarray(faces)
    return hashlib.sha256(repr(faces.shape).encode() + faces.tobytes()).hexdigest()[:16]


def blank(faces: np.ndarray) -> np.ndarray:
    """Which faces are one flat grey level (FER2013 has a few): alike in every dataset, no evidence of a repeat."""
    flat = faces.reshape(len(faces), -1)
    return flat.min(axis=1) == flat.max(axis=1) if len(faces) else np.zeros(0, dtype=bool)


def repeats_of(faces: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Which of ``faces`` are, pixel for pixel, one of ``others`` (blank faces never count): e.g. the
    PublicTest faces that FER2013 also has in its Training split."""
    seen = set(face_hashes(others[~blank(others)]))
    return np.array([h in seen for h in face_hashes(faces)], dtype=bool) & ~blank(faces)


def training_sample(faces: np.ndarray, size: int = SAMPLE_SIZE, seed: int = 0) -> dict:
    """The hashes of a seeded sample of ``faces`` (blank ones left out) and how many faces there were:
    what a model file records, as ``meta["face_sample"]``."""
    varied = np.flatnonzero(~blank(faces))
    chosen = np.sort(np.random.default_rng(seed).permutation(varied)[:size])
    return {"hashes": sorted(set(face_hashes(faces[chosen]))), "of": int(len(faces))}


def learnt_share(sample: object, faces: np.ndarray) -> float:
    """The estimated share of ``faces`` that the model whose ``sample`` this is learnt from (0 when the
    sample is missing or malformed, or fewer than two sampled faces are here): sampled faces found here,
    scaled from the sample to all its faces.  A few faces drawn from a large training set usually hold
    none of the sample, so a small scored set can go unrecognised."""
    if not isinstance(sample, dict) or not isinstance(sample.get("hashes"), list) or not len(faces):
        return 0.0
    hashes = {h for h in sample["hashes"] if isinstance(h, str)}
    total = sample.get("of")
    if not hashes or not isinstance(total, int) or total <= 0:
        return 0.0
    found = len(hashes.intersection(face_hashes(faces)))
    return min(1.0, found / len(hashes) * total / len(faces)) if found >= MIN_FOUND else 0.0
