"""Evaluate one model or an ensemble on a FER2013 split, with optional test-time augmentation.

An ensemble averages the class probabilities of its members; each member uses its own
normalisation, input size, test-time views and stored temperature.  (Seed 001 fuses the feature
vectors of its two networks under one trained classifier instead; ferkit averages the outputs of
separately trained models, see docs/paper_recipes.md.)
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch.nn as nn

from ..data import FER2013, DataError, Split, load_fer2013
from ..data.classes import CLASSES
from ..data.fer2013 import FaceCropper
from ..data.overlap import LEARNT_SHARE, faces_digest, learnt_share, repeats_of
from ..models.hub import ensemble_members, load_model
from ..models.inference import predict_probs
from ..models.io import LoadedModel, ModelFileError
from ..tta import TTA_MODES, resolve_tta, views_for
from .metrics import classification_metrics, expected_calibration_error

DEFAULT_SPLIT = "publictest"


@dataclass
class Evaluation:
    """Everything one evaluation produced: the metrics dict (the JSON contract) and the raw
    probabilities, so reports can show the mistakes without running the models again."""

    metrics: dict
    probs: np.ndarray
    labels: np.ndarray
    split: str
    tta: str
    models: list[LoadedModel] = field(default_factory=list)
    specs: list[str] = field(default_factory=list)
    faces: np.ndarray | None = field(default=None, repr=False)  # the split's faces, for reports
    skipped: list[str] = field(default_factory=list)  # bad items left out of the data (skip_bad), each named
    cropped: dict[str, int] = field(default_factory=dict)  # pictures per way their face was found (a cropper)
    sources: list[str] = field(default_factory=list)  # where each face came from (file, or CSV row), for reports
    data: str = ""  # the dataset's path, when evaluate() loaded it
    repeats: np.ndarray | None = field(default=None, repr=False)  # faces that are, pixel for pixel, Training faces
    backend: str = "torch"  # what ran the networks (the CLI's --backend), for reports
    sample_of: int | None = None  # the split's faces when only a random sample of them was scored (limit)

    @property
    def predictions(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    @property
    def ece_caveat(self) -> str:
        """Said beside the ECE when a model's temperature was fitted on the faces scored here: by the hashes of
        a sample of the calibration faces that the record keeps (in any order, a few missing or added: most of
        the scored faces were among them); older records keep a digest of the faces in order, or only the
        split's name (then that split of the dataset the model was trained on).  The ECE is then measured on the faces that chose T, and is optimistic."""
        here = os.path.realpath(self.data) if self.data else ""

        def fitted_here(loaded: LoadedModel, calibration: dict) -> bool:
            if isinstance(calibration.get("face_sample"), dict):
                return self.faces is not None and \
                    learnt_share(calibration["face_sample"], self.faces) >= LEARNT_SHARE
            if calibration.get("split") not in self.split.split("+"):
                return False
            if "faces" in calibration:  # a digest of the faces in order (session-18 records)
                return self.faces is not None and calibration["faces"] == faces_digest(self.faces)
            # The oldest records name the split only: that split of the dataset the model was trained on
            # (ship_model.py fits on it), not every dataset's split of that name.
            source = _training_data(loaded)
            return not here or not source or here == source

        fitted = [spec for spec, loaded in zip(self.specs, self.models)
                  if isinstance(calibration := loaded.meta.get("calibration"), dict)
                  and fitted_here(loaded, calibration)]
        return (f"temperature of {', '.join(fitted)} fitted on these {self.split} faces: this ECE is optimistic"
                if fitted else "")

    @property
    def data_caveat(self) -> str:
        """Said when a model was trained on the faces scored here, as far as its file tells: by path (the
        data folder and the splits it learnt from, or a shipped model's training configuration; links
        resolved, a split's own folder included) or by pixels (the hashes of a sample of its training faces
        that the file keeps, :mod:`ferkit.data.overlap`), so a copied, moved or converted dataset is
        recognised too when the file has the sample."""
        here = os.path.realpath(self.data) if self.data else ""
        notes = []
        for spec, loaded in zip(self.specs, self.models):
            learnt = [part for part in self.split.split("+") if here and part in _trained_on(loaded, here)]
            if learnt:
                notes.append(f"{spec} learnt from these {'+'.join(learnt)} faces (all but any held-out validation "
                             "faces)")
            elif self.faces is not None and \
                    (share := learnt_share(loaded.meta.get("face_sample"), self.faces)) >= LEARNT_SHARE:
                notes.append(f"{spec} learnt from about {share:.0%} of these {self.split} faces (found by their "
                             "pixels among the training faces its file samples)")
        return f"{'; '.join(notes)}: these figures are optimistic; score faces it never saw" if notes else ""

    @property
    def unseen(self) -> dict | None:
        """Accuracy on the faces that do not repeat a face of the dataset's Training split, when some do
        (279 of FER2013's PublicTest faces are Training faces again): what a model earns on faces it can
        never have seen, whatever it trained on."""
        if self.repeats is None or not self.repeats.any():
            return None
        unseen = ~self.repeats
        accuracy = float((self.predictions[unseen] == self.labels[unseen]).mean()) if unseen.any() else None
        return {"faces": int(unseen.sum()), "repeats_of_training": int(self.repeats.sum()), "accuracy": accuracy}

    def to_dict(self) -> dict:
        caveat, ece_caveat, unseen = self.data_caveat, self.ece_caveat, self.unseen  # each hashes the faces: once
        return {**self.metrics, "model": self.specs, "tta": self.tta, "split": self.split, "skipped": self.skipped,
                **({"sample_of": self.sample_of} if self.sample_of else {}),
                "faces": self.cropped, **({"caveat": caveat} if caveat else {}),
                **({"ece_caveat": ece_caveat} if ece_caveat else {}), **({"unseen": unseen} if unseen else {})}


