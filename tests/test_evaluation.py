"""Evaluation: metrics against scikit-learn, the JSON contract, ensembles, TTA, reports,
temperature calibration and bad input."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from sklearn.metrics import classification_report
from sklearn.metrics import confusion_matrix as sk_confusion

from ferkit.app.cli import main
from ferkit.data import DataError, Split
from ferkit.data.classes import CLASSES
from ferkit.data.preprocess import Normalizer
from ferkit.evaluation import (calibrate_model, classification_metrics, ensemble_probs, evaluate, evaluate_split,
                               expected_calibration_error, fit_temperature)
from ferkit.models import create_model
from ferkit.models.inference import predict_probs
from ferkit.models.io import LoadedModel, load_model_file, save_model_file

from conftest import synthetic_faces

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_model_file(path: Path, seed: int, temperature: float = 1.0, **options) -> Path:
    torch.manual_seed(seed)
    model = create_model("tiny", **options)
    save_model_file(path, model, name="tiny", options=options, normalizer=Normalizer.identity(),
                    temperature=temperature)
    return path


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------- metrics


def test_metrics_match_sklearn_on_random_predictions():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 500)
    predictions = np.where(rng.random(500) < 0.4, labels, rng.integers(0, 7, 500))
    labels[labels == 1] = 0  # a class with no faces must still appear, with zeros
    m = classification_metrics(labels, predictions, CLASSES)
    report = classification_report(labels, predictions, labels=range(7), output_dict=True, zero_division=0)
    assert m["n"] == 500
    assert m["accuracy"] == pytest.approx(np.mean(labels == predictions))
    assert m["macro_f1"] == pytest.approx(report["macro avg"]["f1-score"])
    matrix = np.zeros((7, 7), dtype=int)
    np.add.at(matrix, (labels, predictions), 1)
    assert m["confusion_matrix"] == matrix.tolist() == sk_confusion(labels, predictions, labels=range(7)).tolist()
    for i, name in enumerate(CLASSES):
        got = m["per_class"][name]
        assert got["n"] == int((labels == i).sum())
        assert got["recall"] == pytest.approx(matrix[i, i] / matrix[i].sum() if matrix[i].sum() else 0.0)
        assert got["precision"] == pytest.approx(matrix[i, i] / matrix[:, i].sum() if matrix[:, i].sum() else 0.0)
        assert got["f1"] == pytest.approx(report[str(i)]["f1-score"])
    assert m["per_class"]["disgust"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "n": 0}


def test_ece_by_hand():
    # Every prediction made with confidence 0.9, half of them right: ECE = |0.5 - 0.9| = 0.4.
    probs = np.full((10, 7), 0.1 / 6)
    probs[:, 0] = 0.9
    labels = np.array([0] * 5 + [3] * 5)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.4)
    # Two bins: confidence 0.9 all right (gap 0.1) and 0.5 all wrong (gap 0.5), equal counts.
    probs2 = probs.copy()
    probs2[5:, 0], probs2[5:, 1] = 0.5, 0.5 - 6e-9
    probs2[5:, 2:] = 1e-9
    labels2 = np.array([0] * 5 + [3] * 5)
    assert expected_calibration_error(probs2, labels2) == pytest.approx(0.5 * 0.1 + 0.5 * 0.5, abs=1e-6)


# ----------------------------------------------------------------------------- the CLI JSON contract


def test_evaluate_json_contract(fer_root, varied_model_file, capsys):
    code, out, err = run_cli(capsys, "evaluate", "--data", fer_root, "--model", varied_model_file, "--json")
    assert code == 0, err
    result = json.loads(out)  # stdout is exactly one JSON object
    assert result["n"] == 14  # the PublicTest faces of fer_root (the default split of a dataset root)
    # auto: faces are scored as predict's, ten-crop, which for this 48 px model is the flip pair (nothing to crop)
    assert result["split"] == "publictest" and result["tta"] == "flip"
    assert result["classes"] == list(CLASSES)
    assert set(result["per_class"]) == set(CLASSES)
    for stats in result["per_class"].values():
        assert set(stats) == {"precision", "recall", "f1", "n"}
    matrix = np.array(result["confusion_matrix"])
    assert matrix.shape == (7, 7) and matrix.sum() == 14
    assert matrix.sum(1).tolist() == [result["per_class"][c]["n"] for c in CLASSES]
    # The figures are those of the model's own predictions on the same faces.
    loaded = load_model_file(varied_model_file)
    from ferkit.data import load_fer2013

    split = load_fer2013(fer_root)["publictest"]
    predictions = predict_probs(loaded.model, loaded.normalizer, split.images, tta="tencrop").argmax(1)
    assert len(set(predictions.tolist())) > 1  # a model answering one class would hide a wrong reference
    assert result["accuracy"] == pytest.approx(np.mean(predictions == split.labels))
    assert np.trace(matrix) == int(np.sum(predictions == split.labels))


def test_skip_bad_evaluates_the_rest_and_says_what_it_left_out(fer_root, tiny_model_file, capsys):
    victim = sorted((fer_root / "test").rglob("PublicTest_*"))[0]
    victim.write_bytes(b"not a png")
    code, _, err = run_cli(capsys, "evaluate", "--data", fer_root, "--model", tiny_model_file, "--json")
    assert code == 2 and victim.name in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli(capsys, "evaluate", "--data", fer_root, "--model", tiny_model_file, "--json",
                             "--skip-bad", "--report", fer_root.parent / "report")
    result = json.loads(out)
    assert code == 0 and result["n"] == 13
    report = (fer_root.parent / "report" / "report.md").read_text()
    assert "Unreadable items in the data (1, in all the splits read; those of publictest are missing from the figures)" in report and f"- {result['skipped'][0]}" in report
    assert len(result["skipped"]) == 1 and victim.name in result["skipped"][0]
    assert "skipped 1 bad item(s)" in err and victim.name in err
    code, _, err = run_cli(capsys, "calibrate", "--data", fer_root, "--model", tiny_model_file, "--skip-bad",
                           "--out", fer_root.parent / "calibrated.safetensors")
    assert code == 0 and "skipped 1 bad item(s)" in err


def test_a_report_written_again_leaves_no_curves_of_the_earlier_one(fer_root, tiny_model_file, tmp_path, capsys,
                                                                    monkeypatch):
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.md").write_text("an earlier report of two runs")
    (report / "training_curves_2.png").write_bytes(b"png")
    (report / "my_notes.txt").write_text("kept")
    code, _, err = run_cli(capsys, "evaluate", "--data", fer_root, "--model", tiny_model_file, "--report", report)
    assert code == 0, err
    assert not (report / "training_curves_2.png").exists() and (report / "my_notes.txt").exists()
    # A file in the way is said at once, not after the whole evaluation.
    import ferkit.evaluation as evaluation_package

    monkeypatch.setattr(evaluation_package, "evaluate", lambda *a, **k: pytest.fail("evaluated first"))
    code, _, err = run_cli(capsys, "evaluate", "--data", fer_root, "--model", tiny_model_file,
                           "--report", report / "my_notes.txt" / "sub")
    assert code == 2 and err.strip() == f"ferkit: error: {report / 'my_notes.txt'}: a file, not a folder"


def test_evaluate_text_summary_and_other_split(fer_root, tiny_model_file, capsys):
    code, out, _ = run_cli(capsys, "evaluate", "--data", fer_root, "--split", "training", "--model", tiny_model_file)
    assert code == 0
    assert "split: training (70 faces)" in out and "accuracy" in out and "confusion matrix" in out


def test_splits_joined_by_plus_are_scored_together(fer_root, varied_model_file, capsys):
    """Seed 004 reports one figure on PublicTest and PrivateTest together (7,178 faces)."""
    parts = {name: evaluate(fer_root, models=[varied_model_file], split=name, tta="none")
             for name in ("publictest", "privatetest")}
    both = evaluate(fer_root, models=[varied_model_file], split="publictest+privatetest", tta="none")
    assert both.metrics["n"] == 28 and both.split == "publictest+privatetest"
    right = sum(round(r.metrics["accuracy"] * r.metrics["n"]) for r in parts.values())
    assert both.metrics["accuracy"] == pytest.approx(right / 28)
    assert np.array_equal(both.labels, np.concatenate([parts["publictest"].labels, parts["privatetest"].labels]))
    code, out, err = run_cli(capsys, "evaluate", "--data", fer_root, "--model", varied_model_file, "--split",
                             "test+publictest")
    assert code == 2 and "names one split twice" in err


def test_single_class_folder_is_one_split(tmp_path, tiny_model_file, capsys):
    from conftest import write_class_folders

    faces, labels = synthetic_faces(21, seed=3)
    folder = write_class_folders(tmp_path / "my_faces", faces, labels, prefix="img")
    code, out, err = run_cli(capsys, "evaluate", "--data", folder, "--model", tiny_model_file, "--json")
    assert code == 0, err
    assert json.loads(out)["n"] == 21


# ----------------------------------------------------------------------------- ensembles, TTA, temperature


def test_ensemble_is_the_mean_of_member_probabilities(tmp_path, fer_root, capsys):
    a = load_model_file(make_model_file(tmp_path / "a.safetensors", seed=1))
    b = load_model_file(make_model_file(tmp_path / "b.safetensors", seed=2))
    faces, _ = synthetic_faces(12, seed=5)
    pa = predict_probs(a.model, a.normalizer, faces)
    pb = predict_probs(b.model, b.normalizer, faces)
    assert not np.allclose(pa, pb)  # the members disagree, so the test can see averaging
    np.testing.assert_allclose(ensemble_probs([a, b], faces), (pa + pb) / 2, rtol=1e-5, atol=1e-6)
    code, out, _ = run_cli(capsys, "evaluate", "--data", fer_root, "--model", tmp_path / "a.safetensors",
                           tmp_path / "b.safetensors", "--json")
    assert code == 0 and len(json.loads(out)["model"]) == 2
    code, joined, _ = run_cli(capsys, "evaluate", "--data", fer_root, "--model",
                              f"{tmp_path / 'a.safetensors'}+{tmp_path / 'b.safetensors'}", "--json")
    assert code == 0 and json.loads(joined) == json.loads(out)  # "a+b" is the same ensemble


def _manual_view_probs(loaded: LoadedModel, faces: np.ndarray, tta: str) -> np.ndarray:
    """Softmax averaged over views, cut by hand (independent of the augment module)."""
    x = loaded.normalizer(torch.from_numpy(faces).unsqueeze(1))
    s, full = loaded.input_size, faces.shape[-1]
    o = (full - s) // 2
    centre = x[..., o:o + s, o:o + s]
    if tta == "none":
        views = [centre]
    elif tta == "flip":
        views = [centre, centre.flip(-1)]
    else:
        corners = [x[..., :s, :s], x[..., :s, full - s:], x[..., full - s:, :s], x[..., full - s:, full - s:], centre]
        views = corners + [v.flip(-1) for v in corners]
    with torch.no_grad():
        return torch.stack([torch.softmax(loaded.model(v) / loaded.temperature, 1) for v in views]).mean(0).numpy()


@pytest.mark.parametrize("tta", ["none", "flip", "tencrop"])
def test_each_tta_mode_averages_its_views(tmp_path, tta):
    loaded = load_model_file(make_model_file(tmp_path / "m.safetensors", seed=3, input_size=40))
    faces, labels = synthetic_faces(7, seed=6)
    probs = ensemble_probs([loaded], faces, tta=tta)
    np.testing.assert_allclose(probs, _manual_view_probs(loaded, faces, tta), rtol=1e-4, atol=1e-6)
    result = evaluate_split([loaded], Split(faces, labels), split_name="x", tta=tta)
    assert result.tta == tta and result.metrics["n"] == 7
    if tta != "none":
        assert not np.allclose(probs, ensemble_probs([loaded], faces, tta="none"))


def test_evaluate_uses_the_stored_temperature(tmp_path, fer_root):
    plain = make_model_file(tmp_path / "t1.safetensors", seed=4)
    hot = make_model_file(tmp_path / "t3.safetensors", seed=4, temperature=3.0)
    p1 = evaluate(fer_root, models=[plain], tta="none").probs
    p3 = evaluate(fer_root, models=[hot], tta="none").probs
    loaded = load_model_file(plain)
    from ferkit.data import load_fer2013

    faces = load_fer2013(fer_root)["publictest"].images
    np.testing.assert_allclose(p3, predict_probs(loaded.model, loaded.normalizer, faces, temperature=3.0), rtol=1e-5)
    assert p3.max(1).mean() < p1.max(1).mean()  # a higher temperature flattens the softmax


# ----------------------------------------------------------------------------- report


def _assert_png(path: Path) -> None:
    import cv2

    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 100 and image.std() > 0


def test_a_report_on_several_runs_compares_their_curves(tmp_path, fer_root, tiny_model_file, capsys):
    """Seed 002 fig. 9: the validation curves of the runs evaluated together, on one pair of axes."""
    runs = []
    for n, slope in enumerate((0.04, 0.02)):
        run = tmp_path / f"run{n}"
        run.mkdir()
        shutil.copy(tiny_model_file, run / "best.safetensors")
        history = [{"epoch": e, "lr": 0.1, "train_loss": 2.0, "train_acc": 0.3, "val_loss": 2.1 - slope * e,
                    "val_acc": 0.2 + slope * e, "seconds": 1.0} for e in range(1, 6)]
        (run / "history.json").write_text(json.dumps(history))
        runs.append(str(run))
    out = tmp_path / "report"
    code, _, err = run_cli(capsys, "evaluate", "--data", fer_root, "--model", "+".join(runs), "--report", out)
    assert code == 0, err
    _assert_png(out / "training_curves_compared.png")
    assert "(training_curves_compared.png)" in (out / "report.md").read_text()


def test_report_files(tmp_path, fer_root, tiny_model_file, capsys):
    # A run directory: the report adds its training curves from history.json.
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(tiny_model_file, run / "best.safetensors")
    history = [{"epoch": e, "lr": 0.1, "train_loss": 2.0 - 0.1 * e, "train_acc": 0.2 + 0.05 * e,
                "val_loss": 2.1 - 0.08 * e, "val_acc": 0.2 + 0.04 * e, "seconds": 1.0} for e in range(1, 5)]
    (run / "history.json").write_text(json.dumps(history))
    out = tmp_path / "report"
    code, stdout, err = run_cli(capsys, "evaluate", "--data", fer_root, "--model", run, "--report", out, "--json")
    assert code == 0, err
    json.loads(stdout)  # the report path goes to stderr when --json keeps stdout for JSON
    pngs = ["confusion_matrix.png", "per_class_accuracy.png", "misclassified.png", "training_curves.png"]
    for name in pngs:
        _assert_png(out / name)
    text = (out / "report.md").read_text()
    for name in pngs:
        assert f"({name})" in text
    params = sum(p.numel() for p in load_model_file(tiny_model_file).model.parameters())
    assert f"{params:,}" in text
    assert "| 3 |" in text  # depth: three convolution layers
    assert not (out / "training_curves_compared.png").exists()  # one run: nothing to compare
    # predictions.csv: one row per face, its probabilities and predicted class agree with the JSON's accuracy
    import pandas as pd

    rows = pd.read_csv(out / "predictions.csv")
    probs = rows[[f"p_{c}" for c in CLASSES]].to_numpy()
    assert len(rows) == json.loads(stdout)["n"] and np.allclose(probs.sum(1), 1, atol=1e-4)
    assert (rows["predicted"] == [CLASSES[i] for i in probs.argmax(1)]).all()
    assert rows["correct"].mean() == pytest.approx(json.loads(stdout)["accuracy"])
    # Each row names its face's file, so a mistake can be looked at (the true class is its folder's).
    assert all(Path(source).is_file() and Path(source).parent.name == true
               for source, true in zip(rows["source"], rows["true"]))


def test_evaluate_limit_scores_a_random_sample_and_says_so(fer_root, varied_model_file, capsys, tmp_path):
    code, out, err = run_cli(capsys, "evaluate", "--data", fer_root, "--model", varied_model_file, "--json",
                             "--limit", "5", "--tta", "none", "--report", tmp_path / "r")
    assert code == 0, err
    result = json.loads(out)
    assert result["n"] == 5 and result["sample_of"] == 14 and sum(map(sum, result["confusion_matrix"])) == 5
    assert "(5 faces, drawn at random from its 14)" in (tmp_path / "r" / "report.md").read_text()
    full = json.loads(run_cli(capsys, "evaluate", "--data", fer_root, "--model", varied_model_file, "--json",
                              "--limit", "100", "--tta", "none")[1])
    assert full["n"] == 14 and "sample_of" not in full  # a limit above the split's size scores it all
    code, out, _ = run_cli(capsys, "evaluate", "--data", fer_root, "--model", varied_model_file, "--limit", "5")
    assert code == 0 and "split: publictest (5 faces, drawn at random from its 14 (--limit))" in out
    assert run_cli(capsys, "evaluate", "--data", fer_root, "--model", varied_model_file, "--limit", "0")[0] == 2


def test_a_report_says_its_backend_and_which_classes_had_no_faces(tmp_path, tiny_model_file, capsys):
    """A class with no faces showed precision, recall and F1 of 0.000 (a total failure, to the eye), and
    an int8 report looked like a PyTorch one."""
    from conftest import write_class_folders

    faces, labels = synthetic_faces(21, seed=4)
    keep = labels != CLASSES.index("disgust")
    write_class_folders(tmp_path / "ds", faces[keep], labels[keep], "img")
    out = tmp_path / "report"
    code, _, err = run_cli(capsys, "evaluate", "--data", tmp_path / "ds", "--model", tiny_model_file, "--report", out,
                           "--backend", "onnx", "--tta", "none")
    assert code == 0, err
    text = (out / "report.md").read_text()
    assert "run by **onnx**" in text and "| disgust | n/a | n/a | n/a | 0 |" in text
    assert "disgust: no faces here" in text


class _BrightCornerSaysDisgust(nn.Module):
    """Predicts disgust when a face's top-left pixel is brighter than its neighbour, happy otherwise."""

    input_size = 48

    def forward(self, x):
        bright = (x[:, 0, 0, 0] > x[:, 0, 1, 1]).float()
        logits = torch.zeros(len(x), len(CLASSES))
        logits[:, CLASSES.index("disgust")] = 10 * bright
        logits[:, CLASSES.index("happy")] = 10 * (1 - bright)
        return logits


