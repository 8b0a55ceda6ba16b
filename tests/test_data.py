"""The data layer: every input form, bad inputs, the cache, preprocessing, augmentation, balancing."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import SHARED, synthetic_faces, write_class_folders
from ferkit.data import CLASSES, DataError, Split, load_fer2013
from ferkit.data.augment import AugmentConfig, BatchAugmenter, center_crop, ten_crop, tta_views
from ferkit.data.balance import balanced_indices, class_weights
from ferkit.data.preprocess import Normalizer, equalize_histograms
from ferkit.tta import views_for


def write_csv(path: Path, rows: list[tuple], header: str = "emotion,pixels,Usage") -> Path:
    lines = [header] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def pixels(value: int, count: int = 2304) -> str:
    return " ".join([str(value)] * count)


# ----------------------------------------------------------------------------- input forms


def test_csv_form_splits_by_usage(tmp_path):
    path = write_csv(tmp_path / "fer2013.csv", [
        (3, pixels(10), "Training"), (0, pixels(20), "Training"),
        (6, pixels(30), "PublicTest"), (5, pixels(40), "PrivateTest"),
    ])
    data = load_fer2013(path)
    assert list(data.splits) == ["training", "publictest", "privatetest"]
    train = data["training"]
    assert train.images.shape == (2, 48, 48) and train.images.dtype == np.uint8
    assert train.labels.tolist() == [3, 0]
    assert int(train.images[1, 0, 0]) == 20
    assert data["publictest"].labels.tolist() == [6]
    assert data["privatetest"].labels.tolist() == [5]


def test_dataset_root_splits_test_folder_by_prefix(fer_root):
    data = load_fer2013(fer_root)
    assert set(data.splits) == {"training", "publictest", "privatetest"}
    assert len(data["training"]) == 70 and len(data["publictest"]) == 14 and len(data["privatetest"]) == 14
    # labels come from the class folder, in canonical order
    assert set(data["training"].labels.tolist()) == set(range(7))


def test_single_class_folder_layout_is_one_split(tmp_path):
    faces, labels = synthetic_faces(14)
    write_class_folders(tmp_path / "faces", faces, labels, prefix="img")
    data = load_fer2013(tmp_path / "faces")
    assert list(data.splits) == ["all"]
    assert sorted(data["all"].labels.tolist()) == sorted(labels.tolist())


def test_one_class_folder_given_as_the_dataset_names_its_parent(tmp_path):
    faces, labels = synthetic_faces(7)
    write_class_folders(tmp_path / "test", faces, labels, prefix="x")
    with pytest.raises(DataError, match=rf"this is the folder of one class \(happy\); give the folder that holds "
                                        rf"the class folders \({re.escape(str(tmp_path / 'test'))}\)"):
        load_fer2013(tmp_path / "test" / "happy", cache=False)


def test_train_val_test_layout_maps_val_to_publictest(tmp_path):
    faces, labels = synthetic_faces(7)
    for folder in ("train", "val", "test"):
        write_class_folders(tmp_path / folder, faces, labels, prefix="x")
    data = load_fer2013(tmp_path)
    assert set(data.splits) == {"training", "publictest", "privatetest"}
    # A mapping, as data["training"] suggests: iterate it, ask "in", list its keys and items.
    assert list(data) == list(data.keys()) == list(data.splits) and len(data) == 3
    assert "training" in data and "val" in data and "test" in data and "holdout" not in data and 3 not in data
    assert {name: len(split) for name, split in data.items()} == {"training": 7, "publictest": 7, "privatetest": 7}


def test_the_split_named_test_is_the_test_folder_in_a_train_val_test_layout(tmp_path):
    """``--split test`` scored val/ under the name PublicTest: "test" is the folder the user called so."""
    faces, labels = synthetic_faces(21, seed=5)
    write_class_folders(tmp_path / "tvt" / "train", faces[:7], labels[:7], "x")
    write_class_folders(tmp_path / "tvt" / "val", faces[7:10], labels[7:10], "x")
    write_class_folders(tmp_path / "tvt" / "test", faces[10:], labels[10:], "x")
    data = load_fer2013(tmp_path / "tvt", cache=False)
    assert len(data.split("test")) == 11 and data.split("test") is data["privatetest"]
    assert len(data.split("val")) == 3 and len(data.split("publictest")) == 3
    # Kaggle's train/ + test/: test/ is PublicTest, as before.
    write_class_folders(tmp_path / "kaggle" / "train", faces[:7], labels[:7], "x")
    write_class_folders(tmp_path / "kaggle" / "test", faces[7:], labels[7:], "x")
    data = load_fer2013(tmp_path / "kaggle", cache=False)
    assert data.split("test") is data["publictest"] and len(data["publictest"]) == 14


def test_folders_decide_the_split_over_file_names(tmp_path):
    """A val/ made of Training_ files moved out of train/ stays validation (it merged back into
    training before), and a test/ beside val/ stays PrivateTest though its files say PublicTest;
    the disagreement is said once.  Kaggle's mixed test/ is still split by names (test above)."""
    faces, labels = synthetic_faces(21, seed=3)
    write_class_folders(tmp_path / "train", faces[:7], labels[:7], "Training")
    write_class_folders(tmp_path / "val", faces[7:14], labels[7:14], "Training")
    write_class_folders(tmp_path / "test", faces[14:], labels[14:], "PublicTest")
    with pytest.warns(UserWarning, match=r"14 file\(s\) are named for another split .*the folder decides"):
        data = load_fer2013(tmp_path)
    assert {name: len(split) for name, split in data.splits.items()} == {
        "training": 7, "publictest": 7, "privatetest": 7}
    np.testing.assert_array_equal(np.sort(data["publictest"].images.reshape(7, -1), 0),
                                  np.sort(faces[7:14].reshape(7, -1), 0))
    # Only a folder named test/ is split by names (Kaggle's holds both test sets), not val/ or PublicTest/.
    other = tmp_path / "other"
    write_class_folders(other / "train", faces[:7], labels[:7], "Training")
    write_class_folders(other / "val", faces[7:14], labels[7:14], "PrivateTest")
    with pytest.warns(UserWarning, match=r"7 file\(s\) are named for another split"):
        data = load_fer2013(other)
    assert {name: len(split) for name, split in data.splits.items()} == {"training": 7, "publictest": 7}
    write_class_folders(tmp_path / "PublicTest", faces[14:], labels[14:], "PrivateTest")
    with pytest.warns(UserWarning, match=r"7 file\(s\) are named for another split"):
        data = load_fer2013(tmp_path / "PublicTest")
    assert {name: len(split) for name, split in data.splits.items()} == {"publictest": 7}