def _training_data(loaded: LoadedModel) -> str:
    """The real path of the dataset ``loaded`` was trained on, per its file ("" when it does not say)."""
    meta = loaded.meta
    config = meta.get("train_config") if isinstance(meta.get("train_config"), dict) else {}
    source = meta.get("data") or config.get("data")
    return os.path.realpath(source) if isinstance(source, str) and source else ""


def _trained_on(loaded: LoadedModel, data: str) -> list[str]:
    """The splits of the dataset at ``data`` (a real path) that ``loaded`` was trained on, per its file."""
    meta = loaded.meta
    source = _training_data(loaded)
    if not source:
        return []
    splits = meta.get("trained_on") if isinstance(meta.get("trained_on"), list) else ["training"]
    if data == source:
        return splits
    # A split's own folder (data/train) holds only that split's faces, read as one split.
    inside = os.path.dirname(data) == source and os.path.basename(data).lower() in ("train", "training")
    return [*splits, "all"] if inside and "training" in splits else []


def select_split(dataset: FER2013, name: str | None = None) -> tuple[str, Split]:
    """The split to evaluate: ``name`` if given; else PublicTest, or the only split there is
    (a single folder of class subfolders is one split, whatever it is called).  Splits joined by
    ``+`` are scored together: ``publictest+privatetest`` is the 7,178-face test set seed 004 reports."""
    if name is not None and "+" in name:
        chosen = [select_split(dataset, part.strip()) for part in name.split("+")]
        keys = [key for key, _ in chosen]
        if len(set(keys)) < len(keys):
            raise DataError(f"split {name!r} names one split twice")
        return "+".join(keys), Split(np.concatenate([part.images for _, part in chosen]),
                                     np.concatenate([part.labels for _, part in chosen]),
                                     [source for _, part in chosen for source in part.sources])
    if name is None:
        if DEFAULT_SPLIT in dataset.splits:
            name = DEFAULT_SPLIT
            if "all" in dataset.splits:  # files named for no split beside PublicTest_ ones
                warnings.warn(f"{len(dataset.splits['all'])} face(s) whose file names name no split are not "
                              f"scored with {DEFAULT_SPLIT}; choose them with --split all (split='all')",
                              stacklevel=2)
        elif len(dataset.splits) == 1:
            name = next(iter(dataset.splits))
        else:
            raise DataError(f"no {DEFAULT_SPLIT} split here; choose one with --split "
                            f"(splits found: {', '.join(dataset.splits)})")
    split = dataset.split(name)  # names the splits that exist when ``name`` is not one of them
    key = next(k for k, v in dataset.splits.items() if v is split)
    if len(split) == 0:
        raise DataError(f"split {key!r} has no faces to evaluate")
    return key, split