def test_a_class_with_no_faces_that_the_model_predicts_counts_with_f1_0_and_the_report_says_so(tmp_path, capsys):
    """The report showed n/a for disgust while macro-F1 averaged its F1 of 0 (it was predicted, wrongly)."""
    from ferkit.evaluation.report import write_report

    faces = np.full((6, 48, 48), 128, np.uint8)
    faces[:2, 0, 0], faces[:2, 1, 1] = 255, 0  # these two are predicted disgust
    labels = np.array([CLASSES.index(c) for c in ("happy", "sad", "happy", "happy", "sad", "happy")])
    model = LoadedModel(_BrightCornerSaysDisgust(), Normalizer.identity(), "corner", {}, list(CLASSES))
    evaluation = evaluate_split([model], Split(faces, labels), split_name="publictest", tta="none")
    f1 = evaluation.metrics["per_class"]
    assert f1["disgust"]["n"] == 0 and f1["disgust"]["f1"] == 0.0
    assert evaluation.metrics["macro_f1"] == pytest.approx((f1["happy"]["f1"] + f1["sad"]["f1"] + 0.0) / 3)
    text = write_report(tmp_path / "report", evaluation).read_text()
    assert "| disgust | 0.000 | n/a | 0.000 | 0 |" in text and "| fear | n/a | n/a | n/a | 0 |" in text
    assert "no faces here but disgust (predicted 2 time(s)): counted with F1 0" in text
    assert "fear" in text.split("never predicted")[0].split("Macro F1")[-1]