def test_numbered_class_folders_are_explained(tmp_path):
    for name in ("1", "2", "7"):
        (tmp_path / "raf" / name).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "raf" / name / "a.png"), np.zeros((48, 48), np.uint8))
    with pytest.raises(DataError, match=r"numbered \(1, 2, 7\).*rename them"):
        load_fer2013(tmp_path / "raf")


def test_class_names_case_insensitive_with_synonyms(tmp_path):
    face = np.full((48, 48), 100, np.uint8)
    for name in ("Anger", "HAPPINESS", "sadness", "Surprised", "neutral", "Disgust", "fear"):
        (tmp_path / "d" / name).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "d" / name / "a.png"), face)
    data = load_fer2013(tmp_path / "d")
    assert sorted(data["all"].labels.tolist()) == list(range(7))


def test_colour_and_odd_sizes_are_converted_with_warning(tmp_path):
    folder = tmp_path / "d" / "happy"
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / "colour.png"), np.full((96, 80, 3), (0, 0, 255), np.uint8))
    cv2.imwrite(str(folder / "ok.png"), np.zeros((48, 48), np.uint8))
    with pytest.warns(UserWarning, match="1 image"):
        data = load_fer2013(tmp_path / "d")
    assert data["all"].images.shape == (2, 48, 48)
    assert data.converted == 1


def test_real_fer2013_files(tmp_path):
    source = SHARED / "test" / "happy"
    if not source.is_dir():
        pytest.skip("shared FER2013 not available")
    target = tmp_path / "test" / "happy"
    target.mkdir(parents=True)
    for path in sorted(source.iterdir())[:5]:
        (target / path.name).write_bytes(path.read_bytes())
    data = load_fer2013(tmp_path)
    assert len(data["publictest"]) == 5
    assert data["publictest"].images.std() > 10  # real faces, not blank


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("row, message", [
    ((3, pixels(10, 2000), "Training"), "expected 2304 pixels, got 2000"),
    ((9, pixels(10), "Training"), "emotion 9 is outside 0..6"),
    ((3, pixels(10), "Validation"), "unknown Usage 'Validation'"),
    ((3, pixels(300), "Training"), "outside 0..255"),
    ((3, "1 " * 2303 + "99999999999999999999999", "Training"), "non-integer"),  # too big for int64
])
def test_bad_csv_rows_name_file_and_row(tmp_path, row, message):
    path = write_csv(tmp_path / "f.csv", [(0, pixels(1), "Training"), row])
    with pytest.raises(DataError) as info:
        load_fer2013(path)
    assert f"{path}:3" in str(info.value) and message in str(info.value)


