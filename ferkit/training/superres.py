"""Training SRGAN's generator for seed 001's 2x super-resolution of the faces (``ferkit superres``).

Seed 001 (Liu, Zhang & Xin) enlarges the 48x48 FER2013 faces twice with SRGAN (Ledig et al. 2017) before its
ResNet-50.  There is no high-resolution face corpus here, so the generator learns from FER2013's own faces:
each training face (48 px, randomly mirrored) is shrunk to 24 px (bicubic, antialiased) and the generator
learns to give it back.  As in Ledig et al., the first ``mse_epochs`` train the generator alone on the pixel
loss (SRResNet), then the discriminator joins and the generator's loss adds ``adversarial`` times its
adversarial loss (their "SRGAN-MSE"; the VGG feature loss of their best variant needs ImageNet weights).

Each epoch scores the peak signal-to-noise ratio (PSNR, in dB, on [0, 1] pixels) of 24 -> 48 px on held-out
faces (PublicTest, or a held-out share of the training faces), beside bicubic and bilinear upscaling.  The last
epoch is kept, not the best PSNR: the adversarial loss trades pixel accuracy for texture, which is its point.
``train --superres RUN --model-option upscale=srgan`` then puts the generator, frozen, in front of a network.

The run folder holds ``config.json`` (``SuperResConfig``), ``last.pt`` (every epoch, atomically; ``--resume``
goes on from it exactly: the randomness is seeded per epoch), ``generator.safetensors``, ``history.json`` and
``samples.png`` (seed 001's fig. 2: faces enlarged by bicubic upscaling and by the generator).
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..atomic import FolderLock, atomic_write_text, check_folder_path, make_folder, remove_stale_temps
from ..data import DataError, load_fer2013
from ..data.preprocess import Normalizer
from ..models.superres import SRDiscriminator, SRGenerator, save_generator
from ..options import option
from .checkpoint import load_checkpoint, save_checkpoint
from ..data.balance import stratified_holdout
from .config import HOLDOUT_FRACTION, HOLDOUT_SEED, _check_type
from .loop import TrainingError, data_fingerprint

Log = Callable[[str], None]
RUN_FILES = ("config.json", "last.pt", "generator.safetensors", "history.json", "samples.png")


@dataclass
class SuperResConfig:
    """A super-resolution run, as plain data saved beside its checkpoint (``ferkit superres --help``)."""

    data: str = option("", "fer2013.csv, a dataset folder or a folder of class folders (the faces, not the labels, "
                           "are used)")
    out: str = option("runs/superres", "run folder: config.json, last.pt, generator.safetensors, history, samples")
    epochs: int = option(10, "passes over the training faces")
    mse_epochs: int = option(3, "first epochs on the pixel loss alone (SRResNet), before the adversarial ones (all "
                                "of a shorter run)")
    batch_size: int = option(32, "faces per step")
    lr: float = option(1e-4, "Adam rate of both networks (Ledig et al.: 1e-4)")
    adversarial: float = option(1e-3, "weight of the adversarial loss beside the pixel loss (Ledig et al.: 1e-3)")
    limit_train: int = option(0, "use only N training faces, a seeded random subset; 0 = all")
    limit_val: int = option(500, "held-out faces whose PSNR is measured each epoch; 0 = all")
    seed: int = option(0, "seeds the networks, shuffling and mirroring")
    threads: int = option(0, "torch threads (0 = leave torch's default)")
    skip_bad: bool = option(False, "skip unreadable images / bad CSV rows (each reported) instead of stopping")

    def validate(self) -> None:
        for item in dataclasses.fields(self):
            setattr(self, item.name, _check_type(f"--{item.name.replace('_', '-')}", getattr(self, item.name), item))
        checks = [
            (bool(str(self.data).strip()), "superres needs --data PATH"),
            (bool(str(self.out).strip()), "--out must name a run folder"),
            (self.epochs >= 1 and self.batch_size >= 2, "--epochs must be at least 1 and --batch-size at least 2"),
            (self.mse_epochs >= 0, f"--mse-epochs {self.mse_epochs}: must not be negative"),
            (0 < self.lr <= 1 and math.isfinite(self.lr), f"--lr {self.lr}: must be positive (and at most 1)"),
            (0 <= self.adversarial < 1e3 and math.isfinite(self.adversarial), f"--adversarial {self.adversarial}: "
                                                                             "must not be negative"),
            (min(self.limit_train, self.limit_val, self.threads, self.seed) >= 0,
             "--limit-train, --limit-val, --threads and --seed must not be negative"),
        ]
        for ok, message in checks:
            if not ok:
                raise TrainingError(message)


def shrink(faces: torch.Tensor) -> torch.Tensor:
    """Half-size versions of ``N x 1 x H x W`` faces: what the generator learns to enlarge back."""
    return F.interpolate(faces, scale_factor=0.5, mode="bicubic", antialias=True, align_corners=False)


def psnr(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean PSNR (dB) over faces of pixels in [0, 1] (the estimate clipped to that range)."""
    mse = (estimate.clamp(0, 1) - truth).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(1 / mse)).mean())