def test_ten_crop_of_a_model_that_takes_the_whole_face_is_recorded_as_flip(tmp_path, tiny_model_file, capsys):
    """A 48 px model's five crops are all the face: "tencrop" was flip at five times the cost, under another name."""
    faces, labels = synthetic_faces(14, seed=6)
    model = load_model_file(tiny_model_file)
    assert model.input_size == 48
    tencrop = evaluate_split([model], Split(faces, labels), split_name="publictest", tta="tencrop")
    flip = evaluate_split([model], Split(faces, labels), split_name="publictest", tta="flip")
    assert tencrop.tta == "flip"
    np.testing.assert_allclose(tencrop.probs, flip.probs, atol=1e-6)


# ----------------------------------------------------------------------------- calibration


class _Linear(nn.Module):
    """Logits = scale * W x: a model whose miscalibration we set by hand."""

    input_size = 48

    def __init__(self, scale: float):
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(48 * 48, 7)
        nn.init.normal_(self.linear.weight, std=0.06)
        self.scale = scale

    def forward(self, x):
        return self.scale * self.linear(x.flatten(1))


def test_temperature_scaling_fixes_overconfident_logits():
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, size=(800, 48, 48), dtype=np.uint8)
    honest = _Linear(1.0)
    normalizer = Normalizer.identity()
    with torch.no_grad():
        logits = honest(normalizer(torch.from_numpy(faces).unsqueeze(1)))
    # Labels drawn from the honest model's own softmax: at T = 1 it is calibrated by construction.
    labels = torch.multinomial(torch.softmax(logits, 1), 1, generator=torch.Generator().manual_seed(0))[:, 0]
    assert logits.std() > 1.0  # confident enough that x5 is clearly overconfident
    overconfident = LoadedModel(_Linear(5.0), normalizer, "linear", {}, list(CLASSES))
    result = calibrate_model(overconfident, Split(faces, labels.numpy().astype(np.int64)))
    assert result.temperature == pytest.approx(5.0, rel=0.2)
    assert result.ece_after < result.ece_before / 2
    assert result.ece_after_heldout < result.ece_before / 2  # T fitted on one half helps the other
    assert result.nll_after < result.nll_before
    assert fit_temperature(logits * 5, labels) == pytest.approx(result.temperature, rel=1e-3)


