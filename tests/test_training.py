"""The training engine: losses, optimisers, schedules, the loop, its run files, exact resume
after a real SIGKILL, transfer learning, and the ``ferkit train`` command's bad-input errors.

Every run uses a few dozen synthetic faces, tiny models, one thread and a few epochs."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import training_support  # noqa: F401  (registers the "test_small" model)
from conftest import synthetic_faces, write_class_folders
from ferkit.app.cli import main
from ferkit.data.augment import AugmentConfig
from ferkit.data.classes import CLASSES
from ferkit.models import create_model
from ferkit.models.io import load_model_file
from ferkit.training import TrainConfig, TrainingError, train
from ferkit.training.checkpoint import CheckpointError, load_checkpoint
from ferkit.training.losses import CenterLoss, PenultimateFeatures, soft_cross_entropy
from ferkit.training.optim import OPTIMIZERS, create_optimizer
from ferkit.training.schedule import SCHEDULES, Plateau, lr_at

REPO = Path(__file__).resolve().parents[1]
NO_AUGMENT = AugmentConfig(flip=False, shift=0.0, rotate=0.0, scale=0.0, crop=48, erase_p=0.0)


def quick_config(data: Path, out: Path, **changes) -> TrainConfig:
    """A run of seconds: tiny model at width 8, batch 8, one thread."""
    values = dict(data=str(data), out=str(out), model="tiny", model_options={"width": 8}, epochs=1,
                  batch_size=8, optimizer="adam", lr=0.01, weight_decay=0.0, schedule="constant",
                  warmup_epochs=0.0, threads=1)
    values.update(changes)
    return TrainConfig(**values)


def run(config: TrainConfig, **kwargs) -> tuple[dict, list[str]]:
    messages: list[str] = []
    summary = train(config, log=messages.append, **kwargs)
    return summary, messages


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "last.pt")["model"]


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file below ``folder`` with its content hash and modification time (but the run's lock,
    which every training of the folder takes, refused or not)."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def make_dataset(root: Path, n_train: int, n_val: int = 14, seed: int = 1) -> Path:
    faces, labels = synthetic_faces(n_train, seed=seed)
    write_class_folders(root / "train", faces, labels, "Training")
    faces, labels = synthetic_faces(n_val, seed=seed + 1)
    write_class_folders(root / "test", faces, labels, "PublicTest")
    return root


# ----------------------------------------------------------------------------- losses


def test_cross_entropy_matches_torch_with_smoothing_and_with_class_weights():
    torch.manual_seed(0)
    logits, labels = torch.randn(12, 7), torch.arange(12) % 7
    one_hot = F.one_hot(labels, 7).float()
    assert torch.allclose(soft_cross_entropy(logits, one_hot), F.cross_entropy(logits, labels))
    assert torch.allclose(soft_cross_entropy(logits, one_hot, label_smoothing=0.2),
                          F.cross_entropy(logits, labels, label_smoothing=0.2))
    weights = torch.tensor([3.0, 0.5, 1.0, 1.0, 2.0, 1.0, 0.25])
    assert torch.allclose(soft_cross_entropy(logits, one_hot, weights=weights),
                          F.cross_entropy(logits, labels, weight=weights))


def test_class_weights_follow_the_labels_not_the_smoothing_or_the_teacher():
    """Smoothing and a teacher's probabilities change the target, not how much a face counts: a
    disgust face weighs its class weight whatever share of its target other classes get."""
    torch.manual_seed(2)
    logits, labels = torch.randn(6, 7), torch.tensor([1, 1, 3, 3, 3, 0])
    one_hot = F.one_hot(labels, 7).float()
    weights = torch.tensor([1.0, 9.0, 1.0, 0.5, 1.0, 1.0, 1.0])
    teacher = torch.softmax(torch.randn(6, 7), dim=1)
    target = 0.5 * one_hot + 0.5 * teacher
    smoothed = target * 0.9 + 0.1 / 7
    per_face = -(smoothed * F.log_softmax(logits, dim=1)).sum(1)
    expected = (per_face * weights[labels]).sum() / weights[labels].sum()
    got = soft_cross_entropy(logits, target, label_smoothing=0.1, weights=weights, label_targets=one_hot)
    assert torch.allclose(got, expected)
    # Split over two processes with the global weight total (halved), the mean of the parts is the whole.
    total = weights[labels].sum() / 2
    parts = [soft_cross_entropy(logits[s], target[s], label_smoothing=0.1, weights=weights, label_targets=one_hot[s],
                                weight_total=total) for s in (slice(0, 3), slice(3, 6))]
    assert torch.allclose((parts[0] + parts[1]) / 2, expected)


def test_cross_entropy_of_a_mixed_target_is_the_mixture_of_losses():
    torch.manual_seed(1)
    logits = torch.randn(5, 7)
    a, b = F.one_hot(torch.tensor([0, 1, 2, 3, 4]), 7).float(), F.one_hot(torch.tensor([6, 5, 4, 3, 2]), 7).float()
    mixed = soft_cross_entropy(logits, 0.3 * a + 0.7 * b)
    assert torch.allclose(mixed, 0.3 * soft_cross_entropy(logits, a) + 0.7 * soft_cross_entropy(logits, b))


def test_center_loss_value_and_wen_update_by_hand():
    loss = CenterLoss(num_classes=2, feature_dim=2)
    features = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    labels = torch.tensor([0, 0, 1])
    # centres start at 0: 0.5 * mean(1, 9, 4)
    assert loss(features, labels).item() == pytest.approx(0.5 * (1 + 9 + 4) / 3)
    loss.update(features, labels, alpha=0.5)
    # c_j -= alpha * sum(c_j - x_i) / (1 + n_j): class 0 -> 0.5 * 4 / (1 + 2), class 1 -> 0.5 * 2 / (1 + 1)
    assert torch.allclose(loss.centers, torch.tensor([[2 / 3, 0.0], [0.0, 0.5]]))


def test_center_loss_sees_the_features_not_their_dropped_out_copy():
    """The captured features were once the classifier's input after dropout: half zeroed, the rest doubled."""
    model = create_model("sepconv").train()
    features = PenultimateFeatures(model)
    x = torch.randn(4, 1, model.input_size, model.input_size)
    torch.manual_seed(1)
    model(x)
    torch.manual_seed(1)
    assert torch.allclose(features.value, model.forward_features(x)) and features.dim == 128


def test_center_loss_pulls_features_towards_their_centres():
    """Joint supervision (seed 001, eq. 4) on a fixed batch, against cross-entropy alone from the
    same start: features end nearer their class centres and classes more compact, still separable."""
    faces, labels = synthetic_faces(28, seed=3)
    x = (torch.from_numpy(faces).float().unsqueeze(1) - 60) / 60
    y = torch.from_numpy(labels)

    def train_jointly(lam: float) -> tuple[float, float, float, float]:
        torch.manual_seed(0)
        model = create_model("tiny", width=8)
        features = PenultimateFeatures(model)
        centres = CenterLoss(7, features.dim)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        first = None
        for _ in range(30):
            logits = model(x)
            centre_term = centres(features.value, y)
            first = centre_term.item() if first is None else first
            loss = F.cross_entropy(logits, y) + lam * centre_term
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            centres.update(features.value, y, alpha=0.5)
        with torch.no_grad():
            logits = model(x)
        feats = features.value
        features.remove()
        means = torch.stack([feats[y == c].mean(0) for c in range(7)])
        within = (feats - means[y]).pow(2).sum(1).mean()  # spread inside classes ...
        between = (means - means.mean(0)).pow(2).sum(1).mean()  # ... relative to the spread of classes
        fit = (logits.argmax(1) == y).float().mean().item()  # on the batch it trained on: a fit, not a score
        return first, centres(feats, y).item(), float(within / between), fit

    first, distance, compactness, fit = train_jointly(lam=0.1)
    _, distance_ce, compactness_ce, _ = train_jointly(lam=0.0)
    assert distance < 0.1 * first  # the centres found the features and the features their centres
    assert distance < 0.6 * distance_ce
    assert compactness < 0.75 * compactness_ce
    assert fit >= 0.9  # the centre loss did not stop the classifier fitting


# ----------------------------------------------------------------------------- optimisers


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_optimizer_is_built_and_descends(name):
    expected = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamax": torch.optim.Adamax,
                "adamw": torch.optim.AdamW, "radam": torch.optim.RAdam}[name]
    w = nn.Parameter(torch.tensor([3.0, -2.0]))
    optimizer = create_optimizer(name, [w], lr=0.05, weight_decay=0.0)
    assert type(optimizer) is expected and optimizer.param_groups[0]["lr"] == 0.05
    start = float(w.detach().pow(2).sum())
    for _ in range(20):
        optimizer.zero_grad()
        w.pow(2).sum().backward()
        optimizer.step()
    assert float(w.detach().pow(2).sum()) < 0.8 * start


def test_sgd_momentum_and_nesterov_options():
    w = nn.Parameter(torch.zeros(1))
    group = create_optimizer("sgd", [w], lr=0.1, momentum=0.8, nesterov=True).param_groups[0]
    assert group["momentum"] == 0.8 and group["nesterov"] is True
    group = create_optimizer("sgd", [w], lr=0.1, momentum=0.0, nesterov=True).param_groups[0]
    assert group["nesterov"] is False  # torch rejects Nesterov without momentum


def test_unknown_optimizer_lists_the_choices():
    with pytest.raises(ValueError, match="adamw"):
        create_optimizer("lion", [nn.Parameter(torch.zeros(1))], lr=0.1)


# ----------------------------------------------------------------------------- schedules


def test_onecycle_rates_at_key_steps():
    lr, total, warm = 0.1, 101, 20  # steps 0-100
    assert lr_at("onecycle", lr, 0, total, warm) == pytest.approx(lr / 25)
    assert lr_at("onecycle", lr, 10, total, warm) == pytest.approx((lr / 25 + lr) / 2)
    assert lr_at("onecycle", lr, warm, total, warm) == pytest.approx(lr)
    assert lr_at("onecycle", lr, 60, total, warm) == pytest.approx((lr + lr / 1e4) / 2)
    assert lr_at("onecycle", lr, total - 1, total, warm) == pytest.approx(lr / 1e4)  # the last step taken
    rates = [lr_at("onecycle", lr, s, total, warm) for s in range(total)]
    assert rates.index(max(rates)) == warm
    assert all(a <= b for a, b in zip(rates[:warm], rates[1:warm + 1]))
    assert all(a >= b for a, b in zip(rates[warm:], rates[warm + 1:]))


