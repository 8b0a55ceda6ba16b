"""The training loop, top to bottom in one file (in the spirit of nanoGPT).

A run directory holds:
    config.json      the TrainConfig (plain data) the run was started with
    last.pt          everything needed to resume (weights, optimiser, EMA, schedule, history)
    best.safetensors the best model so far by validation (PublicTest) accuracy, ready to use
    history.csv/json per-epoch figures;  curves.png  accuracy and loss, train vs validation
    summary.json     the final figures (written when the run ends)

Randomness is re-seeded from (seed, epoch) at the start of every epoch, and checkpoints are
written at epoch ends, so a run killed at any moment and resumed ends with the same weights
as an uninterrupted one.  Runs under ``torchrun`` use DistributedDataParallel (gloo on CPU,
nccl on GPU): each rank takes its share of every global batch; rank 0 alone writes files.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from ..data import DataError, load_fer2013
from ..data.augment import BatchAugmenter
from ..data.balance import balanced_indices, class_weights
from ..data.classes import CLASSES
from ..data.preprocess import Normalizer
from ..models import count_parameters, create_model
from ..models.inference import predict_logits
from ..models.io import load_pretrained, save_model_file
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .ema import ModelEMA
from .losses import CenterLoss, PenultimateFeatures, soft_cross_entropy
from .optim import create_optimizer
from .report import plot_curves, write_history
from .schedule import Plateau, lr_at

Log = Callable[[str], None]


class TrainingError(ValueError):
    """A run that cannot start or resume; the message says why in one line."""


def use_bf16(precision: str) -> bool:
    """bf16 autocast doubles conv throughput on CPUs with native bf16 (AVX512-BF16, AMX) but is
    ~15x slower than fp32 on AVX2-only CPUs (measured here on an AMD EPYC Zen 3), so ``auto``
    checks the CPU flags."""
    if precision not in ("auto", "bf16", "fp32"):
        raise TrainingError(f"unknown precision {precision!r}: choose auto, bf16 or fp32")
    if precision != "auto":
        return precision == "bf16"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def model_blocks(model: nn.Module) -> list[nn.Module]:
    """The model's blocks in input-to-output order, for ``--freeze N``."""
    if hasattr(model, "blocks"):
        return list(model.blocks())
    blocks: list[nn.Module] = []
    for child in model.children():
        blocks.extend(child.children() if isinstance(child, nn.Sequential) else [child])
    return blocks


def set_frozen(model: nn.Module, count: int, frozen: bool = True) -> None:
    for block in model_blocks(model)[:count]:
        for p in block.parameters():
            p.requires_grad_(not frozen)


