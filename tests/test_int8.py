"""The int8 backend: ``ferkit export --int8`` makes a quantised graph beside the model file,
``--backend int8`` runs it, and a missing or stale graph is a one-line error."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import pytest
from conftest import real_faces, synthetic_faces
from test_predict import photo, run  # noqa: F401 (photo is a fixture)

from ferkit.data.classes import CLASSES
from ferkit.models.hub import load_model
from ferkit.vision.backends import create_backend
from ferkit.models.int8_graph import COMPACT_KEY, compact_graph, load_int8_graph
from ferkit.vision.int8 import Int8GraphError, int8_path, quantize_int8
from ferkit.vision.onnx import OnnxBackend


# Largest probability difference between a model and its int8 graph on the tests' faces: far below what
# separates two untrained models of other seeds (0.013-0.027), so a wrong graph cannot pass.
INT8_TOLERANCE = 0.005

def _int8_weights(path) -> int:
    """The graph's int8 weight tensors (their int8 zero points apart)."""
    return sum(t.data_type == onnx.TensorProto.INT8 and not t.name.endswith("_zero_point")
               for t in onnx.load(str(path)).graph.initializer)


def test_export_int8_writes_a_quantised_graph_that_the_backend_runs(capsys, tiny_model_file, fer_root):
    status, out, err = run(capsys, "export", "--model", tiny_model_file, "--int8", "--data", fer_root)
    assert status == 0, err
    graph = tiny_model_file.with_suffix(".int8.onnx")
    assert graph.is_file() and "same top emotion as the float model" in out
    assert _int8_weights(graph) == 4  # the tiny net's three convolutions and its classifier hold int8 weights
    loaded = load_model(tiny_model_file)
    int8 = create_backend(loaded, "int8")
    assert int8.name == "int8"
    faces, _ = synthetic_faces(32, seed=5)
    p8, p32 = int8.probs(faces, "none"), create_backend(loaded, "onnx").probs(faces, "none")
    assert p8.shape == (32, 7) and np.allclose(p8.sum(1), 1, atol=1e-4)
    # Quantisation error, not a different model: an untrained net of another seed differs from this one by
    # 0.013-0.027 on such faces (measured), the int8 graph by about 0.0002; a bound of 0.05 let any model pass.
    assert np.abs(p8 - p32).max() < INT8_TOLERANCE
    assert int8.probs(faces[:4], "tencrop").shape == (4, 7)


def test_predict_with_int8_backend(capsys, tiny_model_file, fer_root, photo):  # noqa: F811
    assert run(capsys, "export", "--model", tiny_model_file, "--int8", "--data", fer_root)[0] == 0
    status, out, err = run(capsys, "predict", photo, "--model", tiny_model_file, "--detector", "haar",
                           "--backend", "int8", "--json")
    assert status == 0, err
    assert out.count('"emotion"') == 2


def test_int8_backend_without_a_graph_is_a_one_line_error(capsys, tiny_model_file, photo):  # noqa: F811
    status, _, err = run(capsys, "predict", photo, "--model", tiny_model_file, "--backend", "int8")
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert "no int8 graph" in err and "ferkit export" in err


def test_export_int8_needs_data(capsys, tiny_model_file):
    status, _, err = run(capsys, "export", "--model", tiny_model_file, "--int8")
    assert status == 2 and "--data" in err and len(err.strip().splitlines()) == 1


def test_a_graph_made_from_other_weights_is_refused(tiny_model_file):
    import torch

    from ferkit.data.preprocess import Normalizer
    from ferkit.models import create_model
    from ferkit.models.io import save_model_file

    loaded = load_model(tiny_model_file)
    quantize_int8(loaded, synthetic_faces(16)[0], int8_path(loaded))
    assert create_backend(loaded, "int8").name == "int8"
    torch.manual_seed(1)  # "retrain": new weights in the same file
    save_model_file(tiny_model_file, create_model("tiny"), name="tiny", options={}, normalizer=Normalizer.identity())
    with pytest.raises(Int8GraphError, match="other weights"):
        create_backend(load_model(tiny_model_file), "int8")


