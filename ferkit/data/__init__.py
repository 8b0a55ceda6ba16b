"""Data layer: FER2013 loading, preprocessing, augmentation and class balancing."""
from .classes import CLASSES, SPLITS, class_index
from .errors import DataError
from .fer2013 import FER2013, Split, load_fer2013

__all__ = ["CLASSES", "SPLITS", "class_index", "DataError", "FER2013", "Split", "load_fer2013"]
