"""``EmotionRecognizer``: find faces in photos, videos and cameras and classify their emotion.

This is the papers' live application (seed 000 section 6; seed 004): detect each face
(OpenCV's Haar cascade there; RetinaFace by default here), crop it to 48x48 grayscale as
FER2013 frames its faces, classify it, and report the probability of all seven emotions.
In video, faces keep a track id across frames and their probabilities are smoothed over time.

    >>> from ferkit import EmotionRecognizer
    >>> rec = EmotionRecognizer()                     # the shipped default model
    >>> for face in rec.predict("group.jpg"):
    ...     print(face.box, face.emotion, round(face.confidence, 2))
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ..data.classes import CLASSES
from ..data.images import (FACE_SIZE, ImageDecodeError, as_face_crops, normalise_array, pil_to_array,
                           read_image_scaled, starts_like_a_picture, to_gray)
from ..detectors import DETECTOR_CHOICES
from ..tta import resolve_tta
from .crop import FRAMINGS, Framing, clip_box, crop_faces, faces_in_order, min_face_at
from .detect import Detection, DetectorError, check_detection_sizes, create_detector
from .rows import Rows, face_row
from .sources import SourceError, SourceItem, VideoReader, check_every, expand_sources, is_camera
from .track import IoUTracker

if TYPE_CHECKING:  # for the annotation only: backends imports torch, which waits until a model is built
    from .backends import Backend


@dataclass
class Face:
    """One face found in a picture or frame: its box, the dominant emotion and all seven scores."""

    box: tuple[int, int, int, int]  # x, y, w, h in image pixels
    emotion: str  # dominant class
    confidence: float  # its probability
    scores: dict[str, float]  # all seven classes in CLASSES order
    track: int | None = None

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"box": [int(v) for v in self.box], "emotion": self.emotion,
                               "confidence": float(self.confidence),
                               "scores": {k: float(v) for k, v in self.scores.items()}}
        if self.track is not None:
            out["track"] = int(self.track)
        return out


@dataclass
class FrameResult:
    """The faces of one photo or video frame, with the frame's place in its video."""

    index: int  # frame number in the video (0 for a photo)
    time_s: float  # seconds from the start of the video
    faces: list[Face]
    image: np.ndarray | None = field(default=None, repr=False)  # the frame, for drawing
    fps: float | None = None  # the video's frame rate (None for a photo or an unknown rate)
    frames: int | None = None  # the video's frame count, when the container says
    # Pixels of ``image`` per pixel of the file (boxes are in the file's pixels): below 1 for a JPEG
    # too large to decode whole, which is read at 1/2, 1/4 or 1/8 of its size.
    image_scale: float = 1.0


