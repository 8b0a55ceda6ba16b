"""A training run's whole configuration, as plain data saved beside every checkpoint."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..data.augment import AugmentConfig


@dataclass
class TrainConfig:
    data: str = ""
    model: str = "vgg_fer"
    model_options: dict = field(default_factory=dict)
    out: str = "runs/run"
    epochs: int = 30
    batch_size: int = 64
    # optimisation
    optimizer: str = "sgd"  # sgd | adam | adamax | adamw | radam
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "onecycle"  # onecycle | cosine | plateau | constant
    warmup_epochs: float = 3.0  # cosine / onecycle warm-up
    plateau_patience: int = 25  # seed 000: halve the rate after 25 epochs without gain
    plateau_factor: float = 0.5
    min_lr: float = 0.0
    early_stopping: int = 0  # stop after this many epochs without validation gain (0 = never)
    grad_clip: float = 0.0  # max gradient norm (0 = off)
    # loss
    label_smoothing: float = 0.1
    balance: str = "none"  # none | undersample | oversample | weights
    center_loss: float = 0.0  # lambda of the center loss (seed 001, eq. 4); 0 = off
    center_lr: float = 0.5  # learning rate of the class centres
    mixup: float = 0.0  # Beta(a, a) parameter for mixup; 0 = off
    cutmix: float = 0.0  # Beta(a, a) parameter for cutmix; 0 = off
    mix_prob: float = 0.5  # chance a batch gets mixup or cutmix when either is on
    # data
    normalize: str = "global"  # global | pixel
    equalize: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # weight averaging and speed
    ema: float = 0.0  # EMA decay per step (e.g. 0.999); 0 = off
    precision: str = "auto"  # auto | bf16 | fp32; auto = bf16 autocast only on CPUs with native bf16
    channels_last: bool = True
    threads: int = 0  # torch threads (0 = leave torch's default)
    # transfer learning
    pretrained: str = ""
    freeze: int = 0  # freeze the first N top-level blocks
    unfreeze_epoch: int = 0  # epoch at which frozen blocks are unfrozen (0 = never)
    unfreeze_lr_factor: float = 0.1
    seed: int = 0
    val_split: str = "publictest"
    limit_train: int = 0  # use only the first N training faces (quick runs, tests)
    limit_val: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown configuration keys: {', '.join(unknown)}")
        values = dict(data)
        if isinstance(values.get("augment"), dict):
            values["augment"] = AugmentConfig(**values["augment"])
        return cls(**values)

    def save(self, path: Path) -> None:
        from .checkpoint import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)
