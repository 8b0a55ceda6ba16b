"""Per-epoch history (CSV and JSON) and the curves plot (seed 003, figure 5)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..atomic import atomic_write, atomic_write_text

HISTORY_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds")


def write_history(run_dir: Path, history: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(run_dir / "history.csv", buffer.getvalue())
    atomic_write_text(run_dir / "history.json", json.dumps(history, indent=1) + "\n")


def plot_runs_compared(path: Path, histories: dict[str, list[dict]]) -> None:
    """Validation accuracy and loss per epoch of several runs on one pair of axes (seed 002 fig. 9
    compares its configurations so); runs without validation are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 4))
    for label, history in histories.items():
        for ax, key in ((ax_acc, "val_acc"), (ax_loss, "val_loss")):
            points = [(r["epoch"], r[key]) for r in history if r.get(key) is not None]
            if points:
                ax.plot([e for e, _ in points], [v for _, v in points], label=label)
    for ax, title in ((ax_acc, "validation accuracy"), (ax_loss, "validation loss (cross-entropy)")):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda out: fig.savefig(out, format="png", dpi=100))
    plt.close(fig)


def plot_curves(path: Path, history: list[dict]) -> None:
    """Accuracy and loss per epoch, training vs validation, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 4))
    # The training loss is the objective (with label smoothing, mixup, distillation targets, center
    # loss), so its floor sits above the plain cross-entropy measured on validation: say so.
    for ax, key, title, train_label in ((ax_acc, "acc", "accuracy", "train (augmented)"),
                                        (ax_loss, "loss", "loss", "train objective (smoothed targets)")):
        ax.plot(epochs, [r[f"train_{key}"] for r in history], label=train_label)
        val = [(e, r[f"val_{key}"]) for e, r in zip(epochs, history) if r.get(f"val_{key}") is not None]
        if val:
            ax.plot([e for e, _ in val], [v for _, v in val], label="validation" + (" (cross-entropy)" if key == "loss" else ""))
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda out: fig.savefig(out, format="png", dpi=100))
    plt.close(fig)