def test_a_compact_graph_loads_as_the_whole_graph(capsys, tiny_model_file, fer_root):
    """``--compact`` leaves the int8 weights out; loading recomputes them bit for bit from the model file."""
    import json

    assert run(capsys, "export", "--model", tiny_model_file, "--int8", "--data", fer_root)[0] == 0
    path = tiny_model_file.with_suffix(".int8.onnx")
    whole = path.read_bytes()
    status, out, err = run(capsys, "export", "--model", tiny_model_file, "--int8", "--data", fer_root, "--compact")
    assert status == 0 and "compact" in out, err
    compact = path.read_bytes()
    names = [t.name for t in onnx.load(str(path)).graph.initializer]
    assert not [n for n in names if n.endswith("_quantized")] and len(compact) < len(whole) / 2
    loaded = load_model(tiny_model_file)
    assert load_int8_graph(loaded) == whole
    faces, _ = synthetic_faces(16, seed=3)
    assert np.array_equal(create_backend(loaded, "int8").probs(faces, "none"),
                          OnnxBackend(loaded, whole, name="int8").probs(faces, "none"))
    assert compact_graph(compact) == compact  # compacting twice changes nothing

    def tampered(change) -> None:
        proto = onnx.load_from_string(compact)
        entry = next(p for p in proto.metadata_props if p.key == COMPACT_KEY)
        record = json.loads(entry.value)
        change(record)
        entry.value = json.dumps(record)
        path.write_bytes(proto.SerializeToString())

    # A tensor the model's float graph does not have cannot be rebuilt: one line.
    tampered(lambda r: r["tensors"].append([0, "no_such_weight_quantized"]))
    with pytest.raises(Int8GraphError, match="cannot rebuild no_such_weight_quantized"):
        load_int8_graph(loaded)
    # Rebuilt values other than those the graph was made with (another quantiser's rounding) are refused.
    tampered(lambda r: r.update(sha256="0" * 64))
    with pytest.raises(Int8GraphError, match="differ from those the graph was made with"):
        load_int8_graph(loaded)
    tampered(lambda r: r.pop("tensors"))
    with pytest.raises(Int8GraphError, match="damaged"):
        load_int8_graph(loaded)


def test_a_rebuilt_compact_graph_is_cached_and_checked(capsys, tiny_model_file, fer_root, monkeypatch):
    """The rebuild is cached; a cached graph that does not compact back to the stored bytes is rebuilt."""
    import ferkit.models.int8_graph as int8_graph

    assert run(capsys, "export", "--model", tiny_model_file, "--int8", "--data", fer_root, "--compact")[0] == 0
    loaded = load_model(tiny_model_file)
    whole = load_int8_graph(loaded)
    cached = list((Path(os.environ["FERKIT_CACHE_DIR"]) / "int8").glob("*.onnx"))
    assert len(cached) == 1 and cached[0].read_bytes() == whole
    rebuilds = []
    original = int8_graph.restore_weights
    monkeypatch.setattr(int8_graph, "restore_weights", lambda *a, **k: rebuilds.append(1) or original(*a, **k))
    assert load_int8_graph(loaded) == whole and not rebuilds  # from the cache
    proto = onnx.load_from_string(whole)
    tensor = next(t for t in proto.graph.initializer if t.name.endswith("_quantized"))
    values = onnx.numpy_helper.to_array(tensor).copy()
    values.flat[0] ^= 1  # one flipped bit in one int8 weight
    tensor.CopyFrom(onnx.numpy_helper.from_array(values, tensor.name))
    cached[0].write_bytes(proto.SerializeToString())
    assert load_int8_graph(loaded) == whole and rebuilds == [1]
    cached[0].write_bytes(b"not a graph")
    assert load_int8_graph(loaded) == whole and rebuilds == [1, 1]
    assert cached[0].read_bytes() == whole


def test_compact_needs_int8(capsys, tiny_model_file, tmp_path):
    status, _, err = run(capsys, "export", "--model", tiny_model_file, "--out", tmp_path / "m.onnx", "--compact")
    assert status == 2 and "--int8" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["default", "default-b", "fast"])