class EmotionRecognizer:
    """Detect faces and classify their expression.

    Args:
        model: ``"default"``, ``"fast"``, a run directory or a ``.safetensors`` model file; several
            (a list, or joined by ``+``: ``"default+fast"``) form an ensemble whose probabilities
            are averaged, as ``ferkit evaluate --model A B`` scores it.
        detector: ``"auto"`` (RetinaFace when installed, else Haar), ``"retinaface"``, ``"haar"``,
            or ``"none"`` to treat each whole image as an already-cropped face.
        tta: test-time views: ``"auto"`` (ten-crop for photos and face crops, none for video and
            camera frames, where speed counts), ``"none"``, ``"flip"`` or ``"tencrop"``.
        smooth: weight of the past in each video track's exponential smoothing (0 = off).
        min_face: smallest face side, in pixels, that the detector reports.
        backend: ``"auto"`` (ONNX Runtime when available, else PyTorch), ``"onnx"``, ``"torch"``, or
            ``"int8"`` (the model's quantised graph: faster, 0.2-2% of top emotions differ).
        align: rotate crops so the eyes are level, when the detector gives landmarks.
        detect_size: search for faces in a copy downscaled to this long side (None: the
            detector's default, 1280); smaller is faster but misses small faces.
        detect_every: in video, run the detector on one processed frame in N and reuse its boxes
            (classifying the new crops) in between; 1 = detect on every frame.
    """

    def __init__(self, model: str | Path | Sequence[str | Path] = "default", detector: str = "auto", tta: str = "auto",
                 smooth: float = 0.5, min_face: int = 20, *, backend: str = "auto", align: bool = True,
                 detect_size: int | None = None, detect_every: int = 1):
        from ..models.hub import SHIPPED_ENSEMBLES, ensemble_members, load_model, model_label
        from ..models.io import ModelFileError

        model = "default" if model is None else model
        if not isinstance(model, (str, os.PathLike, list, tuple)):
            raise TypeError(f"model {model!r}: a shipped name, model file or run folder, or a list of them")
        for name, value in (("smooth", smooth), ("min_face", min_face), ("detect_every", detect_every)):
            # (np.isfinite raised TypeError on a whole number past int64; whole numbers are finite anyway)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or \
                    (isinstance(value, (float, np.floating)) and not np.isfinite(value)):
                raise ValueError(f"{name}={value!r}: must be a finite number")
        for name, value in (("min_face", min_face), ("detect_every", detect_every)):
            if isinstance(value, (float, np.floating)) and value != int(value):  # 2.7 frames or 20.9 pixels were cut down without a word
                raise ValueError(f"{name}={value!r}: must be a whole number")
        if not isinstance(align, (bool, np.bool_)):
            raise ValueError(f"align={align!r}: must be True or False")
        if detect_size is not None and (isinstance(detect_size, bool) or not isinstance(detect_size, (int, np.integer))):
            raise ValueError(f"detect_size={detect_size!r}: must be a whole number of pixels")
        # Names are matched whatever their case, as detector names always were ("HAAR", "Int8", "FLIP").
        backend, tta = (value.lower() if isinstance(value, str) else value for value in (backend, tta))
        if not isinstance(detector, str) or detector.lower() not in DETECTOR_CHOICES:
            raise DetectorError(f"unknown detector {detector!r}; choose one of: {', '.join(DETECTOR_CHOICES)}")

        self._still_tta, self._video_tta = resolve_tta(tta), resolve_tta(tta, video=True)  # checks the name
        if not 0.0 <= float(smooth) < 1.0:
            raise ValueError(f"smooth={smooth}: must be at least 0 and below 1")
        check_detection_sizes(min_face, detect_size)
        self.members = [load_model(spec) for spec in ensemble_members(model)]
        self.model_label = model_label(model)  # "default", "best", "best.safetensors": what the user chose
        self._shipped_ensemble = model if isinstance(model, str) and model in SHIPPED_ENSEMBLES else None
        for member in self.members:  # rows and the panel have one column per FER2013 class
            if sorted(member.classes) != sorted(CLASSES):
                raise ModelFileError(f"{member.path or member.name}: classes {', '.join(member.classes)} are not "
                                     f"the seven FER2013 emotions ({', '.join(CLASSES)})")
        self.loaded = self.members[0]  # its class order is the recognizer's
        self.tta, self.smooth, self.min_face, self.align = tta, float(smooth), int(min_face), align
        self.detector_name = detector.lower()
        if int(detect_every) < 1:
            raise ValueError(f"detect_every={detect_every}: must be at least 1")
        self.detect_every = int(detect_every)
        self.detector = None if self.detector_name == "none" else create_detector(
            detector, min_face=self.min_face, max_side=detect_size)
        name = "none" if self.detector is None else self.detector.name
        self.framing: Framing = FRAMINGS.get(name, Framing())
        from .backends import create_backend

        self.backends = [create_backend(member, backend) for member in self.members]
        # Each member's columns in the first member's class order (models may order the seven differently).
        self._columns = [[member.classes.index(c) for c in self.loaded.classes] for member in self.members]

    @property
    def backend(self) -> Backend:
        """The first member's engine (the only one for a single model)."""
        return self.backends[0]

    # -- information -------------------------------------------------------------------------
    @property
    def info(self) -> dict:
        from ..models.hub import ENSEMBLE_SEPARATOR, shipped_ensemble_figures

        loaded = self.loaded
        if len(self.members) > 1:
            members = [{"name": m.name, "path": m.path, "parameters": m.parameters} for m in self.members]
            name = ENSEMBLE_SEPARATOR.join(m.name for m in self.members)
            parameters, meta, path = sum(m.parameters for m in self.members), {"ensemble": members}, None
            if self._shipped_ensemble:  # its PublicTest figures, as `ferkit models --shipped` gives them
                meta.update(shipped_ensemble_figures(self._shipped_ensemble))
        else:
            name, parameters, meta, path = loaded.name, loaded.parameters, dict(loaded.meta), loaded.path
        # name: the architecture(s); model: the model as the user named it.
        return {"name": name, "model": self.model_label, "classes": list(loaded.classes), "parameters": parameters,
                "input_size": loaded.input_size, "meta": meta,
                "detector": "none" if self.detector is None else self.detector.name,
                "backend": self.backend.name, "tta": self.tta, "path": path}

    @property
    def classes(self) -> list[str]:
        return list(self.loaded.classes)

    # -- single images -----------------------------------------------------------------------
    def classify(self, crops: np.ndarray | list) -> np.ndarray:
        """Probabilities N x 7 for N face crops (uint8 N x 48 x 48; other sizes are resized)."""
        return self._classify(as_face_crops(crops), self._still_tta)

    def _classify(self, faces: np.ndarray, tta: str) -> np.ndarray:
        if len(faces) == 0:
            return np.zeros((0, len(self.loaded.classes)), dtype=np.float32)
        if len(self.backends) == 1:
            probs = self.backend.probs(faces, tta)
        else:
            total = sum(b.probs(faces, tta)[:, cols] for b, cols in zip(self.backends, self._columns))
            probs = (total / len(self.backends)).astype(np.float32)
        if not np.isfinite(probs).all():  # argmax would name the first class; JSON cannot carry NaN
            from ..models.io import ModelFileError

            raise ModelFileError(f"{self.loaded.path or self.loaded.name}: the model gives non-finite "
                                 "probabilities (NaN or inf weights?)")
        return probs

    def detect(self, image: Any) -> list[Detection]:
        """Face boxes in ``image`` (left to right); the whole image when the detector is ``none``
        or the image is a 48x48 face crop.  These are the detector's own boxes, which may reach past
        the image's edge (a face cut by it); ``predict`` reports them clipped to the image."""
        array, scale = _load_scaled(image)
        return [replace(d, box=in_file_pixels(d.box, scale),
                        landmarks=None if d.landmarks is None else d.landmarks / scale)
                for d in self._detect(array, scale)]

    def _detect(self, array: np.ndarray, scale: float = 1.0) -> list[Detection]:
        """Faces in ``array``, an image decoded at ``scale`` of its file's size: ``min_face`` is in the
        file's pixels, as the boxes reported are."""
        height, width = array.shape[:2]
        # A 48x48 picture is a FER2013-style face crop already (detectors miss most faces that
        # small, and re-cropping one would frame it twice), as LargestFaceCropper takes it too.
        if self.detector is None or (height, width) == (FACE_SIZE, FACE_SIZE):
            return [Detection((0, 0, width, height))]
        min_face = min_face_at(self.min_face, scale)
        if min(height, width) < min_face:  # no face of the smallest size fits in the picture
            return []
        # The detector's own min_face unless the image was decoded smaller (a detector of one's own may
        # take the image alone).
        found = self.detector.detect(array) if scale == 1.0 else self.detector.detect(array, min_face=min_face)
        return faces_in_order(found, width, height, min_face)

    def predict(self, image: Any) -> list[Face]:
        """Faces in one image: a path, a numpy array (BGR, or gray), a PIL image or encoded bytes.
        Boxes are in the image's pixels (a file's, even when it was too large to decode whole)."""
        array, scale = _load_scaled(image)
        return faces_in_file_pixels(self._faces(array, self._detect(array, scale), self._still_tta), scale)

    def _faces(self, array: np.ndarray, detections: list[Detection], tta: str) -> list[Face]:
        if not detections:
            return []
        if self.detector is None or array.shape[:2] == (FACE_SIZE, FACE_SIZE):
            crops = as_face_crops([to_gray(array)])
        else:
            crops = crop_faces(array, detections, self.framing, align=self.align)
        probs = self._classify(as_face_crops(crops), tta)
        # Crops use the detector's box (it may reach past the edge); reported boxes lie inside the picture.
        height, width = array.shape[:2]
        return [self._face(clip_box(d.box, width, height), p) for d, p in zip(detections, probs)]

    def _face(self, box: tuple[int, int, int, int], probs: np.ndarray, track: int | None = None) -> Face:
        classes = self.loaded.classes
        best = int(np.argmax(probs))
        return Face(tuple(int(v) for v in box), classes[best], float(probs[best]),
                    {name: float(p) for name, p in zip(classes, probs)}, track)

    # -- video -------------------------------------------------------------------------------
    def predict_video(self, source: str | os.PathLike | int, every: int = 1) -> Iterator[FrameResult]:
        """Stream ``FrameResult`` for every ``every``-th frame of a video file or camera index.

        Faces keep a track id across frames and their probabilities are smoothed per track.
        Raises :class:`~ferkit.vision.sources.SourceError` for a video that cannot be read.
        """
        # Checked now, not when the first frame is asked for (a generator would defer every error).
        if isinstance(source, (bool, np.bool_)) or not isinstance(source, (str, os.PathLike, int, np.integer)):
            raise TypeError(f"video {source!r}: give a file path or a camera index")
        check_every(every)
        target: str | int = int(source) if isinstance(source, (int, np.integer)) else os.fspath(source)
        if isinstance(target, str) and is_camera(target):
            target = int(target)
        return self._video_frames(target, every)

    def _video_frames(self, target: str | int, every: int) -> Iterator[FrameResult]:
        try:  # rows have the source in a column of its own; an exception names it
            reader = VideoReader(target, every=every)
            yield from self.track_frames(reader)
        except SourceError as exc:
            raise SourceError(f"{target}: {exc}") from None

    def track_frames(self, reader: VideoReader) -> Iterator[FrameResult]:
        """Detect, classify, track and smooth the frames of an open :class:`VideoReader`."""
        tracker = IoUTracker(smooth=self.smooth)
        detections: list[Detection] = []
        for count, frame in enumerate(reader):
            if count % self.detect_every == 0:
                detections = self._detect(frame.image)
            faces = self._faces(frame.image, detections, self._video_tta)
            if faces:
                probs = np.array([[f.scores[c] for c in self.loaded.classes] for f in faces], dtype=np.float32)
                ids, smoothed = tracker.update([f.box for f in faces], probs)
                faces = [self._face(f.box, p, t) for f, p, t in zip(faces, smoothed, ids)]
            else:
                tracker.update([], np.zeros((0, len(self.loaded.classes)), dtype=np.float32))
            yield FrameResult(frame.index, frame.time_s, faces, frame.image, reader.fps or None, reader.frame_count)

    # -- many sources ------------------------------------------------------------------------
    def iter_results(self, sources: Any, every: int = 1) -> Iterator[tuple[SourceItem, FrameResult | None, str | None]]:
        """``(item, frame result, error)`` for every frame of every source; errors do not stop the rest."""
        check_every(every)
        for item in expand_sources(sources):
            yield from self.iter_item(item, every)

    def iter_item(self, item: SourceItem, every: int) -> Iterator[tuple[SourceItem, FrameResult | None, str | None]]:
        if item.kind == "missing":
            yield item, None, "no such file or directory"
            return
        if item.kind == "empty":
            yield item, None, "folder holds no image or video"
            return
        if item.kind == "error":
            yield item, None, item.problem
            return
        if item.kind == "unreadable":
            yield item, None, (f"{Path(item.target).suffix.lower()} pictures cannot be read here; "
                               "convert it to JPEG or PNG")
            return
        if item.kind in ("image", "unknown"):
            try:
                array, scale = read_image_scaled(item.target)
            except ImageDecodeError as exc:
                # A file named neither like an image nor like a video may still be a video; so may one named
                # like a picture that does not start like one (an MP4 saved as .gif or .jpg).
                if _maybe_a_video(item) and _looks_like_video(item.target):
                    yield from self.iter_item(SourceItem("video", item.name, item.target), every)
                else:
                    yield item, None, str(exc)
                return
            except OSError as exc:
                yield item, None, exc.strerror or str(exc)
                return
            try:
                faces = self._faces(array, self._detect(array, scale), self._still_tta)
            except Exception as exc:  # noqa: BLE001 - one picture that breaks must not stop the batch
                yield item, None, f"cannot process the image ({type(exc).__name__}: {exc})"
                return
            yield item, FrameResult(0, 0.0, faces_in_file_pixels(faces, scale), array, image_scale=scale), None
            return
        frames = 0
        try:
            reader = VideoReader(item.target, every=every)
            for result in self.track_frames(reader):
                frames += 1
                yield item, result, None
        except SourceError as exc:
            yield item, None, str(exc)
        except Exception as exc:  # noqa: BLE001 - the frames before it are kept; the next source still runs
            where = f"after {frames} frame(s)" if frames else "at the first frame"
            yield item, None, f"video stopped {where} ({type(exc).__name__}: {exc})"

    def predict_many(self, sources: Any, every: int = 1) -> Rows:
        """Tidy rows (one per face per frame; one per face-less frame or failed source)."""
        rows = Rows()
        for item, result, error in self.iter_results(sources, every):
            rows.extend(result_rows(item.name, result, error))
        return rows