def upscaling_psnr(generator: SRGenerator | None, faces01: torch.Tensor, normalizer: Normalizer,
                   batch: int = 256) -> float:
    """PSNR of 24 -> 48 px on faces in [0, 1]: the generator's (on normalised faces), or bicubic upscaling's."""
    parts = []
    with torch.inference_mode():
        for start in range(0, len(faces01), batch):
            truth = faces01[start:start + batch]
            small = shrink(truth)
            if generator is None:
                estimate = F.interpolate(small, scale_factor=2, mode="bicubic", align_corners=False)
            else:
                mean, std = normalizer.mean.reshape(()), normalizer.std.reshape(())
                estimate = generator((small - mean) / std) * std + mean
            parts.append(psnr(estimate, truth) * len(truth))
    return sum(parts) / len(faces01)


def train_superres(config: SuperResConfig, *, resume: bool = False, log: Log | None = None) -> dict:
    """Train (or resume) the generator the config describes; returns the summary."""
    say: Log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    config.validate()
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.out)
    lock = FolderLock(out)
    try:
        try:
            lock.acquire()
        except BlockingIOError as exc:
            raise TrainingError(f"{out}: another run is working in this folder ({exc.strerror})") from None
        return _train(config, out, resume, say, lock)
    finally:
        lock.release()


def _faces(config: SuperResConfig, say: Log) -> tuple[np.ndarray, np.ndarray, str]:
    """Training faces and held-out faces (uint8, N x 48 x 48), and what the held-out ones are."""
    try:
        dataset = load_fer2013(config.data, skip_bad=config.skip_bad)
    except DataError as exc:
        raise TrainingError(str(exc)) from None
    for problem in dataset.problems:
        say(f"skipped: {problem}")
    trained_on = [name for name in ("training", "all") if name in dataset.splits]
    if not trained_on:
        raise TrainingError(f"{config.data}: no training faces (found: {', '.join(dataset.splits)})")
    train = np.concatenate([dataset.splits[name].images for name in trained_on])
    if "publictest" in dataset.splits:
        held, held_name = dataset.splits["publictest"].images, "publictest"
    else:  # the faces ``train`` holds out to validate on (its holdout): a generator put in front never saw them
        labels = np.concatenate([dataset.splits[name].labels for name in trained_on])
        kept, held_out = stratified_holdout(labels, HOLDOUT_FRACTION, HOLDOUT_SEED)
        held, train, held_name = train[held_out], train[kept], "holdout"
    if config.limit_train and config.limit_train < len(train):
        train = train[np.sort(np.random.default_rng(config.seed).choice(len(train), config.limit_train, False))]
    if config.limit_val and config.limit_val < len(held):
        held = held[np.sort(np.random.default_rng(0).choice(len(held), config.limit_val, False))]
    if len(train) < config.batch_size:
        raise TrainingError(f"{config.data}: {len(train)} training faces is fewer than one batch of {config.batch_size}")
    return train, held, held_name