def test_shipped_int8_graph_matches_its_float_model_on_real_faces(name):
    faces, labels = real_faces(per_class=12)  # 84 PublicTest faces, none a repeat of a Training face
    loaded = load_model(name)
    assert int8_path(loaded).is_file(), f"the shipped model {name!r} has no int8 graph"
    p8 = create_backend(loaded, "int8").probs(faces, "none")
    p32 = create_backend(loaded, "onnx").probs(faces, "none")
    # Measured on these 84 faces (2026-11-25): 83, 84 and 83 agree; int8 accuracy 0.64 / 0.65 / 0.68.
    assert (p8.argmax(1) == p32.argmax(1)).mean() >= 0.95
    assert (p8.argmax(1) == labels).mean() >= 0.50


def test_evaluate_scores_the_int8_graph(capsys, varied_model_file, fer_root, tmp_path):
    import json

    import pandas as pd

    from ferkit.data import load_fer2013
    from ferkit.models.io import load_model_file

    assert run(capsys, "export", "--model", varied_model_file, "--int8", "--data", fer_root)[0] == 0
    status, out, err = run(capsys, "evaluate", "--data", fer_root, "--model", varied_model_file, "--backend", "int8",
                           "--json", "--report", tmp_path / "report")
    assert status == 0, err
    result = json.loads(out)
    assert result["backend"] == "int8" and result["n"] == 14
    # The probabilities reported are the int8 graph's (ten-crop), not the float model's.
    reported = pd.read_csv(tmp_path / "report" / "predictions.csv").filter(like="p_").to_numpy()
    faces = load_fer2013(fer_root)["publictest"].images
    loaded = load_model_file(varied_model_file)
    int8 = create_backend(loaded, "int8").probs(faces, "tencrop")
    float32 = create_backend(loaded, "torch").probs(faces, "tencrop")
    assert np.abs(reported - int8).max() < 1e-5
    assert np.abs(reported - float32).max() > 1e-4


def test_serve_with_int8_backend_and_no_graph_is_a_one_line_error(capsys, tiny_model_file):
    status, _, err = run(capsys, "serve", "--model", tiny_model_file, "--backend", "int8", "--port", "0")
    assert status == 2 and "no int8 graph" in err and len(err.strip().splitlines()) == 1


def test_an_online_teacher_can_run_its_int8_graph(tiny_model_file, fer_root):
    """``--distill-int8``: the teacher's probabilities come from its int8 graph, close to the float
    teacher's; without a graph beside the teacher's file, training cannot start (one line)."""
    import torch

    from ferkit.data.preprocess import Normalizer
    from ferkit.models.io import ModelFileError
    from ferkit.training import TrainingError, train
    from ferkit.training.config import TrainConfig
    from ferkit.training.distill import OnlineTeacher

    student = Normalizer(torch.full((1, 1), 0.4), torch.full((1, 1), 0.2))
    with pytest.raises(ModelFileError, match="no int8 graph"):
        OnlineTeacher(str(tiny_model_file), student, input_size=48, int8=True)
    loaded = load_model(tiny_model_file)
    faces, _ = synthetic_faces(32, seed=5)
    quantize_int8(loaded, faces, int8_path(loaded))
    int8 = OnlineTeacher(str(tiny_model_file), student, input_size=48, int8=True)
    float32 = OnlineTeacher(str(tiny_model_file), student, input_size=48)
    assert int8.engine == "ONNX Runtime int8" and float32.engine == "ONNX Runtime"
    x = student(torch.from_numpy(faces[:, None]))
    p8, p32 = int8(x), float32(x)
    assert torch.allclose(p8.sum(1), torch.ones(32), atol=1e-4) and (p8 - p32).abs().max() < INT8_TOLERANCE
    assert not torch.equal(p8, p32)  # it is the int8 graph that ran
    with pytest.raises(TrainingError, match="--distill-int8 needs"):
        train(TrainConfig(data=str(fer_root), out=str(fer_root.parent / "run"), model="tiny", distill_int8=True))


