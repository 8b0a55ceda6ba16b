"""The maintainers' scripts that write the shipped models' files and figures (scripts/), on a tiny run."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import synthetic_faces, write_class_folders

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture
def scripts(monkeypatch, tmp_path):
    """The scripts' modules, writing into a weights folder of the test's own."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    for name in ("ship_model", "add_face_sample"):
        sys.modules.pop(name, None)
    import add_face_sample
    import ship_model

    weights = tmp_path / "weights"
    weights.mkdir()
    monkeypatch.setattr(ship_model, "WEIGHTS_DIR", weights)
    monkeypatch.setattr(add_face_sample, "WEIGHTS_DIR", weights)
    return ship_model, add_face_sample, weights


def test_ship_model_records_what_the_shipped_file_scores(tmp_path, monkeypatch, scripts):
    """The figures ship_model.py stores are the shipped file's own on PublicTest, with the accuracy
    without PublicTest's repeats of Training faces, and the file samples its training faces."""
    from ferkit.evaluation import evaluate
    from ferkit.models.io import load_model_file
    from ferkit.training import TrainConfig, train

    ship_model, add_face_sample, weights = scripts
    faces, labels = synthetic_faces(84, seed=12)
    test = faces[70:].copy()
    test[:3] = faces[:3]  # three PublicTest faces repeat Training faces
    write_class_folders(tmp_path / "ds" / "train", faces[:70], labels[:70], "Training")
    write_class_folders(tmp_path / "ds" / "test", test, labels[70:], "PublicTest")
    train(TrainConfig(data=str(tmp_path / "ds"), out=str(tmp_path / "run"), model="tiny", model_options={"width": 8},
                      epochs=1, batch_size=8, optimizer="adam", lr=0.01, schedule="constant", warmup_epochs=0.0,
                      threads=1), log=lambda message: None)
    monkeypatch.setattr(sys, "argv", ["ship_model.py", str(tmp_path / "run"), "scratch", "--data",
                                      str(tmp_path / "ds"), "--tta", "none,tencrop", "--no-int8-graph"])
    ship_model.main()
    shipped = load_model_file(weights / "scratch.safetensors")
    for tta in ("none", "tencrop"):
        result = evaluate(tmp_path / "ds", models=[str(weights / "scratch.safetensors")], tta=tta)
        assert shipped.meta[f"publictest_acc_{tta}"] == pytest.approx(result.metrics["accuracy"], abs=1e-4)
        assert shipped.meta[f"publictest_unseen_acc_{tta}"] == pytest.approx(result.unseen["accuracy"], abs=1e-4)
        assert result.unseen["repeats_of_training"] == 3
    assert shipped.meta["face_sample"]["of"] == 70 and len(shipped.meta["face_sample"]["hashes"]) == 70
    assert shipped.meta["calibration"]["split"] == "publictest" and shipped.meta["epochs_total"] == 1
    assert shipped.meta["calibration"]["face_sample"]["of"] == 14  # the faces T was fitted on, for the ECE caveat
    assert shipped.meta["data"] == str((tmp_path / "ds").resolve()) and shipped.meta["trained_on"] == ["training"]

    # A shipping that fails half-way puts back what was shipped before (here: a test-time view it does not know).
    before = (weights / "scratch.safetensors").read_bytes()
    monkeypatch.setattr(sys, "argv", ["ship_model.py", str(tmp_path / "run"), "scratch", "--data",
                                      str(tmp_path / "ds"), "--tta", "none,bogus", "--no-int8-graph"])
    with pytest.raises(Exception, match="bogus"):
        ship_model.main()
    assert (weights / "scratch.safetensors").read_bytes() == before
    assert not list(weights.glob(".shipping-*"))  # staged in a folder of its own, removed
    # Nothing is written over the shipped file until the new one is measured: a kill (here, a failure in
    # the last step) leaves it as it was.
    real_ship = ship_model.ship

    def killed_at_the_end(*args, **kwargs):
        staged = real_ship(*args, **kwargs)
        assert (weights / "scratch.safetensors").read_bytes() == before  # still the old file
        raise KeyboardInterrupt

    monkeypatch.setattr(ship_model, "ship", killed_at_the_end)
    monkeypatch.setattr(sys, "argv", ["ship_model.py", str(tmp_path / "run"), "scratch", "--data",
                                      str(tmp_path / "ds"), "--tta", "none", "--no-int8-graph"])
    with pytest.raises(KeyboardInterrupt):
        ship_model.main()
    assert (weights / "scratch.safetensors").read_bytes() == before
    monkeypatch.setattr(ship_model, "ship", real_ship)
    # A dataset whose PublicTest repeats no Training face has no "unseen" figure to store (it once crashed).
    write_class_folders(tmp_path / "unique" / "train", faces[:70], labels[:70], "Training")
    write_class_folders(tmp_path / "unique" / "test", faces[70:], labels[70:], "PublicTest")
    monkeypatch.setattr(sys, "argv", ["ship_model.py", str(tmp_path / "run"), "other", "--data",
                                      str(tmp_path / "unique"), "--tta", "none", "--no-int8-graph"])
    ship_model.main()
    other = load_model_file(weights / "other.safetensors")
    assert "publictest_acc_none" in other.meta and "publictest_unseen_acc_none" not in other.meta

    # Figures stored as the model's PublicTest figures come only from the dataset it trained on.
    write_class_folders(tmp_path / "stranger" / "train", faces[70:], labels[70:], "Training")
    write_class_folders(tmp_path / "stranger" / "test", faces[:30], labels[:30], "PublicTest")
    monkeypatch.setattr(sys, "argv", ["ship_model.py", str(tmp_path / "run"), "scratch", "--data",
                                      str(tmp_path / "stranger"), "--tta", "none", "--no-int8-graph"])
    with pytest.raises(SystemExit, match="not the dataset"):
        ship_model.main()
    assert (weights / "scratch.safetensors").read_bytes() == before

    # add_face_sample.py leaves a model that has its sample alone, and only adds metadata to one without.
    before = (weights / "scratch.safetensors").read_bytes()
    monkeypatch.setattr(sys, "argv", ["add_face_sample.py", "scratch", "--data", str(tmp_path / "ds")])
    add_face_sample.main()
    assert (weights / "scratch.safetensors").read_bytes() == before
    from ferkit.models.io import read_model_file
    from safetensors.torch import save as st_save

    header, tensors = read_model_file(weights / "scratch.safetensors")
    del header["meta"]["face_sample"], header["meta"]["calibration"]["face_sample"]
    (weights / "scratch.safetensors").write_bytes(st_save(tensors, metadata={"ferkit": json.dumps(header)}))
    monkeypatch.setattr(sys, "argv", ["add_face_sample.py", "scratch", "--data", str(tmp_path / "unique")])
    add_face_sample.main()  # not the dataset it trained on: no sample of it
    assert "face_sample" not in load_model_file(weights / "scratch.safetensors").meta
    monkeypatch.setattr(sys, "argv", ["add_face_sample.py", "scratch", "--data", str(tmp_path / "ds")])
    add_face_sample.main()
    again = load_model_file(weights / "scratch.safetensors")
    assert again.meta["face_sample"] == shipped.meta["face_sample"]
    assert again.meta["calibration"]["face_sample"] == shipped.meta["calibration"]["face_sample"]
    assert all(np.array_equal(v, shipped.model.state_dict()[k]) for k, v in again.model.state_dict().items())