def class_columns(loaded: LoadedModel, classes: Sequence[str] = CLASSES) -> list[int]:
    """For each data class, the model's output column; a model trained for other classes is an error.

    Models whose classes are the same seven in another order are reordered rather than refused.
    """
    if sorted(loaded.classes) != sorted(classes):
        raise ModelFileError(
            f"{loaded.path or loaded.name}: model predicts {len(loaded.classes)} classes "
            f"({', '.join(loaded.classes)}) but the data has {len(classes)} ({', '.join(classes)})")
    return [loaded.classes.index(c) for c in classes]


def check_input_size(loaded: LoadedModel, face_size: int) -> None:
    """A model can take the data's faces or centre crops of them, never larger inputs."""
    where = loaded.path or loaded.name
    if loaded.input_size > face_size:
        raise ModelFileError(f"{where}: model takes {loaded.input_size}x{loaded.input_size} inputs "
                             f"but the faces are {face_size}x{face_size}")
    side = loaded.normalizer.mean.shape[-1]
    if side not in (1, face_size):
        raise ModelFileError(f"{where}: model normalises {side}x{side} faces but the faces are "
                             f"{face_size}x{face_size}")


Classifier = Callable[[np.ndarray, str], np.ndarray]  # (uint8 faces, tta) -> probabilities, like a backend's probs


def ensemble_probs(models: Sequence[LoadedModel], faces: np.ndarray, *, tta: str = "none",
                   batch_size: int = 256, classifiers: Sequence[Classifier] | None = None) -> np.ndarray:
    """Class probabilities (N x 7, data class order) averaged over models and test-time views.

    Each model's stored temperature (see ``ferkit calibrate``) scales its logits first.
    ``classifiers`` (one per model) run the models another way, e.g. an ONNX or int8 backend;
    by default each runs in PyTorch.
    """
    if not models:
        raise ValueError("no model to evaluate")
    tta = resolve_tta(tta)  # auto: ten-crop, as for any still face
    total = np.zeros((len(faces), len(CLASSES)), dtype=np.float64)
    for i, loaded in enumerate(models):
        columns = class_columns(loaded)
        check_input_size(loaded, faces.shape[-1])
        if classifiers is not None:
            probs = classifiers[i](faces, tta)
        else:
            probs = predict_probs(loaded.model, loaded.normalizer, faces, tta=tta, temperature=loaded.temperature,
                                  batch_size=batch_size)
        total += probs[:, columns]
    return (total / len(models)).astype(np.float32)


def evaluate_split(models: Sequence[LoadedModel], split: Split, *, split_name: str = "", tta: str = "none",
                   specs: Sequence[str] = (), classifiers: Sequence[Classifier] | None = None) -> Evaluation:
    """Score loaded models (their probabilities averaged) on one split with the ``tta`` views:
    accuracy, macro-F1, per-class figures, confusion matrix and ECE, with every face's probabilities."""
    tta = resolve_tta(tta)  # the views actually used are what the Evaluation records
    if len(split) == 0:
        raise DataError(f"split {split_name!r} has no faces to evaluate")
    probs = ensemble_probs(models, split.images, tta=tta, classifiers=classifiers)
    # Ten-crop is flip for a model that takes the whole face: the record names the views each member got.
    tta = max((views_for(tta, m.input_size, split.images.shape[-1]) for m in models), key=TTA_MODES.index,
              default=tta)
    if not np.isfinite(probs).all():  # argmax would count a NaN row as the first class
        bad = int((~np.isfinite(probs).all(axis=1)).sum())
        raise ModelFileError(f"{', '.join(str(s) for s in specs) or 'the model'}: {bad} face(s) got non-finite "
                             "probabilities (NaN or inf weights?)")
    metrics = classification_metrics(split.labels, probs.argmax(axis=1), CLASSES)
    metrics["ece"] = expected_calibration_error(probs, split.labels)
    return Evaluation(metrics, probs, split.labels, split_name, tta, list(models),
                      list(specs) or [m.path or m.name for m in models], split.images,
                      sources=list(getattr(split, "sources", []) or []))


