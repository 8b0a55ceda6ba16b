"""Seed 001's fusion: trained networks' features joined under one new classifier (``train --fuse A+B``)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import synthetic_faces, write_fer_root
from ferkit.app.cli import main
from ferkit.data import load_fer2013
from ferkit.data.augment_config import AugmentConfig
from ferkit.data.preprocess import Normalizer
from ferkit.models import create_model
from ferkit.models.fusion import fusion_options
from ferkit.models.hub import load_model
from ferkit.models.inference import predict_probs
from ferkit.models.io import LoadedModel, load_model_file, network_weights, read_model_file, save_model_file
from ferkit.training.checkpoint import load_checkpoint
from ferkit.training.config import TrainConfig
from ferkit.training.loop import train

NO_AUGMENT = AugmentConfig(flip=False, shift=0.0, rotate=0.0, scale=0.0, crop=48, erase_p=0.0)


def _tiny_file(path: Path, seed: int, normalizer: Normalizer, **options) -> Path:
    torch.manual_seed(seed)
    save_model_file(path, create_model("tiny", **options), name="tiny", options=options, normalizer=normalizer)
    return path


def _features(loaded: LoadedModel, faces: np.ndarray) -> torch.Tensor:
    """What the member's classifier reads: the pooled features of a tiny net, on its own normalisation."""
    net = loaded.model.eval()
    with torch.no_grad():
        return net.pool(net.features(loaded.normalizer.to_tensor(faces))).flatten(1)


def test_each_member_reads_the_face_as_its_own_training_normalised_it(tmp_path):
    """Members fitted on other faces (other means and stds) get their own normalisation of the fused
    model's input through the scale and shift: their features inside equal their features alone."""
    a = load_model_file(_tiny_file(tmp_path / "a.safetensors", 0, Normalizer(torch.full((1, 1), 0.3),
                                                                              torch.full((1, 1), 0.2))))
    b = load_model_file(_tiny_file(tmp_path / "b.safetensors", 1, Normalizer.identity(), width=8))
    fused = create_model("fusion", **fusion_options([a, b]))
    run_normalizer = Normalizer(torch.full((1, 1), 0.45), torch.full((1, 1), 0.25))
    fused.load_members([a, b], run_normalizer)
    fused.eval()
    faces = synthetic_faces(6, seed=3)[0]
    with torch.no_grad():
        x = run_normalizer.to_tensor(faces)
        inside = [net(x * fused.input_scale[i] + fused.input_shift[i]) for i, net in enumerate(fused.members)]
        logits = fused(x)
    for member, features in zip((a, b), inside):
        torch.testing.assert_close(features, _features(member, faces), atol=1e-5, rtol=1e-5)
    assert [f.shape[1] for f in inside] == [64, 32]
    head = fused.head[-1]
    torch.testing.assert_close(logits, torch.cat(inside, 1) @ head.weight.T + head.bias)


def test_a_member_trained_on_smaller_crops_reads_the_centre_crop(tmp_path):
    """Seed 001 fuses a 44 px-crop network with a whole-face one: the fusion takes 48 px faces and gives
    the smaller member their centre crop, as ferkit scores that member alone."""
    whole = load_model_file(_tiny_file(tmp_path / "w.safetensors", 0, Normalizer.identity()))
    small = load_model_file(_tiny_file(tmp_path / "s.safetensors", 1, Normalizer.identity(), input_size=40))
    fused = create_model("fusion", **fusion_options([small, whole]))
    fused.load_members([small, whole], Normalizer.identity())
    fused.eval()
    assert (fused.input_size, fused.member_sizes) == (48, [40, 48])
    faces = synthetic_faces(4, seed=5)[0]
    with torch.no_grad():
        x = Normalizer.identity().to_tensor(faces)
        inside = fused.members[0](x[..., 4:44, 4:44])
        shifted = fused.members[0](x[..., 0:40, 0:40])
        torch.testing.assert_close(fused(x), fused.head(torch.cat([inside, fused.members[1](x)], 1)))
    torch.testing.assert_close(inside, _features(small, faces[:, 4:44, 4:44]))
    assert not torch.allclose(inside, shifted)  # the crop's place matters: the test would see a wrong one