def test_calibrate_on_one_face_prints_valid_json(tmp_path, tiny_model_file, capsys):
    """One face cannot be split into a half to fit on and a half to score: that figure was NaN, which is no JSON."""
    from conftest import write_class_folders

    faces, labels = synthetic_faces(1, seed=7)
    write_class_folders(tmp_path / "one" / "test", faces, labels, "x")
    out = tmp_path / "calibrated.safetensors"
    code, stdout, err = run_cli(capsys, "calibrate", "--data", tmp_path / "one", "--model", tiny_model_file,
                                "--out", out, "--json")
    assert code == 0, err
    assert json.loads(stdout, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))["ece_after_heldout"] is None
    code, stdout, err = run_cli(capsys, "calibrate", "--data", tmp_path / "one", "--model", tiny_model_file,
                                "--out", out)
    assert code == 0 and "(n/a with T fitted on the other half)" in stdout


def test_calibrate_cli_writes_the_temperature(tmp_path, fer_root, tiny_model_file, capsys, monkeypatch):
    out = tmp_path / "calibrated.safetensors"
    code, stdout, err = run_cli(capsys, "calibrate", "--data", fer_root, "--model", tiny_model_file,
                                "--out", out, "--json")
    assert code == 0, err
    result = json.loads(stdout)
    assert f"fitted on only {result['n']} face(s) of publictest" in err  # 14 faces: said to be noisy
    assert load_model_file(out).temperature == pytest.approx(result["temperature"])
    assert load_model_file(tiny_model_file).temperature == 1.0  # --out leaves the source alone
    assert load_model_file(out).meta["calibration"]["split"] == "publictest"
    # evaluate says when the ECE it reports is measured on the faces that chose the temperature.
    code, stdout, err = run_cli(capsys, "evaluate", "--data", fer_root, "--model", out)
    assert code == 0, err
    assert "fitted on these publictest faces: this ECE is optimistic" in stdout
    code, stdout, err = run_cli(capsys, "evaluate", "--data", fer_root, "--model", out, "--json")
    assert code == 0 and "optimistic" in json.loads(stdout)["ece_caveat"]
    from conftest import write_class_folders

    # The same faces moved, renamed, in another order and one short, under another split's name: known again.
    faces, labels = synthetic_faces(28, seed=2)
    write_class_folders(tmp_path / "moved" / "test", faces[12::-1], labels[12::-1], "PrivateTest")
    code, stdout, err = run_cli(capsys, "evaluate", "--data", tmp_path / "moved", "--model", out)
    assert code == 0 and "split: privatetest" in stdout and "this ECE is optimistic" in stdout
    code, stdout, err = run_cli(capsys, "evaluate", "--data", fer_root, "--model", out, "--split", "privatetest")
    assert code == 0 and "optimistic" not in stdout
    # A record of the oldest kind names the split only (as `default` v6's does): the split of the dataset the
    # model trained on, not every dataset's split of that name.
    from ferkit.evaluation.evaluate import Evaluation
    from ferkit.models.io import LoadedModel

    legacy = LoadedModel(None, None, "m", {}, list(CLASSES), meta={"calibration": {"split": "publictest"},
                                                                   "train_config": {"data": str(fer_root)}})
    faces14, labels14 = synthetic_faces(14, seed=21)
    ours = Evaluation({}, np.zeros((14, 7)), labels14, "publictest", "none", [legacy], ["m"], faces14, data=str(fer_root))
    theirs = Evaluation({}, np.zeros((14, 7)), labels14, "publictest", "none", [legacy], ["m"], faces14,
                        data=str(tmp_path / "elsewhere"))
    assert ours.ece_caveat and not theirs.ece_caveat
    # Another dataset's PublicTest is other faces: the temperature was not fitted on them.
    faces, labels = synthetic_faces(14, seed=21)
    write_class_folders(tmp_path / "other" / "test", faces, labels, "PublicTest")
    code, stdout, err = run_cli(capsys, "evaluate", "--data", tmp_path / "other", "--model", out)
    assert code == 0 and "split: publictest" in stdout and "optimistic" not in stdout
    # Without --out the given file is rewritten in place.
    code, _, err = run_cli(capsys, "calibrate", "--data", fer_root, "--model", tiny_model_file)
    assert code == 0, err
    assert load_model_file(tiny_model_file).temperature == pytest.approx(result["temperature"], rel=1e-4)
    # The shipped weights are never overwritten implicitly.
    import ferkit.models.hub as hub

    weights = tmp_path / "weights"
    weights.mkdir()
    shutil.copy(out, weights / "default.safetensors")
    monkeypatch.setattr(hub, "WEIGHTS_DIR", weights)
    before = (weights / "default.safetensors").read_bytes()
    code, _, err = run_cli(capsys, "calibrate", "--data", fer_root, "--model", "default")
    assert code == 2 and "shipped model" in err and "--out" in err
    assert (weights / "default.safetensors").read_bytes() == before


