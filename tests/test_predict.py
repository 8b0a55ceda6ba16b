"""``ferkit predict`` / ``export`` / ``demo``: every SOURCE kind, the row contract, annotation
files, exit statuses and one-line errors (run in-process through ``ferkit.app.cli.main``)."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_vision import compose, write_video

from ferkit.app.cli import main
from ferkit.data.classes import CLASSES
from ferkit.vision.recognizer import EmotionRecognizer
from ferkit.vision.rows import COLUMNS
from ferkit.vision.sources import SourceError


def run(capsys, *argv) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def photo(tmp_path):
    canvas, _ = compose(2)
    path = tmp_path / "two.jpg"
    cv2.imwrite(str(path), canvas)
    return path


def test_json_is_the_only_thing_on_stdout(capsys, tiny_model_file, photo):
    status, out, _ = run(capsys, "predict", photo, "--model", tiny_model_file, "--detector", "haar", "--json")
    assert status == 0
    rows = json.loads(out)
    assert len(rows) == 2 and all(list(r) == list(COLUMNS) for r in rows)
    assert [r["face"] for r in rows] == [0, 1] and all(r["error"] is None for r in rows)
    assert all(abs(sum(r[c] for c in COLUMNS[11:18]) - 1) < 1e-3 for r in rows)


def test_csv_has_the_same_rows_as_json(capsys, tiny_model_file, tmp_path, photo):
    write_video(tmp_path / "clip.avi", frames=4)
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((100, 100), 80, np.uint8))
    (tmp_path / "bad.png").write_bytes(b"")
    common = ["predict", tmp_path, "--model", tiny_model_file, "--detector", "haar"]
    status, out, _ = run(capsys, *common, "--json")
    assert status == 1  # bad.png failed, the rest went on
    from_json = json.loads(out)
    status, out, err = run(capsys, *common, "--csv", tmp_path / "out" / "rows.csv")
    assert status == 1 and out == ""  # with --csv, stdout stays empty
    assert "1 of 4 source(s) failed" in err
    with open(tmp_path / "out" / "rows.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == list(COLUMNS)
        from_csv = list(reader)
    assert len(from_csv) == len(from_json) == 2 + 4 * 2 + 1 + 1
    for a, b in zip(from_json, from_csv):
        assert {k: "" if v is None else str(v) for k, v in a.items()} == b
    kinds = {r["source"].rsplit("/", 1)[-1]: r for r in from_json}
    assert kinds["bad.png"]["error"] == "empty file"
    assert kinds["blank.png"]["face"] is None and kinds["blank.png"]["error"] is None
    assert {r["track"] for r in from_json if r["source"].endswith("clip.avi")} == {0, 1}


def test_text_output_and_glob(capsys, tiny_model_file, photo):
    status, out, _ = run(capsys, "predict", str(photo.parent / "*.jpg"), "--model", tiny_model_file,
                         "--detector", "haar")
    assert status == 0
    assert out.count("two.jpg: face") == 2


def test_annotate_photo(capsys, tiny_model_file, photo, tmp_path):
    out_file = tmp_path / "annotated.png"
    status, _, _ = run(capsys, "predict", photo, "--model", tiny_model_file, "--detector", "haar",
                       "--annotate", out_file)
    assert status == 0
    picture = cv2.imread(str(out_file))
    source = cv2.imread(str(photo))
    scale = 360 / source.shape[0]  # drawn at a readable height
    assert picture.shape[0] == 360 and picture.shape[1] > round(source.shape[1] * scale) + 200  # the bars panel
    # The panel is not blank, and boxes were drawn on the picture.
    panel = picture[:, round(source.shape[1] * scale):]
    assert panel.std() > 10
    resized = cv2.resize(source, (round(source.shape[1] * scale), 360))
    assert np.abs(picture[:, :resized.shape[1]].astype(int) - resized.astype(int)).max() > 100
    status, _, err = run(capsys, "predict", photo, "--model", tiny_model_file, "--annotate", tmp_path / "x.mp4")
    assert status == 2 and "annotate a photo" in err


def test_annotate_video_writes_video_and_timeline(capsys, tiny_model_file, tmp_path):
    write_video(tmp_path / "clip.avi", frames=10)
    out_file = tmp_path / "out" / "clip.mp4"
    status, out, _ = run(capsys, "predict", tmp_path / "clip.avi", "--model", tiny_model_file, "--detector", "haar",
                         "--annotate", out_file, "--every", "2", "--json")
    assert status == 0
    rows = json.loads(out)
    assert sorted({r["frame"] for r in rows}) == [0, 2, 4, 6, 8]
    capture = cv2.VideoCapture(str(out_file))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    ok, frame = capture.read()
    capture.release()
    assert ok and frame.shape[1] > 400
    timeline = cv2.imread(str(tmp_path / "out" / "clip.timeline.png"))
    assert timeline is not None and timeline.shape[0] > 300


def test_annotated_variable_frame_rate_video_plays_in_real_time(capsys, tiny_model_file, tmp_path):
    """Frames of a variable-frame-rate file are held until the next one is due, as a camera's are:
    the annotated video lasts as long as the source (3.3 s at 25 fps), with every frame in it."""
    from test_vision import VFR_VIDEO

    out_file = tmp_path / "vfr.mp4"
    status, out, _ = run(capsys, "predict", VFR_VIDEO, "--model", tiny_model_file, "--no-detect",
                         "--annotate", out_file, "--json")
    rows = json.loads(out)
    assert status == 0 and len(rows) == 20 and all(not r.get("error") for r in rows)
    assert rows[-1]["time_s"] == pytest.approx(3.26)
    capture = cv2.VideoCapture(str(out_file))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    assert frames == round(3.26 * 25) + 1  # the last frame's time, at 25 fps, plus that frame


def test_annotate_folder_writes_one_file_per_source(capsys, tiny_model_file, tmp_path, photo):
    write_video(tmp_path / "clip.avi", frames=3)
    status, _, _ = run(capsys, "predict", tmp_path, "--model", tiny_model_file, "--detector", "haar",
                       "--annotate", tmp_path / "ann", "--csv", tmp_path / "rows.csv")
    assert status == 0
    names = sorted(p.name for p in (tmp_path / "ann").iterdir())
    assert names == ["clip.annotated.mp4", "clip.annotated.timeline.png", "two.annotated.jpg"]


def test_no_detect_treats_each_image_as_a_face(capsys, tiny_model_file, tmp_path):
    face = compose(1, size=48, gap=0)[0]
    cv2.imwrite(str(tmp_path / "face.png"), face)
    status, out, _ = run(capsys, "predict", tmp_path / "face.png", "--model", tiny_model_file, "--no-detect", "--json")
    [row] = json.loads(out)
    assert status == 0 and (row["x"], row["y"], row["w"], row["h"]) == (0, 0, 48, 48) and row["emotion"]


def test_a_fer2013_face_crop_is_classified_whole_without_detection(capsys, tmp_path):
    """A 48x48 picture is a face crop already: detectors miss most faces that small, so each one is
    classified as it is (as --no-detect would), not reported face-less."""
    from conftest import plumbing_faces

    from ferkit.vision.recognizer import EmotionRecognizer

    faces = plumbing_faces(7)
    for i, face in enumerate(faces):
        cv2.imwrite(str(tmp_path / f"face{i}.png"), face)
    status, out, _ = run(capsys, "predict", tmp_path, "--model", "fast", "--json")
    rows = json.loads(out)
    assert status == 0 and len(rows) == len(faces)
    assert all((r["face"], r["x"], r["y"], r["w"], r["h"]) == (0, 0, 0, 48, 48) for r in rows)
    expected = EmotionRecognizer("fast", detector="none").classify(faces)
    got = np.array([[r[c] for c in COLUMNS[11:18]] for r in sorted(rows, key=lambda r: r["source"])])
    assert np.allclose(got, expected, atol=1e-5)


def test_a_photo_is_classified_with_ten_crops_unless_told_otherwise(capsys, tmp_path):
    """``--tta auto`` (the default) averages ten crops of a still face; ``--tta none`` takes the centre view.
    (The shipped ``fast`` model: untrained ones answer almost the same for every view.)"""
    from ferkit.vision.recognizer import EmotionRecognizer

    face = compose(1, size=48, gap=0)[0]
    cv2.imwrite(str(tmp_path / "face.png"), face)
    gray = cv2.imread(str(tmp_path / "face.png"), cv2.IMREAD_GRAYSCALE)[None]
    expected = {views: EmotionRecognizer("fast", detector="none", tta=views).classify(gray)[0]
                for views in ("tencrop", "none")}
    assert np.abs(expected["tencrop"] - expected["none"]).max() > 1e-4  # the views tell apart at this tolerance
    common = ["predict", tmp_path / "face.png", "--model", "fast", "--no-detect", "--json"]
    for flags, views in (([], "tencrop"), (["--tta", "none"], "none")):
        status, out, _ = run(capsys, *common, *flags)
        [row] = json.loads(out)
        assert status == 0 and np.allclose([row[c] for c in COLUMNS[11:18]], expected[views], atol=1e-5), flags


def test_missing_camera_and_files_give_error_rows(capsys, tiny_model_file, photo, tmp_path):
    status, out, err = run(capsys, "predict", "93", tmp_path / "nope.jpg", photo, "--model", tiny_model_file,
                           "--detector", "haar", "--json")
    rows = json.loads(out)
    assert status == 1
    assert rows[0]["source"] == "camera:93" and "camera 93" in rows[0]["error"]
    assert "no such file" in rows[1]["error"]
    assert len(rows) == 4 and "Traceback" not in err


def test_show_without_display_says_so_in_one_line(capsys, tiny_model_file, tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    write_video(tmp_path / "clip.avi", frames=2)
    status, _, err = run(capsys, "predict", tmp_path / "clip.avi", "--model", tiny_model_file, "--detector", "haar",
                         "--show", "--json")
    assert status == 0
    [line] = [x for x in err.splitlines() if "--show" in x]
    assert "display" in line


def test_bad_model_and_options_are_one_line_errors(capsys, photo, tmp_path, tiny_model_file):
    status, _, err = run(capsys, "predict", photo, "--model", tmp_path / "missing.safetensors")
    assert status == 2 and err.startswith("ferkit: error:") and len(err.strip().splitlines()) == 1
    status, _, err = run(capsys, "predict", photo, "--model", tiny_model_file, "--every", "0")
    assert status == 2 and "--every" in err
    for option, value in (("--min-face", "-1"), ("--detect-size", "3"), ("--detect-every", "0")):
        status, _, err = run(capsys, "predict", photo, "--model", tiny_model_file, option, value)
        assert status == 2 and err.startswith(f"ferkit: error: {option} {value}: must be at least"), err


def test_export_onnx(capsys, tiny_model_file, tmp_path):
    import onnxruntime as ort

    status, out, _ = run(capsys, "export", "--model", tiny_model_file, "--format", "onnx", "--out",
                         tmp_path / "tiny.onnx")
    assert status == 0 and "max probability difference" in out
    status, _, err = run(capsys, "export", "--model", tiny_model_file, "--format", "onnx", "--out", tmp_path / "t.txt")
    assert status == 2 and "name the ONNX file .onnx" in err and not (tmp_path / "t.txt").exists()
    session = ort.InferenceSession(str(tmp_path / "tiny.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"faces": np.zeros((3, 1, 48, 48), np.float32)})[0]
    assert logits.shape == (3, 7)


def test_an_output_that_cannot_be_written_names_the_users_path(capsys, tiny_model_file, tmp_path, photo):
    """Errors once named ferkit's hidden temporary file (.x.onnx.k3y.tmp) or said only "File exists"."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "afile").write_text("")
    status, _, err = run(capsys, "export", "--model", tiny_model_file, "--format", "onnx", "--out", tmp_path / "folder")
    assert status == 2 and err.strip() == f"ferkit: error: {tmp_path / 'folder'}: is a folder; give a file name"
    status, _, err = run(capsys, "export", "--model", tiny_model_file, "--format", "onnx", "--out",
                         tmp_path / "afile" / "sub" / "x.onnx")
    assert status == 2 and err.strip() == f"ferkit: error: {tmp_path / 'afile'}: a file, not a folder"
    status, _, err = run(capsys, "demo", "--model", tiny_model_file, "--out", tmp_path / "afile")
    assert status == 2 and err.strip() == f"ferkit: error: {tmp_path / 'afile'}: a file, not a folder"
    rows = tmp_path / "afile" / "rows.csv"  # the error names the option too, not only the folder
    status, _, err = run(capsys, "predict", photo, "--model", tiny_model_file, "--csv", rows)
    assert status == 2 and err.strip() == (f"ferkit: error: --csv {rows}: cannot write the rows "
                                           f"({tmp_path / 'afile'}: a file, not a folder)")
    assert not list((tmp_path / "folder").iterdir()) and not list(tmp_path.rglob(".*.tmp"))