def test_export_never_writes_over_the_model_or_its_int8_graph_by_mistake(capsys, tiny_model_file, fer_root):
    """`export --int8 --out` once wrote the graph over the very model file it exported, and any name
    passed; a float graph named .int8.onnx replaced the int8 graph `--backend int8` loads."""
    before = tiny_model_file.read_bytes()
    status, _, err = run(capsys, "export", "--model", tiny_model_file, "--int8", "--data", fer_root,
                         "--out", tiny_model_file)
    assert status == 2 and "name the ONNX file .onnx" in err and tiny_model_file.read_bytes() == before
    status, _, err = run(capsys, "export", "--model", tiny_model_file, "--int8", "--data", fer_root,
                         "--out", tiny_model_file.with_name("graph.txt"))
    assert status == 2 and "name the ONNX file .onnx" in err and not tiny_model_file.with_name("graph.txt").exists()
    status, _, err = run(capsys, "export", "--model", tiny_model_file, "--format", "onnx",
                         "--out", int8_path(load_model(tiny_model_file)))
    assert status == 2 and "--backend int8" in err and not int8_path(load_model(tiny_model_file)).exists()
    assert len(err.strip().splitlines()) == 1


def test_int8_calibration_reads_a_folder_of_class_folders(tmp_path):
    """Own data without train/: the faces calibrating an int8 graph are the ones train trains on."""
    from conftest import write_class_folders

    from ferkit.vision.int8 import calibration_set

    faces, labels = synthetic_faces(14, seed=2)
    write_class_folders(tmp_path / "mine", faces, labels, "img")
    drawn = calibration_set(tmp_path / "mine", count=5)
    assert drawn.shape == (5, 48, 48)
    assert all(any(np.array_equal(d, f) for f in faces) for d in drawn)


def test_export_int8_from_a_single_face_is_a_one_line_error(capsys, tiny_model_file, tmp_path):
    """One half of the faces calibrates and the other checks the graph: one face cannot do both."""
    from conftest import write_class_folders

    faces, labels = synthetic_faces(1, seed=3)
    write_class_folders(tmp_path / "one", faces, labels, "img")
    out = tmp_path / "one.int8.onnx"
    status, _, err = run(capsys, "export", "--model", tiny_model_file, "--int8", "--data", str(tmp_path / "one"),
                         "--out", str(out))
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert "1 training face(s)" in err and "at least 2" in err and not out.exists()


@pytest.mark.filterwarnings("ignore:.*were not 48x48")
def test_int8_calibration_cuts_faces_out_of_photos(tmp_path, capsys, tiny_model_file):
    """A dataset of photos calibrates an int8 graph on the faces --detector cuts out of them, as train and
    evaluate read them (the central square where none is found); --detector none on whole pictures."""
    import cv2

    from ferkit.data import load_fer2013
    from ferkit.data.classes import CLASSES
    from ferkit.vision.crop import LargestFaceCropper
    from ferkit.vision.int8 import calibration_set

    faces, labels = synthetic_faces(14, seed=4)
    for i, (face, label) in enumerate(zip(faces, labels)):
        (tmp_path / "photos" / CLASSES[label]).mkdir(parents=True, exist_ok=True)
        wide = cv2.copyMakeBorder(cv2.resize(face, (96, 96)), 0, 0, 48, 48, cv2.BORDER_CONSTANT, value=i * 15)
        cv2.imwrite(str(tmp_path / "photos" / CLASSES[label] / f"img{i}.png"), wide)
    cut = calibration_set(tmp_path / "photos", count=6, cropper=LargestFaceCropper("haar"))
    expected = load_fer2013(tmp_path / "photos", cropper=LargestFaceCropper("haar"), cache=False)["all"].images
    assert all(any(np.array_equal(c, e) for e in expected) for c in cut)
    whole = calibration_set(tmp_path / "photos", count=6)
    assert not any(np.array_equal(c, w) for c in cut for w in whole)
    graphs = {}
    for detector in ("haar", "none"):
        out = tmp_path / f"{detector}.int8.onnx"
        status, _, err = run(capsys, "export", "--model", tiny_model_file, "--int8", "--data",
                             str(tmp_path / "photos"), "--detector", detector, "--out", str(out))
        assert status == 0, err
        graphs[detector] = out.read_bytes()
    assert graphs["haar"] != graphs["none"]  # activation ranges measured on other faces