def evaluate(data: str | os.PathLike, *, split: str | None = None,
             models: str | os.PathLike | Sequence[str | os.PathLike] = ("default",),
             tta: str = "auto", backend: Callable[[LoadedModel], Classifier] | None = None,
             skip_bad: bool = False, cropper: FaceCropper | None = None, limit: int | None = None) -> Evaluation:
    """Load ``data`` (any form the loader accepts) and ``models`` (shipped names, model files or
    run directories) and evaluate them as one ensemble on ``split``.  ``tta="auto"`` scores the
    faces as ``EmotionRecognizer`` classifies a photo's (ten-crop); ``Evaluation.tta`` names the
    views used.  With ``skip_bad``, unreadable items are left out and listed in
    ``Evaluation.skipped`` instead of stopping the evaluation.  A ``cropper`` finds the face in
    each picture that is not a 48x48 crop (see :func:`ferkit.data.load_fer2013`).  ``backend``
    scores each model another way than its torch module: a function from the loaded model to its
    classifier, e.g. ``lambda m: create_backend(m, "int8").probs`` (``ferkit.vision.backends``, the
    ONNX Runtime graphs ``evaluate --backend`` uses; evaluation does not import the vision layer).
    ``limit`` scores that many faces drawn at random (seed 0) from the split, for a quick look:
    ``Evaluation.sample_of`` then says how many faces the split has."""
    tta = resolve_tta(tta)
    if backend is not None and not callable(backend):
        raise TypeError(f"backend {backend!r}: a function from a loaded model to its classifier, e.g. "
                        "lambda m: create_backend(m, 'int8').probs (ferkit.vision.backends), as evaluate --backend does")
    models = ensemble_members(models)  # one name or path, "a+b", or a list of either
    loaded = [load_model(spec) for spec in models]  # bad model paths fail before the data is read
    dataset = load_fer2013(data, skip_bad=skip_bad, cropper=cropper)
    name, chosen = select_split(dataset, split)
    total = len(chosen)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
            raise ValueError(f"limit={limit!r}: a whole number of faces, at least 1")
        if limit < total:
            keep = np.sort(np.random.default_rng(0).choice(total, size=int(limit), replace=False))
            sources = list(getattr(chosen, "sources", []) or [])
            chosen = Split(chosen.images[keep], chosen.labels[keep], [sources[i] for i in keep] if sources else [])
    classifiers = [backend(m) for m in loaded] if backend is not None else None
    result = evaluate_split(loaded, chosen, split_name=name, tta=tta, specs=[str(s) for s in models],
                            classifiers=classifiers)
    result.skipped = list(dataset.problems)
    result.sample_of = total if len(chosen) < total else None
    for part in name.split("+"):  # pictures per way their face was found, over the splits scored
        for way, count in dataset.cropped.get(part, {}).items():
            result.cropped[way] = result.cropped.get(way, 0) + count
    result.data = os.fspath(data)
    if "training" not in name.split("+") and "training" in dataset.splits:
        result.repeats = repeats_of(chosen.images, dataset.splits["training"].images)
    return result


def describe_model(loaded: LoadedModel) -> dict:
    """Size and depth as seed 000 table 1 gives them: depth counts convolution layers; the
    weight layers add the fully connected ones."""
    modules = list(loaded.model.modules())
    convs = sum(isinstance(m, nn.modules.conv._ConvNd) for m in modules)
    linears = sum(isinstance(m, nn.Linear) for m in modules)
    return {"name": loaded.name, "path": loaded.path, "parameters": loaded.parameters, "depth": convs,
            "weight_layers": convs + linears, "input_size": loaded.input_size, "temperature": loaded.temperature,
            "epoch": loaded.meta.get("epoch")}


def run_directory(spec: str | os.PathLike, loaded: LoadedModel) -> Path | None:
    """The training run a model came from (the folder given, or the one holding the file)."""
    for candidate in (Path(spec), Path(loaded.path).parent if loaded.path else None):
        if candidate is not None and candidate.is_dir() and (candidate / "history.json").is_file():
            return candidate
    return None