def test_a_fusion_refuses_members_it_cannot_join(tmp_path):
    a = load_model_file(_tiny_file(tmp_path / "a.safetensors", 0, Normalizer.identity()))
    with pytest.raises(ValueError, match="at least two member networks"):
        create_model("fusion", **fusion_options([a]))
    pixel = load_model_file(_tiny_file(tmp_path / "p.safetensors", 0, Normalizer.fit(synthetic_faces(7)[0], "pixel")))
    fused = create_model("fusion", **fusion_options([a, pixel]))
    with pytest.raises(ValueError, match=r"p\.safetensors: a fusion needs .* global normalisation"):
        fused.load_members([a, pixel], Normalizer.identity())
    equalized = load_model_file(_tiny_file(tmp_path / "e.safetensors", 0,
                                           Normalizer(torch.full((1, 1), 0.5), torch.full((1, 1), 0.5), True)))
    with pytest.raises(ValueError, match=r"e\.safetensors: trained with histogram equalisation, the fusion run "
                                         r"without \(--equalize must match\)"):
        create_model("fusion", **fusion_options([a, equalized])).load_members([a, equalized], Normalizer.identity())


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A small dataset and two tiny networks trained on it (another seed each): the root and both runs."""
    base = tmp_path_factory.mktemp("fusion")
    root = write_fer_root(base / "fer")  # conftest's fer_root, kept for the whole module
    runs = []
    for seed in (0, 1):
        out = base / f"member{seed}"
        train(TrainConfig(data=str(root), out=str(out), model="tiny", model_options={"width": 8}, epochs=15,
                          batch_size=8, optimizer="adam", lr=0.01, weight_decay=0.0, schedule="constant",
                          warmup_epochs=0.0, threads=1, seed=seed, augment=NO_AUGMENT, val_split="none",
                          detector="none"), log=lambda message: None)
        runs.append(out)
    return root, runs[0], runs[1]


FUSE_ARGS = ["--epochs", "10", "--batch-size", "8", "--optimizer", "adam", "--lr", "0.01", "--weight-decay", "0",
             "--schedule", "constant", "--threads", "1", "--val-split", "none", "--aug-flip", "no", "--aug-shift", "0",
             "--aug-rotate", "0", "--aug-scale", "0", "--aug-erase-p", "0"]


def test_train_fuse_learns_a_classifier_over_the_frozen_members(members, tmp_path, capsys):
    root, a, b = members
    out = tmp_path / "fused"
    assert main(["train", "--fuse", f"{a}+{b}", "--data", str(root), "--out", str(out), *FUSE_ARGS]) == 0
    assert "fusing" in capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert (config["model"], config["freeze"], config["fuse"]) == ("fusion", -1, f"{a}+{b}")
    assert [m["model"] for m in config["model_options"]["members"]] == ["tiny", "tiny"]

    # The members are their runs' trained networks, frozen (batch-norm statistics too); the head alone learnt.
    state = load_checkpoint(out / "last.pt")["model"]
    for i, run in enumerate((a, b)):
        own = network_weights(read_model_file(run / "best.safetensors")[1])
        for key, value in own.items():
            if not key.startswith("classifier."):
                assert torch.equal(state[f"members.{i}.{key}"], value), key
    fused = load_model(out)
    unseen = load_fer2013(root).splits["publictest"]  # never trained on (--val-split none)
    accuracy = (predict_probs(fused.model, fused.normalizer, unseen.images).argmax(1) == unseen.labels).mean()
    alone = [(predict_probs(m.model, m.normalizer, unseen.images).argmax(1) == unseen.labels).mean()
             for m in map(load_model, (a, b))]
    assert min(alone) >= 0.5 and accuracy >= 0.7, (alone, accuracy)

    # Every verb reads it as any model file: evaluate scores it on PublicTest.
    assert main(["evaluate", "--model", str(out), "--data", str(root), "--json", "--tta", "none"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["split"], report["accuracy"]) == ("publictest", pytest.approx(accuracy))


def test_a_fused_run_interrupted_resumes_where_it_stopped(members, tmp_path, monkeypatch, capsys):
    root, a, b = members
    loop = sys.modules["ferkit.training.loop"]
    argv = ["train", "--fuse", f"{a}+{b}", "--data", str(root), "--epochs", "3", *FUSE_ARGS[2:]]
    assert main([*argv, "--out", str(tmp_path / "reference")]) == 0
    real_lr_at = loop.lr_at

    def interrupt_in_epoch_2(schedule, base_lr, step, *args):
        if step == 12:
            raise KeyboardInterrupt
        return real_lr_at(schedule, base_lr, step, *args)

    monkeypatch.setattr(loop, "lr_at", interrupt_in_epoch_2)
    assert main([*argv, "--out", str(tmp_path / "run")]) == 130
    monkeypatch.setattr(loop, "lr_at", real_lr_at)
    assert main(["train", "--resume", str(tmp_path / "run")]) == 0
    ours, reference = (load_checkpoint(tmp_path / name / "last.pt")["model"] for name in ("run", "reference"))
    assert ours.keys() == reference.keys()
    for key in ours:
        assert torch.equal(ours[key], reference[key]), key


def test_fuse_options_that_cannot_work_are_one_line_errors(members, tmp_path, capsys):
    root, a, b = members
    cases = [
        (["--fuse", f"{a}+{b}", "--model", "tiny"], "--fuse builds the fusion model (--model fusion), not tiny"),
        (["--model", "fusion"], "--model fusion needs --fuse A+B"),
        (["--fuse", str(a)], "a fusion needs at least two member networks"),
        (["--fuse", f"{a}+{a / 'best.safetensors'}"], "best.safetensors is named twice; fuse different models"),
        (["--fuse", f"{a}+{tmp_path / 'nothing'}"], f"--fuse: {tmp_path / 'nothing'}: no such model"),
        (["--fuse", f"{a}+{b}", "--normalize", "pixel"], "--fuse needs --normalize global"),
        (["--fuse", f"{a}+{b}", "--aug-crop", "44"], "--aug-crop 44: fusion takes 48x48 faces"),
    ]
    for extra, expected in cases:
        code = main(["train", "--data", str(root), "--out", str(tmp_path / "out"), "--epochs", "1", *extra])
        err = capsys.readouterr().err.strip()
        assert code != 0 and expected in err and len(err.splitlines()) == 1, (extra, err)
        assert not (tmp_path / "out").exists()