def test_a_row_that_is_not_utf8_is_named_and_can_be_skipped(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(("emotion,pixels,Usage\n0," + pixels(1) + ",Training\n").encode()
                     + b"\xe9\xe8," + pixels(1).encode() + b",Training\n")
    with pytest.raises(DataError, match=f"{path}:3: emotion"):
        load_fer2013(path)
    data = load_fer2013(path, skip_bad=True)
    assert len(data["training"]) == 1 and ":3:" in data.problems[0]


def test_a_folder_that_is_not_a_class_can_be_skipped(tmp_path):
    root = tmp_path / "d"
    faces, labels = synthetic_faces(7)
    write_class_folders(root, faces, labels)
    (root / "contempt").mkdir()
    (root / "contempt" / "x.png").write_bytes((root / "happy").joinpath(next(iter(
        p.name for p in (root / "happy").iterdir()))).read_bytes())
    with pytest.raises(DataError, match="contempt: unknown class folder"):
        load_fer2013(root)
    data = load_fer2013(root, skip_bad=True)
    assert sum(len(split) for split in data.splits.values()) == 7
    assert any("contempt: unknown class folder" in p for p in data.problems)
    # A numbered folder beside named ones says why numbers are not read.
    (root / "contempt").rename(root / "4")
    with pytest.raises(DataError, match="4: unknown class folder .*RAF-DB's 1-7: surprise"):
        load_fer2013(root)


def test_a_macs_zip_metadata_folder_is_never_data(tmp_path):
    """__MACOSX stopped a folder of class folders (an unknown class) but was only a warning beside train/."""
    root = tmp_path / "d"
    faces, labels = synthetic_faces(7)
    write_class_folders(root, faces, labels)
    (root / "__MACOSX" / "happy").mkdir(parents=True)
    (root / "__MACOSX" / "happy" / "._x.png").write_bytes(b"\0\0")
    data = load_fer2013(root, cache=False)
    assert len(data["training"]) == 7 and not data.problems


def test_csv_emotions_written_as_class_names_are_read(tmp_path):
    """Re-packagings write "Angry" or "happiness" where FER2013 has 0 and 3; a class FER2013 lacks is a bad row."""
    path = write_csv(tmp_path / "words.csv", [("Angry", pixels(1), "Training"), (" happiness", pixels(2), "Training"),
                                              ("contempt", pixels(3), "Training"), (6, pixels(4), "PublicTest")])
    with pytest.raises(DataError, match=r"words.csv:4: emotion 'contempt' is neither a number 0..6 nor a class"):
        load_fer2013(path, cache=False)
    data = load_fer2013(path, skip_bad=True, cache=False)
    assert data["training"].labels.tolist() == [0, 3] and data["publictest"].labels.tolist() == [6]


def test_datasets_ferkit_cannot_read_say_what_to_do(tmp_path):
    """Refusals that name what was found: another delimiter, an archive, a dataset one level down,
    loose pictures, numbered class folders in every split (where --skip-bad could not help)."""
    write_csv(tmp_path / "semi.csv", [], header="emotion;pixels;Usage")
    with pytest.raises(DataError, match="separated by semicolons, FER2013's by commas"):
        load_fer2013(tmp_path / "semi.csv", cache=False)
    (tmp_path / "fer2013.zip").write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError, match="fer2013.zip: an archive: extract it"):
        load_fer2013(tmp_path / "fer2013.zip", cache=False)
    faces, labels = synthetic_faces(7)
    write_class_folders(tmp_path / "outer" / "fer2013" / "train", faces, labels)
    with pytest.raises(DataError, match=f"one level down: give {re.escape(str(tmp_path / 'outer' / 'fer2013'))}"):
        load_fer2013(tmp_path / "outer", cache=False)
    loose = tmp_path / "jaffe"
    loose.mkdir()
    for i, face in enumerate(faces):
        cv2.imwrite(str(loose / f"KA.AN{i}.39.png"), face)
    with pytest.raises(DataError, match="holds 7 picture\\(s\\) but no class folders"):
        load_fer2013(loose, cache=False)
    for split in ("train", "test"):
        for number in ("1", "2"):
            (tmp_path / "raf" / split / number).mkdir(parents=True)
            cv2.imwrite(str(tmp_path / "raf" / split / number / "a.png"), faces[0])
    for skip_bad in (False, True):
        with pytest.raises(DataError, match="folders are numbered \\(1, 2\\)") as info:
            load_fer2013(tmp_path / "raf", skip_bad=skip_bad, cache=False)
        assert "--skip-bad" not in str(info.value)


def test_a_csv_row_that_lost_a_field_is_bad_not_training(tmp_path):
    """A PublicTest row whose Usage cell went missing once joined the Training split in silence."""
    path = tmp_path / "f.csv"
    path.write_text("emotion,pixels,Usage\n0," + pixels(1) + ",Training\n3," + pixels(2) + "\n"
                    + "4," + pixels(3) + ",PublicTest,extra\n5," + pixels(4) + ",\n")
    with pytest.raises(DataError, match=f"{path}:3: 2 field\\(s\\) where the header has 3"):
        load_fer2013(path)
    data = load_fer2013(path, skip_bad=True)
    assert data["training"].labels.tolist() == [0] and list(data.splits) == ["training"]
    assert [p.split(": ", 1)[1] for p in data.problems] == ["2 field(s) where the header has 3",
                                                             "4 field(s) where the header has 3",
                                                             "unknown Usage '' (expected Training, PublicTest or "
                                                             "PrivateTest)"]


def test_when_nothing_can_be_read_the_error_says_why(tmp_path):
    path = write_csv(tmp_path / "f.csv", [(9, pixels(1), "Training"), (8, pixels(1), "Training")])
    with pytest.raises(DataError, match=r"no faces found \(2 bad item\(s\); the first: .*:2: emotion 9"):
        load_fer2013(path, skip_bad=True)


def test_what_a_class_folder_holds_but_cannot_be_read_is_reported(tmp_path, monkeypatch):
    """Broken links, pipes and sub-folders that cannot be listed were once passed over in silence;
    an unreadable class folder stopped even a --skip-bad load.  Sub-folders (one per subject, say) are read."""
    root = tmp_path / "d"
    faces, labels = synthetic_faces(7)
    write_class_folders(root, faces, labels, prefix="ok")
    (root / "happy" / "subject1").mkdir()
    (root / "happy" / "subject1" / "more.png").write_bytes((root / "happy" / "ok_3.png").read_bytes())
    (root / "happy" / "gone.png").symlink_to(tmp_path / "deleted.png")
    os.mkfifo(root / "sad" / "pipe.png")
    (root / "fear" / "linked").symlink_to(root / "happy", target_is_directory=True)
    real_scandir, locked = os.scandir, str(root / "angry")

    def scandir(path="."):  # as without read permission on the folder (tests may run as root)
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(DataError, match="angry: cannot list folder"):
        load_fer2013(root, cache=False)
    data = load_fer2013(root, skip_bad=True, cache=False)
    assert sorted(data["all"].sources) == sorted([str(p) for p in root.glob("*/ok_*.png") if p.parent.name != "angry"]
                                                 + [str(root / "happy" / "subject1" / "more.png")])
    assert sorted(p.split(": ", 1)[1] for p in data.problems) == [
        "a link to a folder (not followed)", "broken link", "cannot list folder (permission denied)",
        "not a regular file"]
    os.mkfifo(tmp_path / "named.csv")  # a pipe given by name once read as an empty CSV file
    with pytest.raises(DataError, match="named.csv: not a regular file or folder"):
        load_fer2013(tmp_path / "named.csv", cache=False)


