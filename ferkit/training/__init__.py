"""Training engine: ``train(TrainConfig)``; see :mod:`ferkit.training.train` for the loop."""
from .checkpoint import CheckpointError
from .config import TrainConfig
from .train import TrainingError, train

__all__ = ["CheckpointError", "TrainConfig", "TrainingError", "train"]
