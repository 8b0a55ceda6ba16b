"""Shared fixtures: small datasets and models that the tests make themselves."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from ferkit.data.classes import CLASSES

# A few real FER2013 faces are read from here (never copied into the repository); tests that need
# them skip, listed by pytest -rs, where the folder is missing. FERKIT_TEST_FER2013 points elsewhere.
SHARED = Path(os.environ.get("FERKIT_TEST_FER2013") or Path(__file__).resolve().parents[2] / "shared" / "fer2013")


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    """Module-scoped fixtures (a shared recognizer, a server process) start before the per-test cache below
    is set: they get the test session's own cache folder, never the user's ~/.cache/ferkit."""
    before = os.environ.get("FERKIT_CACHE_DIR")
    os.environ["FERKIT_CACHE_DIR"] = str(tmp_path_factory.mktemp("session-cache"))
    yield
    if before is None:
        os.environ.pop("FERKIT_CACHE_DIR", None)
    else:
        os.environ["FERKIT_CACHE_DIR"] = before


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own dataset cache folder, so tests never see each other's cache."""
    monkeypatch.setenv("FERKIT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def synthetic_faces(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Faces whose class is visible (a bright bar at a class-specific row), so models can learn them."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(CLASSES)
    faces = rng.integers(0, 80, size=(n, 48, 48), dtype=np.uint8)
    for i, label in enumerate(labels):
        row = 4 + 6 * label
        faces[i, row:row + 4, 8:40] = 220
    return faces, labels.astype(np.int64)


def write_class_folders(root: Path, faces: np.ndarray, labels: np.ndarray, prefix: str = "Training") -> Path:
    for i, (face, label) in enumerate(zip(faces, labels)):
        folder = root / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{prefix}_{i}.png"), face)
    return root


def write_fer_root(root: Path) -> Path:
    """A small dataset root in the Kaggle layout: train/ (Training_) and test/ (PublicTest_ + PrivateTest_)."""
    faces, labels = synthetic_faces(70, seed=1)
    write_class_folders(root / "train", faces, labels, "Training")
    faces, labels = synthetic_faces(28, seed=2)
    write_class_folders(root / "test", faces[:14], labels[:14], "PublicTest")
    write_class_folders(root / "test", faces[14:], labels[14:], "PrivateTest")
    return root


@pytest.fixture
def fer_root(tmp_path) -> Path:
    """``write_fer_root``'s small dataset, for one test."""
    return write_fer_root(tmp_path / "fer")


# PublicTest faces that are, pixel for pixel, Training faces (FER2013 repeats 279; the shipped models learnt
# them): written by `python benchmarks/split_duplicates.py --list-repeats tests/data/publictest_repeats.txt`.
PUBLICTEST_REPEATS = frozenset((Path(__file__).parent / "data" / "publictest_repeats.txt").read_text().split())


def real_faces(per_class: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A few real FER2013 PublicTest faces read from ../shared (skips the test if absent), none of them a
    repeat of a Training face: faces no shipped model saw."""
    from ferkit.data.images import decode_face

    test_dir = SHARED / "test"
    if not test_dir.is_dir():
        pytest.skip(f"{test_dir} not found")
    faces, labels = [], []
    for index, name in enumerate(CLASSES):
        paths = [p for p in sorted((test_dir / name).iterdir()) if f"{name}/{p.name}" not in PUBLICTEST_REPEATS]
        for path in paths[:per_class]:
            faces.append(decode_face(path)[0])
            labels.append(index)
    return np.stack(faces), np.asarray(labels)


def packaged_faces() -> np.ndarray:
    """The two faces of the package's own photo (``ferkit/assets/portraits.jpg``, public domain),
    cut as 48x48 FER2013-style crops: real faces that every checkout has, for tests that need a
    face a detector finds but no FER2013 label."""
    from ferkit.vision.crop import FRAMINGS, crop_faces
    from ferkit.vision.detect import HaarDetector

    photo = cv2.imread(str(Path(__file__).resolve().parents[1] / "ferkit" / "assets" / "portraits.jpg"))
    found = HaarDetector().detect(photo)
    assert len(found) == 2, f"expected the astronaut's and Grace Hopper's faces, found {len(found)}"
    return np.asarray(crop_faces(photo, found, FRAMINGS["haar"], align=False))


def plumbing_faces(count: int) -> np.ndarray:
    """``count`` faces for tests of the plumbing (engines, ensembles, crops agreeing with each other), on
    every checkout: the package photo's two real faces, then synthetic ones."""
    return np.concatenate([packaged_faces(), synthetic_faces(max(0, count - 2), seed=11)[0]])[:count]


@pytest.fixture
def tiny_model_file(tmp_path) -> Path:
    """An untrained tiny model saved as a ferkit model file."""
    import torch

    from ferkit.data.preprocess import Normalizer
    from ferkit.models import create_model
    from ferkit.models.io import save_model_file

    torch.manual_seed(0)
    model = create_model("tiny")
    path = tmp_path / "tiny.safetensors"
    save_model_file(path, model, name="tiny", options={}, normalizer=Normalizer.identity())
    return path


@pytest.fixture
def varied_model_file(tmp_path, fer_root) -> Path:
    """An untrained tiny model whose answers on ``fer_root``'s PublicTest faces are not all one
    class (most seeds answer one class for every face, which lets a wrong reference pass)."""
    import torch

    from ferkit.data.preprocess import Normalizer
    from ferkit.models import create_model
    from ferkit.models.inference import predict_probs
    from ferkit.models.io import save_model_file

    faces, _ = synthetic_faces(28, seed=2)  # fer_root's test/ faces; its first 14 are PublicTest
    for seed in range(50):
        torch.manual_seed(seed)
        model = create_model("tiny").eval()
        answers = [predict_probs(model, Normalizer.identity(), faces[:14], tta=tta).argmax(1) for tta in
                   ("none", "tencrop")]
        if all(len(set(a.tolist())) > 1 for a in answers):
            path = tmp_path / f"varied{seed}.safetensors"
            save_model_file(path, model, name="tiny", options={}, normalizer=Normalizer.identity())
            return path
    pytest.fail("no seed gives an untrained tiny model with varied answers")


os.environ.setdefault("MPLBACKEND", "Agg")
