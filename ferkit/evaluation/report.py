"""An evaluation report as the papers present theirs: the normalised confusion matrix (seed 000
fig. 4, seed 001 fig. 5), per-class accuracy, misclassified faces per class (seed 000 fig. 8),
a table of parameters and depth (seed 000 table 1), linked from one ``report.md``; and
``predictions.csv``, one row per face (true class, predicted class, the seven probabilities), for
error analysis or ensembling in pandas without running the models again.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

import numpy as np

from ..atomic import atomic_write, atomic_write_text, make_folder
from ..data.augment_config import AugmentConfig
from ..data.classes import CLASSES
from ..data.fer2013 import describe_cropped
from .evaluate import Evaluation, describe_model
from .metrics import normalized_confusion


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write(path, lambda out: out.write(buffer.getvalue()))


def plot_confusion(path: Path, metrics: dict) -> None:
    """Row-normalised confusion matrix with the share in each cell."""
    plt = _pyplot()
    classes = metrics["classes"]
    matrix = normalized_confusion(metrics["confusion_matrix"])
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(matrix, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    empty = np.asarray(metrics["confusion_matrix"]).sum(axis=1) == 0
    for i in range(len(classes)):
        for j in range(len(classes)):
            text = "-" if empty[i] else f"{matrix[i, j]:.2f}"  # a class with no faces here has no shares
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if matrix[i, j] > 0.5 else "black")
    ax.set_title(f"normalised confusion matrix (accuracy {metrics['accuracy']:.2%}, n={metrics['n']})")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    _save(fig, path)


def plot_per_class(path: Path, metrics: dict) -> None:
    """Accuracy (recall) per class, with the class size on each bar."""
    plt = _pyplot()
    classes = metrics["classes"]
    recall = [metrics["per_class"][c]["recall"] for c in classes]
    counts = [metrics["per_class"][c]["n"] for c in classes]
    fig, ax = plt.subplots(figsize=(7, 4))
    bars = ax.bar(classes, recall, color="tab:blue")
    for bar, value, n in zip(bars, recall, counts):
        ax.text(bar.get_x() + bar.get_width() / 2, value + 0.01, f"{value:.0%}\nn={n}" if n else "no faces",
                ha="center", va="bottom", fontsize=8)
    ax.axhline(metrics["accuracy"], color="tab:red", linestyle="--", label=f"overall {metrics['accuracy']:.1%}")
    ax.set_ylim(0, 1.25)  # room above a 100% bar's label for the legend
    ax.set_ylabel("accuracy (recall)")
    ax.set_title("per-class accuracy")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def plot_class_distribution(path: Path, splits: dict[str, dict[str, int]], title: str = "") -> None:
    """Faces per class, one bar group per class and one bar per split (seed 000 fig. 2, seed 003
    fig. 4: FER2013's imbalance, disgust about 1.5% of the faces), with each bar's count."""
    plt = _pyplot()
    names = list(splits)
    classes = list(CLASSES)
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for k, name in enumerate(names):
        counts = [splits[name].get(c, 0) for c in classes]
        total = max(1, sum(counts))
        x = np.arange(len(classes)) + (k - (len(names) - 1) / 2) * width
        bars = ax.bar(x, counts, width, label=f"{name} ({sum(counts):,})")
        for bar, n in zip(bars, counts):
            ax.text(bar.get_x() + bar.get_width() / 2, n, f"{n:,}\n{n / total:.0%}", ha="center", va="bottom",
                    fontsize=6)
    ax.set_xticks(range(len(classes)), classes)
    ax.set_ylabel("faces")
    ax.margins(y=0.15)  # room for the labels above the tallest bar
    ax.set_title(title or "faces per class")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def plot_augmentations(path: Path, faces: np.ndarray, views: list[np.ndarray], labels: list[int],
                       config: AugmentConfig) -> None:
    """One row per face: the face as stored, then each augmented view the network would be given
    (``views``: one F x C x C array per view, values 0..1)."""
    plt = _pyplot()
    rows, cols = len(faces), 1 + len(views)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.4 * rows), squeeze=False)
    for r in range(rows):
        pictures = [faces[r] / 255.0] + [view[r] for view in views]
        for c, picture in enumerate(pictures):
            ax = axes[r][c]
            ax.imshow(picture, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(CLASSES[labels[r]], fontsize=8)
            if r == 0:
                ax.set_title("stored" if c == 0 else f"view {c}", fontsize=8)
    import textwrap

    settings = ", ".join(f"{k} {v}" for k, v in vars(config).items())
    fig.suptitle("\n".join(textwrap.wrap(f"training augmentation: {settings}", width=16 * cols)), fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def plot_misclassified(path: Path, evaluation: Evaluation, per_class: int = 6) -> None:
    """One row per true class: its most confidently misclassified faces, labelled true -> predicted."""
    plt = _pyplot()
    faces = evaluation.faces
    if faces is None:
        raise ValueError("this evaluation kept no faces to show")
    classes = evaluation.metrics["classes"]
    predictions = evaluation.predictions
    confidence = evaluation.probs.max(axis=1)
    fig, axes = plt.subplots(len(classes), per_class, figsize=(1.6 * per_class, 1.75 * len(classes)),
                             squeeze=False)
    for row, name in enumerate(classes):
        wrong = np.flatnonzero((evaluation.labels == row) & (predictions != row))
        wrong = wrong[np.argsort(-confidence[wrong], kind="stable")][:per_class]
        for col in range(per_class):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if col == 0:
                ax.set_ylabel(name, fontsize=9)
            if col == 0 and len(wrong) == 0:
                said = "no mistakes" if (evaluation.labels == row).any() else "no faces"
                ax.text(0.5, 0.5, said, ha="center", va="center", fontsize=8, transform=ax.transAxes)
            if col < len(wrong):
                i = wrong[col]
                ax.imshow(faces[i], cmap="gray", vmin=0, vmax=255)
                ax.set_title(f"{name} -> {classes[predictions[i]]}\n{confidence[i]:.0%}", fontsize=7)
    fig.suptitle("misclassified faces (true -> predicted, confidence)", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def class_figures(figures: dict, predicted: int) -> list[str]:
    """Precision, recall and F1 of one class as tables show them: "n/a" where there is nothing to divide
    by (no faces of the class: no recall; not predicted either: nothing at all)."""
    if figures["n"]:
        return [f"{figures[k]:.3f}" for k in ("precision", "recall", "f1")]
    if predicted:
        return [f"{figures['precision']:.3f}", "n/a", f"{figures['f1']:.3f}"]
    return ["n/a"] * 3


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_predictions(path: Path, evaluation: Evaluation) -> None:
    """One tidy row per face: its index in the split, where it came from (a file, or a CSV row), true
    and predicted class, and every probability."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")  # file names may hold commas and quotes
    writer.writerow(["index", "source", "true", "predicted", "correct", *(f"p_{c}" for c in CLASSES)])
    sources = evaluation.sources if len(evaluation.sources) == len(evaluation.labels) else [""] * len(evaluation.labels)
    for i, (label, row, source) in enumerate(zip(evaluation.labels, evaluation.probs, sources)):
        predicted = int(row.argmax())
        writer.writerow([i, source, CLASSES[int(label)], CLASSES[predicted], int(predicted == label),
                         *(f"{p:.6f}" for p in row)])
    atomic_write_text(path, buffer.getvalue())