def test_cosine_with_warmup_rates_at_key_steps():
    lr, total, warm, floor = 0.1, 111, 10, 0.001  # steps 0-110
    assert lr_at("cosine", lr, 0, total, warm, floor) == pytest.approx(lr / warm)
    assert lr_at("cosine", lr, 4, total, warm, floor) == pytest.approx(lr * 5 / warm)
    assert lr_at("cosine", lr, warm, total, warm, floor) == pytest.approx(lr)
    assert lr_at("cosine", lr, 60, total, warm, floor) == pytest.approx((lr + floor) / 2)
    assert lr_at("cosine", lr, total - 1, total, warm, floor) == pytest.approx(floor)  # reached on the last step
    assert lr_at("cosine", lr, 0, total, 0, floor) == pytest.approx(lr)  # no warm-up


def test_constant_and_plateau_rates_are_the_base_rate_and_unknown_names_list_choices():
    for name in ("constant", "plateau"):
        assert {lr_at(name, 0.02, s, 100, 10) for s in (0, 5, 50, 100)} == {0.02}
    with pytest.raises(ValueError, match="onecycle"):
        lr_at("step", 0.1, 0, 10, 0)
    assert set(SCHEDULES) == {"onecycle", "cosine", "plateau", "constant", "time-decay"}
    # Keras' legacy decay (seed 004's decay=1e-6): lr / (1 + decay * iterations), by hand.
    assert lr_at("time-decay", 0.001, 0, 100, 0, decay=1e-6) == 0.001
    assert lr_at("time-decay", 0.001, 250_000, 100, 0, decay=1e-6) == pytest.approx(0.001 / 1.25)
    assert lr_at("time-decay", 0.001, 250_000, 100, 0) == 0.001


def test_the_plateau_rate_stops_at_min_lr():
    """Seed 000's ReduceLROnPlateau(min_lr=1e-4): --min-lr used to be the cosine schedule's only."""
    assert lr_at("plateau", 0.01, 5, 100, 0, 1e-4, plateau_scale=0.25) == pytest.approx(0.0025)
    assert lr_at("plateau", 0.01, 5, 100, 0, 1e-4, plateau_scale=0.5 ** 10) == pytest.approx(1e-4)
    assert lr_at("plateau", 0.01, 5, 100, 0, plateau_scale=0.5 ** 10) == pytest.approx(0.01 / 1024)


def test_plateau_halves_after_patience_epochs_without_gain():
    plateau = Plateau(patience=2, factor=0.5)
    scales = []
    for score in (0.50, 0.60, 0.60, 0.55, 0.58, 0.59, 0.61, 0.61, 0.61):
        plateau.step(score)
        scales.append(plateau.scale)
    # no gain at 0.60 (2nd), 0.55 -> halve; 0.58, 0.59 -> halve again; 0.61 is a gain; two more -> halve
    assert scales == [1, 1, 1, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]
    restored = Plateau(patience=2, factor=0.5)
    restored.load_state_dict(plateau.state_dict())
    assert restored.state_dict() == plateau.state_dict()


# ----------------------------------------------------------------------------- the loop


@pytest.mark.parametrize("optimizer,schedule", [("sgd", "onecycle"), ("adam", "cosine"), ("adamax", "plateau"),
                                                ("adamw", "constant"), ("radam", "cosine"), ("adam", "time-decay")])
