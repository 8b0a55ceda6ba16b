"""Classification metrics as the FER papers report them: accuracy, per-class precision,
recall and F1, macro F1 and the confusion matrix (rows true classes, columns predictions;
seed 000 fig. 4, seed 001 fig. 5), plus the expected calibration error (Guo et al. 2017,
"On Calibration of Modern Neural Networks").

The classification figures come from scikit-learn; only ECE, which scikit-learn does not
offer for multi-class predictions, is computed here.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


def classification_metrics(labels: np.ndarray, predictions: np.ndarray, classes: Sequence[str]) -> dict:
    """The evaluation JSON contract: n, accuracy, macro_f1, classes, per_class, confusion_matrix.

    Every class appears in ``per_class`` and in the matrix even when absent from the data, so
    reports from different splits line up (the F1 of a class with no faces and no predictions is
    0 there).  Macro-F1 averages over the classes that occur among the labels or the predictions,
    as scikit-learn does by default, so a split without disgust faces is not capped at 6/7 (unless
    the model predicts disgust there: each such prediction is wrong, and disgust counts with F1 0).
    """
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    if labels.shape != predictions.shape or labels.ndim != 1:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} must be equal-length vectors")
    if len(labels) == 0:
        raise ValueError("no faces to evaluate")
    index = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=index, average=None, zero_division=0)
    return {
        "n": int(len(labels)),
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, labels=np.union1d(labels, predictions), average="macro",
                                   zero_division=0)),
        "classes": list(classes),
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "n": int(support[i])}
            for i, name in enumerate(classes)
        },
        "confusion_matrix": confusion_matrix(labels, predictions, labels=index).tolist(),
    }


def normalized_confusion(matrix: Sequence[Sequence[int]]) -> np.ndarray:
    """Each row divided by its total (the recall view of seed 001 fig. 5); empty rows stay 0."""
    m = np.asarray(matrix, dtype=np.float64)
    totals = m.sum(axis=1, keepdims=True)
    return np.divide(m, totals, out=np.zeros_like(m), where=totals > 0)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width confidence bins
    weighted by how many predictions fall in each (Guo et al. 2017, eq. 3; 15 bins as there)."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if len(labels) == 0:
        raise ValueError("no predictions to measure calibration on")
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    # Bins are (lo, hi]; a confidence of exactly 0 cannot occur with a softmax.
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    # Per bin, |sum(correct) - sum(confidence)| = n_bin * |accuracy_bin - confidence_bin|.
    hits = np.bincount(which, weights=correct, minlength=bins)
    sure = np.bincount(which, weights=confidence, minlength=bins)
    return float(np.abs(hits - sure).sum() / len(labels))