def write_report(out_dir: str | Path, evaluation: Evaluation,
                 extra_images: Sequence[tuple[str, str]] = ()) -> Path:
    """Write the PNGs and ``report.md`` into ``out_dir``; ``extra_images`` are (title, file name)
    pairs already in ``out_dir`` (e.g. training curves) to link as well. Returns report.md's path."""
    out = Path(out_dir)
    make_folder(out)
    metrics = evaluation.metrics
    plot_confusion(out / "confusion_matrix.png", metrics)
    plot_per_class(out / "per_class_accuracy.png", metrics)
    plot_misclassified(out / "misclassified.png", evaluation)
    write_predictions(out / "predictions.csv", evaluation)

    described = [describe_model(m) for m in evaluation.models]
    model_rows = [[spec, d["name"], d["depth"], d["weight_layers"],
                   f"{d['parameters']:,} ({d['parameters'] / 1e6:.2f} M)", d["input_size"],
                   f"{d['temperature']:.3g}", d["epoch"] if d["epoch"] is not None else "-"]
                  for spec, d in zip(evaluation.specs, described)]
    kind = f"ensemble of {len(described)} models (probabilities averaged)" if len(described) > 1 else "one model"
    # A class with no faces here has no recall to speak of: "n/a", not a 0 that reads as total failure.
    # If the model predicted it all the same, each such prediction was wrong: precision and F1 are 0
    # and that F1 counts in the macro average, as the table then shows.
    predicted = dict(zip(metrics["per_class"], np.asarray(metrics["confusion_matrix"]).sum(axis=0).tolist()))
    per_class_rows = [[c, *class_figures(v, predicted[c]), v["n"]] for c, v in metrics["per_class"].items()]
    absent = [c for c, v in metrics["per_class"].items() if not v["n"]]
    left_out = [c for c in absent if not predicted[c]]
    mistaken = [f"{c} (predicted {predicted[c]:,} time(s))" for c in absent if predicted[c]]
    parts = [
        "# ferkit evaluation report",
        "",
        f"Split **{evaluation.split}** ({metrics['n']:,} faces"
        + (f", drawn at random from its {evaluation.sample_of:,}" if evaluation.sample_of else "")
        + f"), test-time augmentation **{evaluation.tta}**, {kind}"
        + (f", run by **{evaluation.backend}**." if evaluation.backend != "torch" else ".")
        + (f" Pictures that were not 48x48 face crops: {describe_cropped(evaluation.cropped)}."
           if set(evaluation.cropped) - {"crop"} else ""),
        "",
        _markdown_table(["accuracy", "macro F1", "ECE (15 bins)"],
                        [[f"{metrics['accuracy']:.4f}", f"{metrics['macro_f1']:.4f}", f"{metrics['ece']:.4f}"]]),
        "",
        *([f"ECE: the {evaluation.ece_caveat}.", ""] if evaluation.ece_caveat else []),
        *([f"**Warning**: {evaluation.data_caveat}.", ""] if evaluation.data_caveat else []),
        *([f"Accuracy {unseen['accuracy']:.4f} on the {unseen['faces']:,} faces that are not Training faces again "
           f"({unseen['repeats_of_training']:,} of these faces repeat one, pixel for pixel).", ""]
          if (unseen := evaluation.unseen) and unseen["accuracy"] is not None else []),
        "## Models (depth = convolution layers, as in seed 000 table 1)",
        "",
        _markdown_table(["model", "architecture", "depth", "weight layers", "parameters", "input", "temperature",
                         "epoch"], model_rows),
        "",
        "## Per class",
        "",
        _markdown_table(["class", "precision", "recall", "F1", "faces"], per_class_rows),
        "",
        "Macro F1 averages the F1 of the classes among the true labels or the predictions"
        + (f"; {', '.join(left_out)}: no faces here and never predicted, left out" if left_out else "")
        + (f"; no faces here but {', '.join(mistaken)}: counted with F1 0" if mistaken else "") + ".",
        "",
        "## Normalised confusion matrix",
        "",
        "Rows are true classes, columns predictions; each row sums to 1"
        + (f" (but the empty rows of {', '.join(absent)}, which have no faces)." if absent else "."),
        "",
        "![confusion matrix](confusion_matrix.png)",
        "",
        "## Per-class accuracy",
        "",
        "![per-class accuracy](per_class_accuracy.png)",
        "",
        "## Misclassified faces",
        "",
        "The most confident mistakes for each true class.",
        "",
        "![misclassified faces](misclassified.png)",
        "",
        "Every face's probabilities: [predictions.csv](predictions.csv).",
    ]
    if evaluation.skipped:  # a figure computed without some faces says so, and which
        parts += ["", f"## Unreadable items in the data ({len(evaluation.skipped):,}, in all the splits read; those "
                      f"of {evaluation.split} are missing from the figures)", ""]
        parts += [f"- {problem}" for problem in evaluation.skipped]
    for title, name in extra_images:
        parts += ["", f"## {title}", "", f"![{title}]({name})"]
    report = out / "report.md"
    atomic_write_text(report, "\n".join(parts) + "\n")
    return report
