"""Faces in the wild: detect faces, crop them as FER2013 frames its faces, classify, track.

``EmotionRecognizer`` (in :mod:`ferkit.vision.recognizer`) is the public entry point; the
other modules are its parts (detectors, crops, tracking, sources, rows, drawing, ONNX).
"""