def result_rows(source: str, result: FrameResult | None, error: str | None = None) -> list[dict]:
    """The rows for one frame (or one failed source)."""
    if result is None:
        return [face_row(source, None, None, None, None, error or "unreadable")]
    if not result.faces:
        return [face_row(source, result.index, result.time_s, None)]
    return [face_row(source, result.index, result.time_s, i, face) for i, face in enumerate(result.faces)]


def load_image(image: Any) -> np.ndarray:
    """A path, encoded bytes, PIL image or numpy array -> uint8 gray H x W or BGR H x W x 3
    (a JPEG file too large to decode whole comes back at 1/2, 1/4 or 1/8 of its size)."""
    return _load_scaled(image)[0]


@dataclass(frozen=True)
class DecodedImage:
    """An image a caller decoded with :func:`ferkit.data.images.read_image_scaled`, and the scale it
    decoded at: ``predict`` then takes ``min_face`` and gives boxes in the file's pixels (the server
    decodes uploads itself, to tell a damaged image from one of another format)."""
    array: np.ndarray
    scale: float


def _load_scaled(image: Any) -> tuple[np.ndarray, float]:
    """:func:`load_image` and the scale it decoded at (array pixels per pixel of the file)."""
    if isinstance(image, DecodedImage):
        return normalise_array(image.array), float(image.scale)
    if isinstance(image, (str, os.PathLike, bytes, bytearray, memoryview)):
        try:
            return read_image_scaled(image)
        except ImageDecodeError as exc:
            name = "image bytes" if isinstance(image, (bytes, bytearray, memoryview)) else os.fspath(image)
            raise ImageDecodeError(f"{name}: {exc}") from None
    if hasattr(image, "mode") and hasattr(image, "save"):  # a PIL image, without importing PIL here
        return pil_to_array(image), 1.0
    if isinstance(image, np.ndarray):
        return normalise_array(image), 1.0
    if image is None:
        raise TypeError("no image (None): give a path, bytes, PIL image or array")
    raise TypeError(f"cannot read an image from {type(image).__name__}: give a path, bytes, PIL image or array")


def in_file_pixels(box: tuple[int, int, int, int], scale: float) -> tuple[int, int, int, int]:
    """A box found in an image decoded at ``scale`` (see :func:`read_image_scaled`), in the file's pixels."""
    if scale == 1.0:
        return box
    return tuple(int(round(v / scale)) for v in box)


def faces_in_file_pixels(faces: list[Face], scale: float) -> list[Face]:
    return faces if scale == 1.0 else [replace(f, box=in_file_pixels(f.box, scale)) for f in faces]


def _maybe_a_video(item: SourceItem) -> bool:
    if item.kind == "unknown":
        return True
    try:
        with open(item.target, "rb") as handle:
            return not starts_like_a_picture(handle.read(16))
    except OSError:
        return False


def _looks_like_video(path: str | int) -> bool:
    capture = cv2.VideoCapture(path)
    try:
        return bool(capture.isOpened() and capture.grab())
    finally:
        capture.release()


__all__ = ["EmotionRecognizer", "Face", "FrameResult", "Rows", "CLASSES", "load_image", "result_rows"]