# ----------------------------------------------------------------------------- bad input


def test_wrong_split_names_the_splits(fer_root, tiny_model_file, capsys):
    code, out, err = run_cli(capsys, "evaluate", "--data", fer_root, "--model", tiny_model_file, "--split", "val2")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "val2" in err
    assert "training" in err and "publictest" in err and "privatetest" in err


def test_class_count_mismatch(tmp_path, fer_root, capsys):
    path = tmp_path / "three.safetensors"
    save_model_file(path, create_model("tiny", num_classes=3), name="tiny", options={},
                    normalizer=Normalizer.identity(), classes=["happy", "sad", "other"])
    code, _, err = run_cli(capsys, "evaluate", "--data", fer_root, "--model", path)
    assert code == 2 and err.count("\n") == 1
    assert str(path) in err and "3 classes" in err and "7" in err


def test_input_size_mismatch(tmp_path, fer_root, capsys):
    path = make_model_file(tmp_path / "big.safetensors", seed=0, input_size=64)
    code, _, err = run_cli(capsys, "evaluate", "--data", fer_root, "--model", path)
    assert code == 2 and err.count("\n") == 1 and "64x64" in err and "48x48" in err


def test_reordered_classes_are_mapped_not_refused(tmp_path):
    torch.manual_seed(0)
    model = create_model("tiny")
    order = list(reversed(CLASSES))
    path = tmp_path / "rev.safetensors"
    save_model_file(path, model, name="tiny", options={}, normalizer=Normalizer.identity(), classes=order)
    loaded = load_model_file(path)
    faces, _ = synthetic_faces(5)
    raw = predict_probs(loaded.model, loaded.normalizer, faces)
    np.testing.assert_allclose(ensemble_probs([loaded], faces), raw[:, ::-1], rtol=1e-5)


def test_empty_split(tmp_path, fer_root, tiny_model_file, capsys):
    loaded = load_model_file(tiny_model_file)
    empty = Split(np.zeros((0, 48, 48), np.uint8), np.zeros(0, np.int64))
    with pytest.raises(DataError, match="no faces"):
        evaluate_split([loaded], empty, split_name="publictest")
    # From the CLI: a folder whose class folders hold no images.
    for name in CLASSES:
        (tmp_path / "empty" / name).mkdir(parents=True)
    code, out, err = run_cli(capsys, "evaluate", "--data", tmp_path / "empty", "--model", tiny_model_file)
    assert code == 2 and out == "" and err.count("\n") == 1 and "empty" in err


def test_missing_model(fer_root, tmp_path, capsys):
    code, _, err = run_cli(capsys, "evaluate", "--data", fer_root, "--model", tmp_path / "nope.safetensors")
    assert code == 2 and "nope.safetensors" in err and err.count("\n") == 1


def test_unknown_tta_in_api(fer_root, tiny_model_file):
    with pytest.raises(ValueError, match="tencrop"):
        evaluate(fer_root, models=[tiny_model_file], tta="mirror")


def test_macro_f1_averages_the_classes_that_occur_and_nan_probabilities_are_refused(tmp_path):
    from ferkit.evaluation.metrics import classification_metrics

    # One face, right: every class that occurs is perfect, so macro-F1 is 1 (not 1/7).
    assert classification_metrics([3], [3], CLASSES)["macro_f1"] == 1.0
    # Absent classes still have their (empty) rows for reports that line up.
    metrics = classification_metrics([0, 0, 1], [0, 1, 1], CLASSES)
    assert set(metrics["per_class"]) == set(CLASSES) and metrics["per_class"]["fear"]["n"] == 0
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / 2)

    import torch

    from ferkit.data import Split
    from ferkit.evaluation import evaluate_split
    from ferkit.models.io import ModelFileError

    path = make_model_file(tmp_path / "nan.safetensors", seed=3)
    loaded = load_model_file(path)
    with torch.no_grad():
        next(p for p in loaded.model.parameters() if p.ndim == 4).fill_(float("nan"))
    faces, labels = synthetic_faces(4, seed=2)
    with pytest.raises(ModelFileError, match="non-finite"):
        evaluate_split([loaded], Split(faces, labels, ["x"] * 4), split_name="test")