def test_the_medium_networks_int8_graph_tells_faces_apart():
    """``medium``'s same-padded pools padded with -inf: calibration gave those values infinite ranges and the
    int8 graph answered every face alike; now its ranges are finite and it follows the float model."""
    import torch

    from ferkit.data.preprocess import Normalizer
    from ferkit.models import create_model
    from ferkit.models.io import LoadedModel

    torch.manual_seed(0)
    loaded = LoadedModel(create_model("medium").eval(), Normalizer.identity(), "medium", {}, list(CLASSES))
    faces, _ = synthetic_faces(64, seed=8)
    graph = quantize_int8(loaded, faces[:32])
    scales = [onnx.numpy_helper.to_array(t) for t in onnx.load_from_string(graph).graph.initializer
              if t.name.endswith("_scale")]
    assert scales and all(np.isfinite(s).all() for s in scales)
    p8 = OnnxBackend(loaded, graph, name="int8").probs(faces[32:], "none")
    p32 = OnnxBackend(loaded).probs(faces[32:], "none")
    assert np.ptp(p8, axis=0).max() > 1e-3  # not the same answer for every face
    assert np.abs(p8 - p32).max() < INT8_TOLERANCE


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the quantiser's, on the inf range
def test_a_graph_with_an_infinite_range_is_refused_not_written(tmp_path):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from ferkit.data.preprocess import Normalizer
    from ferkit.models.io import LoadedModel

    class InfinitePadding(nn.Module):
        input_size = 48

        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 4, 3), nn.Linear(4, 7)

        def forward(self, x):
            x = F.max_pool2d(F.pad(self.conv(x), [0, 1, 0, 1], value=float("-inf")), 3, 2)
            return self.fc(x.amax(dim=(2, 3)))

    loaded = LoadedModel(InfinitePadding().eval(), Normalizer.identity(), "inf", {}, list(CLASSES))
    faces, _ = synthetic_faces(16, seed=9)
    with pytest.raises(Int8GraphError, match="not finite"):
        quantize_int8(loaded, faces, tmp_path / "g.int8.onnx")
    assert not (tmp_path / "g.int8.onnx").exists()


def test_the_onnx_cache_holds_the_network_exported_not_the_file_named(tiny_model_file):
    """The cache was keyed by the file's bytes when the backend was made, but held the network in memory:
    a file rewritten after loading (a run still training) or a model changed in memory stored another
    network's graph under the file's key, and --backend onnx / auto answered with it from then on."""
    import torch

    faces, _ = synthetic_faces(16, seed=10)
    changed = load_model(tiny_model_file)
    with torch.no_grad():
        next(changed.model.parameters()).add_(0.5)
    np.testing.assert_allclose(OnnxBackend(changed).probs(faces, "none"),
                               create_backend(changed, "torch").probs(faces, "none"), atol=1e-5)
    original = load_model(tiny_model_file)  # the file is unchanged: its own graph, not the changed one's
    np.testing.assert_allclose(OnnxBackend(original).probs(faces, "none"),
                               create_backend(original, "torch").probs(faces, "none"), atol=1e-5)
    # A damaged cache entry (a killed copy, a full disk) is exported again, not an error on every run.
    for entry in (Path(os.environ["FERKIT_CACHE_DIR"]) / "onnx").glob("*.onnx"):
        entry.write_bytes(entry.read_bytes()[:100])
    np.testing.assert_allclose(OnnxBackend(original).probs(faces, "none"),
                               create_backend(original, "torch").probs(faces, "none"), atol=1e-5)


def test_a_damaged_int8_graph_is_a_one_line_error(capsys, tiny_model_file, fer_root, photo):  # noqa: F811
    assert run(capsys, "export", "--model", tiny_model_file, "--int8", "--data", fer_root)[0] == 0
    graph = tiny_model_file.with_suffix(".int8.onnx")
    proto = onnx.load(str(graph))
    proto.graph.initializer.pop()  # a weight gone, the metadata kept
    graph.write_bytes(proto.SerializeToString())
    status, _, err = run(capsys, "predict", photo, "--model", tiny_model_file, "--backend", "int8")
    assert status != 0 and len(err.strip().splitlines()) == 1, err
    assert "graph does not load in ONNX Runtime" in err