def test_a_shipped_models_int8_graph_is_replaced_only_when_named(capsys, tmp_path):
    from ferkit.models.hub import shipped_path

    graph = shipped_path("fast").with_suffix(".int8.onnx")
    before = graph.read_bytes()
    status, _, err = run(capsys, "export", "--model", "fast", "--int8", "--data", tmp_path)
    assert status == 2 and "shipped model" in err and f"--out {graph}" in err
    assert graph.read_bytes() == before


def test_demo_writes_picture_and_rows(capsys, tiny_model_file, tmp_path):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "demo.csv.partial").write_text("left by a killed demo\n")  # once: "add --resume"
    status, _, err = run(capsys, "demo", "--model", tiny_model_file, "--out", tmp_path / "demo")
    assert status == 0, err
    assert not (tmp_path / "demo" / "demo.csv.partial").exists()
    picture = cv2.imread(str(tmp_path / "demo" / "demo.jpg"))
    assert picture is not None and picture.shape[1] > picture.shape[0]
    with open(tmp_path / "demo" / "demo.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 2 and all(r["emotion"] for r in rows)  # the shipped photo has several faces


def test_a_picture_no_face_fits_in_and_an_empty_folder_are_rows_not_tracebacks(capsys, tiny_model_file, photo,
                                                                                tmp_path):
    """A valid 1 x 3000 strip once made the detector's resize raise and lost the whole batch; an
    empty folder once vanished from the output."""
    cv2.imwrite(str(tmp_path / "strip.png"), np.full((1, 3000, 3), 90, np.uint8))
    (tmp_path / "empty").mkdir()
    for detector in ("haar", "retinaface"):
        status, out, err = run(capsys, "predict", photo, tmp_path / "strip.png", tmp_path / "empty",
                               "--model", tiny_model_file, "--detector", detector, "--json")
        rows = json.loads(out)
        assert status == 1 and "Traceback" not in err
        by_source = {r["source"].rsplit("/", 1)[-1]: r for r in rows}
        assert by_source["strip.png"]["error"] is None and by_source["strip.png"]["face"] is None
        assert "no image or video" in by_source["empty"]["error"]
        assert sum(r["source"].endswith("two.jpg") for r in rows) == 2


def test_a_phone_picture_in_a_folder_is_an_error_row_and_notes_are_not_sources(capsys, tiny_model_file, photo,
                                                                               tmp_path):
    """An iPhone's HEIC photos beside JPEGs were once passed over in silence; a folder's notes and
    annotation files are not pictures and give no row."""
    folder = tmp_path / "album"
    folder.mkdir()
    (folder / "two.jpg").write_bytes(photo.read_bytes())
    (folder / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (folder / "landmarks.txt").write_text("1 2 3")
    status, out, err = run(capsys, "predict", folder, "--model", tiny_model_file, "--detector", "haar", "--json")
    rows = json.loads(out)
    assert status == 1 and "Traceback" not in err
    assert {r["source"].rsplit("/", 1)[-1] for r in rows} == {"two.jpg", "IMG_0001.HEIC"}
    [heic] = [r for r in rows if r["source"].endswith("HEIC")]
    assert ".heic pictures cannot be read" in heic["error"] and "JPEG or PNG" in heic["error"]


def test_what_a_folder_names_like_a_picture_but_cannot_read_is_an_error_row(capsys, tiny_model_file, photo,
                                                                            tmp_path, monkeypatch):
    """A broken link, a pipe and a sub-folder that cannot be listed were once passed over in silence;
    a file in a folder that may not be searched once stopped the whole batch."""
    import os

    folder = tmp_path / "album"
    (folder / "locked").mkdir(parents=True)
    (folder / "two.jpg").write_bytes(photo.read_bytes())
    (folder / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    os.mkfifo(folder / "pipe.png")
    os.mkfifo(tmp_path / "named.jpg")  # a pipe given by name once read as an "empty file"
    real_scandir, real_stat = os.scandir, os.stat
    locked = str(folder / "locked")

    def scandir(path="."):  # as without read permission on the folder (tests may run as root)
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_scandir(path)

    def stat(path, *args, **kwargs):
        if os.fspath(path).startswith(locked + os.sep):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "stat", stat)
    status, out, err = run(capsys, "predict", folder, folder / "locked" / "x.jpg", "", tmp_path / "named.jpg",
                           "--model", tiny_model_file, "--detector", "haar", "--json")
    rows = json.loads(out)
    assert status == 1 and "Traceback" not in err
    errors = {r["source"].rsplit("/", 1)[-1]: r["error"] for r in rows if r["error"]}
    assert errors == {"gone.jpg": "broken link", "pipe.png": "not a regular file",
                      "locked": "folder cannot be listed (permission denied)", "x.jpg": "permission denied",
                      "''": "empty source name", "named.jpg": "not a regular file"}
    assert sum(r["source"].endswith("two.jpg") for r in rows) == 2


def test_boxes_of_a_jpeg_too_large_to_decode_whole_are_in_its_own_pixels(capsys, tiny_model_file, tmp_path,
                                                                         monkeypatch):
    """Such a JPEG is decoded at 1/2, 1/4 or 1/8 of its size; its boxes were once in those pixels."""
    import functools

    import ferkit.data.images as images
    import ferkit.vision.recognizer as recognizer_module
    from ferkit import EmotionRecognizer
    from test_vision import matches

    canvas, truth = compose(2, size=160)
    path = tmp_path / "big.jpg"
    cv2.imwrite(str(path), canvas)
    small_limit = functools.partial(images.read_image_scaled, max_pixels=canvas.shape[0] * canvas.shape[1] // 3)
    monkeypatch.setattr(recognizer_module, "read_image_scaled", small_limit)
    assert recognizer_module.load_image(path).shape[1] == canvas.shape[1] // 2  # decoded at half size
    recognizer = EmotionRecognizer(tiny_model_file, detector="haar")
    assert matches(recognizer.predict(path), truth, threshold=0.5)
    assert [d.box for d in recognizer.detect(path)] == [f.box for f in recognizer.predict(path)]
    rows = recognizer.predict_many(path)
    assert matches([recognizer_module.Face(tuple(r[k] for k in ("x", "y", "w", "h")), "", 0, {}) for r in rows],
                   truth, threshold=0.5)
    status, _, err = run(capsys, "predict", path, "--model", tiny_model_file, "--detector", "haar",
                         "--annotate", tmp_path / "out.jpg", "--csv", tmp_path / "rows.csv")
    assert status == 0, err
    with open(tmp_path / "rows.csv", newline="") as handle:
        assert [int(r["w"]) for r in csv.DictReader(handle)] == [f.box[2] for f in recognizer.predict(path)]
    # min_face is in the file's pixels too: the 160 px faces are 80 px in the decoded picture, and were dropped.
    sized = EmotionRecognizer(tiny_model_file, detector="haar", min_face=120)
    assert matches(sized.predict(path), truth, threshold=0.5) and len(sized.detect(path)) == len(truth)
    assert EmotionRecognizer(tiny_model_file, detector="haar", min_face=260).predict(path) == []  # Haar: 200 px boxes


def test_a_linux_camera_device_is_that_camera():
    from ferkit.vision.sources import SourceItem, path_items

    assert path_items(Path("/dev/video2")) == [SourceItem("camera", "camera:2", 2)]


def test_an_empty_file_or_model_name_is_a_one_line_error(capsys, tiny_model_file, photo):
    for option in ("--csv", "--annotate"):
        status, _, err = run(capsys, "predict", photo, "--model", tiny_model_file, option, "")
        assert status == 2 and f"{option}: empty file name" in err and len(err.strip().splitlines()) == 1
    status, _, err = run(capsys, "predict", photo, "--model", "")
    assert status == 2 and "empty model name" in err and len(err.strip().splitlines()) == 1


def test_a_source_whose_annotation_cannot_be_written_is_an_error_row(capsys, tiny_model_file, photo, tmp_path):
    """The rows of the other sources survive; the failing one names its problem."""
    second = tmp_path / "again.jpg"
    second.write_bytes(photo.read_bytes())
    out_dir = tmp_path / "annotated"
    out_dir.mkdir()
    (out_dir / "two.annotated.jpg").mkdir()  # a folder where the annotated picture must go
    status, out, err = run(capsys, "predict", photo, second, "--model", tiny_model_file, "--detector", "haar",
                           "--annotate", out_dir, "--csv", tmp_path / "rows.csv")
    assert status == 1 and "Traceback" not in err and "1 of 2 source(s) failed" in err
    with open(tmp_path / "rows.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    failed = [r for r in rows if r["error"]]
    assert len(failed) == 1 and failed[0]["source"].endswith("two.jpg")
    assert sum(r["source"].endswith("again.jpg") and r["emotion"] != "" for r in rows) == 2
    assert (out_dir / "again.annotated.jpg").is_file()


def _predict_three_to_csv(capsys, model_file, photo, tmp_path) -> tuple[int, str, list[dict]]:
    """`predict` of the photo and two copies of it into rows.csv: the exit status, stderr and the rows."""
    others = [tmp_path / f"copy{i}.jpg" for i in range(2)]
    for other in others:
        other.write_bytes(photo.read_bytes())
    status, _, err = run(capsys, "predict", photo, *others, "--model", model_file, "--detector", "haar",
                         "--csv", tmp_path / "rows.csv")
    with open(tmp_path / "rows.csv", newline="") as f:
        return status, err, list(csv.DictReader(f))


def test_ctrl_c_marks_the_sources_not_finished(capsys, tiny_model_file, photo, tmp_path, monkeypatch):
    from ferkit.vision.recognizer import EmotionRecognizer

    calls = []
    original = EmotionRecognizer.iter_item

    def interrupt_second(self, item, every):
        calls.append(item.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        yield from original(self, item, every)

    monkeypatch.setattr(EmotionRecognizer, "iter_item", interrupt_second)
    status, err, rows = _predict_three_to_csv(capsys, tiny_model_file, photo, tmp_path)
    assert status == 130 and "2 of 3 source(s) not finished" in err and "failed" not in err  # exit 1 said "failed"
    assert [r["source"].rsplit("/", 1)[-1] for r in rows] == ["two.jpg", "two.jpg", "copy0.jpg", "copy1.jpg"]
    assert all("interrupted" in r["error"] for r in rows[2:])


def test_ctrl_c_between_two_sources_still_gives_every_source_its_rows(capsys, tiny_model_file, photo, tmp_path,
                                                                      monkeypatch):
    """An interrupt that landed outside a source's own work (as its rows were flushed) left the sources after
    it with no row at all, and the CSV's summary line was not printed."""
    from ferkit.app.csv_rows import CsvRows

    real_done = CsvRows.source_done
    calls = []

    def interrupted_once(self):
        real_done(self)
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(CsvRows, "source_done", interrupted_once)
    status, err, rows = _predict_three_to_csv(capsys, tiny_model_file, photo, tmp_path)
    assert status == 130 and "2 of 3 source(s) not finished" in err and "wrote 4 rows for 3 source(s)" in err
    assert [r["source"].rsplit("/", 1)[-1] for r in rows] == ["two.jpg", "two.jpg", "copy0.jpg", "copy1.jpg"]
    assert [bool(r["error"]) for r in rows] == [False, False, True, True]


def test_ctrl_c_in_a_video_keeps_its_annotated_frames(capsys, tiny_model_file, tmp_path, monkeypatch):
    """The annotated copy of a video interrupted by Ctrl+C was once thrown away, though its rows were kept."""
    from ferkit.vision.recognizer import EmotionRecognizer

    clip = tmp_path / "clip.avi"
    write_video(clip, frames=12)
    original = EmotionRecognizer.track_frames

    def stop_after_five(self, reader):
        for count, result in enumerate(original(self, reader)):
            if count == 5:
                raise KeyboardInterrupt
            yield result

    monkeypatch.setattr(EmotionRecognizer, "track_frames", stop_after_five)
    status, _, err = run(capsys, "predict", clip, "--model", tiny_model_file, "--detector", "haar",
                         "--annotate", tmp_path / "out.mp4", "--csv", tmp_path / "rows.csv")
    assert status == 130 and "interrupted" in err
    assert f"{tmp_path / 'out.mp4'}: kept, with the " in err and "annotated before the interruption" in err
    capture = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert capture.isOpened() and capture.get(cv2.CAP_PROP_FRAME_COUNT) >= 5
    capture.release()


def test_writing_where_a_folder_is_in_the_way_is_a_one_line_error(capsys, tiny_model_file, photo, tmp_path):
    (tmp_path / "file").write_text("x")
    status, _, err = run(capsys, "predict", photo, "--model", tiny_model_file, "--detector", "haar",
                         "--csv", tmp_path / "file" / "rows.csv")
    assert status == 2 and err.startswith("ferkit: error:") and len(err.strip().splitlines()) == 1
    # --annotate the same: said before the work (it was an error row after it, exit 1)
    status, out, err = run(capsys, "predict", photo, "--model", tiny_model_file, "--detector", "haar",
                           "--annotate", tmp_path / "file" / "a.jpg", "--json")
    assert status == 2 and "file: a file, not a folder" in err and out == ""
    status, _, err = run(capsys, "demo", "--out", "", "--model", tiny_model_file)
    assert status == 2 and "--out is empty" in err
    status, _, err = run(capsys, "demo", "--out", tmp_path / "demo", "--model", tmp_path / "missing.safetensors")
    assert status == 2 and not (tmp_path / "demo").exists()  # no empty folder left by a model that did not load
    status, _, err = run(capsys, "predict", photo, "--model", tiny_model_file, "--detector", "haar", "--no-detect")
    assert status == 2 and "--no-detect and --detector haar contradict each other" in err


def test_options_that_would_do_nothing_are_refused_not_ignored(capsys, photo, tmp_path, tiny_model_file):
    """An option the command would ignore lets the user believe it was applied: it is refused, naming it."""
    for off in (["--no-detect"], ["--detector", "none"]):
        status, out, err = run(capsys, "predict", photo, "--model", tiny_model_file, *off, "--min-face", "40",
                               "--no-align", "--json")
        assert status == 2 and out == "" and "--min-face and --no-align act only with a face detector" in err, err
    status, out, _ = run(capsys, "predict", photo, "--model", tiny_model_file, "--no-detect", "--min-face", "20",
                         "--json")
    assert status == 0 and len(json.loads(out)) == 1  # the default value is no request
    for extra in (["--data", tmp_path], ["--skip-bad"], ["--detector", "haar"]):
        status, _, err = run(capsys, "export", "--model", tiny_model_file, "--out", tmp_path / "m.onnx", *extra)
        assert status == 2 and f"{extra[0]} acts only with --int8" in err and not (tmp_path / "m.onnx").exists()


def test_a_model_for_other_classes_is_refused_in_one_line(capsys, photo, tmp_path):
    from ferkit.data.preprocess import Normalizer
    from ferkit.models import create_model
    from ferkit.models.io import save_model_file

    path = tmp_path / "five.safetensors"
    save_model_file(path, create_model("tiny", num_classes=5, width=8), name="tiny", options={"width": 8},
                    normalizer=Normalizer.identity(), classes=[f"c{i}" for i in range(5)])
    status, _, err = run(capsys, "predict", photo, "--model", path, "--detector", "haar", "--json")
    assert status == 2 and "five.safetensors" in err and "seven FER2013" in err
    assert len(err.strip().splitlines()) == 1


def test_export_refuses_a_graph_that_disagrees_with_pytorch(capsys, tiny_model_file, tmp_path, monkeypatch):
    from ferkit.vision import onnx as vision_onnx

    honest = vision_onnx.OnnxBackend.probs
    monkeypatch.setattr(vision_onnx.OnnxBackend, "probs", lambda self, faces, tta: honest(self, faces, tta)[:, ::-1])
    status, _, err = run(capsys, "export", "--model", tiny_model_file, "--format", "onnx", "--out", tmp_path / "x.onnx")
    assert status == 2 and "not written" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.onnx").exists()


def test_predict_with_an_ensemble(capsys, tiny_model_file, varied_model_file, photo):
    members = (tiny_model_file, varied_model_file)  # two untrained tiny models from other seeds
    status, out, _ = run(capsys, "predict", photo, "--model", "+".join(map(str, members)), "--detector", "haar",
                         "--json")
    rows = json.loads(out)
    assert status == 0 and len(rows) == 2
    singles = [json.loads(run(capsys, "predict", photo, "--model", m, "--detector", "haar", "--json")[1])
               for m in members]
    scores = np.array([[[r[c] for c in CLASSES] for r in answer] for answer in (rows, *singles)])
    assert np.abs(scores[1] - scores[2]).max() > 1e-3  # the members disagree, so the mean shows both
    np.testing.assert_allclose(scores[0], (scores[1] + scores[2]) / 2, atol=2e-6)
    assert [r["emotion"] for r in rows] == [CLASSES[i] for i in scores[0].argmax(1)]


def test_a_damaged_frame_is_skipped_and_reported_not_the_end_of_the_video(capsys, tiny_model_file, tmp_path):
    """OpenCV fails to decode one frame of an MJPG file; the frames after it are still read, and
    the source gets an error row saying one frame was lost."""
    path = tmp_path / "clip.avi"
    write_video(path, frames=20)
    data = bytearray(path.read_bytes())
    position = -1
    for _ in range(10):  # the 10th chunk header: a frame in the middle of the file
        position = data.find(b"00dc", position + 1)
    size = int.from_bytes(data[position + 4:position + 8], "little")
    data[position + 8:position + 8 + size] = bytes(size)
    path.write_bytes(bytes(data))
    status, out, _ = run(capsys, "predict", path, "--model", tiny_model_file, "--detector", "haar", "--json")
    rows = json.loads(out)
    frames = {r["frame"] for r in rows if r["error"] is None}
    assert status == 1 and len(frames) == 19 and max(frames) == 19
    assert rows[-1]["error"].startswith("1 damaged frame(s) skipped")


def _zero_mjpg_frames(path: Path, first: int, count: int) -> None:
    """Blank ``count`` frames of an MJPG AVI from frame ``first`` on (their data zeroed, as a damaged disk leaves it)."""
    data = bytearray(path.read_bytes())
    position = -1
    for _ in range(first + 1):
        position = data.find(b"00dc", position + 1)
    for _ in range(count):
        size = int.from_bytes(data[position + 4:position + 8], "little")
        data[position + 8:position + 8 + size] = bytes(size)
        position = data.find(b"00dc", position + 8 + size)
    path.write_bytes(bytes(data))


def test_a_long_damaged_stretch_is_skipped_not_taken_for_the_end(capsys, tiny_model_file, tmp_path):
    """More than 25 unreadable frames in a row ended the video: the good frames after them were lost, and
    the error row said the video stopped early."""
    path = tmp_path / "clip.avi"
    write_video(path, frames=60)
    _zero_mjpg_frames(path, 10, 30)
    status, out, _ = run(capsys, "predict", path, "--model", tiny_model_file, "--detector", "haar", "--json",
                         "--every", "5")
    rows = json.loads(out)
    assert status == 1 and sorted({r["frame"] for r in rows if r["error"] is None}) == [0, 5, 40, 45, 50, 55]
    assert rows[-1]["error"] == "30 damaged frame(s) skipped (the other frames were read)"
    # The Python API names the file in the exception it raises at the end.
    frames = []
    with pytest.raises(SourceError, match=rf"^{re.escape(str(path))}: 30 damaged frame\(s\) skipped"):
        for result in EmotionRecognizer(tiny_model_file, detector="haar").predict_video(path, every=5):
            frames.append(result.index)
    assert frames == [0, 5, 40, 45, 50, 55]


def test_an_annotated_video_that_cannot_be_written_costs_no_rows(capsys, tiny_model_file, tmp_path, monkeypatch):
    """The annotated copy's writer failed inside the frame loop: the video's other rows were lost."""
    import errno

    from ferkit.vision.annotate import VideoAnnotator

    def no_space(self, *args, **kwargs):  # a full disk, or a folder removed under the run
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path))

    monkeypatch.setattr(VideoAnnotator, "write", no_space)
    write_video(tmp_path / "clip.avi", frames=8)
    status, out, err = run(capsys, "predict", tmp_path / "clip.avi", "--model", tiny_model_file, "--detector",
                           "haar", "--annotate", tmp_path / "out.mp4", "--json")
    rows = json.loads(out)
    assert status == 1 and sorted({r["frame"] for r in rows if r["error"] is None}) == list(range(8))
    assert rows[-1]["error"].startswith(f"{tmp_path / 'out.mp4'}: annotated video not written")
    assert "annotated: nothing written (see the error column)" in err


def test_a_video_under_a_picture_name_writes_over_no_file(capsys, tiny_model_file, tmp_path):
    """``--annotate clip.jpg`` for a video became clip.mp4 unchecked: a file of that name was replaced."""
    write_video(tmp_path / "clip.avi", frames=3)
    (tmp_path / "clip.avi").rename(tmp_path / "clip.dat")
    (tmp_path / "clip.mp4").write_bytes(b"the user's own video")
    status, _, err = run(capsys, "predict", tmp_path / "clip.dat", "--model", tiny_model_file, "--detector", "haar",
                         "--annotate", tmp_path / "clip.jpg")
    assert status == 0, err
    assert (tmp_path / "clip.mp4").read_bytes() == b"the user's own video"
    assert (tmp_path / "clip_2.mp4").is_file() and f"writing {tmp_path / 'clip_2.mp4'}" in err
    # A video saved under a picture's extension (an MP4 as .jpg) is read as the video it is.
    (tmp_path / "clip.dat").rename(tmp_path / "moving.jpg")
    status, out, err = run(capsys, "predict", tmp_path / "moving.jpg", "--model", tiny_model_file, "--detector",
                           "haar", "--json")
    assert status == 0, err
    assert sorted({r["frame"] for r in json.loads(out)}) == [0, 1, 2]


def test_a_photo_under_a_video_name_is_read_as_the_photo_it_is(capsys, tiny_model_file, photo, tmp_path):
    """A JPEG saved as .mp4 was read as a one-frame video: no ten-crop views, and a video for --annotate."""
    disguised = tmp_path / "still.mp4"
    disguised.write_bytes(photo.read_bytes())
    rows = {}
    for path in (photo, disguised):
        status, out, err = run(capsys, "predict", path, "--model", tiny_model_file, "--detector", "haar", "--json")
        assert status == 0, err
        rows[path.suffix] = [{c: r[c] for c in CLASSES} for r in json.loads(out)]
    assert len(rows[".mp4"]) == 2 and rows[".mp4"] == rows[".jpg"]
    status, _, err = run(capsys, "predict", tmp_path, "--model", tiny_model_file, "--detector", "haar",
                         "--annotate", tmp_path / "ann")
    assert status == 0, err
    assert {p.name for p in (tmp_path / "ann").iterdir()} == {"two.annotated.jpg", "still.annotated.jpg"}


def test_a_killed_runs_half_written_annotated_video_is_removed(capsys, tiny_model_file, tmp_path):
    write_video(tmp_path / "clip.avi", frames=3)
    (tmp_path / "ann").mkdir()
    stale = tmp_path / "ann" / ".clip.annotated.mp4.k1ll3d00.mp4"
    stale.write_bytes(b"x" * 1000)
    status, _, err = run(capsys, "predict", tmp_path / "clip.avi", "--model", tiny_model_file, "--detector", "haar",
                         "--annotate", tmp_path / "ann")
    assert status == 0, err
    assert sorted(p.name for p in (tmp_path / "ann").iterdir()) == ["clip.annotated.mp4",
                                                                    "clip.annotated.timeline.png"]


def test_a_video_named_like_neither_is_run_as_a_video(capsys, tiny_model_file, tmp_path):
    """A .dat/extensionless video (.mts and .ts were such names once) ran as a stream of photos: --max-frames ignored, every frame
    re-encoded over one picture, an .mp4 target refused after frame 0."""
    write_video(tmp_path / "clip.avi", frames=6)
    (tmp_path / "clip.avi").rename(tmp_path / "clip.dat")
    status, out, err = run(capsys, "predict", tmp_path / "clip.dat", "--model", tiny_model_file, "--detector",
                           "haar", "--max-frames", "3", "--annotate", tmp_path / "ann", "--json")
    assert status == 0, err
    assert sorted({r["frame"] for r in json.loads(out)}) == [0, 1, 2]
    assert sorted(p.name for p in (tmp_path / "ann").iterdir()) == ["clip.annotated.mp4",
                                                                     "clip.annotated.timeline.png"]
    status, out, err = run(capsys, "predict", tmp_path / "clip.dat", "--model", tiny_model_file, "--detector",
                           "haar", "--max-frames", "2", "--annotate", tmp_path / "one.mp4")
    assert status == 0, err
    assert "frame 1" in out and "frame 2" not in out  # text rows name the frames of a video
    capture = cv2.VideoCapture(str(tmp_path / "one.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 2
    capture.release()
    # A picture's name for what turns out a video: the rows are kept, the video written as .mp4.
    status, out, err = run(capsys, "predict", tmp_path / "clip.dat", "--model", tiny_model_file, "--detector",
                           "haar", "--max-frames", "2", "--annotate", tmp_path / "two.jpg", "--json")
    assert status == 0, err
    assert sorted({r["frame"] for r in json.loads(out)}) == [0, 1]
    assert "is a video; writing" in err and (tmp_path / "two.mp4").is_file() and not (tmp_path / "two.jpg").exists()


def test_outputs_that_are_sources_are_refused_before_any_work(capsys, tiny_model_file, photo, tmp_path):
    """--annotate or --csv naming one of the sources would write over the picture: refused in one line."""
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "a.jpg").write_bytes(photo.read_bytes())
    before = photo.read_bytes()
    for argv in ([photo, "--annotate", photo], [tmp_path / "set", "--csv", tmp_path / "set" / "a.jpg"],
                 [photo, tmp_path / "set", "--annotate", tmp_path / "set", "--csv", tmp_path / "rows.csv"]):
        status, _, err = run(capsys, "predict", *argv, "--model", tiny_model_file, "--detector", "haar")
        if argv[-1] == tmp_path / "rows.csv":  # a folder of annotations beside the sources is fine
            assert status == 0, err
            continue
        assert status == 2 and "would write over the source" in err and len(err.strip().splitlines()) == 1, err
    assert photo.read_bytes() == before and (tmp_path / "set" / "a.jpg").read_bytes() == before


def test_csv_target_that_is_a_folder_is_refused_before_any_work(capsys, tiny_model_file, photo, tmp_path):
    (tmp_path / "rows").mkdir()
    status, _, err = run(capsys, "predict", photo, "--model", tiny_model_file, "--detector", "haar",
                         "--csv", tmp_path / "rows")
    assert status == 2 and "--csv" in err and "is a folder" in err and len(err.strip().splitlines()) == 1
    assert list((tmp_path / "rows").iterdir()) == [] and not list(tmp_path.glob(".*tmp"))


def test_a_glob_that_matches_folders_searches_them(capsys, tiny_model_file, photo, tmp_path):
    for name in ("happy", "sad"):
        (tmp_path / "set" / name).mkdir(parents=True)
        (tmp_path / "set" / name / f"{name}.jpg").write_bytes(photo.read_bytes())
    for pattern in ("set/*", "set/**"):  # ** also matches set/ itself: each file still comes once
        status, out, err = run(capsys, "predict", str(tmp_path / pattern), "--model", tiny_model_file,
                               "--detector", "haar", "--json")
        assert status == 0, err
        sources = [r["source"].rsplit("/", 1)[-1] for r in json.loads(out)]
        assert sources == ["happy.jpg", "happy.jpg", "sad.jpg", "sad.jpg"], pattern


def test_sigterm_keeps_the_rows_and_exits_143(capsys, tiny_model_file, photo, tmp_path, monkeypatch):
    """``kill`` once counted as a normal stop (exit 1, or 0 after a camera); now every source has its
    row, the CSV is kept, and the exit status says the run was terminated."""
    from ferkit.app.errors import Terminated
    from ferkit.vision.recognizer import EmotionRecognizer

    calls = []
    original = EmotionRecognizer.iter_item

    def terminate_second(self, item, every):
        calls.append(item.name)
        if len(calls) == 2:
            raise Terminated()
        yield from original(self, item, every)

    monkeypatch.setattr(EmotionRecognizer, "iter_item", terminate_second)
    other = tmp_path / "copy.jpg"
    other.write_bytes(photo.read_bytes())
    status, _, err = run(capsys, "predict", photo, other, "--model", tiny_model_file, "--detector", "haar",
                         "--csv", tmp_path / "rows.csv")
    assert status == 143 and "1 of 2 source(s) not finished" in err
    with open(tmp_path / "rows.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["source"].rsplit("/", 1)[-1] for r in rows] == ["two.jpg", "two.jpg", "copy.jpg"]
    assert "terminated" in rows[2]["error"]


def test_a_model_giving_nan_is_an_error_row_not_bad_json(capsys, photo, tmp_path):
    import torch

    from ferkit.data.preprocess import Normalizer
    from ferkit.models import create_model
    from ferkit.models.io import save_model_file

    model = create_model("tiny")
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1e38)  # finite weights whose sums overflow: inf - inf is NaN
    save_model_file(tmp_path / "nan.safetensors", model, name="tiny", options={}, normalizer=Normalizer.identity())
    status, out, err = run(capsys, "predict", photo, "--model", tmp_path / "nan.safetensors", "--detector", "haar",
                           "--json")
    rows = json.loads(out)  # strict JSON: a bare NaN would not parse
    assert status == 1 and len(rows) == 1 and "non-finite" in rows[0]["error"]
    with torch.no_grad():  # NaN weights themselves (a diverged run) are refused when the model loads
        next(model.parameters()).fill_(float("nan"))
    save_model_file(tmp_path / "nan.safetensors", model, name="tiny", options={}, normalizer=Normalizer.identity())
    status, out, err = run(capsys, "predict", photo, "--model", tmp_path / "nan.safetensors", "--json")
    assert status == 2 and "the weights are not finite numbers" in err and out == ""


# ----------------------------------------------------------------------------- --csv and --resume

# The run kills itself (SIGKILL: no handler, no clean-up) as it starts its Nth source.
KILL_AT_SOURCE = """
import os, runpy, signal, sys
import ferkit.app.verbs_predict as verbs
kill_at, calls, original = int(sys.argv.pop(1)), 0, verbs._run_item
def run_item(*args, **kwargs):
    global calls
    calls += 1
    if calls == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(*args, **kwargs)
verbs._run_item = run_item
sys.argv[0] = "ferkit"
runpy.run_module("ferkit", run_name="__main__", alter_sys=True)
"""


def _csv_rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _same_rows(got: list[dict], expected: list[dict]) -> None:
    assert [(r["source"], r["frame"], r["face"], r["x"], r["emotion"], r["error"]) for r in got] == \
        [(r["source"], r["frame"], r["face"], r["x"], r["emotion"], r["error"]) for r in expected]
    for a, b in zip(got, expected):  # another process may round the 6th decimal the other way
        for c in CLASSES:
            assert (a[c] == b[c] == "") or abs(float(a[c]) - float(b[c])) < 1e-5


def test_a_killed_predict_resumes_without_redoing_finished_sources(capsys, tiny_model_file, tmp_path,
                                                                    monkeypatch):
    """SIGKILL at the 4th of 6 sources: FILE is not written, FILE.partial holds the finished sources'
    rows; --resume keeps them (all but the last, which may be cut short), runs the rest, and writes
    the rows a run never interrupted writes, in the same order."""
    import subprocess
    import sys

    import ferkit.app.verbs_predict as verbs

    photos = tmp_path / "photos"
    photos.mkdir()
    canvas, _ = compose(2)
    for i in range(5):
        cv2.imwrite(str(photos / f"p{i}.jpg"), canvas[:, i * 10:])
    (photos / "z_broken.png").write_bytes(b"not a picture")  # fails every time: never kept
    common = ["predict", photos, "--model", tiny_model_file, "--detector", "haar", "--no-progress"]
    assert run(capsys, *common, "--csv", tmp_path / "reference.csv")[0] == 1
    rows = tmp_path / "rows.csv"
    killed = subprocess.run([sys.executable, "-c", KILL_AT_SOURCE, "4", *map(str, common), "--csv", str(rows)],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    partial = tmp_path / "rows.csv.partial"
    assert not rows.exists() and {r["source"] for r in _csv_rows(partial)} == {
        str(photos / f"p{i}.jpg") for i in range(3)}

    calls = []
    original = verbs._run_item
    monkeypatch.setattr(verbs, "_run_item", lambda *a, **k: calls.append(a[1].name) or original(*a, **k))
    status, out, err = run(capsys, *common, "--csv", rows, "--resume")
    assert status == 1 and "2 of 6 source(s) finished earlier" in err, err
    assert calls == [str(photos / name) for name in ("p2.jpg", "p3.jpg", "p4.jpg", "z_broken.png")]
    assert not partial.exists()
    _same_rows(_csv_rows(rows), _csv_rows(tmp_path / "reference.csv"))

    # Resuming a complete run redoes only the source that failed.
    calls.clear()
    status, _, err = run(capsys, *common, "--csv", rows, "--resume")
    assert status == 1 and calls == [str(photos / "z_broken.png")], err
    _same_rows(_csv_rows(rows), _csv_rows(tmp_path / "reference.csv"))


def test_resume_keeps_only_sources_that_finished(tmp_path):
    """From FILE: sources without an error row (an "interrupted" one is an error); from FILE.partial,
    the same, read up to the first line that is not whole (a kill or power cut can leave one, or
    zeros, at the end), less the last source read (it may have more rows that were lost)."""
    from ferkit.app.csv_rows import finished_sources
    from ferkit.app.errors import UsageError

    header = ",".join(COLUMNS)
    blank = "," * (len(COLUMNS) - 2)
    def line(source, error=""):
        return f"{source}{blank},{error}"
    (tmp_path / "rows.csv").write_text("\n".join([
        header, line("a"), line("a"), line("b", "interrupted (Ctrl+C) before it was finished"), line("c"),
        line("d")]) + "\n")
    (tmp_path / "rows.csv.partial").write_text("\n".join([header, line("c"), line("e"), "f,0,0.1", line("g"),
                                                          line("h")]) + "\n")
    kept = finished_sources(tmp_path / "rows.csv", COLUMNS)
    assert sorted(kept) == ["a", "c", "d"] and len(kept["a"]) == 2  # e: the last whole one before the cut
    (tmp_path / "zeros.csv.partial").write_text("\n".join([header, line("x"), line("y"), line("z")[:3]]) + "\0" * 64)
    assert sorted(finished_sources(tmp_path / "zeros.csv", COLUMNS)) == ["x"]
    (tmp_path / "other.csv").write_text("name,emotion\nx,happy\n")
    with pytest.raises(UsageError, match="not a ferkit predict CSV"):
        finished_sources(tmp_path / "other.csv", COLUMNS)
    assert finished_sources(tmp_path / "none.csv", COLUMNS) == {}


def test_resume_needs_csv(capsys, tiny_model_file, photo):
    status, _, err = run(capsys, "predict", photo, "--model", tiny_model_file, "--json", "--resume")
    assert status == 2 and "--resume" in err and "--csv" in err and len(err.strip().splitlines()) == 1


def test_resume_keeps_order_other_rows_and_its_own_output_out(capsys, tiny_model_file, tmp_path):
    """A source named twice keeps both places; a resume with fewer sources keeps the others' rows
    (after its own); a leftover FILE.partial is not overwritten without --resume; annotated
    pictures written into a searched folder are not taken for sources when the command runs again."""
    photos = tmp_path / "photos"
    photos.mkdir()
    canvas, _ = compose(2)
    for name in ("a", "b"):
        cv2.imwrite(str(photos / f"{name}.jpg"), canvas)
    a, b = str(photos / "a.jpg"), str(photos / "b.jpg")
    common = ["predict", "--model", tiny_model_file, "--detector", "haar", "--no-progress"]
    rows, partial = tmp_path / "rows.csv", tmp_path / "rows.csv.partial"
    assert run(capsys, *common, a, b, a, "--csv", rows)[0] == 0
    reference = _csv_rows(rows)
    assert [r["source"] for r in reference] == [a, a, b, b, a, a]
    with open(rows) as f:
        partial.write_text("".join(f.readlines()[:5]))  # a and b: b is the last, so it runs again
    rows.unlink()
    status, _, err = run(capsys, *common, a, b, a, "--csv", rows)
    assert status == 2 and "rows.csv.partial holds the rows of an unfinished run" in err and partial.is_file()
    status, _, err = run(capsys, *common, a, b, a, "--csv", rows, "--resume")
    assert status == 0 and "0 of 3 source(s) finished earlier" in err, err  # a is named twice: run again
    _same_rows(_csv_rows(rows), reference)

    status, _, err = run(capsys, *common, b, "--csv", rows, "--resume")
    assert status == 0 and "the rows of 1 other source(s) there are kept" in err, err
    assert [r["source"] for r in _csv_rows(rows)] == [b, b, a, a, a, a]

    folder_rows = tmp_path / "folder.csv"
    argv = [*common, photos, "--csv", folder_rows, "--annotate", photos / "annotated"]
    assert run(capsys, *argv)[0] == 0
    status, _, err = run(capsys, *argv, "--resume")
    assert status == 0 and "2 annotated picture(s)" in err and "2 of 2 source(s) finished earlier" in err, err
    assert {r["source"] for r in _csv_rows(folder_rows)} == {a, b}
    assert sorted(p.name for p in (photos / "annotated").iterdir()) == ["a.annotated.jpg", "b.annotated.jpg"]


def test_resume_with_other_options_is_refused_not_mixed(capsys, tiny_model_file, varied_model_file, photo, tmp_path,
                                                        monkeypatch):
    """--resume kept the rows another model (or other views) had written: one CSV read as one model's."""
    second = tmp_path / "second.jpg"
    second.write_bytes(photo.read_bytes())
    rows = tmp_path / "rows.csv"
    common = ["predict", "--detector", "haar", "--tta", "none", "--no-progress", "--csv", rows]
    assert run(capsys, *common, photo, "--model", tiny_model_file)[0] == 0
    before = rows.read_text()
    for change in (["--model", varied_model_file], ["--model", tiny_model_file, "--tta", "flip"],
                   ["--model", tiny_model_file, "--every", "2"]):
        status, _, err = run(capsys, *common, photo, second, *change, "--resume")
        assert status == 2 and "was written with other options: --" in err and rows.read_text() == before, err
    assert "--model" in run(capsys, *common, photo, second, "--model", varied_model_file, "--resume")[2]
    # The same model named from another folder, by a relative path, is the same model.
    monkeypatch.chdir(tiny_model_file.parent)
    status, _, err = run(capsys, *common, photo, second, "--model", tiny_model_file.name, "--resume")
    assert status == 0 and "1 of 2 source(s) finished earlier" in err, err
    assert [r["source"] for r in _csv_rows(rows)] == [str(photo)] * 2 + [str(second)] * 2
    # torch and onnx (auto) give the same float32 numbers: a resume may name the other.
    status, _, err = run(capsys, *common, photo, second, "--model", tiny_model_file.name, "--backend", "torch", "--resume")
    assert status == 0 and "2 of 2 source(s) finished earlier" in err, err
    # The same path holding other weights (the file retrained or replaced) is another model.
    tiny_model_file.write_bytes(varied_model_file.read_bytes())
    before = rows.read_text()
    status, _, err = run(capsys, *common, photo, second, "--model", tiny_model_file.name, "--resume")
    assert status == 2 and "other options: the model's weights (the file at that path was retrained" in err, err
    assert rows.read_text() == before
    # A model that cannot be read is said as such, not as weights that changed.
    tiny_model_file.unlink()
    status, _, err = run(capsys, *common, photo, second, "--model", tiny_model_file.name, "--resume")
    assert status != 0 and "no such model" in err and "retrained" not in err, err


def test_detector_none_is_no_detect(capsys, tiny_model_file, photo):
    """predict takes --detector none, as evaluate, explain and serve do; --no-detect is the same."""
    answers = []
    for option in (["--detector", "none"], ["--no-detect"]):
        status, out, err = run(capsys, "predict", photo, "--model", tiny_model_file, "--json", *option)
        assert status == 0, err
        answers.append(json.loads(out))
    height, width = cv2.imread(str(photo)).shape[:2]
    assert answers[0] == answers[1] and len(answers[0]) == 1
    assert (answers[0][0]["x"], answers[0][0]["y"], answers[0][0]["w"], answers[0][0]["h"]) == (0, 0, width, height)


def test_an_annotated_picture_that_cannot_be_written_is_said_as_such(capsys, tiny_model_file, photo, tmp_path,
                                                                     monkeypatch):
    """The faces' rows are kept; the error row says the picture is what is missing, and why, in words."""
    import ferkit.vision.annotate as annotate_module

    def refuse(path, image):
        raise PermissionError(1, "Operation not permitted", str(path))

    monkeypatch.setattr(annotate_module, "write_image", refuse)
    status, out, err = run(capsys, "predict", photo, "--model", tiny_model_file, "--detector", "haar",
                           "--annotate", tmp_path / "out.jpg", "--json")
    rows = json.loads(out)
    assert status == 1 and [r["face"] for r in rows] == [0, 1, None]
    assert rows[-1]["error"] == f"{tmp_path / 'out.jpg'}: annotated picture not written (Operation not permitted)"


def test_auto_detection_says_when_it_falls_back_to_haar(capsys, tiny_model_file, photo, monkeypatch):
    """Without RetinaFace, `auto` is Haar, which finds fewer faces and boxes them differently: said once
    on stderr (it was silent), and not when a detector is named."""
    import ferkit.vision.retinaface as retinaface

    monkeypatch.setattr(retinaface, "available", lambda: False)
    status, out, err = run(capsys, "predict", photo, "--model", tiny_model_file, "--json")
    assert status == 0 and json.loads(out)
    assert err.count("detector: haar (RetinaFace, which finds more faces, needs onnxruntime") == 1
    status, _, err = run(capsys, "predict", photo, "--model", tiny_model_file, "--detector", "haar", "--json")
    assert status == 0 and "detector:" not in err