# ----------------------------------------------------------------------------- datasets of photos


def photo_dataset(root: Path) -> list[tuple[Path, tuple[int, int, int, int]]]:
    """Class folders holding four photos (a real face, upscaled, somewhere on a larger canvas), one
    FER2013-style 48x48 crop and one picture without a face; returns each photo and its face's box."""
    import cv2
    from test_vision import face_pictures

    from conftest import packaged_faces

    photos = []
    for k, face in enumerate(face_pictures(4, 120)):
        canvas = np.full((300, 400), 110, np.uint8)
        box = (40 + 50 * k, 30 + 20 * k, 120, 120)
        canvas[box[1]:box[1] + 120, box[0]:box[0] + 120] = face
        path = root / CLASSES[k % 2] / f"photo{k}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR))
        photos.append((path, box))
    (root / "happy").mkdir()
    cv2.imwrite(str(root / "happy" / "crop.png"), packaged_faces()[1])
    (root / "sad").mkdir()
    cv2.imwrite(str(root / "sad" / "blank.png"), np.full((90, 160), 100, np.uint8))
    return photos


def test_a_dataset_of_photos_is_scored_on_the_largest_face_in_each(tmp_path):
    """Pictures larger than a 48x48 crop (photos, video frames) give the face the detector finds,
    framed as FER2013 frames faces, not the whole picture shrunk to 48 px; a crop stays as it is."""
    from ferkit.data import load_fer2013
    from ferkit.data.images import read_image
    from ferkit.vision.crop import LargestFaceCropper
    from ferkit.vision.track import iou

    photos = photo_dataset(tmp_path / "photos")
    cropper = LargestFaceCropper("haar")
    with pytest.warns(UserWarning, match="5 image"):
        split = load_fer2013(tmp_path / "photos", cropper=cropper, cache=False).split("all")
    with pytest.warns(UserWarning, match="5 image"):
        whole = load_fer2013(tmp_path / "photos", cache=False).split("all")
    faces = dict(zip(split.sources, split.images))
    for path, box in photos:
        expected = cropper(read_image(path))
        assert cropper.last == "detected" and iou(cropper.last_box, box) > 0.6, (path.name, cropper.last_box)
        assert np.array_equal(faces[str(path)], expected)
        assert not np.array_equal(whole.images[whole.sources.index(str(path))], expected)
    assert np.array_equal(faces[str(tmp_path / "photos" / "happy" / "crop.png")],
                          whole.images[whole.sources.index(str(tmp_path / "photos" / "happy" / "crop.png"))])


def test_evaluate_counts_how_each_face_was_found(tmp_path, capsys, tiny_model_file):
    photo_dataset(tmp_path / "photos")
    common = ["evaluate", "--data", tmp_path / "photos", "--model", tiny_model_file, "--json"]
    code, out, err = run_cli(capsys, *common, "--detector", "haar")
    assert code == 0, err
    result = json.loads(out)
    assert result["n"] == 6 and result["faces"] == {"detected": 4, "crop": 1, "centre": 1}
    code, out, err = run_cli(capsys, *common, "--detector", "none")  # whole pictures, as training reads them
    assert code == 0 and json.loads(out)["faces"] == {} and json.loads(out)["n"] == 6
    code, out, err = run_cli(capsys, *common[:-1], "--detector", "haar", "--report", tmp_path / "report")
    assert code == 0 and "faces: 1 48x48 crops, 4 detected, 1 central squares (no face found)" in out
    assert "4 detected, 1 central squares" in (tmp_path / "report" / "report.md").read_text()


def test_data_crop_writes_the_faces_as_a_fer2013_style_dataset(tmp_path, capsys):
    """``ferkit data crop`` writes what evaluate scores: the same folders, one 48x48 PNG per picture;
    an unreadable picture is listed and the rest are written."""
    from ferkit.data import load_fer2013
    from ferkit.vision.crop import LargestFaceCropper

    photo_dataset(tmp_path / "photos")
    (tmp_path / "photos" / "angry" / "broken.jpg").write_bytes(b"not a picture")
    code, out, err = run_cli(capsys, "data", "crop", tmp_path / "photos", tmp_path / "faces", "--detector", "haar")
    assert code == 1 and "broken.jpg" in err and len(err.strip().splitlines()) == 1
    assert "wrote 6 faces" in out and "4 detected" in out
    written = sorted(p.relative_to(tmp_path / "faces").as_posix() for p in (tmp_path / "faces").rglob("*.png"))
    assert written == ["angry/photo0.png", "angry/photo2.png", "disgust/photo1.png", "disgust/photo3.png",
                       "happy/crop.png", "sad/blank.png"]
    cropped = load_fer2013(tmp_path / "faces", cache=False).split("all")
    assert cropped.images.shape == (6, 48, 48)
    (tmp_path / "photos" / "angry" / "broken.jpg").unlink()
    with pytest.warns(UserWarning, match="were converted"):
        expected = load_fer2013(tmp_path / "photos", cropper=LargestFaceCropper("haar"), cache=False).split("all")
    assert np.array_equal(cropped.images, expected.images) and np.array_equal(cropped.labels, expected.labels)
    code, _, err = run_cli(capsys, "data", "crop", tmp_path / "photos", tmp_path / "photos" / "faces")
    assert code != 0 and "outside" in err