def _train(config: SuperResConfig, out: Path, resume: bool, say: Log, lock: FolderLock) -> dict:
    last_path = out / "last.pt"
    state = None
    if resume:
        if not last_path.is_file():
            raise TrainingError(f"{out}: nothing to resume (no last.pt)")
        state = load_checkpoint(last_path)
        saved = {**dataclasses.asdict(SuperResConfig()), **state.get("config", {})}
        changed = [f"{k} {saved.get(k)!r} -> {v!r}" for k, v in dataclasses.asdict(config).items()
                   if k not in ("out", "data", "threads") and saved.get(k) != v]
        if changed:
            raise TrainingError(f"{last_path}: written by another configuration ({'; '.join(changed)})")
        remove_stale_temps(out, RUN_FILES)
    elif last_path.exists():
        raise TrainingError(f"{out}: a run already exists here; use --resume {out} or another --out")
    check_folder_path(out)

    data_root = Path(config.data).expanduser().resolve()
    if data_root.is_dir() and (out.resolve() == data_root or data_root in out.resolve().parents):
        raise TrainingError(f"--out {out}: inside the dataset {config.data}; write the run elsewhere")
    train_faces, held_faces, held_name = _faces(config, say)
    fingerprint = data_fingerprint(train_faces, np.zeros(len(train_faces)))
    if state is not None and state.get("fingerprint") != fingerprint:
        raise TrainingError(f"{config.data}: not the faces this run started with (its training faces differ); "
                            "resume it on its own data")
    normalizer = Normalizer.fit(train_faces, "global")
    torch.manual_seed(config.seed)
    generator, discriminator = SRGenerator(), SRDiscriminator()
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr, betas=(0.9, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr, betas=(0.9, 0.999))
    start_epoch, history = 0, []
    if state is not None:
        generator.load_state_dict(state["generator"])
        discriminator.load_state_dict(state["discriminator"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        normalizer = Normalizer.from_state_dict(state["normalizer"])
        start_epoch, history = int(state["epoch"]), list(state["history"])
        say(f"resuming {out} at epoch {start_epoch + 1}/{config.epochs}")
    make_folder(out)
    lock.acquire()
    atomic_write_text(out / "config.json", json.dumps(_plain(config), indent=2, sort_keys=True) + "\n")

    held01 = torch.from_numpy(held_faces).float().unsqueeze(1) / 255
    baseline = {"psnr_bicubic": round(upscaling_psnr(None, held01, normalizer), 3),
                "psnr_bilinear": round(upscaling_psnr(SRGenerator().eval(), held01, normalizer), 3)}
    steps = len(train_faces) // config.batch_size
    say(f"SRGAN generator: {sum(p.numel() for p in generator.parameters()):,} parameters; "
        f"{len(train_faces):,} training faces, {len(held_faces):,} held out ({held_name}); {steps} steps/epoch; "
        f"24 -> 48 px bicubic {baseline['psnr_bicubic']:.2f} dB, bilinear {baseline['psnr_bilinear']:.2f} dB")
    real, fake = torch.ones(config.batch_size), torch.zeros(config.batch_size)
    for epoch in range(start_epoch, config.epochs):
        started = time.time()
        adversarial = epoch >= config.mse_epochs
        rng = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)  # a resumed epoch draws the same
        order = torch.randperm(len(train_faces), generator=rng)
        generator.train()
        discriminator.train()
        totals = {"pixel_loss": 0.0, "adversarial_loss": 0.0, "discriminator_loss": 0.0}
        for step in range(steps):
            index = order[step * config.batch_size:(step + 1) * config.batch_size]
            hr = normalizer.to_tensor(train_faces[index.numpy()])
            mirror = torch.rand(len(hr), generator=rng) < 0.5
            hr = torch.where(mirror[:, None, None, None], hr.flip(-1), hr)
            sr = generator(shrink(hr))
            if adversarial:
                opt_d.zero_grad(set_to_none=True)
                d_loss = (F.binary_cross_entropy_with_logits(discriminator(hr), real)
                          + F.binary_cross_entropy_with_logits(discriminator(sr.detach()), fake))
                d_loss.backward()
                opt_d.step()
                totals["discriminator_loss"] += d_loss.item()
            opt_g.zero_grad(set_to_none=True)
            pixel = F.mse_loss(sr, hr)
            loss = pixel
            if adversarial:
                fooled = F.binary_cross_entropy_with_logits(discriminator(sr), real)
                loss = pixel + config.adversarial * fooled
                totals["adversarial_loss"] += fooled.item()
            loss.backward()
            opt_g.step()
            totals["pixel_loss"] += pixel.item()
            if not math.isfinite(loss.item()):
                raise TrainingError(f"{out}: the losses became NaN at epoch {epoch + 1}; nothing of it is saved "
                                    "(try a lower --lr)")
        generator.eval()
        record = {"epoch": epoch + 1, "phase": "adversarial" if adversarial else "pixel",
                  **{k: round(v / steps, 6) for k, v in totals.items()},
                  "psnr": round(upscaling_psnr(generator, held01, normalizer), 3),
                  "seconds": round(time.time() - started, 1)}
        history.append(record)
        meta = {"epochs": epoch + 1, "held_out": held_name, **baseline, "psnr": record["psnr"],
                "mse_epochs": config.mse_epochs, "adversarial": config.adversarial}
        save_generator(out / "generator.safetensors", generator, normalizer, meta)
        save_checkpoint(last_path, {"config": _plain(config), "epoch": epoch + 1, "history": history,
                                    "fingerprint": fingerprint,
                                    "generator": generator.state_dict(), "discriminator": discriminator.state_dict(),
                                    "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                                    "normalizer": normalizer.state_dict()})
        atomic_write_text(out / "history.json", json.dumps(history, indent=1) + "\n")
        say(f"epoch {epoch + 1}/{config.epochs}  {record['phase']}  pixel loss {record['pixel_loss']:.4f}  "
            f"PSNR {record['psnr']:.2f} dB  {record['seconds']:.0f}s")
    _plot_samples(out / "samples.png", generator, normalizer, held_faces[:6])
    return {"run": str(out), "epochs": config.epochs, "held_out": held_name, **baseline,
            "psnr": history[-1]["psnr"] if history else None, "generator": str(out / "generator.safetensors")}


def _plain(config: SuperResConfig) -> dict:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


def _plot_samples(path: Path, generator: SRGenerator, normalizer: Normalizer, faces: np.ndarray) -> None:
    """Seed 001's fig. 2: held-out faces as they are, enlarged 2x by bicubic upscaling and by the generator."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..atomic import atomic_write

    x = normalizer.to_tensor(faces)
    with torch.inference_mode():
        big = generator(x) * normalizer.std.reshape(()) + normalizer.mean.reshape(())
    bicubic = F.interpolate(torch.from_numpy(faces).float().unsqueeze(1) / 255, scale_factor=2, mode="bicubic",
                            align_corners=False)
    rows = [("48 px", torch.from_numpy(faces).float().unsqueeze(1) / 255), ("bicubic 96 px", bicubic),
            ("SRGAN 96 px", big)]
    figure, axes = plt.subplots(len(rows), len(faces), figsize=(1.6 * len(faces), 1.7 * len(rows)), squeeze=False)
    for r, (title, images) in enumerate(rows):
        for c in range(len(faces)):
            axes[r][c].imshow(images[c, 0].clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
            axes[r][c].set_xticks([])
            axes[r][c].set_yticks([])
        axes[r][0].set_ylabel(title, fontsize=8)
    figure.tight_layout()
    atomic_write(path, lambda handle: figure.savefig(handle, format="png", dpi=100))
    plt.close(figure)