def mix_batch(x: torch.Tensor, targets: torch.Tensor, config: TrainConfig,
              gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al. 2018) or CutMix (Yun et al. 2019) on a batch, with soft targets."""
    use_mixup, use_cutmix = config.mixup > 0, config.cutmix > 0
    if not (use_mixup or use_cutmix) or torch.rand(1, generator=gen).item() >= config.mix_prob:
        return x, targets
    perm = torch.randperm(x.shape[0], generator=gen)
    if use_cutmix and (not use_mixup or torch.rand(1, generator=gen).item() < 0.5):
        lam = float(np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=gen))).beta(config.cutmix, config.cutmix))
        h, w = x.shape[-2:]
        cut_h, cut_w = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
        cy, cx = int(torch.randint(0, h, (1,), generator=gen)), int(torch.randint(0, w, (1,), generator=gen))
        top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
        left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
        x = x.clone()
        x[..., top:bottom, left:right] = x[perm][..., top:bottom, left:right]
        lam = 1 - (bottom - top) * (right - left) / (h * w)
    else:
        lam = float(np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=gen))).beta(config.mixup, config.mixup))
        x = lam * x + (1 - lam) * x[perm]
    return x, lam * targets + (1 - lam) * targets[perm]


def train(config: TrainConfig, *, resume: bool = False, log: Log | None = None) -> dict:
    """Train (or resume) the run described by ``config``; returns the summary dict."""
    # ---------------------------------------------------------------- distributed set-up
    world = int(os.environ.get("WORLD_SIZE", "1"))
    distributed = world > 1
    if distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if distributed else 0
    is_main = rank == 0
    say: Log = (log or (lambda s: print(s, file=sys.stderr, flush=True))) if is_main else (lambda s: None)
    if config.threads:
        torch.set_num_threads(config.threads)
    bf16 = use_bf16(config.precision)

    out = Path(config.out)
    last_path = out / "last.pt"
    if resume and not last_path.exists():
        raise TrainingError(f"{out}: nothing to resume (no last.pt)")
    if not resume and last_path.exists():
        raise TrainingError(f"{out}: a run already exists here; use --resume {out} or another --out")
    if config.batch_size % world:
        raise TrainingError(f"batch size {config.batch_size} does not divide over {world} processes")

    # ---------------------------------------------------------------- data
    try:
        dataset = load_fer2013(config.data)
    except DataError as exc:
        raise TrainingError(str(exc)) from None
    if "training" not in dataset.splits:
        raise TrainingError(f"{config.data}: no training split (found: {', '.join(dataset.splits)})")
    train_split = dataset.splits["training"]
    val_split = dataset.splits.get(config.val_split)
    if val_split is None:
        say(f"note: no {config.val_split} split in {config.data}; the last epoch's weights will be kept")
    train_faces, train_labels = train_split.images, train_split.labels
    if config.limit_train:  # a seeded random subset, so every class is represented
        keep = np.sort(np.random.default_rng(config.seed).permutation(len(train_labels))[:config.limit_train])
        train_faces, train_labels = train_faces[keep], train_labels[keep]
    val_faces = val_labels = None
    if val_split is not None:
        val_faces, val_labels = val_split.images, val_split.labels
        if config.limit_val:
            keep = np.sort(np.random.default_rng(config.seed).permutation(len(val_labels))[:config.limit_val])
            val_faces, val_labels = val_faces[keep], val_labels[keep]

    normalizer = Normalizer.fit(train_faces, config.normalize, config.equalize)
    train_faces = normalizer.prepare(train_faces)  # histogram equalisation once, not per batch

    # ---------------------------------------------------------------- model, loss, optimiser
    torch.manual_seed(config.seed)
    try:
        model = create_model(config.model, num_classes=len(CLASSES), **config.model_options)
    except TypeError as exc:
        raise TrainingError(f"model {config.model!r}: bad option ({exc})") from None
    input_size = int(getattr(model, "input_size", 48))
    augment_config = config.augment
    if augment_config.crop != input_size:
        augment_config = type(augment_config)(**{**augment_config.__dict__, "crop": input_size})
    if config.pretrained and not resume:
        load_pretrained(model, config.pretrained, head_prefixes=tuple(getattr(model, "head_prefixes", ())))
    if config.freeze:
        set_frozen(model, config.freeze)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    center_loss = features = center_optimizer = None
    if config.center_loss > 0:
        features = PenultimateFeatures(model)
        center_loss = CenterLoss(len(CLASSES), features.dim)
        center_optimizer = torch.optim.SGD(center_loss.parameters(), lr=config.center_lr)
    optimizer = create_optimizer(config.optimizer, model.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay, momentum=config.momentum,
                                 nesterov=config.nesterov)
    ema = ModelEMA(model, config.ema) if config.ema > 0 else None
    plateau = Plateau(config.plateau_patience, config.plateau_factor)
    loss_weights = torch.from_numpy(class_weights(train_labels)) if config.balance == "weights" else None

    steps_per_epoch = len(balanced_indices(train_labels, config.balance, np.random.default_rng(0))) // config.batch_size
    if steps_per_epoch == 0:
        raise TrainingError(f"{config.data}: {len(train_labels)} training faces is fewer than one batch "
                            f"of {config.batch_size}")
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = int(config.warmup_epochs * steps_per_epoch)

    start_epoch, step, best_score, best_epoch, history = 0, 0, -1.0, -1, []
    if resume:
        state = load_checkpoint(last_path)
        if state.get("config") != config.to_dict():
            raise TrainingError(f"{last_path}: checkpoint was written by a different configuration")
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if ema is not None:
                ema.load_state_dict(state["ema"])
            if center_loss is not None:
                center_loss.load_state_dict(state["center_loss"])
                center_optimizer.load_state_dict(state["center_optimizer"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"{last_path}: does not fit this model ({str(exc).splitlines()[0]})") from None
        plateau.load_state_dict(state["plateau"])
        normalizer = Normalizer.from_state_dict(state["normalizer"])
        start_epoch, step = int(state["epoch"]), int(state["step"])
        best_score, best_epoch = float(state["best_score"]), int(state["best_epoch"])
        history = json.loads(state["history"])
        say(f"resuming {out} at epoch {start_epoch + 1}/{config.epochs}")
    elif is_main:
        out.mkdir(parents=True, exist_ok=True)
        config.save(out / "config.json")

    train_model: nn.Module = model
    if distributed:
        train_model = nn.parallel.DistributedDataParallel(model)
    say(f"{config.model}: {count_parameters(model):,} parameters, input {input_size}px; "
        f"{len(train_labels):,} training faces, {0 if val_labels is None else len(val_labels):,} validation; "
        f"{steps_per_epoch} steps/epoch; {world} process(es), {torch.get_num_threads()} threads each")

    # ---------------------------------------------------------------- epochs
    for epoch in range(start_epoch, config.epochs):
        epoch_started = time.time()
        if config.freeze and config.unfreeze_epoch and epoch == config.unfreeze_epoch:
            set_frozen(model, config.freeze, frozen=False)  # phase two: fine-tune everything
        # Every random draw of this epoch comes from (seed, epoch): resuming replays it exactly.
        torch.manual_seed(config.seed * 100_003 + epoch)
        gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        augmenter = BatchAugmenter(augment_config, gen)
        order = balanced_indices(train_labels, config.balance, np.random.default_rng([config.seed, epoch]))
        model.train()
        seen = correct = 0
        loss_sum = 0.0
        batches = range(steps_per_epoch)
        if is_main and sys.stderr.isatty():
            from tqdm import tqdm

            batches = tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False, file=sys.stderr)
        per_rank = config.batch_size // world
        for b in batches:
            batch_idx = order[b * config.batch_size:(b + 1) * config.batch_size][rank * per_rank:(rank + 1) * per_rank]
            x = normalizer(torch.from_numpy(train_faces[batch_idx]).unsqueeze(1))
            y = torch.from_numpy(train_labels[batch_idx])
            x = augmenter(x)
            targets = torch.nn.functional.one_hot(y, len(CLASSES)).float()
            x, targets = mix_batch(x, targets, config, gen)
            if config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)

            lr = lr_at(config.schedule, config.lr, step, total_steps, warmup_steps, config.min_lr) * plateau.scale
            if config.freeze and config.unfreeze_epoch and epoch >= config.unfreeze_epoch:
                lr *= config.unfreeze_lr_factor
            for group in optimizer.param_groups:
                group["lr"] = lr

            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = train_model(x)
            loss = soft_cross_entropy(logits, targets, label_smoothing=config.label_smoothing, weights=loss_weights)
            if center_loss is not None:
                loss = loss + config.center_loss * center_loss(features.value, y)
                center_optimizer.zero_grad(set_to_none=True)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            if center_loss is not None:
                # Wen et al.: the centres move at their own rate alpha, independent of lambda.
                for p in center_loss.parameters():
                    p.grad.div_(config.center_loss)
                center_optimizer.step()
            if ema is not None:
                ema.update(model, step)
            step += 1

            seen += len(y)
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.argmax(1) == targets.argmax(1)).sum())
            if hasattr(batches, "set_postfix"):
                batches.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}", lr=f"{lr:.4f}")

        # ------------------------------------------------------------ validation and bookkeeping
        eval_model = ema.module if ema is not None else model
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": loss_sum / max(seen, 1),
               "train_acc": correct / max(seen, 1), "val_loss": None, "val_acc": None}
        if val_faces is not None and len(val_faces):
            logits = predict_logits(eval_model, normalizer, val_faces, bf16=bf16)
            labels_t = torch.from_numpy(val_labels)
            row["val_loss"] = float(torch.nn.functional.cross_entropy(logits, labels_t))
            row["val_acc"] = float((logits.argmax(1) == labels_t).float().mean())
        row["seconds"] = time.time() - epoch_started
        history.append(row)
        score = row["val_acc"] if row["val_acc"] is not None else float(epoch)
        if config.schedule == "plateau":
            plateau.step(score)
        improved = score > best_score
        if improved:
            best_score, best_epoch = score, epoch + 1
        if is_main:
            if improved:
                save_model_file(out / "best.safetensors", eval_model, name=config.model, options=config.model_options,
                                normalizer=normalizer,
                                meta={"epoch": epoch + 1, "val_acc": row["val_acc"], "run": str(out)})
            state = {
                "config": config.to_dict(),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "plateau": plateau.state_dict(),
                "normalizer": normalizer.state_dict(),
                "epoch": epoch + 1,
                "step": step,
                "best_score": best_score,
                "best_epoch": best_epoch,
                "history": json.dumps(history),
            }
            if ema is not None:
                state["ema"] = ema.state_dict()
            if center_loss is not None:
                state["center_loss"] = center_loss.state_dict()
                state["center_optimizer"] = center_optimizer.state_dict()
            save_checkpoint(last_path, state)
            write_history(out, history)
            plot_curves(out / "curves.png", history)
            val_text = "n/a" if row["val_acc"] is None else f"{row['val_acc']:.4f}"
            say(f"epoch {epoch + 1}/{config.epochs}  loss {row['train_loss']:.4f}  train acc {row['train_acc']:.4f}  "
                f"val acc {val_text}  lr {lr:.5f}  {row['seconds']:.0f}s{'  *best*' if improved else ''}")
        if config.early_stopping and epoch + 1 - best_epoch >= config.early_stopping:
            say(f"early stopping: no validation gain for {config.early_stopping} epochs")
            break

    # ---------------------------------------------------------------- summary
    summary = {"run": str(out), "model": config.model, "parameters": count_parameters(model),
               "epochs_run": len(history), "best_epoch": best_epoch,
               "best_val_acc": best_score if val_faces is not None else None,
               "train_seconds": sum(r["seconds"] for r in history)}
    if is_main:
        from ..atomic import atomic_write_text

        if val_faces is None:  # nothing to select on: keep the final weights
            save_model_file(out / "best.safetensors", ema.module if ema is not None else model, name=config.model,
                            options=config.model_options, normalizer=normalizer, meta={"epoch": len(history)})
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    if features is not None:
        features.remove()
    if distributed:
        dist.barrier()
    return summary