def test_data_crop_expands_home_and_without_a_detector_writes_what_train_reads(tmp_path, capsys, monkeypatch):
    """A quoted "~/photos" was taken against the unexpanded name, so the crops climbed out of OUT and
    overwrote the photos themselves. --detector none wrote central squares where train and evaluate
    take pictures whole. A file in OUT's place is said before any picture is read."""
    import ferkit.data as data_module
    from ferkit.data import load_fer2013

    photo_dataset(tmp_path / "home" / "photos")
    before = {p: p.read_bytes() for p in (tmp_path / "home" / "photos").rglob("*") if p.is_file()}
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "data", "crop", "~/photos", "faces", "--detector", "none")
    assert code == 0, err
    assert "no detector: 5 picture(s) taken whole" in out
    assert {p: p.read_bytes() for p in before} == before  # the photos are untouched
    assert len(list((tmp_path / "faces").rglob("*.png"))) == 6
    with pytest.warns(UserWarning, match="were converted"):
        whole = load_fer2013(tmp_path / "home" / "photos", cache=False).split("all")
    assert np.array_equal(load_fer2013(tmp_path / "faces", cache=False).split("all").images, whole.images)
    (tmp_path / "afile").write_text("x")
    monkeypatch.setattr(data_module, "load_fer2013", lambda *a, **k: pytest.fail("read before OUT was checked"))
    code, _, err = run_cli(capsys, "data", "crop", "~/photos", "afile/faces")
    assert code != 0 and "afile: a file, not a folder" in err


# ----------------------------------------------------------------------------- the Python API, as a notebook uses it


def test_python_api_takes_one_model_as_a_string_and_auto_views_everywhere(fer_root, varied_model_file):
    """``evaluate(models="run")`` is one model (it was read letter by letter), and ``tta="auto"`` is
    accepted by the lower-level functions too (ten-crop, as for any still face)."""
    one = evaluate(fer_root, models=str(varied_model_file))
    listed = evaluate(fer_root, models=[varied_model_file])
    assert one.specs == [str(varied_model_file)] and one.metrics["accuracy"] == listed.metrics["accuracy"]
    loaded = load_model_file(varied_model_file)
    faces = one.faces
    auto = predict_probs(loaded.model, loaded.normalizer, faces, tta="auto")
    assert np.array_equal(auto, predict_probs(loaded.model, loaded.normalizer, faces, tta="tencrop"))
    assert not np.allclose(auto, predict_probs(loaded.model, loaded.normalizer, faces, tta="none"))
    assert evaluate_split([loaded], Split(faces, one.labels), split_name="publictest", tta="auto").tta == "flip"  # 48 px: ten-crop is the flip pair
    assert np.allclose(ensemble_probs([loaded], faces, tta="auto"), auto, atol=1e-6)


def test_load_model_gives_each_caller_its_own_copy(varied_model_file):
    """Fine-tuning (or zeroing) one loaded model must not change what the next load_model returns."""
    from ferkit.models.hub import load_model

    first = load_model(varied_model_file)
    before = {k: v.clone() for k, v in first.model.state_dict().items()}
    with torch.no_grad():
        for parameter in first.model.parameters():
            parameter.zero_()
    second = load_model(varied_model_file)
    assert second.model is not first.model
    assert all(torch.equal(before[k], v) for k, v in second.model.state_dict().items())


@pytest.mark.filterwarnings("ignore:.*were not 48x48")
def test_calibrate_reads_photos_as_evaluate_does(tmp_path, capsys, tiny_model_file):
    """A dataset of photos: calibrate fits the temperature on the faces its --detector finds (the central
    square where it finds none), as evaluate scores them, not on whole pictures; --detector none reads
    them whole, as train does."""
    import cv2

    from ferkit.data import load_fer2013
    from ferkit.vision.crop import LargestFaceCropper

    faces, labels = synthetic_faces(21, seed=3)
    for i, (face, label) in enumerate(zip(faces, labels)):
        folder = tmp_path / "photos" / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        wide = cv2.copyMakeBorder(cv2.resize(face, (96, 96)), 0, 0, 48, 48, cv2.BORDER_CONSTANT, value=int(i * 12))
        cv2.imwrite(str(folder / f"PublicTest_{i}.png"), wide)
    loaded = load_model_file(tiny_model_file)
    fitted = {}
    for detector, cropper in (("haar", LargestFaceCropper("haar")), ("none", None)):
        expected = calibrate_model(loaded, load_fer2013(tmp_path / "photos", cropper=cropper)["publictest"])
        code, out, err = run_cli(capsys, "calibrate", "--data", tmp_path / "photos", "--model", tiny_model_file,
                                 "--detector", detector, "--out", tmp_path / f"{detector}.safetensors", "--json")
        assert code == 0, err
        fitted[detector] = json.loads(out)["temperature"]
        assert fitted[detector] == pytest.approx(expected.temperature, rel=1e-4)
    assert fitted["haar"] != pytest.approx(fitted["none"], rel=1e-3)


def test_cli_warnings_are_one_line_and_unscored_faces_are_said(tmp_path, capsys, tiny_model_file):
    """A library warning reaches the command line as one "ferkit: warning:" line (no source location),
    and faces left out of the default split (named for no split beside PublicTest_ files) are said."""
    import cv2

    folder = tmp_path / "mixed" / "happy"
    folder.mkdir(parents=True)
    faces, _ = synthetic_faces(3, seed=1)
    cv2.imwrite(str(folder / "PublicTest_0.png"), faces[0])
    cv2.imwrite(str(folder / "mine.png"), faces[1])
    cv2.imwrite(str(folder / "big.png"), cv2.resize(faces[2], (96, 96)))
    code, out, err = run_cli(capsys, "evaluate", "--data", tmp_path / "mixed", "--model", tiny_model_file,
                             "--detector", "none")
    assert code == 0, err
    lines = err.strip().splitlines()
    assert "split: publictest (1 faces)" in out
    assert len(lines) == 2 and all(line.startswith("ferkit: warning: ") for line in lines), err
    assert "were converted" in lines[0] and "2 face(s) whose file names name no split" in lines[1]


