"""Evaluation as the FER papers report it: metrics, ensembles with test-time augmentation,
temperature calibration and the report figures (see ``ferkit evaluate`` / ``ferkit calibrate``)."""
from .calibration import Calibration, calibrate_model, fit_temperature
from .evaluate import Evaluation, ensemble_probs, evaluate, evaluate_split, select_split
from .metrics import classification_metrics, expected_calibration_error, normalized_confusion

__all__ = ["Calibration", "calibrate_model", "fit_temperature", "Evaluation", "ensemble_probs", "evaluate",
           "evaluate_split", "select_split", "classification_metrics", "expected_calibration_error",
           "normalized_confusion"]
