"""The training loop, top to bottom in one file (in the spirit of nanoGPT).

A run directory holds:
    config.json      the TrainConfig (plain data) the run was started with
    last.pt          everything needed to resume (weights, optimiser, EMA, schedule, history)
    best.safetensors the best model so far by validation (PublicTest) accuracy, or loss (--monitor), ready to use
    history.csv/json per-epoch figures;  curves.png  accuracy and loss, train vs validation
                     (redrawn at most every 30 s, since drawing takes ~0.5 s, and at the end)
    summary.json     the final figures (written when the run ends)

Randomness is re-seeded from (seed, epoch) at the start of every epoch, and checkpoints are
written at epoch ends, so a run killed at any moment and resumed ends with the same weights
as an uninterrupted one (``scripts/carry_run.py`` makes a committable copy of a run whose
``last.pt`` keeps only float16 averaged weights; it resumes too, close to but not exactly as an
uninterrupted run).  Runs under ``torchrun`` use DistributedDataParallel (gloo on CPU,
nccl on GPU): every rank prepares the same global batch and trains on its share, so N processes
follow the single-process run (exactly, up to float summation order, for models without batch
norm, whose statistics are per process); rank 0 alone validates and writes files.
"""
from __future__ import annotations

import dataclasses
import hashlib
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

from ..atomic import FolderLock, atomic_write_text, check_folder_path, make_folder, remove_stale_temps
from ..data import DataError, load_fer2013
from ..data.augment import BatchAugmenter
from ..data.balance import balanced_indices, class_weights, stratified_holdout
from ..data.classes import CLASSES
from ..data.errors import first_line
from ..data.fer2013 import FaceCropper
from ..data.overlap import training_sample
from ..data.preprocess import Normalizer
from ..models import count_parameters, create_model, model_info
from ..models.inference import predict_logits
from ..models.fusion import fusion_options
from ..models.hub import ensemble_members, load_model
from ..models.io import LoadedModel, ModelFileError, load_pretrained, save_model_file
from ..models.superres import SRGenerator, attach_generator
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import HOLDOUT_FRACTION, HOLDOUT_SEED, TrainConfig, config_differences
from .distill import OnlineTeacher, distilled_targets, teacher_fingerprint, teacher_probabilities
from .ema import ModelEMA
from .losses import CenterLoss, PenultimateFeatures, soft_cross_entropy
from .optim import create_optimizer
from .report import plot_curves, write_history
from .schedule import Plateau, lr_at

Log = Callable[[str], None]
PLOT_EVERY_SECONDS = 30.0


class TrainingError(ValueError):
    """A run that cannot start or resume; the message says why in one line."""


def use_bf16(precision: str, model: str | None = None) -> bool:
    """bf16 autocast doubles conv throughput on CPUs with native bf16 (AVX512-BF16, AMX) but is
    10-18x slower than fp32 on AVX2-only CPUs (measured here on an AMD EPYC Zen 3), so ``auto``
    checks the CPU flags, and keeps fp32 for a ``model`` registered as slower in bf16 even there."""
    if precision not in ("auto", "bf16", "fp32"):
        raise TrainingError(f"unknown precision {precision!r}: choose auto, bf16 or fp32")
    if precision != "auto":
        return precision == "bf16"
    if model is not None and not model_info(model).bf16:
        return False
    return cpu_has_native_bf16()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX), per /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


# The files of a run directory (see the module docstring); their temporary copies are cleaned on resume.
RUN_FILES = ("config.json", "last.pt", "best.safetensors", "history.csv", "history.json", "curves.png",
             "summary.json")


def trained_files(out: Path) -> list[str]:
    """The files in ``out`` that only a run that has checkpointed an epoch writes (after last.pt;
    best.safetensors alone may be left by a run killed before its first checkpoint)."""
    return [name for name in ("history.json", "summary.json") if (out / name).exists()]