def test_data_caveat_follows_the_model_files_record(tmp_path):
    """Scored on the faces a model learnt from, as its file records them (a run's data and splits, or a
    shipped model's training configuration), through a link or the split's own folder too."""
    from ferkit.evaluation.evaluate import Evaluation
    from ferkit.models.io import LoadedModel

    (tmp_path / "ds" / "train").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "ds")
    run = LoadedModel(None, None, "tiny", {}, [], meta={"data": str(tmp_path / "ds"), "trained_on": ["all"]})
    shipped = LoadedModel(None, None, "vgg_fer", {}, [], meta={"train_config": {"data": str(tmp_path / "ds")}})
    other = LoadedModel(None, None, "vgg_fer", {}, [], meta={})

    def caveat(model, data, split):
        return Evaluation({}, np.zeros((0, 7)), np.zeros(0), split, "none", [model], ["m"], data=str(data)).data_caveat

    assert "m learnt from these all faces" in caveat(run, tmp_path / "ds", "all")
    assert caveat(run, tmp_path / "ds", "publictest") == ""
    assert "learnt from these training faces" in caveat(shipped, tmp_path / "link", "training")
    assert "learnt from" in caveat(shipped, tmp_path / "ds" / "train", "training")
    assert caveat(shipped, tmp_path / "ds", "publictest") == ""
    assert caveat(other, tmp_path / "ds", "training") == ""
    # Splits scored together: any learnt part is said.
    assert "learnt from these training faces" in caveat(shipped, tmp_path / "ds", "training+publictest")
    assert caveat(shipped, tmp_path / "ds", "publictest+privatetest") == ""


def test_learnt_faces_are_recognised_by_their_pixels():
    """The sample a model file keeps finds its training faces wherever they are read from, estimates the
    share of the scored faces learnt from, and finds nothing in faces it never saw; blank faces (alike in
    every dataset) are never sampled, and one chance match (a duplicate across splits) is no evidence."""
    from ferkit.data.overlap import face_hashes, learnt_share, training_sample

    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (1000, 48, 48), dtype=np.uint8)
    train[:5] = 0  # blank faces
    unseen = rng.integers(0, 256, (300, 48, 48), dtype=np.uint8)
    sample = training_sample(train)
    assert sample["of"] == 1000 and len(sample["hashes"]) == 256
    assert learnt_share(sample, np.zeros((40, 48, 48), np.uint8)) == 0.0  # blank faces match no sampled face
    assert learnt_share(sample, train) == pytest.approx(1.0)
    assert learnt_share(sample, unseen) == 0.0
    half = np.concatenate([train[500:800], unseen])  # 300 learnt faces and 300 unseen ones
    assert 0.3 < learnt_share(sample, half) < 0.7
    sampled = [i for i, h in enumerate(face_hashes(train)) if h in sample["hashes"]]
    assert len(sampled) == 256 and min(sampled) >= 5
    one_match = np.concatenate([unseen, train[sampled[:1]]])
    assert learnt_share(sample, one_match) == 0.0
    assert learnt_share(sample, train[:, :40, :40]) == 0.0  # crops are other pictures
    for broken in (None, {}, {"hashes": "x", "of": 3}, {"hashes": sample["hashes"], "of": "many"}):
        assert learnt_share(broken, train) == 0.0


def test_data_caveat_by_pixels_names_the_share(tmp_path):
    """A model whose file samples its training faces is caught scoring mostly them, from any path."""
    from ferkit.data.overlap import training_sample
    from ferkit.evaluation.evaluate import Evaluation
    from ferkit.models.io import LoadedModel

    faces = np.random.default_rng(1).integers(0, 256, (200, 48, 48), dtype=np.uint8)
    model = LoadedModel(None, None, "tiny", {}, [], meta={"data": str(tmp_path / "elsewhere"),
                                                         "face_sample": training_sample(faces[:150])})

    def caveat(scored):
        return Evaluation({}, np.zeros((0, 7)), np.zeros(0), "publictest", "none", [model], ["m"], scored,
                          data=str(tmp_path / "copy")).data_caveat

    assert "m learnt from about 75% of these publictest faces" in caveat(faces)
    assert caveat(faces[120:]) == ""  # 30 of 80 learnt: a minority, as FER2013's own cross-split repeats
    assert caveat(faces[150:]) == ""


def test_evaluate_gives_the_accuracy_on_faces_that_are_not_training_faces_again(tmp_path, capsys,
                                                                                  varied_model_file):
    """FER2013 repeats Training faces in its test splits: evaluate scores the rest apart (text, JSON,
    report), counting pixel-for-pixel repeats only (a blank face is no repeat; a brightened copy is
    another picture)."""
    from conftest import write_class_folders

    from ferkit.data.overlap import repeats_of

    from ferkit.models.hub import load_model
    from ferkit.models.inference import predict_probs

    faces, labels = synthetic_faces(40, seed=8)
    train, test = faces[:30].copy(), faces[30:].copy()
    test[:4] = train[:4]  # four repeats
    test[4] = np.clip(train[4].astype(int) + 1, 0, 255).astype(np.uint8)  # not a repeat
    train[5], test[5] = 0, 0  # blank in both: not a repeat
    # Labels that make the model right on the four repeats and on one of the six others, so the figure
    # is 1/6 only when exactly the six faces that are not repeats are scored (all ten would give 1/2).
    loaded = load_model(varied_model_file)
    predicted = predict_probs(loaded.model, loaded.normalizer, test, tta="none").argmax(1)
    right = np.isin(np.arange(10), [0, 1, 2, 3, 7])
    test_labels = np.where(right, predicted, (predicted + 1) % 7)
    write_class_folders(tmp_path / "ds" / "train", train, labels[:30], "Training")
    write_class_folders(tmp_path / "ds" / "test", test, test_labels, "PublicTest")
    assert repeats_of(test, train).tolist() == [True] * 4 + [False] * 6
    result = evaluate(tmp_path / "ds", models=[varied_model_file], tta="none")
    assert result.metrics["accuracy"] == pytest.approx(0.5)
    assert result.unseen == {"faces": 6, "repeats_of_training": 4, "accuracy": pytest.approx(1 / 6)}
    code, out, err = run_cli(capsys, "evaluate", "--data", tmp_path / "ds", "--model", varied_model_file, "--json",
                             "--tta", "none", "--report", tmp_path / "report")
    assert code == 0, err
    assert json.loads(out)["unseen"]["repeats_of_training"] == 4
    assert "6 faces that are not Training faces again" in (tmp_path / "report" / "report.md").read_text()
    code, out, err = run_cli(capsys, "evaluate", "--data", tmp_path / "ds", "--model", varied_model_file,
                             "--split", "training")
    assert code == 0 and "not Training faces again" not in out
