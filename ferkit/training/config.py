"""A training run's whole configuration, as plain data saved beside every checkpoint."""
from __future__ import annotations

import dataclasses
import json
import numbers
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from ..data.augment_config import AugmentConfig
from ..data.errors import first_line
from ..detectors import DETECTOR_CHOICES
from ..options import option

# Validation selects the best epoch, so it must be a held-out split that is never trained on;
# PrivateTest is the final test and must not steer training either.
# auto: PublicTest when the data has it, else a held-out tenth of the training faces (holdout);
# none: no validation, the last epoch is kept.
VALIDATION_SPLITS = ("auto", "publictest", "holdout", "none")
HOLDOUT_FRACTION = 0.1
# What chooses the best epoch: the validation accuracy, or the validation loss (lower is better).
MONITORS = ("accuracy", "loss")
# The held-out faces do not follow --seed: every run on the same data (one started from another's
# weights, or distilled from it, included) is validated on the same faces, none of which it trained on.
HOLDOUT_SEED = 0
# What a resumed run may change: where the run lives, where its (same) data now lives (checked by
# a fingerprint of the training faces), and how many threads it uses.
RESUMABLE_CHANGES = ("out", "data", "threads")
MAX_THREADS = 256
# Named here rather than beside torch's optimisers so that the CLI can list them without importing torch.
OPTIMIZERS = ("sgd", "adam", "adamax", "adamw", "radam")


def option_choices() -> dict[str, tuple[str, ...]]:
    """The allowed values of every ``TrainConfig`` field that takes a name."""
    from ..data.balance import BALANCING
    from .schedule import SCHEDULES

    return {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "balance": BALANCING,
            "normalize": ("global", "pixel"), "precision": ("auto", "bf16", "fp32"),
            "distill_mode": ("clean", "online"), "detector": DETECTOR_CHOICES, "val_split": VALIDATION_SPLITS,
            "monitor": MONITORS}



def _check_type(option: str, value: object, item: dataclasses.Field) -> object:
    """A configuration value of the field's kind (the kind of its default): ``epochs="3"``, ``epochs=2.5`` or
    ``equalize="no"`` (a string, true) would otherwise fail deep inside, or quietly do something else.
    Returns the value as plain Python (a numpy number becomes an int or float: config.json is JSON)."""
    default = item.default_factory() if item.default_factory is not dataclasses.MISSING else item.default
    if default is dataclasses.MISSING or default is None:
        return value
    is_bool = isinstance(value, (bool, np.bool_))
    if isinstance(default, bool):
        ok, kind = is_bool, "true or false"
        value = bool(value) if ok else value
    elif isinstance(default, int):
        ok, kind = isinstance(value, numbers.Integral) and not is_bool, "a whole number"
        value = int(value) if ok else value
    elif isinstance(default, float):
        ok, kind = isinstance(value, numbers.Real) and not is_bool, "a number"
        value = float(value) if ok and not isinstance(value, int) else value
    elif isinstance(default, str):
        ok, kind = isinstance(value, str), "text"
    elif isinstance(default, dict):
        ok, kind = isinstance(value, dict), "a mapping of names to values"
    else:
        ok, kind = isinstance(value, type(default)), f"an {type(default).__name__}"
    if not ok:
        raise ValueError(f"{option} {value!r}: expected {kind}")
    return value