def data_fingerprint(faces: np.ndarray, labels: np.ndarray) -> str:
    """A short hash of the training faces and labels: a resumed run must see the same data."""
    digest = hashlib.sha256(np.ascontiguousarray(faces).tobytes())
    digest.update(np.asarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()[:16]


def model_blocks(model: nn.Module) -> list[nn.Module]:
    """The model's blocks in input-to-output order, for ``--freeze N``."""
    if hasattr(model, "blocks"):
        return list(model.blocks())
    blocks: list[nn.Module] = []
    for child in model.children():
        blocks.extend(child.children() if isinstance(child, nn.Sequential) else [child])
    return blocks


def head_prefixes(model: nn.Module) -> tuple[str, ...]:
    """Parameter-name prefixes of the classifier, which a pretrained file may bring for other classes:
    the model's own ``head_prefixes`` if it declares them, else its last ``nn.Linear``."""
    declared = getattr(model, "head_prefixes", None)
    if declared:
        return tuple(declared)
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    return (linears[-1] + ".",) if linears else ()


def set_frozen(blocks: list[nn.Module], frozen: bool) -> None:
    for block in blocks:
        for p in block.parameters():
            p.requires_grad_(not frozen)


def mix_batch(x: torch.Tensor, targets: torch.Tensor, config: TrainConfig,
              gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Mixup (Zhang et al. 2018) or CutMix (Yun et al. 2019) on a batch, with soft targets;
    the third value says whether the batch was mixed."""
    use_mixup, use_cutmix = config.mixup > 0, config.cutmix > 0
    if not (use_mixup or use_cutmix) or torch.rand(1, generator=gen).item() >= config.mix_prob:
        return x, targets, False
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
    return x, lam * targets + (1 - lam) * targets[perm], True


def train(config: TrainConfig, *, resume: bool = False, log: Log | None = None,
          cropper: FaceCropper | None = None) -> dict:
    """Train (or resume) the run described by ``config``; returns the summary dict.

    With ``config.detector`` other than ``"none"``, ``cropper`` cuts the face out of every picture
    that is not a 48x48 crop, in training and validation alike (``LargestFaceCropper(config.detector)``
    from ``ferkit.vision.crop``, as ``ferkit train`` passes it; training does not import the detectors).
    Data that is all 48x48 crops (FER2013) needs none.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) the process group is set up here (gloo on CPU, nccl
    on GPU) unless the caller already did, and torn down again at the end.  A process that trains
    more than once should set up the group itself: a second group on torchrun's store can race
    with the first one's stale keys.
    """
    config = with_fusion_members(config)
    try:
        config.validate()
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    if config.augment.crop != config.input_size():
        # The augmentation crops faces to the network's input size, whatever the setting said: record what is done.
        config = config.replace(augment=dataclasses.replace(config.augment, crop=config.input_size()))
    if cropper is not None and config.detector == "none":
        raise TrainingError("a cropper was given but the configuration's detector is 'none'")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    own_group = world > 1 and not dist.is_initialized()
    if own_group:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    # One process trains a run folder at a time: a second (a --resume typed twice, in two terminals)
    # would remove the first one's half-written checkpoint as a killed write's leftover, and both would
    # write the same files. Under torchrun the first process holds it for all.
    lock = FolderLock(config.out) if os.environ.get("RANK", "0") == "0" else None
    try:
        return _train(config, resume, log, world, cropper, lock)
    finally:
        if lock is not None:
            lock.release()
        if own_group:
            dist.destroy_process_group()


def with_fusion_members(config: TrainConfig) -> TrainConfig:
    """A new fusion's configuration with its members' architectures, read from their files, among the model
    options (its input size is theirs); any other configuration as it is."""
    if not config.fuse or "members" in config.model_options:
        return config
    return config.replace(model_options={**fusion_options(_fusion_members(config)), **config.model_options})


def _fusion_members(config: TrainConfig) -> list[LoadedModel]:
    """The trained models ``--fuse`` names, read (once: ``load_model`` caches files)."""
    try:
        members = [load_model(member) for member in ensemble_members(config.fuse)]
    except ModelFileError as exc:
        raise TrainingError(f"--fuse: {exc}") from None
    files = [str(Path(member.path).resolve()) for member in members]
    twice = next((path for path in files if files.count(path) > 1), None)
    if twice:  # its features twice side by side tell the new classifier nothing more
        raise TrainingError(f"--fuse {config.fuse}: {twice} is named twice; fuse different models")
    return members


def _attach_superres(model: nn.Module, config: TrainConfig, normalizer: Normalizer, new_run: bool, say: Log) -> None:
    """``--superres``: the trained SRGAN generator in front of the network (loaded for a new run; a resumed run
    has it in its checkpoint), frozen: seed 001 enlarges the faces with it before training.  Without it, an
    ``upscale="srgan"`` generator learns with the network, which is said."""
    generator = getattr(getattr(model, "input_adapter", None), "sr", None)
    if not isinstance(generator, SRGenerator):
        if config.superres:
            raise TrainingError(f"--superres: {config.model} has no SRGAN generator in front (--model-option "
                                "upscale=srgan on resnet50, resnet18, the vgg or efficientnet models)")
        return
    if not config.superres:
        if new_run and not config.pretrained:
            say("note: upscale=srgan without --superres: the generator starts as bilinear upsampling and learns with "
                "the network, not adversarially (ferkit superres trains it as SRGAN does)")
        return
    if new_run:
        try:
            header = attach_generator(generator, config.superres, normalizer)
        except ValueError as exc:
            raise TrainingError(f"--superres: {exc}") from None
        psnr = header.get("meta", {}).get("psnr")
        say(f"super-resolution by {config.superres} (frozen; 24 -> 48 px PSNR {psnr} dB on held-out faces)")
    generator.requires_grad_(False)


def _lock_run(lock: FolderLock | None, out: Path) -> None:
    try:
        if lock is not None:
            lock.acquire()
    except BlockingIOError as exc:
        raise TrainingError(f"{out}: another training is running in this folder ({exc.strerror}); wait for it "
                            "to end or stop it, or train another --out") from None


def _checkpoint_to_resume(config: TrainConfig, out: Path, resume: bool, say: Log) -> dict | None:
    """The checkpoint a resumed run goes on from, checked to be this configuration's; None for a new run
    (or one killed before its first checkpoint).  A new run never overwrites what an earlier one made."""
    last_path = out / "last.pt"
    state = None  # the checkpoint to continue from
    if resume and last_path.exists():
        state = load_checkpoint(last_path)
        if not isinstance(state.get("config"), dict):
            raise CheckpointError(f"{last_path}: not a ferkit training checkpoint")
        saved = dict(state["config"])
        # Runs saved before the crop was recorded as trained (always the input size) hold the setting instead.
        saved["augment"] = {**saved.get("augment", {}), "crop": config.augment.crop}
        changed = config_differences(saved, config.to_dict())
        if changed:
            raise TrainingError(f"{last_path}: checkpoint was written by a different configuration "
                                f"({'; '.join(changed)})")
    elif resume and not (out / "config.json").exists():
        raise TrainingError(f"{out}: nothing to resume (no last.pt)")
    elif resume and trained_files(out):
        # Starting again would overwrite what the run has made (its best weights above all).
        raise TrainingError(f"{out}: last.pt is missing but the run has trained ({', '.join(trained_files(out))} "
                            f"are there); "
                            f"nothing to resume from: move those files away, or train a new --out "
                            f"(--pretrained {out / 'best.safetensors'} starts from its best weights)")
    elif resume:
        say(f"{out}: killed before its first checkpoint; starting again from epoch 1")
    elif last_path.exists() or trained_files(out):
        raise TrainingError(f"{out}: a run already exists here; use --resume {out} (Python: train(config, "
                            "resume=True)) or another --out")
    return state


@dataclasses.dataclass
class TrainingData:
    """The faces a run trains and validates on, and what identifies them in its files."""

    train_faces: np.ndarray
    train_labels: np.ndarray
    val_faces: np.ndarray | None
    val_labels: np.ndarray | None
    validated_on: str  # "publictest", "holdout: ...", or "none"
    provenance: dict  # saved in the model file: evaluate says when it scores faces the model learnt from
    fingerprint: str
    val_fingerprint: str


def _training_data(config: TrainConfig, cropper: FaceCropper | None, state: dict | None, last_path: Path,
                   say: Log) -> TrainingData:
    """The training split (or the faces no split claims), the validation faces the config asks for, and, on
    resume, the check that both are the ones the run started with."""
    try:
        dataset = load_fer2013(config.data, skip_bad=config.skip_bad, cropper=cropper)
    except DataError as exc:
        raise TrainingError(str(exc)) from None
    if dataset.converted and cropper is None and config.detector != "none":
        raise TrainingError(f"{config.data}: {dataset.converted} picture(s) are not 48x48 face crops and the "
                            f"detector is {config.detector!r}: pass cropper=LargestFaceCropper({config.detector!r}) "
                            "(ferkit.vision.crop), or detector='none' to read them whole")
    for problem in dataset.problems:
        say(f"skipped: {problem}")
    # Faces named for no split ("all": a folder of class folders, the usual own dataset) are trained on.
    trained_on = [name for name in ("training", "all") if name in dataset.splits]
    if not trained_on:
        raise TrainingError(f"{config.data}: no training split (found: {', '.join(dataset.splits)}); expected a "
                            "train/ folder, Training_* file names, a CSV Usage column or one folder of class folders")
    if "all" in trained_on:
        say(f"{config.data}: training on the {len(dataset.splits['all'])} faces of its class folders that no split "
            f"claims{' too' if 'training' in trained_on else ''}")
    train_faces = np.concatenate([dataset.splits[name].images for name in trained_on])
    train_labels = np.concatenate([dataset.splits[name].labels for name in trained_on])
    val_faces = val_labels = None
    validation = config.val_split
    if validation == "auto":
        validation = "publictest" if "publictest" in dataset.splits else "holdout"
    validated_on = "none"
    if config.val_split == "publictest" and "publictest" not in dataset.splits:  # asked for by name: not ignored
        raise TrainingError(f"{config.data}: --val-split publictest, but the data has no PublicTest faces (a test/ or "
                            "val/ folder, or PublicTest rows); use --val-split holdout or auto")
    if validation == "publictest" and "publictest" in dataset.splits:
        val_faces, val_labels = dataset.splits["publictest"].images, dataset.splits["publictest"].labels
        validated_on = "publictest"
        if config.val_fraction != HOLDOUT_FRACTION and config.val_split == "auto":  # (publictest: the config says)
            say(f"note: --val-fraction {config.val_fraction} has no effect: the data has PublicTest faces, which "
                "validate (--val-split holdout holds out training faces instead)")
    elif validation == "holdout":
        kept, held_out = stratified_holdout(train_labels, config.val_fraction, HOLDOUT_SEED)
        if len(held_out):
            val_faces, val_labels = train_faces[held_out], train_labels[held_out]
            train_faces, train_labels = train_faces[kept], train_labels[kept]
            held = f"{len(held_out)} training faces ({config.val_fraction:.0%} of each class, the same for every run)"
            validated_on = f"holdout: {held}"
            say(f"validation: {held} held out, not trained on")
    if val_faces is None:
        why = "--val-split none" if config.val_split == "none" else f"no validation ({config.val_split}) faces"
        say(f"note: {why}; the last epoch's weights will be kept")
    if config.limit_train:  # a seeded random subset, so every class is represented
        keep = np.sort(np.random.default_rng(config.seed).permutation(len(train_labels))[:config.limit_train])
        train_faces, train_labels = train_faces[keep], train_labels[keep]
    absent = [name for index, name in enumerate(CLASSES) if not (train_labels == index).any()]
    if absent:  # a dataset without one of FER2013's classes (CK+ sorted into folders has no neutral, say)
        say(f"note: no {', '.join(absent)} face(s) to train on: the model will not learn to recognise "
            f"{'that class' if len(absent) == 1 else 'those classes'}")
    if val_faces is not None:
        if config.limit_val:
            keep = np.sort(np.random.default_rng(config.seed).permutation(len(val_labels))[:config.limit_val])
            val_faces, val_labels = val_faces[keep], val_labels[keep]

    fingerprint = data_fingerprint(train_faces, train_labels)
    # Saved in the model file, so that evaluate can say when it scores faces the model learnt from: by
    # path, and by the pixels of a sample of them (a copied or converted dataset has another path).
    provenance = {"data": os.path.realpath(config.data), "trained_on": trained_on, "validation": validated_on,
                  "face_sample": training_sample(train_faces)}
    if state is not None and fingerprint != state.get("train_fingerprint", fingerprint):
        raise TrainingError(f"{config.data}: not the training data this run was trained on (its faces or labels differ)")
    # The best epoch so far was chosen on these validation faces: other ones would make its score incomparable.
    val_fingerprint = data_fingerprint(val_faces, val_labels) if val_faces is not None else "none"
    if state is not None and val_fingerprint != state.get("val_fingerprint", val_fingerprint):
        raise TrainingError(f"{config.data}: not the validation faces this run chose its best epoch on "
                            f"({validated_on}: faces or labels differ); resume with the data it started with")
    if state is not None and "train_fingerprint" not in state and config.data != state["config"].get("data"):
        raise TrainingError(f"{last_path}: written before ferkit checked data on resume, so the data cannot move: "
                            f"resume with --data {state['config'].get('data')}")
    return TrainingData(train_faces, train_labels, val_faces, val_labels, validated_on, provenance, fingerprint,
                        val_fingerprint)


def _teacher(config: TrainConfig, state: dict | None, train_faces: np.ndarray, train_labels: np.ndarray,
             say: Log) -> tuple[torch.Tensor | None, str | None]:
    """--distill: the teacher's probabilities for every training face (clean mode; None online, where the
    teacher labels each augmented batch) and the fingerprint that tells a resumed run it has changed."""
    teacher = None
    teacher_hash = None
    if config.distill:
        try:
            teacher_hash = teacher_fingerprint(config.distill, int8=config.distill_int8)
            # Runs saved before the int8 graph counted hold the hash of the model files alone.
            known = {teacher_hash, teacher_fingerprint(config.distill)} if config.distill_int8 else {teacher_hash}
        except ModelFileError as exc:
            raise TrainingError(f"--distill: {exc}") from None
        if state is not None and state.get("teacher_fingerprint", teacher_hash) not in known:
            say(f"warning: the teacher {config.distill} has changed since this run started; the resumed epochs "
                "learn from the new one, so the result will differ from an uninterrupted run")
    if config.distill and config.distill_mode == "clean":  # raw faces: the teacher applies its own normalisation
        try:
            teacher = torch.from_numpy(teacher_probabilities(config.distill, train_faces, config.distill_temperature))
        except ModelFileError as exc:
            raise TrainingError(f"--distill: {exc}") from None
        agreement = float((teacher.argmax(1).numpy() == train_labels).mean())
        say(f"distilling from {config.distill}: teacher agrees with {agreement:.1%} of the training labels")
    return teacher, teacher_hash


def _train(config: TrainConfig, resume: bool, log: Log | None, world: int, cropper: FaceCropper | None,
           lock: FolderLock | None) -> dict:
    # ---------------------------------------------------------------- processes and run directory
    distributed = world > 1
    rank = dist.get_rank() if distributed else 0
    is_main = rank == 0
    say: Log = (log or (lambda s: print(s, file=sys.stderr, flush=True))) if is_main else (lambda s: None)
    if config.threads:
        torch.set_num_threads(config.threads)
    bf16 = use_bf16(config.precision, config.model)
    if config.batch_size % world:
        raise TrainingError(f"batch size {config.batch_size} does not divide over {world} processes")

    out = Path(config.out)
    _lock_run(lock, out)  # before last.pt is read: an existing folder; a new one is locked once made
    last_path = out / "last.pt"
    state = _checkpoint_to_resume(config, out, resume, say)  # None: a new run
    # Checked before the data and a teacher are read, which can take minutes.
    check_folder_path(out)
    data_root = Path(config.data).expanduser().resolve()
    if str(config.data).strip() and data_root.is_dir() and (out.resolve() == data_root or data_root in out.resolve().parents):
        # curves.png would be read as a picture of the dataset next time, and the run's files listed as its problems
        raise TrainingError(f"--out {out}: inside the dataset {config.data}; write the run elsewhere")
    if config.pretrained and state is None and not Path(config.pretrained).exists():
        raise TrainingError(f"--pretrained {config.pretrained}: no such file")
    if config.superres and state is None and not Path(config.superres).exists():
        raise TrainingError(f"--superres {config.superres}: no such file or run folder")
    if resume and is_main:
        stale = remove_stale_temps(out, RUN_FILES)
        if stale:
            say(f"removed {len(stale)} temporary file(s) left by a write that was killed")

    # ---------------------------------------------------------------- data (training split only)
    data = _training_data(config, cropper, state, last_path, say)
    train_faces, train_labels, val_faces, val_labels = data.train_faces, data.train_labels, data.val_faces, data.val_labels
    teacher, teacher_hash = _teacher(config, state, train_faces, train_labels, say)

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
    online_teacher = None
    if config.distill and config.distill_mode == "online":
        try:
            online_teacher = OnlineTeacher(config.distill, normalizer, input_size, config.distill_temperature,
                                           config.threads, int8=config.distill_int8)
        except ModelFileError as exc:
            raise TrainingError(f"--distill: {exc}") from None
        say(f"distilling from {config.distill} on every augmented batch ({online_teacher.engine})")
    if config.fuse and state is None:
        try:
            model.load_members(_fusion_members(config), normalizer)
        except ValueError as exc:
            raise TrainingError(f"--fuse: {exc}") from None
        how = ("the members frozen" if config.freeze == -1 else "the members training too (--freeze 0)"
               if not config.freeze else f"--freeze {config.freeze} of its {len(model_blocks(model))} blocks")
        say(f"fusing {config.fuse}: {model.head[-1].in_features} features, {how}")
    _attach_superres(model, config, normalizer, state is None, say)
    if config.pretrained and state is None:
        fresh = load_pretrained(model, config.pretrained, head_prefixes=head_prefixes(model))
        say(f"pretrained weights from {config.pretrained}; new: {', '.join(fresh) or 'none'}")
    blocks = model_blocks(model)
    frozen_blocks = blocks[:config.freeze] if config.freeze else []
    frozen_ids = {id(p) for block in frozen_blocks for p in block.parameters()}
    if config.freeze and (abs(config.freeze) >= len(blocks) or all(id(p) in frozen_ids for p in model.parameters())):
        raise TrainingError(f"--freeze {config.freeze}: {config.model} has {len(blocks)} blocks and "
                            "nothing would be left to train")
    if config.unfreeze_keep >= max(len(frozen_blocks), 1):
        raise TrainingError(f"--unfreeze-keep {config.unfreeze_keep}: only {len(frozen_blocks)} block(s) are frozen, "
                            "so nothing would be unfrozen")
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    center_loss = features = None
    if config.center_loss > 0:
        features = PenultimateFeatures(model)
        center_loss = CenterLoss(len(CLASSES), features.dim)
    optimizer = create_optimizer(config.optimizer, model.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay, momentum=config.momentum,
                                 nesterov=config.nesterov)
    ema = ModelEMA(model, config.ema) if config.ema > 0 else None
    plateau = Plateau(config.plateau_patience, config.plateau_factor)
    loss_weights = torch.from_numpy(class_weights(train_labels)) if config.balance == "weights" else None

    faces_per_epoch = len(balanced_indices(train_labels, config.balance, np.random.default_rng(0)))
    steps_per_epoch = faces_per_epoch // config.batch_size
    if steps_per_epoch == 0:
        balanced = (f" ({faces_per_epoch} an epoch after --balance {config.balance})"
                    if faces_per_epoch != len(train_labels) else "")
        raise TrainingError(f"{config.data}: {len(train_labels)} training faces{balanced} is fewer than one batch "
                            f"of {config.batch_size}")
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = int(config.warmup_epochs * steps_per_epoch)
    if config.schedule in ("cosine", "onecycle") and warmup_steps > total_steps // 3:
        # A short run (--epochs 3 with the default 3 warm-up epochs) would end at its peak rate, never
        # annealed: the warm-up takes at most a third of the run.
        warmup_steps = total_steps // 3
        say(f"warm-up cut to a third of the run ({warmup_steps / steps_per_epoch:.2f} of --warmup-epochs "
            f"{config.warmup_epochs:g}), so that the rate anneals")

    # The best score so far (higher is better: accuracy, or minus the loss); -inf until an epoch is scored.
    start_epoch, step, best_score, best_epoch, history = 0, 0, -math.inf, -1, []
    if state is not None:
        try:
            model.load_state_dict(state["model"])  # float16 weights of a compact checkpoint load as float32
            if state["optimizer"] is not None:
                optimizer.load_state_dict(state["optimizer"])
            if ema is not None:
                ema.load_state_dict(state["ema"])
            if center_loss is not None:
                center_loss.load_state_dict(state["center_loss"])
            plateau.load_state_dict(state["plateau"])
            normalizer = Normalizer.from_state_dict(state["normalizer"])
            start_epoch, step = int(state["epoch"]), int(state["step"])
            best_score, best_epoch = float(state["best_score"]), int(state["best_epoch"])
            if state.get("compact") or (best_score == -1.0 and config.monitor == "accuracy"):
                best_score = -math.inf  # -1.0: "none chosen yet" in checkpoints written before the loss could watch
            history = json.loads(state["history"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{last_path}: does not fit this run ({first_line(exc)})") from None
        if start_epoch >= config.epochs:
            say(f"{out}: already finished ({start_epoch}/{config.epochs} epochs); nothing to train. To train "
                f"longer, start a new run from its weights: --pretrained {out / 'best.safetensors'} --out NEW_RUN "
                f"(Python: TrainConfig(pretrained=..., out=...))")
        else:
            say(f"resuming {out} at epoch {start_epoch + 1}/{config.epochs}")
        if state.get("compact"):
            say("a compact checkpoint: the weights restart from their float16 moving average with fresh momentum, "
                "so the result will differ slightly from an uninterrupted run; the best epoch is chosen among "
                "the resumed ones")
    if is_main:  # on resume too: the data may have moved, the thread count changed
        make_folder(out)
        _lock_run(lock, out)
        config.save(out / "config.json")

    say(f"{config.model}: {count_parameters(model):,} parameters, input {input_size}px; "
        f"{len(train_labels):,} training faces, {0 if val_labels is None else len(val_labels):,} validation; "
        f"{steps_per_epoch} steps/epoch; {world} process(es), {torch.get_num_threads()} threads each")
    for unused in config.unused_settings():
        say(f"note: {unused}")

    # ---------------------------------------------------------------- epochs
    train_model: nn.Module | None = None
    was_unfrozen = stopped_early = False
    plotted_at = 0.0
    for epoch in range(start_epoch, config.epochs):
        # Checked before the epoch rather than after it, so a resumed run stops where it stopped.
        if config.early_stopping and history and epoch - best_epoch >= config.early_stopping \
                and epoch >= config.min_epochs:
            say(f"early stopping: no validation gain for {epoch - best_epoch} epochs")
            stopped_early = True
            break
        epoch_started = time.time()
        # Transfer learning (seed 004): frozen blocks until unfreeze_epoch, then all but the first
        # ``unfreeze_keep`` of them train, at a lower rate.
        unfrozen = bool(config.unfreeze_epoch) and epoch >= config.unfreeze_epoch
        still_frozen = frozen_blocks[:config.unfreeze_keep] if unfrozen else frozen_blocks
        if train_model is None or unfrozen != was_unfrozen:
            set_frozen(frozen_blocks, frozen=False)
            set_frozen(still_frozen, frozen=True)
            # DDP reduces the gradients of the parameters that needed them when it was built.
            train_model = nn.parallel.DistributedDataParallel(model) if distributed else model
            was_unfrozen = unfrozen
        # Every random draw of this epoch comes from (seed, epoch): resuming replays it exactly.
        # Batch preparation draws from ``gen``, the same on every process (see below); the global
        # generator (dropout) also gets the rank, so processes do not drop the same units.
        torch.manual_seed(config.seed * 100_003 + epoch + 1_000_003 * rank)
        gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        augmenter = BatchAugmenter(augment_config, gen)
        order = balanced_indices(train_labels, config.balance, np.random.default_rng([config.seed, epoch]))
        model.train()
        for block in still_frozen:
            block.eval()  # frozen means frozen: batch-norm statistics keep their pretrained values too
        seen = correct = 0
        loss_sum = 0.0
        batches = range(steps_per_epoch)
        if is_main and sys.stderr.isatty():
            from tqdm import tqdm

            batches = tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False, file=sys.stderr)
        per_rank = config.batch_size // world
        for b in batches:
            # Every process prepares the whole global batch with the same random draws and takes its
            # slice, so N processes train on exactly the batches one process would (cheap next to
            # the model's forward and backward passes).
            batch_idx = order[b * config.batch_size:(b + 1) * config.batch_size]
            x = augmenter(normalizer(torch.from_numpy(train_faces[batch_idx]).unsqueeze(1)))
            y = torch.from_numpy(train_labels[batch_idx])
            labels_1hot = torch.nn.functional.one_hot(y, len(CLASSES)).float()
            targets = labels_1hot
            if teacher is not None:
                targets = distilled_targets(targets, teacher[batch_idx], config.distill_weight)
            # The labels are mixed with the same draws as the targets: class weights follow them.
            x, both, mixed = mix_batch(x, torch.cat([targets, labels_1hot], dim=1), config, gen)
            targets, label_targets = both.split(len(CLASSES), dim=1)
            weight_total = None if loss_weights is None else (label_targets @ loss_weights).sum() / world
            if distributed:
                mine = slice(rank * per_rank, (rank + 1) * per_rank)
                x, y, targets, label_targets = x[mine], y[mine], targets[mine], label_targets[mine]
            if online_teacher is not None:  # on the very (mixed) views the student gets
                targets = distilled_targets(targets, online_teacher(x), config.distill_weight)
            if config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)

            lr = lr_at(config.schedule, config.lr, step, total_steps, warmup_steps, config.min_lr, plateau.scale,
                       config.lr_decay)
            if unfrozen:
                lr *= config.unfreeze_lr_factor
            for group in optimizer.param_groups:
                group["lr"] = lr

            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = train_model(x)
            loss = soft_cross_entropy(logits, targets, label_smoothing=config.label_smoothing, weights=loss_weights,
                                      label_targets=label_targets, weight_total=weight_total)
            # Seed 001's center loss pulls a face's features to its class centre: a blend of two
            # faces belongs to no one class, so mixed batches neither feel it nor move the centres.
            centred = center_loss is not None and not mixed
            if centred:
                loss = loss + config.center_loss * center_loss(features.value, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            if centred:
                center_loss.update(features.value, y, config.center_lr, distributed=distributed)
            if ema is not None:
                ema.update(model, step)
            step += 1

            seen += len(y)
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.argmax(1) == y).sum())  # agreement with the labels, whatever the targets
            if hasattr(batches, "set_postfix"):
                batches.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}", lr=f"{lr:.4f}")

        # ------------------------------------------------------------ validation and bookkeeping
        if distributed:
            totals = torch.tensor([loss_sum, correct, seen], dtype=torch.float64)
            dist.all_reduce(totals)
            loss_sum, correct, seen = float(totals[0]), int(totals[1]), int(totals[2])
            # DDP keeps the weights equal, but each process updates batch-norm statistics on its own
            # slice: take rank 0's, so every process continues from the model rank 0 saves.
            for module in (model, ema.module if ema is not None else None):
                for buffer in (module.buffers() if module is not None else ()):
                    dist.broadcast(buffer, 0)
        eval_model = ema.module if ema is not None else model
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": loss_sum / max(seen, 1),
               "train_acc": correct / max(seen, 1), "val_loss": None, "val_acc": None}
        if not math.isfinite(row["train_loss"]):  # diverged: NaN weights must not become "best" or a checkpoint
            raise TrainingError(f"epoch {epoch + 1}: the training loss became {row['train_loss']} (the weights "
                                "diverged); nothing of this epoch was saved. Lower --lr or set --grad-clip")
        # The last step's update can break the weights after its loss was computed (finite).
        if not all(bool(torch.isfinite(v).all()) for v in eval_model.state_dict().values() if v.is_floating_point()):
            raise TrainingError(f"epoch {epoch + 1}: the weights became NaN or infinite (they diverged); nothing of "
                                "this epoch was saved. Lower --lr or set --grad-clip")
        if val_faces is not None and len(val_faces):
            figures = torch.zeros(2, dtype=torch.float64)
            if is_main:  # one process validates; the others get its figures
                logits = predict_logits(eval_model, normalizer, val_faces, bf16=bf16)
                labels_t = torch.from_numpy(val_labels)
                figures[0] = float(torch.nn.functional.cross_entropy(logits, labels_t))
                figures[1] = float((logits.argmax(1) == labels_t).float().mean())
            if distributed:
                dist.broadcast(figures, 0)
            row["val_loss"], row["val_acc"] = float(figures[0]), float(figures[1])
        row["seconds"] = time.time() - epoch_started
        history.append(row)
        if row["val_acc"] is None:
            score = float(epoch)  # no validation: the last epoch is the one kept
        else:
            score = row["val_acc"] if config.monitor == "accuracy" else -row["val_loss"]
        if config.schedule == "plateau":
            plateau.step(score)
        improved = score > best_score
        if improved:
            best_score, best_epoch = score, epoch + 1
        if is_main:
            if improved:
                save_model_file(out / "best.safetensors", eval_model, name=config.model, options=config.model_options,
                                normalizer=normalizer,
                                meta={"epoch": epoch + 1, "val_acc": row["val_acc"], "val_loss": row["val_loss"],
                                      "monitor": config.monitor, "run": str(out), **data.provenance})
            checkpoint = {
                "config": config.to_dict(),
                "train_fingerprint": data.fingerprint,
                "val_fingerprint": data.val_fingerprint,
                "teacher_fingerprint": teacher_hash,
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
                checkpoint["ema"] = ema.state_dict()
            if center_loss is not None:
                checkpoint["center_loss"] = center_loss.state_dict()
            save_checkpoint(last_path, checkpoint)
            write_history(out, history)
            if time.time() - plotted_at >= PLOT_EVERY_SECONDS:  # drawing costs ~0.5 s; always done at the end
                plot_curves(out / "curves.png", history)
                plotted_at = time.time()
            val_text = "n/a" if row["val_acc"] is None else f"{row['val_acc']:.4f}"
            if row["val_acc"] is not None and config.monitor == "loss":  # the figure that marks *best*
                val_text += f"  val loss {row['val_loss']:.4f}"
            say(f"epoch {epoch + 1}/{config.epochs}  loss {row['train_loss']:.4f}  train acc {row['train_acc']:.4f}  "
                f"val acc {val_text}  lr {lr:.5f}  {row['seconds']:.0f}s{'  *best*' if improved else ''}")

    # ---------------------------------------------------------------- summary
    scored = [row for row in history if row.get("val_acc") is not None]
    if not math.isfinite(best_score) and scored:
        # A finished run carried as a compact checkpoint chose no best epoch here: its history says which
        # it was (its weights are not in this folder unless carry_run --keep-best kept them).
        best_row = max(scored, key=lambda row: row["val_acc"] if config.monitor == "accuracy" else -row["val_loss"])
        best_epoch = int(best_row["epoch"])
        if is_main and not (out / "best.safetensors").exists():
            say(f"{out}: the best epoch ({best_epoch}) was chosen before this run was carried; its weights are not in "
                "this folder (best_carried.safetensors, when carried with --keep-best)")
    summary = {"run": str(out), "model": config.model, "parameters": count_parameters(model),
               "epochs_run": len(history), "best_epoch": best_epoch,
               "best_val_acc": next((r["val_acc"] for r in scored if r["epoch"] == best_epoch), None),
               "monitor": config.monitor, "validation": data.validated_on,
               "stopped_early": stopped_early, "processes": world,
               "train_seconds": sum(r["seconds"] for r in history)}
    if is_main:
        if val_faces is None:  # nothing to select on: keep the final weights
            save_model_file(out / "best.safetensors", ema.module if ema is not None else model, name=config.model,
                            options=config.model_options, normalizer=normalizer,
                            meta={"epoch": len(history), "run": str(out), **data.provenance})
        if history:
            write_history(out, history)  # a kill between the last checkpoint and its history leaves the row out
            plot_curves(out / "curves.png", history)
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    if features is not None:
        features.remove()
    if distributed:
        dist.barrier()  # no process leaves (and tears the group down) while rank 0 still writes
    return summary