def test_each_optimizer_and_schedule_trains(fer_root, tmp_path, optimizer, schedule):
    decay = 0.1 if schedule == "time-decay" else 0.0
    config = quick_config(fer_root, tmp_path / "run", optimizer=optimizer, schedule=schedule, epochs=2,
                          warmup_epochs=1.0, lr=0.02, augment=NO_AUGMENT, lr_decay=decay)
    summary, _ = run(config)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    steps = 70 // 8
    warm = min(steps, 2 * steps // 3) if schedule in ("cosine", "onecycle") else steps  # a third of the run at most
    # The history logs the rate of each epoch's last step.
    for row in history:
        assert row["lr"] == pytest.approx(lr_at(schedule, 0.02, row["epoch"] * steps - 1, 2 * steps, warm, decay=decay))
    if decay:  # the loop passes --lr-decay on: the rate fell (0.02 / (1 + 0.1 x 7) after the first epoch)
        assert history[0]["lr"] == pytest.approx(0.02 / 1.7) and history[1]["lr"] < history[0]["lr"]
    torch.manual_seed(0)
    initial = create_model("tiny", width=8).state_dict()
    trained = weights(tmp_path / "run")
    assert not torch.equal(initial["classifier.weight"], trained["classifier.weight"])
    assert summary["epochs_run"] == 2 and all(math.isfinite(r["train_loss"]) for r in history)


def test_a_short_run_anneals_whatever_its_warm_up(fer_root, tmp_path):
    """--epochs 3 with the default 3 warm-up epochs ended at the peak rate: the run never annealed."""
    config = quick_config(fer_root, tmp_path / "run", optimizer="sgd", schedule="cosine", epochs=3,
                          warmup_epochs=3.0, lr=0.02, augment=NO_AUGMENT)
    _, messages = run(config)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history[-1]["lr"] < 0.02 * 0.01 and max(r["lr"] for r in history) == pytest.approx(0.02, rel=0.05)
    assert any("warm-up cut to a third of the run" in m for m in messages)


def test_a_tiny_model_overfits_a_tiny_batch(fer_root, tmp_path):
    config = quick_config(fer_root, tmp_path / "run", limit_train=16, batch_size=16, epochs=40, lr=0.03,
                          label_smoothing=0.0, augment=NO_AUGMENT, val_split="none")
    summary, _ = run(config)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history[-1]["train_acc"] == 1.0
    assert history[-1]["train_loss"] < 0.2 * history[0]["train_loss"]
    # Without validation the final weights are the ones kept.
    kept = load_model_file(tmp_path / "run" / "best.safetensors").model.state_dict()
    assert_same_tensors(kept, weights(tmp_path / "run"))
    assert summary["best_val_acc"] is None and summary["epochs_run"] == 40


def test_fixed_seed_gives_identical_weights_and_another_seed_does_not(fer_root, tmp_path):
    # Every source of randomness on: augmentation, mixup/cutmix, centre loss, EMA, class weights.
    common = dict(epochs=2, mixup=0.4, cutmix=1.0, mix_prob=0.8, center_loss=0.01, ema=0.9, grad_clip=1.0,
                  balance="weights", schedule="onecycle", warmup_epochs=0.5)
    run(quick_config(fer_root, tmp_path / "a", **common))
    run(quick_config(fer_root, tmp_path / "b", **common))
    run(quick_config(fer_root, tmp_path / "c", seed=1, **common))
    a, b, c = (load_checkpoint(tmp_path / name / "last.pt") for name in "abc")
    for key in ("model", "ema", "center_loss"):
        assert_same_tensors(a[key], b[key])
    assert a["center_loss"]["centers"].abs().sum() > 0  # the centres moved
    assert not torch.equal(a["model"]["classifier.weight"], c["model"]["classifier.weight"])


def test_gradient_clipping_bounds_the_step(fer_root, tmp_path):
    # One plain SGD step: the weights move by exactly lr * clip when the gradient is longer than clip.
    clip, lr = 1e-3, 0.5
    config = quick_config(fer_root, tmp_path / "run", optimizer="sgd", momentum=0.0, lr=lr, grad_clip=clip,
                          limit_train=8, channels_last=False)
    run(config)
    torch.manual_seed(config.seed)
    initial = create_model("tiny", width=8).state_dict()
    trained = weights(tmp_path / "run")
    moved = math.sqrt(sum(float((trained[k] - initial[k]).pow(2).sum()) for k in initial
                          if initial[k].is_floating_point() and "running" not in k))
    assert moved == pytest.approx(lr * clip, rel=1e-3)


def test_run_files_are_written(fer_root, tmp_path):
    config = quick_config(fer_root, tmp_path / "run", epochs=2)
    summary, messages = run(config)
    out = tmp_path / "run"
    assert {p.name for p in out.iterdir()} == {"config.json", "last.pt", "best.safetensors", "history.csv",
                                                "history.json", "curves.png", "summary.json", ".lock"}
    # As given, but with the crop actually trained on: the network's input size.
    assert TrainConfig.load(out / "config.json") == config.replace(
        augment=dataclasses.replace(config.augment, crop=config.input_size()))
    history = json.loads((out / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2]
    assert all(0 <= r["val_acc"] <= 1 and r["val_loss"] > 0 for r in history)
    csv_lines = (out / "history.csv").read_text().splitlines()
    assert csv_lines[0] == "epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds" and len(csv_lines) == 3
    import cv2

    curves = cv2.imread(str(out / "curves.png"))
    assert curves is not None and curves.shape[0] > 100 and curves.shape[1] > 200
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == summary and summary["epochs_run"] == 2
    best = max(history, key=lambda r: r["val_acc"])
    assert summary["best_val_acc"] == best["val_acc"] and summary["best_epoch"] == history.index(best) + 1
    loaded = load_model_file(out / "best.safetensors")
    assert loaded.meta["epoch"] == summary["best_epoch"] and loaded.name == "tiny"
    assert any(m.startswith("epoch 2/2") for m in messages)
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_trains_on_the_training_split_only(tmp_path):
    """Validation faces are dark and training faces bright: the fitted normalisation (saved with
    the model) and the face counts show that only the training split was used for training."""
    root = tmp_path / "fer"
    faces, labels = synthetic_faces(21, seed=4)
    write_class_folders(root / "train", faces, labels, "Training")
    write_class_folders(root / "test", faces // 4, labels, "PublicTest")
    write_class_folders(root / "test", faces // 8, labels, "PrivateTest")
    _, messages = run(quick_config(root, tmp_path / "run"))
    normalizer = load_model_file(tmp_path / "run" / "best.safetensors").normalizer
    assert float(normalizer.mean) == pytest.approx(faces.mean() / 255, rel=1e-4)
    assert any("21 training faces, 21 validation" in m for m in messages)
    with pytest.raises(TrainingError, match="val_split"):
        train(quick_config(root, tmp_path / "other", val_split="privatetest"))


def test_a_class_with_no_training_faces_is_said(tmp_path):
    """CK+ sorted into folders has no neutral: the model cannot learn it, and the user is told so."""
    faces, labels = synthetic_faces(24, seed=3)
    keep = labels != CLASSES.index("neutral")
    write_class_folders(tmp_path / "ck", faces[keep], labels[keep], "img")
    _, messages = run(quick_config(tmp_path / "ck", tmp_path / "run", epochs=1))
    assert any("no neutral face(s) to train on" in m for m in messages), messages
    write_class_folders(tmp_path / "all", faces, labels, "img")
    _, messages = run(quick_config(tmp_path / "all", tmp_path / "run2", epochs=1))
    assert not any("to train on" in m for m in messages), messages


def test_own_folder_of_classes_trains_with_a_held_out_tenth(tmp_path, capsys):
    """One folder of class folders (a user's own data): trained on, with 10% of each class held out
    for validation (auto), never trained on: the normalisation is fitted on the other 90%.  The
    draw is stratified and the same whatever --seed (runs that build on each other share it)."""
    from ferkit.data import load_fer2013
    from ferkit.data.balance import stratified_holdout

    faces, labels = synthetic_faces(70, seed=6)
    write_class_folders(tmp_path / "mine", faces, labels, "img")
    _, messages = run(quick_config(tmp_path / "mine", tmp_path / "run", seed=5))
    assert any("training on the 70 faces of its class folders that no split claims" in m for m in messages)
    assert any("63 training faces, 7 validation" in m for m in messages), messages
    loaded = load_fer2013(tmp_path / "mine")["all"]
    kept, held = stratified_holdout(loaded.labels, 0.1, 0)
    assert sorted(loaded.labels[held].tolist()) == list(range(7))  # one of each class's ten
    normalizer = load_model_file(tmp_path / "run" / "best.safetensors").normalizer
    assert float(normalizer.mean) == pytest.approx(loaded.images[kept].mean() / 255, rel=1e-5)
    assert float(normalizer.mean) != pytest.approx(loaded.images.mean() / 255, rel=1e-5)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["validation"].startswith("holdout: 7 training faces") and summary["best_val_acc"] is not None
    # Seed 004 holds out a fifth (22,968 / 5,741): --val-fraction.
    _, messages = run(quick_config(tmp_path / "mine", tmp_path / "fifth", val_fraction=0.2))
    assert any("56 training faces, 14 validation" in m for m in messages), messages
    # Scoring the model on the faces it learnt from is said, in text and JSON.
    assert main(["evaluate", "--data", str(tmp_path / "mine"), "--model", str(tmp_path / "run"), "--json"]) == 0
    assert "learnt from these all faces" in json.loads(capsys.readouterr().out)["caveat"]
    assert main(["evaluate", "--data", str(tmp_path / "mine"), "--model", "fast"]) == 0
    assert "learnt from" not in capsys.readouterr().out
    # A copy elsewhere (another path) is recognised by the faces' pixels: 63 of its 70 were trained on.
    shutil.copytree(tmp_path / "mine", tmp_path / "copy")
    assert main(["evaluate", "--data", str(tmp_path / "copy"), "--model", str(tmp_path / "run"), "--json"]) == 0
    assert "learnt from about 90% of these all faces" in json.loads(capsys.readouterr().out)["caveat"]

    # One face per class: nothing to hold out, so no validation (not the epoch number as a score);
    # files that name no split are trained on beside Training_ ones.
    write_class_folders(tmp_path / "few", faces[:7], np.arange(7), "img")
    summary, messages = run(quick_config(tmp_path / "few", tmp_path / "few_run", batch_size=2))
    assert summary["best_val_acc"] is None and summary["validation"] == "none"
    write_class_folders(tmp_path / "few", faces[7:14], np.arange(7), "Training")
    summary, messages = run(quick_config(tmp_path / "few", tmp_path / "mixed_run", batch_size=2))
    assert any("the 7 faces of its class folders that no split claims too" in m for m in messages), messages
    assert any("7 training faces, 7 validation" in m for m in messages), messages

    kept, held = stratified_holdout(np.repeat(np.arange(7), [30, 2, 1, 10, 10, 0, 5]), 0.1, 3)
    by_class = np.bincount(np.repeat(np.arange(7), [30, 2, 1, 10, 10, 0, 5])[held], minlength=7)
    assert by_class.tolist() == [3, 1, 0, 1, 1, 0, 1]  # a lone face is never held out
    assert len(np.intersect1d(kept, held)) == 0 and len(kept) + len(held) == 58
    again = stratified_holdout(np.repeat(np.arange(7), [30, 2, 1, 10, 10, 0, 5]), 0.1, 3)
    assert np.array_equal(again[1], held)


def test_the_best_epoch_follows_the_monitored_figure(tmp_path):
    """--monitor loss (seed 000's code watches the validation loss): the best epoch is the lowest loss,
    which here is not the highest accuracy's epoch."""
    faces, labels = synthetic_faces(70, seed=1)
    write_class_folders(tmp_path / "fer" / "train", faces, labels, "Training")
    faces, labels = synthetic_faces(28, seed=2)
    write_class_folders(tmp_path / "fer" / "test", faces[:14], labels[:14], "PublicTest")
    chosen = {}
    for monitor in ("accuracy", "loss"):
        out = tmp_path / monitor
        summary, _ = run(quick_config(tmp_path / "fer", out, epochs=6, monitor=monitor))
        history = json.loads((out / "history.json").read_text())
        figure = [r["val_acc"] for r in history] if monitor == "accuracy" else [-r["val_loss"] for r in history]
        assert summary["best_epoch"] == 1 + int(np.argmax(figure)) and summary["monitor"] == monitor
        assert summary["best_val_acc"] == history[summary["best_epoch"] - 1]["val_acc"]
        assert load_model_file(out / "best.safetensors").meta["epoch"] == summary["best_epoch"]
        chosen[monitor] = summary["best_epoch"]
    assert chosen["accuracy"] != chosen["loss"], chosen


def test_plateau_halving_and_early_stopping_in_a_run_and_after_resume(fer_root, tmp_path):
    # A rate so small the model (no batch norm) cannot change its predictions: validation
    # accuracy stays flat, so the plateau rule halves the rate and early stopping ends the run.
    config = quick_config(fer_root, tmp_path / "run", model="test_small", model_options={}, optimizer="sgd",
                          momentum=0.0, lr=1e-9, schedule="plateau", plateau_patience=1, early_stopping=2,
                          epochs=6)
    summary, messages = run(config)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len({r["val_acc"] for r in history}) == 1
    assert [r["lr"] / 1e-9 for r in history] == pytest.approx([1, 1, 0.5])
    assert summary["epochs_run"] == 3 and summary["stopped_early"] and summary["best_epoch"] == 1
    assert any("early stopping" in m for m in messages)
    resumed, _ = run(config, resume=True)  # a stopped run stays stopped
    assert resumed["epochs_run"] == 3 and resumed["stopped_early"]
    # Seed 000's "at least 60 epochs": early stopping waits for --min-epochs.
    patient = dataclasses.replace(config, out=str(tmp_path / "patient"), min_epochs=5)
    summary, _ = run(patient)
    assert summary["epochs_run"] == 5 and summary["stopped_early"]


# ----------------------------------------------------------------------------- transfer learning


def test_pretrained_weights_frozen_backbone_then_fine_tuning(fer_root, tmp_path):
    """Seed 004's two phases: the head alone trains on a frozen pretrained backbone (a head for 10
    classes in the file is replaced), then everything trains at a tenth of the rate."""
    from safetensors.torch import save_file

    torch.manual_seed(123)
    source = create_model("tiny", num_classes=10, width=8).state_dict()
    pretrained = tmp_path / "backbone.safetensors"
    save_file({k: v.contiguous() for k, v in source.items()}, str(pretrained))
    config = quick_config(fer_root, tmp_path / "run", pretrained=str(pretrained), freeze=-1, unfreeze_epoch=1,
                          unfreeze_lr_factor=0.1, epochs=2, optimizer="sgd", lr=0.05)
    after_phase_one = {}

    def log(message: str) -> None:  # the epoch line comes after that epoch's checkpoint
        if message.startswith("epoch 1/2"):
            after_phase_one.update(weights(tmp_path / "run"))

    train(config, log=log)
    final = weights(tmp_path / "run")
    backbone = [k for k in source if k.startswith("features.")]
    assert backbone and after_phase_one
    for key in backbone:  # frozen: weights and batch-norm statistics as in the file
        assert torch.equal(after_phase_one[key], source[key]), key
    assert not torch.equal(after_phase_one["classifier.weight"], final["classifier.weight"])
    assert after_phase_one["classifier.weight"].shape == (7, 32)  # a new 7-class head
    assert any(not torch.equal(final[k], source[k]) for k in backbone if k.endswith("weight"))
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history[0]["lr"] == pytest.approx(0.05) and history[1]["lr"] == pytest.approx(0.005)


def test_unfreeze_keep_leaves_the_first_blocks_frozen_in_phase_two(fer_root, tmp_path):
    """Seed 004 fine-tunes with its first layers still frozen: ``--unfreeze-keep 2`` keeps tiny's
    first convolution and its batch norm as in the file while the later blocks train."""
    from safetensors.torch import save_file

    torch.manual_seed(7)
    source = create_model("tiny", width=8).state_dict()
    pretrained = tmp_path / "backbone.safetensors"
    save_file({k: v.contiguous() for k, v in source.items()}, str(pretrained))
    config = quick_config(fer_root, tmp_path / "run", pretrained=str(pretrained), freeze=-1, unfreeze_epoch=1,
                          unfreeze_keep=2, epochs=2, optimizer="sgd", lr=0.05)
    train(config)
    final = weights(tmp_path / "run")
    for key in ("features.0.weight", "features.1.weight", "features.1.running_mean"):
        assert torch.equal(final[key], source[key]), key
    assert not torch.equal(final["features.4.weight"], source["features.4.weight"])
    with pytest.raises(TrainingError, match="unfreeze-keep 12"):
        train(config.replace(out=str(tmp_path / "too_many"), unfreeze_keep=12))


def test_a_ferkit_model_file_is_accepted_as_pretrained_weights(fer_root, tmp_path):
    """One run can start from another run's best.safetensors (weights under "model." beside the
    normaliser): the new run begins from exactly those weights."""
    config = quick_config(fer_root, tmp_path / "first", epochs=1)
    run(config)
    source = load_model_file(tmp_path / "first" / "best.safetensors").model.state_dict()
    second = quick_config(fer_root, tmp_path / "second", pretrained=str(tmp_path / "first" / "best.safetensors"),
                          epochs=1, lr=1e-12, optimizer="sgd", momentum=0.0)
    _, messages = run(second)
    assert any("new: none" in m for m in messages)
    continued = weights(tmp_path / "second")
    for key, value in source.items():
        if value.is_floating_point() and "running" not in key:
            assert torch.allclose(continued[key], value, atol=1e-6), key


def _constant_teacher(path: Path, favourite: int) -> Path:
    """A model file whose network gives every face the class ``favourite`` with probability ~1."""
    from ferkit.data.preprocess import Normalizer
    from ferkit.models.io import save_model_file

    model = create_model("tiny", width=8)
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(-10.0)
        last.bias[favourite] = 10.0
    save_model_file(path, model, name="tiny", options={"width": 8}, normalizer=Normalizer.identity())
    return path


@pytest.mark.parametrize("mode", ["clean", "online"])
def test_distillation_pulls_the_student_towards_the_teacher(fer_root, tmp_path, mode):
    """With the whole target from a teacher that always says "fear", the student learns to say
    "fear" on faces whose labels say otherwise; with none of it, it learns the labels."""
    from ferkit.data import load_fer2013
    from ferkit.models.inference import predict_probs
    from ferkit.training.distill import teacher_probabilities

    teacher = _constant_teacher(tmp_path / "teacher.safetensors", favourite=2)
    faces = load_fer2013(fer_root).splits["training"].images
    unseen = load_fer2013(fer_root).splits["publictest"]
    probs = teacher_probabilities(str(teacher), faces)
    assert probs.shape == (len(faces), 7) and probs.argmax(1).tolist() == [2] * len(faces)
    assert np.allclose(probs.sum(1), 1.0, atol=1e-5)

    answers = {}
    for weight in (1.0, 0.0):
        out = tmp_path / f"student_{weight}"
        config = quick_config(fer_root, out, distill=str(teacher), distill_weight=weight, epochs=15, lr=0.03,
                              label_smoothing=0.0, augment=NO_AUGMENT, val_split="none", distill_mode=mode)
        _, messages = run(config)
        expected = "agrees with 14.3%" if mode == "clean" else "on every augmented batch (ONNX Runtime)"
        assert any("distilling from" in m and expected in m for m in messages)
        student = load_model_file(out / "best.safetensors")
        answers[weight] = predict_probs(student.model, student.normalizer, unseen.images).argmax(1)
    # Scored on the PublicTest faces (val_split none: never seen): the student answers as its teacher taught it,
    # or, taught by the labels alone, as the labels say.
    assert (answers[1.0] == 2).mean() > 0.9
    assert (answers[0.0] == unseen.labels).mean() > 0.6


def test_a_resumed_run_says_when_its_teacher_has_changed(fer_root, tmp_path):
    teacher = _constant_teacher(tmp_path / "teacher.safetensors", favourite=2)
    config = quick_config(fer_root, tmp_path / "student", distill=str(teacher), val_split="none")
    run(config)
    _, messages = run(config, resume=True)
    assert not any("teacher" in m and "changed" in m for m in messages)
    _constant_teacher(teacher, favourite=3)  # the same path, another model (e.g. a shipped model updated)
    _, messages = run(config, resume=True)
    assert any("the teacher" in m and "has changed since this run started" in m for m in messages)


def test_settings_that_do_nothing_with_the_others_are_said():
    """Momentum with Adam, a plateau patience on a cosine schedule... were taken and ignored in silence."""
    config = TrainConfig(optimizer="adam", momentum=0.5, schedule="cosine", plateau_patience=5, distill_weight=0.9,
                         mix_prob=0.3, val_split="none", early_stopping=4)
    assert config.unused_settings() == [
        "--distill-weight has no effect without --distill", "--plateau-patience has no effect with --schedule cosine",
        "--mix-prob has no effect without --mixup or --cutmix", "--momentum has no effect with --optimizer adam",
        "--early-stopping has no effect with --val-split none"]
    assert TrainConfig().unused_settings() == []
    assert TrainConfig(schedule="plateau", plateau_patience=5, optimizer="sgd", momentum=0.8).unused_settings() == []


def test_val_split_publictest_on_data_without_it_is_refused(tmp_path):
    """It trained on without validation, with only a note, and kept the last epoch."""
    from ferkit.training.loop import TrainingError

    faces, labels = synthetic_faces(28, seed=3)
    write_class_folders(tmp_path / "fer" / "train", faces, labels)
    with pytest.raises(TrainingError, match="--val-split publictest, but the data has no PublicTest faces"):
        run(quick_config(tmp_path / "fer", tmp_path / "run", val_split="publictest"))
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
    with pytest.raises(TrainingError, match="inside the dataset"):  # its curves.png would be read as a face
        run(quick_config(tmp_path / "fer", tmp_path / "fer" / "runs" / "a"))


def test_too_few_faces_for_a_batch_says_how_many_an_epoch_has(tmp_path):
    """Under --balance undersample the count that matters is the balanced one (it said the whole split's)."""
    from ferkit.training.loop import TrainingError

    faces, labels = synthetic_faces(70, seed=3)
    labels[labels == 1] = 0  # disgust keeps one face, as FER2013's rarest class is rarest
    labels[1] = 1
    write_class_folders(tmp_path / "fer" / "train", faces, labels)
    write_class_folders(tmp_path / "fer" / "test", faces[:14], labels[:14], "PublicTest")
    with pytest.raises(TrainingError, match=r": 70 training faces is fewer than one batch of 128"):
        run(quick_config(tmp_path / "fer", tmp_path / "a", batch_size=128))
    with pytest.raises(TrainingError, match=r"70 training faces \(7 an epoch after --balance undersample\) is fewer "
                                            r"than one batch of 8"):
        run(quick_config(tmp_path / "fer", tmp_path / "b", balance="undersample"))


def test_an_int8_teachers_fingerprint_covers_its_int8_graph(tmp_path):
    """An int8 online teacher runs its .int8.onnx graph: a graph exported again (other calibration faces)
    teaches differently, and a resumed run must say so; a float teacher ignores the graph."""
    from ferkit.training.distill import teacher_fingerprint

    teacher = _constant_teacher(tmp_path / "teacher.safetensors", favourite=2)
    graph = tmp_path / "teacher.int8.onnx"
    graph.write_bytes(b"one calibration")
    first = teacher_fingerprint(str(teacher), int8=True)
    graph.write_bytes(b"another calibration")
    assert teacher_fingerprint(str(teacher), int8=True) != first
    assert teacher_fingerprint(str(teacher)) == teacher_fingerprint(str(teacher), int8=False)
    graph.write_bytes(b"one calibration")
    assert teacher_fingerprint(str(teacher), int8=True) == first


def test_online_teacher_sees_the_students_view_in_its_own_normalisation(tmp_path):
    """The student's input, normalised the student's way, reaches the teacher normalised the
    teacher's way; ONNX Runtime and PyTorch give the same probabilities, at the teacher's temperature."""
    from ferkit.data.preprocess import Normalizer
    from ferkit.models.io import save_model_file
    from ferkit.training.distill import OnlineTeacher

    torch.manual_seed(0)
    model = create_model("tiny", width=8).eval()
    teacher_norm = Normalizer(torch.full((1, 1), 0.5), torch.full((1, 1), 0.25))
    path = tmp_path / "teacher.safetensors"
    save_model_file(path, model, name="tiny", options={"width": 8}, normalizer=teacher_norm, temperature=2.0)
    student_norm = Normalizer(torch.full((1, 1), 0.4), torch.full((1, 1), 0.2))
    faces = torch.randint(0, 256, (6, 1, 48, 48), generator=torch.Generator().manual_seed(1)).to(torch.uint8)
    with torch.no_grad():
        expected = torch.softmax(model(teacher_norm(faces)) / 2.0, dim=1)

    teacher = OnlineTeacher(str(path), student_norm, input_size=48)
    assert teacher.engine == "ONNX Runtime"
    assert torch.allclose(teacher(student_norm(faces)), expected, atol=1e-5)
    teacher.members[0].session = None  # the PyTorch path, used when ONNX Runtime is missing
    assert teacher.engine == "PyTorch"
    assert torch.allclose(teacher(student_norm(faces)), expected, atol=1e-5)


def test_an_ensemble_teacher_averages_its_members(fer_root, tmp_path):
    """``a+b`` distils from the mean of two teachers' probabilities, online and on clean faces:
    one teacher says "fear", the other "sad", so each gets half of every face's target."""
    from ferkit.data import load_fer2013
    from ferkit.data.preprocess import Normalizer
    from ferkit.models.io import ModelFileError
    from ferkit.training.distill import OnlineTeacher, teacher_probabilities

    fear = _constant_teacher(tmp_path / "fear.safetensors", favourite=2)
    sad = _constant_teacher(tmp_path / "sad.safetensors", favourite=4)
    spec = f"{fear}+{sad}"
    faces = load_fer2013(fer_root).splits["training"].images[:5]
    expected = np.zeros((5, 7), dtype=np.float32)
    expected[:, [2, 4]] = 0.5
    assert np.allclose(teacher_probabilities(spec, faces), expected, atol=1e-4)

    online = OnlineTeacher(spec, Normalizer.identity(), input_size=48)
    assert len(online.members) == 2
    x = Normalizer.identity()(torch.from_numpy(faces[:, None]))
    assert torch.allclose(online(x), torch.from_numpy(expected), atol=1e-4)
    with pytest.raises(ModelFileError, match="empty model name"):
        teacher_probabilities(f"{fear}+", faces)


@pytest.mark.parametrize("problem", ["pixel", "size"])
def test_online_teacher_refuses_inputs_it_cannot_map(tmp_path, problem):
    from ferkit.data.preprocess import Normalizer
    from ferkit.models.io import ModelFileError, save_model_file
    from ferkit.training.distill import OnlineTeacher

    path = tmp_path / "teacher.safetensors"
    save_model_file(path, create_model("tiny", width=8), name="tiny", options={"width": 8},
                    normalizer=Normalizer.identity())
    student = Normalizer(torch.full((48, 48), 0.5), torch.full((48, 48), 0.25)) if problem == "pixel" \
        else Normalizer.identity()
    with pytest.raises(ModelFileError, match="global" if problem == "pixel" else "48 px"):
        OnlineTeacher(str(path), student, input_size=48 if problem == "pixel" else 44)


def test_a_teacher_with_other_classes_is_a_one_line_error(fer_root, tmp_path, capsys):
    from ferkit.data.preprocess import Normalizer
    from ferkit.models.io import save_model_file

    teacher = tmp_path / "ten.safetensors"
    save_model_file(teacher, create_model("tiny", num_classes=10, width=8), name="tiny", options={"width": 8},
                    normalizer=Normalizer.identity(), classes=[f"c{i}" for i in range(10)])
    code = main(["train", "--data", str(fer_root), "--model", "tiny", "--out", str(tmp_path / "run"),
                 "--distill", str(teacher), "--epochs", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "ten.safetensors" in err[0] and "classes" in err[0]


def test_a_missing_teacher_is_a_one_line_error(fer_root, tmp_path, capsys):
    code = main(["train", "--data", str(fer_root), "--model", "tiny", "--out", str(tmp_path / "run"),
                 "--distill", str(tmp_path / "nope.safetensors"), "--epochs", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "nope.safetensors" in err[0] and "--distill" in err[0]


def test_pretrained_file_for_another_architecture_is_a_clear_error(fer_root, tmp_path, capsys):
    torch.manual_seed(0)
    other = tmp_path / "other.pt"
    torch.save(create_model("test_small").state_dict(), other)
    code = main(["train", "--data", str(fer_root), "--model", "tiny", "--out", str(tmp_path / "run"),
                 "--pretrained", str(other), "--threads", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "other.pt" in err and "do not fit" in err


def test_config_takes_paths_and_saves_them_as_text(tmp_path):
    config = TrainConfig(data=tmp_path / "fer2013.csv", out=tmp_path / "run", pretrained=tmp_path / "w.safetensors")
    saved = json.loads(json.dumps(config.to_dict()))  # the run's config.json
    assert saved["data"] == str(tmp_path / "fer2013.csv") and saved["out"] == str(tmp_path / "run")
    assert TrainConfig.from_dict(saved) == config


def test_train_options_yes_no_stand_alone_and_names_are_listed(capsys):
    """``--skip-bad`` alone means yes (as for data stats and evaluate); a misspelt name is refused
    by the parser with the choices, before any data is read."""
    from ferkit.app.cli import build_parser

    args = build_parser().parse_args(["train", "--data", "d", "--skip-bad", "--aug-flip", "no", "--ema", "0.9"])
    assert (args.skip_bad, args.aug_flip, args.ema) == (True, False, 0.9)
    assert build_parser().parse_args(["train", "--skip-bad", "no"]).skip_bad is False
    for option, bad in (("--optimizer", "sgdd"), ("--schedule", "cosin"), ("--balance", "over"),
                        ("--distill-mode", "offline"), ("--val-split", "privatetest")):
        assert main(["train", "--data", "d", option, bad]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and bad in err and "choose from" in err, err


# ----------------------------------------------------------------------------- resume after SIGKILL


# The run kills itself (SIGKILL, no chance to clean up) inside the optimiser step of a chosen
# global step: a kill at a known place, however fast or slow the machine runs the steps.
KILL_AT_STEP = """
import os, runpy, signal, sys, torch
kill_at, calls, original = int(sys.argv.pop(1)), 0, torch.optim.SGD.step
def step(self, *args, **kwargs):
    global calls
    calls += 1
    if calls == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, *args, **kwargs)
torch.optim.SGD.step = step
sys.argv[0] = "ferkit"
runpy.run_module("ferkit", run_name="__main__", alter_sys=True)
"""


def test_a_compact_checkpoint_under_monitor_loss_chooses_among_the_resumed_epochs(fer_root, tmp_path):
    """A compact checkpoint's best_score -1.0 would beat every minus-loss (about -1.9): nothing would improve."""
    from ferkit.training.checkpoint import compact_checkpoint, save_checkpoint
    from ferkit.training.config import config_differences

    config = quick_config(fer_root, tmp_path / "run", epochs=3, monitor="loss")
    run(config)
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    state.update(epoch=2, step=state["step"] // 3 * 2, history=json.dumps(json.loads(state["history"])[:2]))
    save_checkpoint(tmp_path / "run" / "last.pt", compact_checkpoint(state))
    (tmp_path / "run" / "best.safetensors").unlink()
    summary, _ = run(config, resume=True)
    assert summary["best_epoch"] == 3 and load_model_file(tmp_path / "run" / "best.safetensors").meta["epoch"] == 3
    # A checkpoint from before --monitor existed resumes as accuracy, its default.
    older = {k: v for k, v in config.to_dict().items() if k != "monitor"}
    assert config_differences(older, config.replace(monitor="accuracy").to_dict()) == []
    assert config_differences(older, config.to_dict()) == ["monitor 'accuracy' -> 'loss'"]


def test_a_carried_compact_checkpoint_resumes_the_run_elsewhere(fer_root, tmp_path):
    """scripts/carry_run.py: a run cut off after epoch 2 of 3 travels as float16 averaged weights
    without momentum, and finishes from there in another folder."""
    config = quick_config(fer_root, tmp_path / "run", epochs=3, ema=0.9, optimizer="sgd", lr=0.05)
    run(config)
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    history = json.loads(state["history"])[:2]  # rewound to the end of epoch 2
    best = max(range(2), key=lambda i: history[i]["val_acc"])
    state.update(epoch=2, step=state["step"] // 3 * 2, history=json.dumps(history),
                 best_score=history[best]["val_acc"], best_epoch=best + 1)
    torch.save(state, tmp_path / "run" / "last.pt")

    script = Path(__file__).resolve().parents[1] / "scripts" / "carry_run.py"
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "run"), str(tmp_path / "carried")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "resumes at epoch 3 of 3" in done.stdout
    carried = torch.load(tmp_path / "carried" / "last.pt", weights_only=True)
    assert carried["optimizer"] is None and carried["compact"]
    assert all(v.dtype == torch.float16 for v in carried["model"].values() if v.is_floating_point())
    for key, value in state["ema"].items():  # the moving average is what travels, in both roles
        assert torch.equal(carried["model"][key], value.half() if value.is_floating_point() else value)
        assert torch.equal(carried["ema"][key], carried["model"][key])
    assert sorted(p.name for p in (tmp_path / "carried").iterdir()) == ["config.json", "history.csv",
                                                                        "history.json", "last.pt"]

    elsewhere = tmp_path / "elsewhere"
    shutil.move(str(tmp_path / "carried"), elsewhere)
    summary, messages = run(config.replace(out=str(elsewhere)), resume=True)
    assert any("compact checkpoint" in m for m in messages)
    assert summary["epochs_run"] == 3 and summary["best_epoch"] == 3  # the best is chosen among resumed epochs
    assert load_model_file(elsewhere / "best.safetensors").meta["epoch"] == 3
    resumed = load_checkpoint(elsewhere / "last.pt")
    assert resumed["optimizer"] is not None and not resumed.get("compact")
    assert all(v.dtype == torch.float32 for v in resumed["model"].values() if v.is_floating_point())
    assert json.loads(resumed["history"])[:2] == history

    # --keep-best: the best weights so far travel too (float16), beside what the resumed run writes.
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "run"), str(tmp_path / "kept"), "--keep-best"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    kept = load_model_file(tmp_path / "kept" / "best_carried.safetensors")
    original = load_model_file(tmp_path / "run" / "best.safetensors")
    assert kept.meta["epoch"] == original.meta["epoch"]
    assert all(torch.allclose(kept.model.state_dict()[k], v, atol=1e-2) for k, v in original.model.state_dict().items())
    # A later leg whose own best is worse keeps the one carried before (it was overwritten by any later best).
    from ferkit.models.io import save_model_file

    save_model_file(tmp_path / "run" / "best.safetensors", original.model, name=original.name,
                    options=original.options, normalizer=original.normalizer,
                    meta={**original.meta, "val_acc": -0.5, "epoch": 99})
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "run"), str(tmp_path / "kept"), "--keep-best"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert load_model_file(tmp_path / "kept" / "best_carried.safetensors").meta["epoch"] == original.meta["epoch"]
    done = subprocess.run([sys.executable, str(script), str(elsewhere), str(tmp_path / "final")],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "finished: all 3 epochs" in done.stdout, done.stdout + done.stderr
    # The finished run, carried and resumed: it trains nothing, and its summary names the best epoch its
    # history records (it said best_val_acc -1.0), and that the weights are elsewhere.
    finished = history_rows = json.loads(load_checkpoint(elsewhere / "last.pt")["history"])
    summary, messages = run(config.replace(out=str(tmp_path / "final")), resume=True)
    best_row = max(finished, key=lambda row: row["val_acc"])
    assert (summary["best_epoch"], summary["best_val_acc"]) == (best_row["epoch"], best_row["val_acc"])
    assert any("weights are not in this folder" in m for m in messages)
    # A killed write of the history after the last checkpoint: the resumed (finished) run writes it whole.
    (tmp_path / "final" / "history.json").write_text(json.dumps(history_rows[:1]))
    run(config.replace(out=str(tmp_path / "final")), resume=True)
    assert len(json.loads((tmp_path / "final" / "history.json").read_text())) == 3
    # --keep-best into a folder that carried another run: that run's best is not kept under this one's name.
    other = quick_config(fer_root, tmp_path / "other", epochs=1, model_options={"width": 4})
    run(other)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "other"), str(tmp_path / "kept"), "--keep-best"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "another run's" in done.stdout, done.stdout + done.stderr
    assert load_model_file(tmp_path / "kept" / "best_carried.safetensors").options == {"width": 4}


def test_carrying_a_folder_without_a_run_is_a_one_line_error(tmp_path):
    script = Path(__file__).resolve().parents[1] / "scripts" / "carry_run.py"
    done = subprocess.run([sys.executable, str(script), str(tmp_path), str(tmp_path / "dest")],
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"error: {tmp_path / 'last.pt'}: no such checkpoint"]
    torch.save({"weights": torch.zeros(2)}, tmp_path / "last.pt")  # a checkpoint, but not a training run's
    done = subprocess.run([sys.executable, str(script), str(tmp_path), str(tmp_path / "dest")],
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"error: {tmp_path / 'last.pt'}: not a ferkit training checkpoint"]
    assert not (tmp_path / "dest").exists()


def test_run_killed_mid_epoch_resumes_to_exactly_the_same_weights(tmp_path):
    data = make_dataset(tmp_path / "fer", n_train=160)
    options = dict(epochs=3, mixup=0.4, center_loss=0.01, ema=0.9, schedule="onecycle", warmup_epochs=1.0,
                   optimizer="sgd", lr=0.05)
    reference = tmp_path / "reference"
    run(quick_config(data, reference, **options))

    out = tmp_path / "killed"
    train_args = ["train", "--data", str(data), "--out", str(out), "--model", "tiny",
                  "--model-option", "width=8", "--epochs", "3", "--batch-size", "8", "--optimizer", "sgd",
                  "--lr", "0.05", "--weight-decay", "0", "--schedule", "onecycle", "--warmup-epochs", "1",
                  "--mixup", "0.4", "--center-loss", "0.01", "--ema", "0.9", "--threads", "1"]
    # 20 steps an epoch (160 faces, batches of 8): step 26 is the 6th of epoch 2.
    killed_run = subprocess.run([sys.executable, "-c", KILL_AT_STEP, "26", *train_args], cwd=REPO,
                                capture_output=True, text=True, timeout=300,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert killed_run.returncode == -signal.SIGKILL, killed_run.stderr
    killed = load_checkpoint(out / "last.pt")
    assert killed["epoch"] == 1 and len(json.loads(killed["history"])) == 1

    result = subprocess.run([sys.executable, "-m", "ferkit", "train", "--resume", str(out)], cwd=REPO,
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stderr and json.loads(result.stdout)["epochs_run"] == 3
    resumed, expected = load_checkpoint(out / "last.pt"), load_checkpoint(reference / "last.pt")
    for key in ("model", "ema", "center_loss"):
        assert_same_tensors(resumed[key], expected[key])
    assert resumed["optimizer"]["state"].keys() == expected["optimizer"]["state"].keys()
    for index, param_state in expected["optimizer"]["state"].items():
        assert_same_tensors(resumed["optimizer"]["state"][index], param_state)
    drop_time = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in json.loads(h)]  # noqa: E731
    assert drop_time(resumed["history"]) == drop_time(expected["history"])


def test_ctrl_c_mid_epoch_exits_130_and_the_run_resumes_exactly(fer_root, tmp_path, monkeypatch, capsys):
    """Ctrl-C (KeyboardInterrupt) at the 5th step of epoch 2: one line, status 130, the epoch-1
    checkpoint intact; ``--resume`` then ends where an uninterrupted run ends."""
    loop = sys.modules["ferkit.training.loop"]

    argv = ["train", "--data", str(fer_root), "--model", "tiny", "--model-option", "width=8", "--epochs", "2",
            "--batch-size", "8", "--threads", "1", "--mixup", "0.5"]
    assert main([*argv, "--out", str(tmp_path / "reference")]) == 0
    real_lr_at = loop.lr_at

    def interrupt_at_step_12(schedule, base_lr, step, *args):
        if step == 12:  # 8 steps per epoch: inside epoch 2
            raise KeyboardInterrupt
        return real_lr_at(schedule, base_lr, step, *args)

    monkeypatch.setattr(loop, "lr_at", interrupt_at_step_12)
    capsys.readouterr()
    assert main([*argv, "--out", str(tmp_path / "run")]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "ferkit: interrupted"
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1
    assert not list((tmp_path / "run").glob(".*.tmp"))
    monkeypatch.setattr(loop, "lr_at", real_lr_at)
    assert main(["train", "--resume", str(tmp_path / "run")]) == 0
    assert_same_tensors(weights(tmp_path / "run"), weights(tmp_path / "reference"))


def test_a_failed_checkpoint_write_keeps_the_previous_file(tmp_path):
    from ferkit.training.checkpoint import save_checkpoint

    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1, "model": {"w": torch.ones(2)}})
    with pytest.raises((pickle.PicklingError, AttributeError), match="pickle"):  # by Python version
        save_checkpoint(path, {"epoch": 2, "model": {"w": torch.zeros(2)}, "bad": lambda: None})  # unpicklable
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


# ----------------------------------------------------------------------------- CLI bad input


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, Path]:
    """A dataset and a finished one-epoch run made by ``ferkit train``, copied by the tests that change it."""
    base = tmp_path_factory.mktemp("cli")
    data = make_dataset(base / "fer", n_train=35, n_val=7)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FERKIT_CACHE_DIR", str(base / "cache"))
        code = main(["train", "--data", str(data), "--out", str(base / "run"), "--model", "tiny",
                     "--model-option", "width=8", "--epochs", "1", "--batch-size", "8", "--threads", "1"])
    assert code == 0
    return data, base / "run"


def expect_one_line_error(capsys, argv: list[str], *fragments: str) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, captured
    assert len(err.splitlines()) == 1 and err.startswith("ferkit") and ": error: " in err, err
    assert "Traceback" not in captured.err
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_unknown_model_and_optimizer_list_the_choices(finished_run, tmp_path, capsys):
    data, _ = finished_run
    out = tmp_path / "new"
    expect_one_line_error(capsys, ["train", "--data", str(data), "--out", str(out), "--model", "resnet9000"],
                          "resnet9000", "tiny", "vgg_fer")
    expect_one_line_error(capsys, ["train", "--data", str(data), "--out", str(out), "--model", "tiny",
                                   "--optimizer", "lion"], "lion", "'sgd', 'adam', 'adamax', 'adamw', 'radam'")
    expect_one_line_error(capsys, ["train", "--data", str(data), "--out", str(out), "--model", "tiny",
                                   "--schedule", "step"], "step", "onecycle")
    expect_one_line_error(capsys, ["train", "--data", str(data), "--out", str(out), "--model", "tiny",
                                   "--model-option", "depth=3"], "tiny", "depth")
    expect_one_line_error(capsys, ["train", "--data", str(data), "--out", str(out), "--model", "tiny",
                                   "--freeze", "40"], "--freeze 40")
    assert not out.exists()  # names are checked before anything is written


@pytest.mark.parametrize("options, fragment", [
    # Once tracebacks after the run folder was made, NaN weights saved as "best", or silently ignored.
    (["--model-option", "width=0"], "--model-option width=0"),
    (["--aug-erase-min", "30", "--aug-erase-max", "5"], "--aug-erase-min"),
    (["--lr", "inf"], "--lr inf: not a finite number"),
    (["--momentum", "nan"], "--momentum nan"),
    (["--aug-rotate", "nan"], "--aug-rotate nan"),
    (["--mixup", "-1"], "--mixup"),
    (["--mix-prob", "5"], "--mix-prob"),
    (["--warmup-epochs", "-2"], "--warmup-epochs"),
    (["--aug-shift", "5"], "--aug-shift"),
    (["--schedule", "cosine", "--min-lr", "1.0"], "--min-lr"),
    (["--freeze", "1", "--unfreeze-epoch", "5"], "--unfreeze-epoch 5"),
    (["--aug-crop", "100"], "--aug-crop 100: tiny takes 48x48"),
    (["--seed", "-1"], "--seed"),
    (["--pretrained", "nothere.safetensors"], "--pretrained nothere.safetensors: no such file"),
])
def test_a_bad_training_setting_is_one_line_before_anything_is_written(finished_run, tmp_path, capsys, options,
                                                                     fragment):
    data, _ = finished_run
    out = tmp_path / "new"
    expect_one_line_error(capsys, ["train", "--data", str(data), "--out", str(out), "--model", "tiny",
                                   "--epochs", "1", *options], fragment)
    assert not out.exists()


def test_an_output_that_is_a_file_is_refused_before_the_data_is_read(finished_run, tmp_path, capsys, monkeypatch):
    import ferkit.training.loop as loop

    data, _ = finished_run
    (tmp_path / "afile").write_text("notes")
    monkeypatch.setattr(loop, "load_fer2013", lambda *a, **k: pytest.fail("the data was read first"))
    expect_one_line_error(capsys, ["train", "--data", str(data), "--out", str(tmp_path / "afile"), "--model", "tiny"],
                          "afile: a file, not a folder")


def test_a_diverging_run_stops_and_saves_no_nan_weights(finished_run, tmp_path, capsys, monkeypatch):
    data, _ = finished_run
    out = tmp_path / "diverged"
    real_step = torch.optim.SGD.step

    def diverging_step(self, *args, **kwargs):  # as a rate far too high does, within a step or two
        result = real_step(self, *args, **kwargs)
        for group in self.param_groups:
            for p in group["params"]:
                p.data.mul_(1e30)
        return result

    monkeypatch.setattr(torch.optim.SGD, "step", diverging_step)
    code = main(["train", "--data", str(data), "--out", str(out), "--model", "tiny", "--model-option", "width=8",
                 "--epochs", "1", "--batch-size", "8", "--warmup-epochs", "0", "--threads", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err
    assert re.match(r"ferkit: error: epoch 1: the (training loss became nan|weights became NaN or infinite)",
                    err.splitlines()[-1]), err
    assert not (out / "best.safetensors").exists() and not (out / "last.pt").exists()
    expect_one_line_error(capsys, ["train", "--data", str(data), "--out", str(out), "--lr", "1e308"],
                          "--lr 1e+308: must be positive (and at most 100)")
    expect_one_line_error(capsys, ["train", "--data", str(data), "--out", str(out), "--threads", "99999"],
                          "--threads 99999: at most 256")
    expect_one_line_error(capsys, ["train", "--data", str(data), "--out", str(out), "--seed", "99999999999999999999"],
                          "--seed 99999999999999999999: must be at least 0 and below 2**63")


def test_weights_broken_by_the_last_step_of_an_epoch_are_not_saved(fer_root, tmp_path, monkeypatch):
    """The loss is computed before the step: a step that makes the weights NaN left a finite loss, and the
    NaN weights became best.safetensors."""
    import ferkit.training.loop as loop

    real_step = torch.optim.Adam.step

    def breaking_step(self, *args, **kwargs):
        result = real_step(self, *args, **kwargs)
        for group in self.param_groups:
            for p in group["params"]:
                p.data.fill_(float("nan"))
        return result

    monkeypatch.setattr(torch.optim.Adam, "step", breaking_step)
    with pytest.raises(loop.TrainingError, match="the weights became NaN or infinite"):
        run(quick_config(fer_root, tmp_path / "run", limit_train=8))
    assert not (tmp_path / "run" / "best.safetensors").exists()


def test_a_run_records_the_crop_it_trains_on_and_its_teacher_by_full_path(finished_run, tmp_path, capsys,
                                                                          monkeypatch):
    """tiny (48 px) runs once recorded the default crop, 44; a relative --distill could not resume elsewhere."""
    data, run_dir = finished_run
    assert json.loads((run_dir / "config.json").read_text())["augment"]["crop"] == 48
    monkeypatch.chdir(run_dir.parent)
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "pupil"), "--model", "tiny",
                 "--model-option", "width=8", "--epochs", "1", "--batch-size", "8", "--threads", "1",
                 "--distill", run_dir.name]) == 0
    capsys.readouterr()
    assert json.loads((tmp_path / "pupil" / "config.json").read_text())["distill"] == str(run_dir.resolve())


def test_data_without_a_training_split(tmp_path, capsys):
    faces, labels = synthetic_faces(14)
    write_class_folders(tmp_path / "fer" / "test", faces, labels, "PublicTest")
    out = tmp_path / "run"
    expect_one_line_error(capsys, ["train", "--data", str(tmp_path / "fer"), "--out", str(out), "--model", "tiny"],
                          str(tmp_path / "fer"), "no training split")
    assert not out.exists()


def test_new_run_into_an_existing_run_is_refused(finished_run, capsys):
    data, run_dir = finished_run
    before = snapshot(run_dir)
    expect_one_line_error(capsys, ["train", "--data", str(data), "--out", str(run_dir), "--model", "tiny"],
                          "already exists", "--resume")
    assert snapshot(run_dir) == before


def test_a_run_that_lost_its_checkpoint_is_not_trained_again_over_its_results(finished_run, tmp_path, capsys):
    """Without last.pt there is nothing to resume from; starting again would overwrite best.safetensors."""
    data, run_dir = finished_run
    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    (copy / "last.pt").unlink()
    before = snapshot(copy)
    expect_one_line_error(capsys, ["train", "--resume", str(copy)], "last.pt is missing", "history.json",
                          "--pretrained")
    expect_one_line_error(capsys, ["train", "--data", str(data), "--out", str(copy), "--model", "tiny"],
                          "already exists")
    assert snapshot(copy) == before
    # Killed after writing its first best weights but before its first checkpoint: it starts again.
    for name in ("history.json", "history.csv", "summary.json"):
        (copy / name).unlink()
    assert main(["train", "--resume", str(copy)]) == 0
    assert "killed before its first checkpoint" in capsys.readouterr().err and (copy / "last.pt").exists()


def test_resuming_a_finished_run_says_it_is_finished(finished_run, tmp_path, capsys):
    _, run_dir = finished_run
    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    best = (copy / "best.safetensors").read_bytes()
    assert main(["train", "--resume", str(copy)]) == 0
    err = capsys.readouterr().err
    assert "already finished (1/1 epochs)" in err and f"resuming {copy} at" not in err
    assert (copy / "best.safetensors").read_bytes() == best


def test_resume_with_a_different_configuration_is_refused(finished_run, tmp_path, capsys):
    _, run_dir = finished_run
    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    before = snapshot(copy)
    expect_one_line_error(capsys, ["train", "--resume", str(copy), "--lr", "0.5"], "different configuration",
                          "lr 0.05 -> 0.5")
    expect_one_line_error(capsys, ["train", "--resume", str(copy), "--aug-flip", "no"], "augment")
    assert snapshot(copy) == before
    # config.json edited by hand so that it no longer matches the checkpoint
    config = json.loads((copy / "config.json").read_text())
    config["epochs"] = 5
    (copy / "config.json").write_text(json.dumps(config))
    before = snapshot(copy)
    expect_one_line_error(capsys, ["train", "--resume", str(copy)], "last.pt", "different configuration",
                          "epochs 1 -> 5")
    assert snapshot(copy) == before


def test_a_run_resumes_from_moved_data_and_with_other_threads_but_not_from_other_data(finished_run, tmp_path,
                                                                                        capsys):
    data, run_dir = finished_run
    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    (copy / ".last.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")  # left by a SIGKILL mid-write
    moved = Path(shutil.copytree(data, tmp_path / "moved"))
    code = main(["train", "--resume", str(copy), "--data", str(moved), "--threads", "2"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "removed 1 temporary file(s)" in err and not list(copy.glob(".*.tmp"))
    saved = json.loads((copy / "config.json").read_text())
    assert saved["data"] == str(moved.resolve()) and saved["threads"] == 2
    # Same folder layout, other faces: the fingerprint in last.pt tells them apart.
    other = make_dataset(tmp_path / "other", n_train=35, n_val=7, seed=9)
    expect_one_line_error(capsys, ["train", "--resume", str(copy), "--data", str(other)],
                          "not the training data this run was trained on")
    # The same training faces, other validation faces: the best epoch so far was chosen on the old ones.
    fewer = Path(shutil.copytree(data, tmp_path / "fewer"))  # one PublicTest face changed
    cv2.imwrite(str(next((fewer / "test" / "happy").glob("*.png"))), np.full((48, 48), 9, np.uint8))
    expect_one_line_error(capsys, ["train", "--resume", str(copy), "--data", str(fewer)],
                          "not the validation faces this run chose its best epoch on")
    expect_one_line_error(capsys, ["train", "--resume", str(copy), "--epochs", "3"], "epochs 1 -> 3",
                          "--pretrained", "best.safetensors")


def test_a_run_whose_config_json_was_deleted_resumes_from_last_pt(finished_run, tmp_path, capsys):
    """last.pt holds the whole configuration: --resume once refused the run for want of config.json."""
    _, run_dir = finished_run
    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    saved = json.loads((copy / "config.json").read_text())
    (copy / "config.json").unlink()
    code = main(["train", "--resume", str(copy)])
    assert code == 0, capsys.readouterr().err
    assert "written again from last.pt" in capsys.readouterr().err
    assert {k: v for k, v in json.loads((copy / "config.json").read_text()).items() if k != "out"} == \
        {k: v for k, v in saved.items() if k != "out"}


def test_a_run_saved_before_a_setting_existed_still_resumes(finished_run, tmp_path, capsys):
    """Runs outlive ferkit versions: a setting added later is taken at its default on resume."""
    _, run_dir = finished_run
    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    config = json.loads((copy / "config.json").read_text())
    del config["unfreeze_keep"]
    (copy / "config.json").write_text(json.dumps(config))
    state = load_checkpoint(copy / "last.pt")
    del state["config"]["unfreeze_keep"]
    torch.save(state, copy / "last.pt")
    code = main(["train", "--resume", str(copy)])
    assert code == 0, capsys.readouterr().err


@pytest.mark.parametrize("damage", ["truncated", "garbage", "pickled code", "not a checkpoint"])
def test_corrupt_or_truncated_checkpoint_is_refused(finished_run, tmp_path, capsys, damage):
    _, run_dir = finished_run
    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    last = copy / "last.pt"
    if damage == "truncated":
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    elif damage == "garbage":
        last.write_bytes(os.urandom(4096))
    elif damage == "pickled code":  # weights_only loading refuses to run anything
        torch.save({"config": {}, "payload": Path("x")}, last)
    else:
        torch.save({"weights": torch.zeros(3)}, last)
    before = snapshot(copy)
    expect_one_line_error(capsys, ["train", "--resume", str(copy)], str(last))
    assert snapshot(copy) == before


def test_a_loaded_config_lives_where_its_file_is(finished_run, tmp_path, monkeypatch):
    """`train(TrainConfig.load(...), resume=True)` on a moved (or carried) run, or from another working
    folder, trained into the saved `out`, relative to wherever Python ran."""
    _, run_dir = finished_run
    copy = Path(shutil.copytree(run_dir, tmp_path / "elsewhere" / "run"))
    monkeypatch.chdir(tmp_path)
    loaded = TrainConfig.load("elsewhere/run/config.json")
    assert loaded.out == str(Path("elsewhere/run"))
    summary = train(loaded, resume=True, log=lambda message: None)
    assert Path(summary["run"]).resolve() == copy.resolve() and not (tmp_path / "run").exists()
    # A config file kept elsewhere (a template, benchmarks/histories/NAME.config.json) keeps its own out.
    template = tmp_path / "templates" / "vgg.config.json"
    template.parent.mkdir()
    template.write_text((copy / "config.json").read_text())
    assert TrainConfig.load(template).out == json.loads(template.read_text())["out"]


def test_a_run_folder_in_use_is_not_trained_by_a_second_process(finished_run, tmp_path, capsys):
    """A second `--resume` of a run still training removed its half-written checkpoint (as a killed write's
    leftover) and both trained into the same files. The folder is locked while a run trains; the lock
    goes with the process, so a killed run never leaves it locked."""
    from ferkit.atomic import FolderLock

    _, run_dir = finished_run
    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    (copy / ".last.pt.abc.tmp").write_bytes(b"half a checkpoint being written")
    holder = FolderLock(copy)
    holder.acquire()
    try:
        expect_one_line_error(capsys, ["train", "--resume", str(copy)], "another training is running",
                              f"pid {os.getpid()}")
        assert (copy / ".last.pt.abc.tmp").exists()
    finally:
        holder.release()
    code = main(["train", "--resume", str(copy)])  # the lock released: the (finished) run resumes
    assert code == 0 and not (copy / ".last.pt.abc.tmp").exists()
    killed = subprocess.run([sys.executable, "-c", "import os, sys; from ferkit.atomic import FolderLock; "
                             f"FolderLock({str(copy)!r}).acquire(); os._exit(9)"], cwd=REPO)
    assert killed.returncode == 9
    FolderLock(copy).acquire()  # not left locked by the killed process


def test_a_file_system_without_locks_trains_unlocked(tmp_path, monkeypatch):
    """flock fails with ENOLCK / EOPNOTSUPP on some network mounts: that is no reason to refuse a run."""
    import errno

    import ferkit.atomic as atomic

    def no_locks(*args):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(atomic.fcntl, "flock", no_locks)
    lock = atomic.FolderLock(tmp_path)
    lock.acquire()
    lock.release()


def test_resume_of_nothing_and_bad_config_file(tmp_path, capsys):
    expect_one_line_error(capsys, ["train", "--resume", str(tmp_path / "nowhere")], "no run to resume")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{not json")
    expect_one_line_error(capsys, ["train", "--resume", str(tmp_path / "run")], "config.json")
    for text, says in (("[]", "a JSON list, not an object"), ('"x"', "a JSON str, not an object"),
                       ('{"augment": [1]}', "bad augment settings (a JSON list")):
        (tmp_path / "run" / "config.json").write_text(text)
        expect_one_line_error(capsys, ["train", "--resume", str(tmp_path / "run")], "config.json", says)


def test_the_installed_command_prints_one_line_for_a_corrupt_checkpoint(finished_run, tmp_path):
    _, run_dir = finished_run
    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    (copy / "last.pt").write_bytes(b"PK\x03\x04 truncated")
    result = subprocess.run([sys.executable, "-m", "ferkit", "train", "--resume", str(copy)], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "last.pt" in result.stderr and "Traceback" not in result.stderr


def test_checkpoint_loader_names_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="nothing.pt"):
        load_checkpoint(tmp_path / "nothing.pt")


def test_sigterm_is_handled_like_ctrl_c(capsys):
    """``kill`` or a scheduler's preemption runs every ``finally`` (temporary files are removed, finished
    work kept) and exits 143, the shell's code for SIGTERM."""
    from ferkit.app.errors import run_safely, terminate_like_ctrl_c

    previous = signal.getsignal(signal.SIGTERM)
    cleaned = []

    def action():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        finally:
            cleaned.append(True)

    try:
        terminate_like_ctrl_c()
        assert run_safely(action) == 143
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert cleaned == [True] and capsys.readouterr().err.strip() == "ferkit: terminated"


# ----------------------------------------------------------------------------- photos


def test_training_on_photos_reads_their_largest_face(fer_root, tmp_path, capsys):
    """``ferkit train`` reads a picture that is not a 48x48 crop as ``evaluate`` scores it: the largest
    face found (the run records the detector, and a resume keeps it); ``--detector none`` reads it whole."""
    from test_evaluation import photo_dataset

    from ferkit.data import load_fer2013
    from ferkit.training.loop import data_fingerprint
    from ferkit.vision.crop import LargestFaceCropper

    for split in ("train", "test"):
        photo_dataset(tmp_path / "photos" / split)
    common = ["train", "--data", str(tmp_path / "photos"), "--model", "tiny", "--model-option", "width=8",
              "--epochs", "1", "--batch-size", "4", "--threads", "1"]

    def trained_on(run: Path) -> str:
        return load_checkpoint(run / "last.pt")["train_fingerprint"]

    def fingerprint(**options) -> str:
        split = load_fer2013(tmp_path / "photos", cache=False, **options)["training"]
        return data_fingerprint(split.images, split.labels)

    assert main([*common, "--out", str(tmp_path / "haar"), "--detector", "haar"]) == 0
    assert "ferkit: warning: " in (err := capsys.readouterr().err) and "8 detected, 2 central squares" in err  # both
    with pytest.warns(UserWarning, match="converted"):
        haar_faces, whole = fingerprint(cropper=LargestFaceCropper("haar")), fingerprint()
    assert haar_faces != whole and trained_on(tmp_path / "haar") == haar_faces
    assert json.loads((tmp_path / "haar" / "config.json").read_text())["detector"] == "haar"
    assert main([*common, "--out", str(tmp_path / "whole"), "--detector", "none"]) == 0
    assert "converted" in capsys.readouterr().err
    assert trained_on(tmp_path / "whole") == whole

    # A new run finds faces by default; a resumed one keeps the detector it started with.
    assert main([*common, "--out", str(tmp_path / "auto")]) == 0
    assert "converted" in capsys.readouterr().err
    assert json.loads((tmp_path / "auto" / "config.json").read_text())["detector"] == "auto"
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "whole"), "--detector", "haar"]) == 2
    assert "detector 'none' -> 'haar'" in capsys.readouterr().err
    # A run saved before the setting existed read pictures whole, and resumes doing so; one saved before an
    # augmentation setting existed (vflip) resumes with its default.
    config_file = tmp_path / "whole" / "config.json"
    older = {k: v for k, v in json.loads(config_file.read_text()).items() if k != "detector"}
    older["augment"] = {k: v for k, v in older["augment"].items() if k != "vflip"}
    config_file.write_text(json.dumps(older))
    checkpoint = load_checkpoint(tmp_path / "whole" / "last.pt")
    checkpoint["config"]["augment"].pop("vflip")
    torch.save(checkpoint, tmp_path / "whole" / "last.pt")
    assert main(["train", "--resume", str(tmp_path / "whole")]) == 0
    assert "converted" in capsys.readouterr().err
    assert trained_on(tmp_path / "whole") == whole

    # The Python API asks for the cropper the configuration names, rather than read photos whole.
    config = TrainConfig(data=str(tmp_path / "photos"), model="tiny", out=str(tmp_path / "api"), epochs=1,
                         detector="haar")
    with pytest.raises(TrainingError, match="not 48x48 face crops.*pass cropper=LargestFaceCropper"), \
            pytest.warns(UserWarning, match="converted"):
        train(config)
    run(quick_config(fer_root, tmp_path / "fer2013", detector="auto"))  # 48x48 crops need no cropper
    with pytest.raises(TrainingError, match="detector is 'none'"):
        train(config.replace(detector="none"), cropper=LargestFaceCropper("haar"))


def test_precision_auto_keeps_float32_for_a_model_bf16_slows(monkeypatch):
    """--precision auto uses bf16 only on CPUs with native bf16, and not for a model registered as
    slower in bf16 there (efficientnet_b1); an explicit choice is kept."""
    from ferkit.training import loop

    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: True)
    assert loop.use_bf16("auto") and loop.use_bf16("auto", "vgg_fer")
    assert not loop.use_bf16("auto", "efficientnet_b1") and loop.use_bf16("bf16", "efficientnet_b1")
    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: False)
    assert not loop.use_bf16("auto", "vgg_fer") and not loop.use_bf16("fp32", "vgg_fer")
    assert loop.use_bf16("bf16", "vgg_fer")


@pytest.mark.parametrize("raised, said", [(KeyError(174812789), "(KeyError 174812789)"),
                                          (RuntimeError("PytorchStreamReader failed. Advice."),
                                           "(PytorchStreamReader failed)")])
def test_a_corrupt_checkpoint_is_said_in_words(tmp_path, monkeypatch, raised, said):
    """torch's error for a damaged last.pt can be a bare number: the line names the kind of failure."""
    import torch

    from ferkit.training.checkpoint import CheckpointError, load_checkpoint

    (tmp_path / "last.pt").write_bytes(b"PK damaged")

    def fail(*args, **kwargs):
        raise raised

    monkeypatch.setattr(torch, "load", fail)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(tmp_path / "last.pt")
    assert str(caught.value) == f"{tmp_path / 'last.pt'}: corrupt or unreadable checkpoint {said}"


@pytest.mark.parametrize("changes, said", [
    (dict(epochs="3"), "--epochs '3': expected a whole number"),
    (dict(epochs=2.5), "--epochs 2.5: expected a whole number"),
    (dict(equalize="no"), "--equalize 'no': expected true or false"),  # a non-empty string is true
    (dict(model_options="width=3"), "--model-options 'width=3': expected a mapping"),
    (dict(augment={"shift": 0.9}), "--augment {'shift': 0.9}: expected an AugmentConfig"),
    (dict(epochs=0), "--epochs 0: must be at least 1"),
    (dict(threads=-1), "--threads -1: none may be negative"),
])
def test_a_configuration_value_of_the_wrong_kind_is_named(tmp_path, changes, said):
    """Values from the Python API are checked for their kind before their range: they once failed as a
    bare TypeError deep inside, or (equalize="no") quietly did the opposite."""
    with pytest.raises(ValueError) as caught:
        quick_config(tmp_path, tmp_path / "run", **changes).validate()
    assert said in str(caught.value) and "\n" not in str(caught.value)


def test_an_empty_run_folder_name_is_refused(tmp_path):
    """TrainConfig(out="") passed and wrote the run into the current folder."""
    with pytest.raises(ValueError, match="--out must name a run folder"):
        quick_config(tmp_path, "").validate()


def test_numpy_numbers_are_numbers_in_a_configuration(tmp_path):
    """np.int64(3) epochs (a value from an array, a grid search) was refused once kinds were checked; it is
    a whole number, and config.json gets it as plain JSON."""
    config = quick_config(tmp_path, tmp_path / "run", epochs=np.int64(3), lr=np.float32(0.5), equalize=np.bool_(True))
    config.validate()
    assert json.loads(json.dumps(dataclasses.asdict(config)))["epochs"] == 3
    assert type(config.epochs) is int and type(config.lr) is float and config.equalize is True


def test_an_empty_data_path_is_not_the_current_folder(tmp_path, monkeypatch):
    """Path("") is ".": a folder of class folders there was once loaded, evaluated and trained on."""
    from ferkit.data import DataError, load_fer2013

    faces, labels = synthetic_faces(14, seed=3)
    write_class_folders(tmp_path, faces, labels, "img")
    monkeypatch.chdir(tmp_path)
    for path in ("", "  "):
        with pytest.raises(DataError, match="no dataset given"):
            load_fer2013(path)
    with pytest.raises(TrainingError, match="no dataset given"):
        train(quick_config("", tmp_path / "run"))


def test_every_paper_recipe_is_a_valid_training_config(monkeypatch):
    """docs/paper_recipes.md's commands parse as `ferkit train` reads them and pass the config's checks
    (each network built with its options and one face passed through it). Their training is not run."""
    import re
    import shlex

    import ferkit.training
    from ferkit.app.cli import main

    page = (Path(__file__).resolve().parents[1] / "docs" / "paper_recipes.md").read_text()
    commands = re.findall(r"`(ferkit train [^`]+)`", page)
    assert len(commands) >= 11
    seen = []
    monkeypatch.setattr(ferkit.training, "train", lambda config, **kw: seen.append(config) or {})
    # The fusion row's members are the two rows before it, which are not trained here: their files are not read.
    monkeypatch.setattr(sys.modules["ferkit.training.loop"], "with_fusion_members", lambda config: config)
    import ferkit.training.superres as superres

    generators = []
    monkeypatch.setattr(superres, "train_superres", lambda config, **kw: generators.append(config) or {})
    for command in re.findall(r"`(ferkit superres [^`]+)`", page):  # seed 001's SRGAN, before its ResNet-50
        assert main(shlex.split(command)[1:]) == 0, command
        generators[-1].validate()
    assert [(g.epochs, g.mse_epochs, g.out) for g in generators] == [(10, 3, "runs/srgan")]
    for command in commands:
        assert main(shlex.split(command)[1:]) == 0, command
        if seen[-1].fuse:  # its members are the runs of the two rows before: train reads their architectures
            assert (seen[-1].model, seen[-1].freeze) == ("fusion", -1) and seen[-1].fuse.endswith("runs/resnet50")
            continue
        seen[-1].validate()
    assert {config.model for config in seen} >= {"shallow", "medium", "deep", "sepconv", "resnet50", "cnn1", "cnn2",
                                                  "vgg11", "vgg16", "cnn5", "efficientnet_b1", "fusion"}
    shallow = next(config for config in seen if config.model == "shallow")
    assert (shallow.schedule, shallow.min_lr, shallow.batch_size) == ("plateau", 1e-4, 128)
