"""Explanations of face crops, for research code and the ``explain`` verb alike.

:func:`explain_faces` takes what a user has (a model name, run folder or :class:`LoadedModel`;
48x48 uint8 face crops; a class name) and does what ``ferkit explain`` does: it states the
prediction ``predict`` gives (test-time views, the model's temperature) and explains that class,
or the one asked for, with a map over the whole 48x48 face.  The network sees the centre view
(44 px for the shipped models), so the map is zero on the border it did not see.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.classes import class_index
from ..data.images import FACE_SIZE, as_face_crops
from ..models.hub import load_model
from ..models.inference import predict_probs
from ..models.io import LoadedModel
from .gradcam import check_method, explain, model_input


@dataclass
class FaceExplanation:
    """What :func:`explain_faces` returns, one entry per face."""

    faces: np.ndarray  # N x 48 x 48 uint8: the faces after the model's own preprocessing (equalisation, ...)
    maps: np.ndarray  # N x 48 x 48: the method's map, placed where the model's centre view lies on the face
    view: tuple[int, int, int, int]  # (x, y, w, h) of that centre view inside the 48x48 face
    predicted: np.ndarray  # N class indices ``predict`` gives (with ``tta``)
    targets: np.ndarray  # N class indices explained (``predicted`` unless a class was asked for)
    probs: np.ndarray  # N x C probabilities as ``predict`` gives them (test-time views, temperature)
    classes: list[str]
    method: str
    layer: str = ""  # the layer a map comes from ("" for guided backpropagation from the class score)
    filters: np.ndarray | None = None  # guided backpropagation from a layer: the filter explained, per face


def class_of(classes: list[str] | tuple[str, ...], name: str) -> int:
    """Index of ``name`` (a class name or a synonym such as "happiness") among a model's classes."""
    index = class_index(name)
    matches = [i for i, c in enumerate(classes) if index is not None and class_index(c) == index]
    if matches:
        return matches[0]
    if name in classes:  # a class outside FER2013's seven, in a model trained on other folders
        return list(classes).index(name)
    raise ValueError(f"class {name!r}: the model's classes are {', '.join(classes)}")


def explain_faces(model: LoadedModel | str | Path | None, faces: np.ndarray, method: str = "gradcam", *,
                  target: int | str | None = None, layer: str | None = None, tta: str = "auto") -> FaceExplanation:
    """Explain the model's answer for each face.

    ``model``: a shipped name (``"default"``, ``None`` for the default), a run folder, a
    ``.safetensors`` file or a :class:`LoadedModel`.  ``faces``: one 48x48 crop or N of them,
    gray or BGR (other sizes are resized, as ``predict --no-detect`` reads them).
    ``method``: ``gradcam``, ``guided-backprop`` or ``guided-gradcam``.  ``target``: a class
    index or name to explain instead of the predicted class.  ``tta``: the views of the stated
    prediction (``auto`` = ten-crop, as ``predict`` for a still face); the map always explains
    the centre view, the one view a single gradient map can show.
    """
    check_method(method)  # said before loading anything, even for no faces
    if method == "guided-backprop" and layer is not None and target is not None:
        raise ValueError("guided-backprop from a --layer explains that layer's strongest activation in the face, "
                         "not a class: drop --class")
    if isinstance(model, (str, Path)) and "+" in str(model) and not Path(model).exists():
        raise ValueError(f"{model}: explain_faces works on one model, not an ensemble")
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    crops = as_face_crops(faces)
    if isinstance(target, str):
        target = class_of(loaded.classes, target)
    size = loaded.input_size
    offset = (FACE_SIZE - size) // 2
    if len(crops) == 0:
        return FaceExplanation(crops, np.zeros((0, FACE_SIZE, FACE_SIZE), np.float32), (offset, offset, size, size),
                               np.zeros(0, np.int64), np.zeros(0, np.int64),
                               np.zeros((0, len(loaded.classes)), np.float32), list(loaded.classes), method)
    probs = predict_probs(loaded.model, loaded.normalizer, crops, tta=tta, temperature=loaded.temperature)
    predicted = probs.argmax(1)
    result = explain(loaded.model, model_input(loaded.normalizer, crops, size), method,
                     predicted if target is None else target, layer)
    maps = np.zeros((len(crops), FACE_SIZE, FACE_SIZE), dtype=result.maps.dtype)
    maps[:, offset:offset + size, offset:offset + size] = result.maps
    return FaceExplanation(faces=np.ascontiguousarray(loaded.normalizer.prepare(crops)), maps=maps,
                           view=(offset, offset, size, size), predicted=predicted, targets=result.targets,
                           probs=probs, classes=list(loaded.classes), method=method, layer=result.layer,
                           filters=result.filters)