def test_csv_missing_column(tmp_path):
    path = write_csv(tmp_path / "f.csv", [(0, "Training")], header="emotion,Usage")
    with pytest.raises(DataError, match="missing column.*pixels"):
        load_fer2013(path)
    (tmp_path / "binary.csv").write_bytes(bytes(range(9)) + b",x\n1,2\n")  # no control codes to the terminal
    with pytest.raises(DataError) as caught:
        load_fer2013(tmp_path / "binary.csv", cache=False)
    assert str(caught.value).isprintable() and "(found: not text: \\x00\\x01" in str(caught.value)


def test_skip_bad_keeps_the_rest_and_reports_each(tmp_path):
    path = write_csv(tmp_path / "f.csv", [
        (0, pixels(1), "Training"), (9, pixels(1), "Training"), (1, pixels(1, 5), "Training"), (2, pixels(2), "Training"),
    ])
    data = load_fer2013(path, skip_bad=True)
    assert data["training"].labels.tolist() == [0, 2]
    assert len(data.problems) == 2 and ":3:" in data.problems[0] and ":4:" in data.problems[1]


@pytest.fixture
def folder_with_bad_files(tmp_path) -> Path:
    root = tmp_path / "d"
    faces, labels = synthetic_faces(7)
    write_class_folders(root, faces, labels, prefix="ok")
    ok = (root / "happy" / "ok_3.png").read_bytes()
    (root / "happy" / "truncated.png").write_bytes(ok[: len(ok) // 2])
    (root / "sad" / "notes.txt").write_text("not an image")
    (root / "sad" / "fake.jpg").write_text("not a jpeg either")
    (root / "fear" / "empty.png").write_bytes(b"")
    return root


def test_bad_image_stops_by_default_naming_the_file(folder_with_bad_files):
    with pytest.raises(DataError) as info:
        load_fer2013(folder_with_bad_files)
    assert str(folder_with_bad_files) in str(info.value)


def test_bad_images_skipped_and_reported(folder_with_bad_files):
    data = load_fer2013(folder_with_bad_files, skip_bad=True)
    assert len(data["all"]) == 7
    text = "\n".join(data.problems)
    assert "truncated.png: corrupt or truncated" in text
    assert "notes.txt: not an image file" in text
    assert "fake.jpg: not an image" in text
    assert "empty.png: empty file" in text


def test_every_picture_format_predict_reads_is_a_dataset_picture_too(tmp_path):
    """A dataset kept as .ppm (FERET), .gif or .jpe loads; before, only predict read those."""
    from PIL import Image

    from ferkit.vision.sources import IMAGE_EXTENSIONS as SOURCE_EXTENSIONS

    faces, _ = synthetic_faces(3)
    for face, suffix in zip(faces, (".ppm", ".gif", ".jpe")):
        (tmp_path / "d" / "happy").mkdir(parents=True, exist_ok=True)
        Image.fromarray(face).save(tmp_path / "d" / "happy" / f"face{suffix}", format={".jpe": "JPEG"}.get(suffix))
    with pytest.warns(UserWarning, match="1 image"):  # the GIF's palette is converted to gray
        data = load_fer2013(tmp_path / "d", cache=False)
    assert len(data["all"]) == 3 and not data.problems
    read = {Path(source).suffix: image for source, image in zip(data["all"].sources, data["all"].images)}
    assert np.array_equal(read[".ppm"], faces[0]) and np.array_equal(read[".gif"], faces[1])  # lossless ones
    assert ".ppm" in SOURCE_EXTENSIONS


def test_empty_folder_and_missing_path(tmp_path):
    (tmp_path / "d" / "happy").mkdir(parents=True)
    with pytest.raises(DataError, match="empty class folder"):
        load_fer2013(tmp_path / "d")
    with pytest.raises(DataError, match="no such file or directory"):
        load_fer2013(tmp_path / "missing")
    (tmp_path / "e").mkdir()
    with pytest.raises(DataError, match="no FER2013 layout"):
        load_fer2013(tmp_path / "e")


def test_unknown_split_names_the_existing_ones(fer_root):
    data = load_fer2013(fer_root)
    with pytest.raises(DataError, match="splits found: training, publictest, privatetest"):
        data.split("validation-set")


# ----------------------------------------------------------------------------- cache


def test_second_load_comes_from_cache_and_changes_invalidate_it(fer_root, monkeypatch):
    first = load_fer2013(fer_root)
    cache_files = list(Path(os.environ["FERKIT_CACHE_DIR"]).glob("*.npz"))
    assert len(cache_files) == 1

    import ferkit.data.fer2013 as module

    def no_decoding(*_args, **_kwargs):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(module, "decode_face", no_decoding)
    second = load_fer2013(fer_root)
    assert np.array_equal(first["training"].images, second["training"].images)
    assert np.array_equal(first["publictest"].labels, second["publictest"].labels)

    monkeypatch.undo()
    monkeypatch.setenv("FERKIT_CACHE_DIR", str(cache_files[0].parent))
    victim = next((fer_root / "train" / "happy").iterdir())
    cv2.imwrite(str(victim), np.full((48, 48), 7, np.uint8))
    os.utime(victim, ns=(1, 1))
    third = load_fer2013(fer_root)
    assert (third["training"].images == 7).all(axis=(1, 2)).any()


def test_a_cache_that_cannot_be_written_is_said_once_and_costs_only_time(fer_root, tmp_path, monkeypatch):
    """FERKIT_CACHE_DIR naming a file once made every load decode again without a word of why."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file")
    monkeypatch.setenv("FERKIT_CACHE_DIR", str(blocker))
    with pytest.warns(UserWarning, match=f"cache {re.escape(str(blocker))}: cannot write") as said:
        first = load_fer2013(fer_root)
    assert len(said) == 1 and len(first["training"]) > 0 and blocker.read_text() == "a file"
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second load decodes again, and says nothing more
        assert np.array_equal(load_fer2013(fer_root)["training"].images, first["training"].images)


def test_a_file_copied_over_with_its_old_date_and_size_is_read_again(fer_root):
    """The key once used size and modification time only: `cp -p` of another face kept both."""
    load_fer2013(fer_root)
    victim = next((fer_root / "train" / "happy").iterdir())
    stat = victim.stat()
    face = cv2.imread(str(victim), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(victim), 255 - face)  # same size, other pixels
    assert victim.stat().st_size == stat.st_size
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert any(np.array_equal(image, 255 - face) for image in load_fer2013(fer_root)["training"].images)


def test_an_empty_val_folder_changes_the_splits_a_cached_load_gives(fer_root):
    """Empty class folders were not in the key: a cached load kept test/ as PublicTest after val/ appeared."""
    assert "publictest" in load_fer2013(fer_root).splits
    (fer_root / "val" / "happy").mkdir(parents=True)
    with pytest.raises(DataError, match="empty class folder"):
        load_fer2013(fer_root)


def test_a_file_name_in_another_encoding_than_utf8_is_loaded(fer_root):
    """An old zip's latin-1 name once stopped every cached load with a UnicodeEncodeError naming no file."""
    source = next((fer_root / "train" / "happy").iterdir())
    odd = os.fsdecode(os.fsencode(str(fer_root / "train" / "happy")) + b"/gesicht_\xe4.png")
    shutil.copy(source, odd)
    assert len(load_fer2013(fer_root)["training"]) == 71


def test_a_stray_quote_in_the_csv_costs_its_own_row_only(tmp_path):
    """A quote opened a field that swallowed the rows after it (PrivateTest lost without a word), or stopped
    the load; blank lines put the line numbers off."""
    rows = [(0, pixels(1), "Training"), (1, '"' + pixels(2), "Training"), (2, pixels(3), "PublicTest")]
    path = write_csv(tmp_path / "quote.csv", rows)
    path.write_text(path.read_text().replace("\n2,", "\n\n\n2,") + f"9,{pixels(4)},PrivateTest\n"
                    f"3,{pixels(5)},PrivateTest\n")
    with pytest.raises(DataError, match=r"quote.csv:3: malformed CSV line"):
        load_fer2013(path)
    data = load_fer2013(path, skip_bad=True)
    assert (len(data["training"]), len(data["publictest"]), len(data["privatetest"])) == (1, 1, 1)
    assert [p.split(": ")[0].rsplit(":", 1)[1] for p in data.problems] == ["3", "7"]  # file lines, blank ones counted


def test_a_cached_load_names_files_by_the_path_given_now(tmp_path, monkeypatch):
    """A cached entry once named rows by the path its first load was given (relative, from another folder)."""
    write_csv(tmp_path / "rows.csv", [(0, pixels(1), "Training"), (8, pixels(2), "Training")])
    monkeypatch.chdir(tmp_path)
    assert load_fer2013("rows.csv", skip_bad=True).problems[0].startswith("rows.csv:3:")
    monkeypatch.chdir("/")
    again = load_fer2013(tmp_path / "rows.csv", skip_bad=True)
    assert again.problems[0].startswith(f"{tmp_path / 'rows.csv'}:3:")
    assert again["training"].sources == [f"{tmp_path / 'rows.csv'}:2"]


@pytest.mark.parametrize("damage", ["garbage", "zip header", "cut short"])
def test_damaged_cache_entry_is_rebuilt(fer_root, damage):
    load_fer2013(fer_root)
    entry = next(Path(os.environ["FERKIT_CACHE_DIR"]).glob("*.npz"))
    whole = entry.read_bytes()
    entry.write_bytes({"garbage": b"garbage", "zip header": b"PK\x03\x04" + b"\0" * 60,
                       "cut short": whole[: len(whole) // 2]}[damage])
    assert len(load_fer2013(fer_root)["training"]) == 70


# ----------------------------------------------------------------------------- preprocessing


def test_normalizer_standardises_the_faces_it_is_fitted_on_and_round_trips():
    train = np.stack([np.full((48, 48), 50, np.uint8), np.full((48, 48), 150, np.uint8)])
    norm = Normalizer.fit(train, "global")
    out = norm(torch.from_numpy(train).unsqueeze(1))
    assert abs(float(out.mean())) < 1e-5 and abs(float(out.std(unbiased=False)) - 1) < 1e-4
    pixel = Normalizer.fit(train, "pixel")
    assert pixel.mean.shape == (48, 48)
    restored = Normalizer.from_state_dict(pixel.state_dict())
    assert torch.equal(restored.mean, pixel.mean) and torch.equal(restored.std, pixel.std)


def test_histogram_equalisation_stretches_contrast():
    face = np.clip(np.arange(48 * 48).reshape(48, 48) // 40 + 100, 0, 255).astype(np.uint8)
    equalised = equalize_histograms(face[None])[0]
    assert equalised.max() - equalised.min() > face.max() - face.min()
    norm = Normalizer.fit(face[None], "global", equalize=True)
    assert np.array_equal(norm.prepare(face[None]), equalised[None])


# ----------------------------------------------------------------------------- augmentation


def test_augmentation_shapes_and_independent_randomness():
    x = torch.randn(64, 1, 48, 48)
    out = BatchAugmenter(AugmentConfig(crop=44), torch.Generator().manual_seed(0))(x)
    assert out.shape == (64, 1, 44, 44)
    same = BatchAugmenter(AugmentConfig(crop=44), torch.Generator().manual_seed(0))(x)
    assert torch.equal(out, same)  # seeded: reproducible
    # the same face repeated gets different random parameters per image
    repeated = BatchAugmenter(AugmentConfig(crop=44), torch.Generator().manual_seed(1))(x[:1].repeat(8, 1, 1, 1))
    assert len({tuple(v.flatten().tolist()) for v in repeated}) == 8


def test_augmentation_identity_when_disabled():
    x = torch.randn(4, 1, 48, 48)
    cfg = AugmentConfig(flip=False, shift=0, rotate=0, scale=0, crop=48, erase_p=0)
    out = BatchAugmenter(cfg)(x)
    assert torch.allclose(out, x, atol=1e-5)


def test_flip_only_mirrors():
    x = torch.arange(48 * 48, dtype=torch.float32).view(1, 1, 48, 48).repeat(32, 1, 1, 1)
    cfg = AugmentConfig(flip=True, shift=0, rotate=0, scale=0, crop=48, erase_p=0)
    out = BatchAugmenter(cfg, torch.Generator().manual_seed(0))(x)
    flipped = [torch.allclose(o, x[0].flip(-1), atol=1e-3) for o in out]
    kept = [torch.allclose(o, x[0], atol=1e-3) for o in out]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)


def test_vertical_flip_turns_faces_upside_down_and_leaves_the_random_stream_alone_when_off():
    """Seed 003 flips vertically too (--aug-vflip); off, it draws nothing, so runs made before it resume exactly."""
    x = torch.arange(48 * 48, dtype=torch.float32).view(1, 1, 48, 48).repeat(32, 1, 1, 1)
    cfg = AugmentConfig(flip=False, vflip=True, shift=0, rotate=0, scale=0, crop=48, erase_p=0)
    out = BatchAugmenter(cfg, torch.Generator().manual_seed(0))(x)
    upside = [torch.allclose(o, x[0].flip(-2), atol=1e-3) for o in out]
    kept = [torch.allclose(o, x[0], atol=1e-3) for o in out]
    assert all(u or k for u, k in zip(upside, kept)) and any(upside) and any(kept)
    faces = torch.randn(8, 1, 48, 48)
    generators = [torch.Generator().manual_seed(3) for _ in range(2)]
    BatchAugmenter(AugmentConfig(), generators[0])(faces)
    BatchAugmenter(AugmentConfig(vflip=False), generators[1])(faces)
    assert torch.equal(torch.rand(4, generator=generators[0]), torch.rand(4, generator=generators[1]))


def test_random_erasing_zeroes_a_rectangle():
    x = torch.ones(16, 1, 48, 48)
    cfg = AugmentConfig(flip=False, shift=0, rotate=0, scale=0, crop=48, erase_p=1.0, erase_min=8, erase_max=8)
    out = BatchAugmenter(cfg)(x)
    assert ((out == 0).sum(dim=(1, 2, 3)) == 64).all()


def test_ten_crop_and_test_views():
    x = torch.arange(48 * 48, dtype=torch.float32).view(1, 1, 48, 48)
    crops = ten_crop(x, 44)
    assert crops.shape == (10, 1, 1, 44, 44)
    assert torch.equal(crops[0, 0, 0], x[0, 0, :44, :44])
    assert torch.equal(crops[3, 0, 0], x[0, 0, 4:, 4:])
    assert torch.equal(crops[4], center_crop(x, 44))
    assert torch.equal(crops[5], crops[0].flip(-1))
    assert tta_views(x, 44, "none").shape[0] == 1
    assert tta_views(x, 44, "flip").shape[0] == 2
    # A model that takes the whole face has no room to crop: ten-crop is the flip pair, a fifth of the cost.
    torch.testing.assert_close(tta_views(x, 48, "tencrop"), tta_views(x, 48, "flip"))
    assert tta_views(x, 48, "tencrop").shape[0] == 2
    assert views_for("tencrop", 48) == "flip" and views_for("auto", 44) == "tencrop" and views_for("none", 48) == "none"
    with pytest.raises(ValueError, match="none, flip or tencrop"):
        tta_views(x, 44, "five")


# ----------------------------------------------------------------------------- balancing


def test_balancing_modes():
    labels = np.array([0] * 50 + [1] * 5 + [2] * 20)
    rng = np.random.default_rng(0)
    under = balanced_indices(labels, "undersample", rng, num_classes=3)
    assert np.bincount(labels[under]).tolist() == [5, 5, 5]
    over = balanced_indices(labels, "oversample", rng, num_classes=3)
    assert np.bincount(labels[over]).tolist() == [50, 50, 50]
    for mode in ("none", "weights"):
        kept = balanced_indices(labels, mode, rng, num_classes=3)
        assert sorted(kept.tolist()) == list(range(75))
    weights = class_weights(labels, num_classes=3)
    assert weights[1] > weights[2] > weights[0]
    assert abs(float((weights[labels]).mean()) - 1) < 1e-6
    weights = class_weights(labels, num_classes=4)  # a class with no face (once averaged 3/4 per face)
    assert weights[3] == 0 and abs(float((weights[labels]).mean()) - 1) < 1e-6
    with pytest.raises(ValueError, match="undersample"):
        balanced_indices(labels, "smote", rng)


# ----------------------------------------------------------------------------- CLI


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ferkit", *args], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_cli_stats_json(fer_root):
    result = run_cli("data", "stats", str(fer_root), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert sum(report["splits"]["training"].values()) == 70
    assert list(report["splits"]["training"]) == list(CLASSES)
    assert report["problems"] == [] and report["repeats_of_training"] == {"publictest": 0, "privatetest": 0}


def test_cli_stats_draws_the_class_distribution(fer_root, tmp_path):
    """Seed 000 fig. 2 / seed 003 fig. 4: faces per class and split, as a bar chart beside the table."""
    chart = tmp_path / "classes.png"
    result = run_cli("data", "stats", str(fer_root), "--plot", str(chart))
    assert result.returncode == 0 and f"wrote {chart}" in result.stderr, result.stderr
    picture = cv2.imread(str(chart))
    assert picture is not None and picture.shape[1] > 600 and picture.std() > 10  # a drawn chart, not blank
    result = run_cli("data", "stats", str(fer_root), "--plot", str(tmp_path / "classes.jpg"))
    assert result.returncode == 2 and "name it .png" in result.stderr and not (tmp_path / "classes.jpg").exists()


def test_cli_augment_pictures_the_views_training_sees(fer_root, tmp_path):
    """Seed 001 fig. 3 / seed 004 fig. 3: a face of each class, whole and augmented with the --aug-* settings."""
    picture = tmp_path / "aug.png"
    result = run_cli("data", "augment", str(fer_root), "--out", str(picture), "--views", "3", "--aug-vflip", "yes")
    assert result.returncode == 0 and "7 faces, each whole and in 3 augmented views" in result.stdout, result.stderr
    drawn = cv2.imread(str(picture))
    assert drawn is not None and drawn.std() > 10
    for extra, message in ((["--views", "0"], "--views 0: must be between 1 and 20"),
                           (["--aug-crop", "x"], "invalid int value"),
                           (["--aug-erase-min", "30", "--aug-erase-max", "5"], "--aug-erase-min must be at least 1")):
        result = run_cli("data", "augment", str(fer_root), "--out", str(tmp_path / "b.png"), *extra)
        assert result.returncode == 2 and message in result.stderr and not (tmp_path / "b.png").exists()


def test_cli_stats_on_shared_fer2013():
    if not (SHARED / "train").is_dir():
        pytest.skip("shared FER2013 not available")
    result = run_cli("data", "stats", str(SHARED), "--json")
    assert result.returncode == 0, result.stderr
    splits = json.loads(result.stdout)["splits"]
    assert sum(splits["training"].values()) == 28709 and sum(splits["publictest"].values()) == 3589
    assert splits["training"]["disgust"] == 436 and splits["publictest"]["happy"] == 895
    assert json.loads(result.stdout)["repeats_of_training"] == {"publictest": 279}  # FER2013's own repeats


def test_cli_errors_are_one_line(tmp_path, folder_with_bad_files):
    result = run_cli("data", "stats", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "no such file or directory" in result.stderr
    result = run_cli("data", "stats", str(folder_with_bad_files))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    result = run_cli("data", "stats", str(folder_with_bad_files), "--skip-bad", "--json")
    assert result.returncode == 0
    assert len(json.loads(result.stdout)["problems"]) == 4


def test_datasets_print_as_a_summary_not_their_pixels(fer_root):
    dataset = load_fer2013(fer_root)
    text = repr(dataset)
    assert text.startswith("FER2013(training: 70, ") and len(text) < 200
    assert repr(dataset["training"]).startswith("Split(70 faces, 48x48, {'angry': 10")
    assert repr(Split(np.zeros((0,), np.uint8), np.zeros((0,), np.int64))).startswith("Split(0 faces")


def test_a_huge_jpeg_is_read_smaller_without_pillows_bomb_warning(tmp_path):
    """A 190-megapixel JPEG (a phone's 200 MP mode, a panorama) is decoded at a quarter of its size,
    from a path and from bytes, although Pillow refuses pictures that large (past 2x its
    MAX_IMAGE_PIXELS, about 179 Mpixel) and ferkit leaves that process-wide limit alone. Pillow's
    'decompression bomb' warning is about a size ferkit never decodes, so it is not passed on."""
    import warnings

    from PIL import Image

    from ferkit.data.images import read_image_scaled

    path = tmp_path / "panorama.jpg"
    Image.new("L", (14_000, 13_600), 128).save(path, quality=50)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for source in (path, path.read_bytes()):
            image, scale = read_image_scaled(source)
            assert scale == 0.25 and image.shape[:2] == (3_400, 3_500)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)], caught


def test_a_jpeg_claiming_billions_of_pixels_is_refused():
    """Past 8x ferkit's limit, a JPEG is refused from its header (other formats: Pillow's own limit,
    tests/test_server.py)."""
    import io

    from PIL import Image

    from ferkit.data.images import ImageDecodeError, read_image

    buffer = io.BytesIO()
    Image.new("L", (16, 16), 128).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = (60_000).to_bytes(2, "big") * 2  # height, width: 3.6 Gpixel
    with pytest.raises(ImageDecodeError, match=r"image too large \(60000x60000; limit 320,000,000 pixels"):
        read_image(bytes(data))


def test_importing_ferkit_leaves_pillows_bomb_limit_as_it_was():
    """Pillow's limit is process-wide: ferkit used to raise it to 160 Mpixel for its users' own code."""
    import subprocess
    import sys

    code = ("import PIL.Image as I; before = I.MAX_IMAGE_PIXELS; import ferkit, ferkit.app.cli, ferkit.vision.sources; "
            "print(before, I.MAX_IMAGE_PIXELS)")
    before, after = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                   check=True).stdout.split()
    assert before == after


def test_pictures_outside_the_class_folders_are_said(tmp_path, capsys):
    """A picture in the root or in train/ itself has no class and is not read: it used to vanish without a
    word (stats listed no problem). Notes beside the folders are not pictures and are not mentioned."""
    from ferkit.app.cli import main

    faces, labels = synthetic_faces(14, seed=9)
    for split in ("train", "test"):
        write_class_folders(tmp_path / "ds" / split, faces, labels, "img")
    cv2.imwrite(str(tmp_path / "ds" / "train" / "loose.png"), faces[0])
    (tmp_path / "ds" / "notes.txt").write_text("where the faces came from")
    with pytest.warns(UserWarning, match=r"1 picture\(s\) outside the class folders not read .*train/loose.png"):
        dataset = load_fer2013(tmp_path / "ds", cache=False)
    assert len(dataset["training"]) == 14
    assert main(["data", "stats", str(tmp_path / "ds"), "--json"]) == 0
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert len(problems) == 1 and "loose.png" in problems[0]


def test_subject_folders_and_an_empty_val_folder_keep_test_and_publictest_right(tmp_path):
    """test/ with one folder per subject inside each class is still the test/ split (it was taken for
    val/); an empty val/ is one bad item, and without its faces test/ is PublicTest again."""
    faces, labels = synthetic_faces(21, seed=4)
    for split, prefix in (("train", "a"), ("val", "b"), ("test", "c")):
        for subject in ("subj1", "subj2"):
            for i, (face, label) in enumerate(zip(faces, labels)):
                folder = tmp_path / "ds" / split / CLASSES[label] / subject
                folder.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(folder / f"{prefix}{i}.png"), face)
    dataset = load_fer2013(tmp_path / "ds", cache=False)
    assert all(Path(source).parts[-4] == "test" for source in dataset["test"].sources)
    assert all(Path(source).parts[-4] == "val" for source in dataset["publictest"].sources)
    shutil.rmtree(tmp_path / "ds" / "val")
    (tmp_path / "ds" / "val").mkdir()
    with pytest.raises(DataError, match=r"val: no class folders found"):
        load_fer2013(tmp_path / "ds", cache=False)
    skipped = load_fer2013(tmp_path / "ds", cache=False, skip_bad=True)
    assert set(skipped.splits) == {"training", "publictest"} and len(skipped.problems) == 1
    (tmp_path / "ds" / "val" / "happy").mkdir()  # a class folder, but no face in it
    skipped = load_fer2013(tmp_path / "ds", cache=False, skip_bad=True)
    assert set(skipped.splits) == {"training", "publictest"}
    assert all(Path(source).parts[-4] == "test" for source in skipped["publictest"].sources)


def test_stats_lists_a_file_name_that_is_not_utf8_on_a_strict_stdout(tmp_path):
    """The table printed, then 'utf-8 codec can't encode' ended the listing, its problems lost."""
    faces, labels = synthetic_faces(14, seed=9)
    write_class_folders(tmp_path / "ds" / "train", faces, labels, "img")
    write_class_folders(tmp_path / "ds" / "test", faces, labels, "img")
    with open(os.fsencode(tmp_path / "ds" / "train" / "happy") + b"/bad\xff name.png", "wb") as handle:
        handle.write(b"not a picture")
    (tmp_path / "ds" / "train" / "happy" / "phone.heic").write_bytes(b"ftypheic")
    done = subprocess.run([sys.executable, "-m", "ferkit", "data", "stats", str(tmp_path / "ds"), "--skip-bad"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONIOENCODING": "utf-8",
                                                               "FERKIT_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    assert "problem:" in done.stdout and "bad\\udcff name.png: not an image" in done.stdout
    assert "phone.heic: a picture format ferkit cannot decode (HEIC)" in done.stdout


def test_a_folder_beside_the_splits_that_is_no_split_is_said(tmp_path, capsys):
    """train/ and test/ beside foo/: foo/'s faces are not read, and a warning says so (they vanished
    without a word); `data stats` lists it as a problem, `data crop` passes it on."""
    from ferkit.app.cli import main

    faces, labels = synthetic_faces(14, seed=9)
    for split in ("train", "test", "foo"):
        write_class_folders(tmp_path / "ds" / split, faces, labels, "img")
    with pytest.warns(UserWarning, match=r"folder\(s\) foo/ not read: not a split"):
        dataset = load_fer2013(tmp_path / "ds", cache=False)
    assert set(dataset.splits) == {"training", "publictest"}
    assert main(["data", "stats", str(tmp_path / "ds"), "--json"]) == 0
    assert any("foo/ not read" in p for p in json.loads(capsys.readouterr().out)["problems"])
    assert main(["data", "crop", "--detector", "none", str(tmp_path / "ds"), str(tmp_path / "crops")]) == 0
    assert "foo/ not read" in capsys.readouterr().err


def test_pillows_notes_on_a_picture_it_decoded_are_not_passed_on(tmp_path, monkeypatch):
    """Pillow's "Corrupt EXIF data" on a damaged TIFF it still decoded reached data stats and train as a
    warning naming no file, and only on loads the cache did not serve."""
    import ferkit.data.images as images

    decode = images._decode

    def noisy(source, max_pixels):
        warnings.warn_explicit("Corrupt EXIF data", UserWarning, "TiffImagePlugin.py", 1, module="PIL.TiffImagePlugin")
        return decode(source, max_pixels)

    monkeypatch.setattr(images, "_decode", noisy)
    cv2.imwrite(str(tmp_path / "face.png"), np.full((48, 48), 5, np.uint8))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image, _ = images.read_image_scaled(tmp_path / "face.png")
    assert image.shape[:2] == (48, 48) and not caught