@dataclass
class TrainConfig:
    """Everything a training run needs, as plain data: saved as ``config.json`` beside every
    checkpoint, so ``train(TrainConfig.load(path), resume=True)`` continues the run exactly.
    The fields mirror ``ferkit train``'s options (``ferkit train --help``)."""

    data: str = option("", "fer2013.csv, a dataset folder (train/, test/) or a folder of class folders; "
                           "needed for a new run")
    model: str = option("vgg_fer", "architecture from the registry (ferkit models lists them)")
    model_options: dict = field(default_factory=dict)
    out: str = option("runs/run", "run folder: config.json, last.pt, best.safetensors, history, curves")
    epochs: int = option(30, "passes over the training faces")
    batch_size: int = option(64, "faces per step, over all processes (under torchrun each takes its share)")
    # optimisation
    optimizer: str = option("sgd", "optimiser (seed 000 uses adam; the long recipes sgd)")
    lr: float = option(0.05, "peak learning rate")
    momentum: float = option(0.9, "SGD momentum (the Adam family keeps its own betas)")
    nesterov: bool = option(True, "Nesterov momentum (SGD)")
    weight_decay: float = option(5e-4, "L2 weight decay (decoupled for adamw)")
    schedule: str = option("onecycle", "learning-rate schedule (plateau: seed 000's)")
    warmup_epochs: float = option(3.0, "linear warm-up of cosine and onecycle, in epochs (at most a third of the run)")
    plateau_patience: int = option(25, "plateau: halve the rate after this many epochs without gain (seed 000: 25)")
    plateau_factor: float = option(0.5, "plateau: multiply the rate by this")
    min_lr: float = option(0.0, "the rate cosine ends at and plateau stops at")
    lr_decay: float = option(0.0, "time-decay: the rate is lr / (1 + this x step), Keras' legacy decay (seed 004: 1e-6)")
    early_stopping: int = option(0, "stop after this many epochs without validation gain (0 = never)")
    min_epochs: int = option(0, "early stopping never stops a run before this many epochs (seed 000: 60)")
    monitor: str = option("accuracy", "what picks the best epoch and drives --early-stopping and the plateau "
                                      "schedule: validation accuracy, or validation loss (seed 000's code)")
    grad_clip: float = option(0.0, "max gradient norm (0 = off)")
    # loss
    label_smoothing: float = option(0.1, "share of each target spread evenly over the classes")
    balance: str = option("none", "class balancing (seed 003); weights balances through the loss")
    center_loss: float = option(0.0, "lambda of the center loss (seed 001, eq. 4); 0 = off")
    center_lr: float = option(0.5, "alpha: the rate at which class centres move (Wen et al. 2016)")
    mixup: float = option(0.0, "Beta(a, a) parameter for mixup; 0 = off")
    cutmix: float = option(0.0, "Beta(a, a) parameter for cutmix; 0 = off")
    mix_prob: float = option(0.5, "chance a batch gets mixup or cutmix when either is on")
    distill: str = option("", "teacher to distil from: shipped name, run folder or model file (a+b: an ensemble)")
    distill_weight: float = option(0.5, "share of the teacher's probabilities in each face's target")
    distill_temperature: float = option(1.0, "softens the teacher's probabilities (Hinton et al. 2015)")
    distill_mode: str = option("clean", "clean: the teacher sees each clean face once; online: every augmented batch")
    distill_int8: bool = option(False, "an online teacher runs its int8 graph: faster, 0.2-2% of its answers differ")
    fuse: str = option("", "seed 001's fusion: trained models (a+b: shipped names, run folders or model files) whose "
                           "features, their classifiers dropped, one new classifier learns to join (--model fusion; "
                           "train sets it and --freeze -1, which trains that classifier alone)")
    # data
    normalize: str = option("global", "global: one mean and std; pixel: a mean and std per pixel (seed 000)")
    equalize: bool = option(False, "histogram-equalise every face first")
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # weight averaging and speed
    ema: float = option(0.0, "EMA decay of the weights per step (e.g. 0.999); 0 = off")
    precision: str = option("auto", "auto = bf16 autocast on CPUs with native bf16 (AVX512-BF16, AMX), "
                                    "except for models it slows (efficientnet_b1); else fp32")
    channels_last: bool = option(True, "channels_last memory format (faster convolutions on CPU)")
    threads: int = option(0, "torch threads (0 = leave torch's default)")
    # transfer learning (seed 004): train the head on a frozen backbone, then fine-tune all at a lower rate
    pretrained: str = option("", "start from these weights: a local safetensors or torch state dict (ImageNet "
                                 "weights for transfer), or a run's best.safetensors")
    superres: str = option("", "seed 001's SRGAN: a generator trained by ferkit superres (its run folder or "
                               "generator.safetensors), frozen in front of a network built with --model-option "
                               "upscale=srgan")
    freeze: int = option(0, "freeze the first N blocks; negative counts from the end (-1 = all but the head)")
    unfreeze_epoch: int = option(0, "epoch (0-based) from which frozen blocks train too (0 = never)")
    unfreeze_lr_factor: float = option(0.1, "the rate is multiplied by this once unfrozen")
    unfreeze_keep: int = option(0, "frozen blocks (from the input) that stay frozen after unfreeze_epoch")
    seed: int = option(0, "seeds weights, shuffling and augmentation (the holdout is the same for every seed)")
    val_split: str = option("auto", "the faces that pick the best epoch: auto = PublicTest when the data has it, "
                                    "else holdout (a fixed share, --val-fraction, of each class of the training "
                                    "faces, never trained on); "
                                    "none keeps the last epoch")
    val_fraction: float = option(HOLDOUT_FRACTION, "holdout: the share of each class's training faces held out "
                                                   "(seed 004: 0.2)")
    limit_train: int = option(0, "use only N training faces, a seeded random subset (quick runs, tests); 0 = all")
    limit_val: int = option(0, "use only N validation faces; 0 = all")
    skip_bad: bool = option(False, "skip unreadable images / bad CSV rows (each reported) instead of stopping")
    # How a picture that is not a 48x48 face crop becomes one: the largest face this detector finds
    # (auto | retinaface | haar; ``train`` then needs the matching cropper), or none: the whole picture
    # resized, as runs saved before this setting read them.  ``ferkit train`` defaults new runs to auto.
    detector: str = "none"

    def __post_init__(self) -> None:
        # Paths given as Path objects are kept as text: the config is saved as JSON beside the run.
        for name in ("data", "out", "pretrained", "distill", "fuse", "superres"):
            value = getattr(self, name)
            if isinstance(value, os.PathLike):
                setattr(self, name, os.fspath(value))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        if not isinstance(data, dict):  # a config.json holding a list or a string
            raise ValueError(f"not a training configuration (a JSON {type(data).__name__}, not an object)")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown configuration keys: {', '.join(unknown)}")
        values = dict(data)
        if "augment" in values:
            if not isinstance(values["augment"], dict):
                raise ValueError(f"bad augment settings (a JSON {type(values['augment']).__name__}, not an object)")
            try:
                values["augment"] = AugmentConfig(**values["augment"])
            except TypeError as exc:
                raise ValueError(f"bad augment settings ({exc})") from None
        return cls(**values)

    def unused_settings(self) -> list[str]:
        """Settings changed from their default that do nothing with the others (momentum for Adam, a plateau
        patience on a cosine schedule...): said at the start of a run rather than ignored in silence."""
        default = TrainConfig()
        changed = {f.name for f in fields(self) if f.name != "augment" and getattr(self, f.name) != getattr(default, f.name)}
        rules = [
            (("distill_mode", "distill_weight", "distill_temperature"), not self.distill, "without --distill"),
            (("plateau_patience", "plateau_factor"), self.schedule != "plateau", f"with --schedule {self.schedule}"),
            (("mix_prob",), not (self.mixup or self.cutmix), "without --mixup or --cutmix"),
            (("center_lr",), not self.center_loss, "without --center-loss"),
            (("unfreeze_lr_factor",), not self.unfreeze_epoch, "without --unfreeze-epoch"),
            (("momentum", "nesterov"), self.optimizer != "sgd", f"with --optimizer {self.optimizer}"),
            (("early_stopping", "limit_val", "monitor"), self.val_split == "none", "with --val-split none"),
            (("min_epochs",), not self.early_stopping, "without --early-stopping"),
            (("val_fraction",), self.val_split in ("publictest", "none"), f"with --val-split {self.val_split}"),
            (("lr_decay",), self.schedule != "time-decay", f"with --schedule {self.schedule}"),
            (("schedule",), self.schedule == "time-decay" and not self.lr_decay,
             "as time-decay without --lr-decay: the rate stays constant"),
            (("min_epochs",), self.min_epochs >= self.epochs, f"with --epochs {self.epochs}"),
            (("warmup_epochs",), self.schedule in ("constant", "plateau", "time-decay"),
             f"with --schedule {self.schedule}"),
            (("min_lr",), self.schedule in ("constant", "onecycle", "time-decay"), f"with --schedule {self.schedule}"),
        ]
        return [f"--{name.replace('_', '-')} has no effect {why}"
                for names, idle, why in rules if idle for name in names if name in changed]

    def input_size(self) -> int:
        """The side of the faces the network takes (its registered size, or ``input_size=`` among its options)."""
        from ..models import model_info

        return int(self.model_options.get("input_size", model_info(self.model).input_size))

    def validate(self) -> None:
        """Raise ValueError (one line) for a name or value that cannot work, before any file is written."""
        import math

        from ..models import model_info

        for owner, prefix in ((self, ""), (self.augment if isinstance(self.augment, AugmentConfig) else None, "aug-")):
            for item in fields(owner) if owner is not None else ():
                setattr(owner, item.name,
                        _check_type(f"--{prefix}{item.name.replace('_', '-')}", getattr(owner, item.name), item))
        model_info(self.model)  # unknown names list the registered models
        if bool(self.fuse) != (self.model == "fusion"):
            raise ValueError(f"--fuse builds the fusion model (--model fusion), not {self.model}" if self.fuse else
                             "--model fusion needs --fuse A+B: the trained models whose features it joins")
        if self.superres and self.model_options.get("upscale") != "srgan":
            raise ValueError(f"--superres needs --model-option upscale=srgan (a network with SRGAN's generator in "
                             f"front; resnet50 as seed 001), not {'upscale=' + str(self.model_options['upscale']) if 'upscale' in self.model_options else 'without it'}")
        if self.superres and self.normalize != "global":
            raise ValueError("--superres needs --normalize global (the generator gets its own normalisation by a "
                             "scale and shift)")
        if self.fuse and (self.normalize != "global" or "members" not in self.model_options):
            raise ValueError("--fuse needs --normalize global (each member gets its own normalisation by a scale "
                             "and shift)" if self.normalize != "global" else
                             "--fuse: the members' architectures are missing from the model options")
        # NaN passes every range check below (all comparisons are false) and trains NaN weights.
        for owner, prefix in ((self, ""), (self.augment, "aug-")):
            for item in fields(owner):
                value = getattr(owner, item.name)
                if isinstance(value, float) and not math.isfinite(value):
                    raise ValueError(f"--{prefix}{item.name.replace('_', '-')} {value}: not a finite number")
        for name, allowed in option_choices().items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose one of: {', '.join(allowed)}")
        checks = [
            (self.epochs >= 1, f"--epochs {self.epochs}: must be at least 1"),
            (self.batch_size >= 1, f"--batch-size {self.batch_size}: must be at least 1"),
            (0 < self.lr <= 100, f"--lr {self.lr}: must be positive (and at most 100)"),
            (0 <= self.label_smoothing < 1, f"--label-smoothing {self.label_smoothing}: must be in [0, 1)"),
            (0 < self.plateau_factor <= 1, f"--plateau-factor {self.plateau_factor}: must be in (0, 1]"),
            (self.plateau_patience >= 1, f"--plateau-patience {self.plateau_patience}: must be at least 1"),
            (self.early_stopping >= 0, f"--early-stopping {self.early_stopping}: must be 0 (off) or a number of epochs"),
            (self.min_epochs >= 0, f"--min-epochs {self.min_epochs}: must not be negative"),
            (self.lr_decay >= 0, f"--lr-decay {self.lr_decay}: must not be negative"),
            (0 < self.val_fraction <= 0.5, f"--val-fraction {self.val_fraction}: must be above 0 and at most 0.5"),
            (self.center_loss >= 0 and self.center_lr >= 0,
             f"--center-loss {self.center_loss}, --center-lr {self.center_lr}: must not be negative"),
            (0 <= self.ema < 1, f"--ema {self.ema}: the decay must be in [0, 1)"),
            (0 <= self.distill_weight <= 1 and self.distill_temperature > 0,
             f"--distill-weight {self.distill_weight}, --distill-temperature {self.distill_temperature}: the weight "
             "must be in [0, 1] and the temperature positive"),
            (self.unfreeze_epoch >= 0 and self.unfreeze_lr_factor > 0 and self.unfreeze_keep >= 0,
             f"--unfreeze-epoch {self.unfreeze_epoch}, --unfreeze-lr-factor {self.unfreeze_lr_factor}, --unfreeze-keep "
             f"{self.unfreeze_keep}: the epoch and blocks kept must not be negative, the factor must be positive"),
            (not self.unfreeze_keep or self.unfreeze_epoch, "--unfreeze-keep needs --unfreeze-epoch"),
            (not self.distill_int8 or (self.distill and self.distill_mode == "online"),
             "--distill-int8 needs --distill and --distill-mode online"),
            (not self.unfreeze_epoch or self.freeze, "--unfreeze-epoch needs --freeze"),
            (self.limit_train >= 0 and self.limit_val >= 0 and self.threads >= 0,
             f"--limit-train {self.limit_train}, --limit-val {self.limit_val}, --threads {self.threads}: none may be "
             "negative"),
            (0 <= self.momentum < 1, "--momentum must be in [0, 1)"),
            (self.weight_decay >= 0, "--weight-decay must not be negative"),
            (self.warmup_epochs >= 0, "--warmup-epochs must not be negative"),
            (0 <= self.min_lr < self.lr, "--min-lr must be at least 0 and below --lr"),
            (self.grad_clip >= 0, "--grad-clip must be 0 (off) or a positive gradient norm"),
            (self.mixup >= 0 and self.cutmix >= 0, "--mixup and --cutmix must be 0 (off) or a positive Beta parameter"),
            (0 <= self.mix_prob <= 1, "--mix-prob must be in [0, 1]"),
            (0 <= self.seed < 2**63, f"--seed {self.seed}: must be at least 0 and below 2**63"),
            # torch.set_num_threads(99999) crashes the process outright
            (self.threads <= MAX_THREADS, f"--threads {self.threads}: at most {MAX_THREADS}"),
            (bool(str(self.out).strip()), "--out must name a run folder (an empty name would be the current folder)"),
            (self.unfreeze_epoch < self.epochs, f"--unfreeze-epoch {self.unfreeze_epoch} is not before the last epoch "
                                                f"({self.epochs}): the blocks would never train"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        self.augment.validate()
        self._check_model_builds()

    def _check_model_builds(self) -> None:
        """Build the network with its options and pass one face through it: a width of 0 or a
        size its classifier does not fit otherwise fails in the first training step."""
        import warnings

        import torch

        from ..models import create_model

        options = " ".join(f"{k}={json.dumps(v)}" for k, v in self.model_options.items())
        where = f"--model-option {options}" if options else f"--model {self.model}"
        try:
            with warnings.catch_warnings():  # torch's own warnings about the bad sizes, said better below
                warnings.simplefilter("ignore")
                model = create_model(self.model, num_classes=7, **self.model_options).eval()
                side = self.input_size()
                with torch.no_grad():
                    model(torch.zeros(1, 1, side, side))
        except (TypeError, ValueError, RuntimeError, KeyError) as exc:
            raise ValueError(f"{where}: {self.model} cannot be built with it ({first_line(exc, 160)})") from None

    def save(self, path: Path) -> None:
        from .checkpoint import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TrainConfig":
        """The config saved at ``path``. A run's own ``config.json`` (a ``last.pt`` beside it) gets the folder
        that holds it as ``out``: the run is there now (it may have been moved or carried, and its saved
        ``out`` may be relative to another working folder). Any other config file keeps its ``out``."""
        path = Path(path).expanduser()
        try:
            config = cls.from_dict(json.loads(path.read_text()))
        except (ValueError, TypeError, AttributeError) as exc:  # bad JSON, wrong keys or wrong shape
            raise ValueError(f"{path}: not a valid ferkit training configuration ({exc})") from None
        if path.name == "config.json" and (path.parent / "last.pt").is_file():
            config = config.replace(out=str(path.parent))
        return config

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def config_differences(saved: dict, wanted: dict, ignore: tuple[str, ...] = RESUMABLE_CHANGES) -> list[str]:
    """The settings that differ between two configurations (as ``key saved -> wanted``).

    Both sides go through JSON first, so a tuple and a list, or 3 and 3.0, count as the same.
    ``out`` is where a run lives, not what it is, so a moved run directory still resumes; likewise
    a moved dataset (``data``) and the thread count (see ``RESUMABLE_CHANGES``).  A setting that a
    run saved before ferkit had it counts as its default, so older runs still resume.
    """
    defaults = TrainConfig().to_dict()

    def with_defaults(config: dict) -> dict:
        merged = {**defaults, **json.loads(json.dumps(config, sort_keys=True))}
        for key, default in defaults.items():  # nested settings (augment) that a later ferkit added
            if isinstance(default, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**default, **merged[key]}
        return merged

    a, b = (with_defaults(d) for d in (saved, wanted))
    a, b = (json.loads(json.dumps(d, sort_keys=True)) for d in (a, b))
    return [f"{key} {a.get(key)!r} -> {b.get(key)!r}" for key in sorted(set(a) | set(b))
            if key not in ignore and a.get(key) != b.get(key)]
