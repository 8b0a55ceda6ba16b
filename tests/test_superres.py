"""Seed 001's SRGAN: ``ferkit superres`` trains the generator; ``train --superres`` puts it, frozen, in front."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import synthetic_faces
from ferkit.app.cli import main
from ferkit.data.preprocess import Normalizer
from ferkit.models.io import load_model_file
from ferkit.models.superres import SRGenerator, attach_generator, load_generator, save_generator
from ferkit.training.checkpoint import load_checkpoint

QUICK = ["--epochs", "2", "--mse-epochs", "1", "--batch-size", "8", "--threads", "1"]


def test_an_untrained_generator_is_bilinear_upsampling_and_maps_normalisations(tmp_path):
    torch.manual_seed(0)
    generator = SRGenerator().eval()
    x = torch.randn(3, 1, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(generator(x), F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
        for p in generator.tail.parameters():  # a trained one adds detail
            p.normal_(0, 0.05)
    own = Normalizer(torch.full((1, 1), 0.5), torch.full((1, 1), 0.3))
    save_generator(tmp_path / "g.safetensors", generator, own, {"psnr": 1.0})
    run = Normalizer(torch.full((1, 1), 0.4), torch.full((1, 1), 0.2))  # another run's normalisation
    attached = SRGenerator().eval()
    assert attach_generator(attached, tmp_path / "g.safetensors", run)["meta"] == {"psnr": 1.0}
    faces01 = torch.rand(3, 1, 24, 24)
    with torch.no_grad():
        alone = generator((faces01 - 0.5) / 0.3) * 0.3 + 0.5  # what it gives on its own normalisation, in [0, 1]
        inside = attached((faces01 - 0.4) / 0.2) * 0.2 + 0.4
    torch.testing.assert_close(inside, alone, atol=1e-5, rtol=1e-5)


def test_superres_trains_the_generator_past_bilinear_and_resumes_exactly(fer_root, tmp_path, monkeypatch, capsys):
    reference = tmp_path / "reference"
    assert main(["superres", "--data", str(fer_root), "--out", str(reference), *QUICK]) == 0
    summary = json.loads(capsys.readouterr().out)
    history = json.loads((reference / "history.json").read_text())
    assert [r["phase"] for r in history] == ["pixel", "adversarial"] and history[1]["discriminator_loss"] > 0
    assert summary["held_out"] == "publictest" and summary["psnr"] == history[-1]["psnr"]
    assert summary["psnr"] > summary["psnr_bilinear"], summary  # an untrained generator is bilinear exactly
    assert (reference / "samples.png").stat().st_size > 0
    weights, normalizer, header = load_generator(reference)  # a run folder names its generator
    assert header["meta"]["epochs"] == 2 and normalizer.mean.numel() == 1

    # Ctrl-C in the second epoch: the first epoch's checkpoint stays, and --resume ends where the reference did.
    import ferkit.training.superres as superres

    real_shrink, calls = superres.shrink, []

    def interrupt(faces):
        calls.append(1)
        if len(calls) == 14:  # 8 steps an epoch (and one call to score it): inside epoch 2
            raise KeyboardInterrupt
        return real_shrink(faces)

    monkeypatch.setattr(superres, "shrink", interrupt)
    run = tmp_path / "run"
    assert main(["superres", "--data", str(fer_root), "--out", str(run), *QUICK]) == 130
    assert load_checkpoint(run / "last.pt")["epoch"] == 1
    monkeypatch.setattr(superres, "shrink", real_shrink)
    assert main(["superres", "--resume", str(run)]) == 0
    resumed = load_generator(run)[0]
    assert resumed.keys() == weights.keys()
    for key in weights:
        assert torch.equal(resumed[key], weights[key]), key


def test_train_superres_puts_the_generator_frozen_in_front(fer_root, tmp_path, capsys, monkeypatch):
    sr = tmp_path / "sr"
    assert main(["superres", "--data", str(fer_root), "--out", str(sr), "--epochs", "1", "--mse-epochs", "1",
                 "--batch-size", "8", "--threads", "1"]) == 0
    out = tmp_path / "b"
    assert main(["train", "--data", str(fer_root), "--model", "resnet18", "--model-option", "upscale=srgan",
                 "--superres", str(sr), "--out", str(out), "--epochs", "2", "--batch-size", "8", "--threads", "1",
                 "--limit-train", "16"]) == 0
    assert "super-resolution by" in capsys.readouterr().err
    # Without --superres the generator learns with the network, which is said.
    assert main(["train", "--data", str(fer_root), "--model", "resnet18", "--model-option", "upscale=srgan",
                 "--out", str(tmp_path / "c"), "--epochs", "1", "--batch-size", "8", "--threads", "1",
                 "--limit-train", "16"]) == 0
    assert "upscale=srgan without --superres: the generator starts as bilinear" in capsys.readouterr().err
    state = load_checkpoint(out / "last.pt")["model"]
    for key, value in load_generator(sr)[0].items():  # unchanged by two epochs of training: frozen
        assert torch.equal(state[f"input_adapter.sr.{key}"], value), key
    # Its int8 graph quantises (onnxruntime's symbolic shape inference gives up on the pixel shuffle, and would
    # leave a copy of the graph, 45 MB for a ResNet-50, in the working folder).
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert main(["export", "--model", str(out), "--int8", "--data", str(fer_root)]) == 0
    assert list(cwd.iterdir()) == []
    assert main(["evaluate", "--model", str(out), "--data", str(fer_root), "--backend", "int8", "--tta", "none"]) == 0
    # The run normalised its 16 faces, the generator was trained on all 70: the scale and shift map one to the other.
    run, own = load_model_file(out / "best.safetensors").normalizer, load_generator(sr)[1]
    assert float(state["input_adapter.sr.in_scale"]) == pytest.approx(float(run.std / own.std))
    assert float(state["input_adapter.sr.in_shift"]) == pytest.approx(float((run.mean - own.mean) / own.std))
    assert float(state["input_adapter.sr.in_scale"]) != 1.0


def test_superres_mistakes_are_one_line_errors(fer_root, tmp_path, capsys, tiny_model_file):
    cases = [
        (["train", "--data", str(fer_root), "--model", "resnet18", "--superres", str(tmp_path)],
         "--superres needs --model-option upscale=srgan"),
        (["train", "--data", str(fer_root), "--model", "resnet18", "--model-option", "upscale=srgan", "--superres",
          str(tmp_path / "none.safetensors")], "none.safetensors: no such file or run folder"),
        (["train", "--data", str(fer_root), "--model", "resnet18", "--model-option", "upscale=srgan", "--superres",
          str(tiny_model_file)], "tiny.safetensors: not a ferkit superres generator"),
        (["superres", "--data", str(fer_root), "--mse-epochs", "-1"], "--mse-epochs -1: must not be negative"),
        (["superres", "--epochs", "2"], "superres needs --data PATH"),
    ]
    broken = tmp_path / "broken.safetensors"  # a generator whose normalisation divides by zero
    save_generator(broken, SRGenerator(), Normalizer(torch.full((1, 1), 0.5), torch.zeros(1, 1)), {})
    cases.append((["train", "--data", str(fer_root), "--model", "resnet18", "--model-option", "upscale=srgan",
                   "--superres", str(broken)], "broken.safetensors: bad normalisation in the generator file"))
    for argv, expected in cases:
        code = main([*argv, "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err.strip()
        assert code != 0 and expected in err and len(err.splitlines()) == 1, (argv, err)
        assert not (tmp_path / "out" / "last.pt").exists()


def test_a_superres_run_stays_out_of_its_data_and_in_its_folder(fer_root, tmp_path, capsys):
    """Its files inside the dataset would be read as pictures of it; --resume never moves a run."""
    assert main(["superres", "--data", str(fer_root), "--out", str(fer_root / "train" / "sr"), "--epochs", "1"]) == 2
    assert "inside the dataset" in capsys.readouterr().err
    run = tmp_path / "sr"
    assert main(["superres", "--data", str(fer_root), "--out", str(run), "--epochs", "1", "--batch-size", "8",
                 "--threads", "1"]) == 0
    assert main(["superres", "--resume", str(run), "--out", str(tmp_path / "elsewhere")]) == 2
    assert "--out cannot be used with --resume" in capsys.readouterr().err
