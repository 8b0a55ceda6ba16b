"""Compare two training runs' PublicTest readings where their learning rates were the same.

Two cosine cycles of different lengths reach a given rate at different epochs; comparing runs at
the same epoch flatters the shorter cycle (its rate is lower there).  This pairs each epoch of run
B with the epoch of run A whose scheduled rate is closest, and prints the mean validation accuracy
over a window of B's epochs, next to A's over the matched and over the same epochs.

    python benchmarks/compare_runs.py benchmarks/histories/vgg_fer_long.csv runs/vgg_fer_long2 --from 89

A and B are run folders (their history.csv) or history CSV files (columns epoch, lr, val_acc).
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path


def read_history(path: str) -> dict[int, tuple[float, float]]:
    """epoch -> (lr, val_acc) from a run folder or its history.csv."""
    source = Path(path)
    if source.is_dir():
        source = source / "history.csv"
    with source.open(newline="") as handle:
        return {int(row["epoch"]): (float(row["lr"]), float(row["val_acc"])) for row in csv.DictReader(handle)}


def matched_epoch(lr: float, history: dict[int, tuple[float, float]], after_peak: bool = True) -> int:
    """The epoch of ``history`` whose rate is closest to ``lr`` (after its warm-up peak: cosine rates repeat)."""
    peak = max(history, key=lambda e: history[e][0])
    candidates = [e for e in history if e >= peak] if after_peak else list(history)
    return min(candidates, key=lambda e: abs(history[e][0] - lr))


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", help="the reference run (folder or history.csv)")
    parser.add_argument("b", help="the run to compare (folder or history.csv)")
    parser.add_argument("--from", dest="first", type=int, default=1, help="first epoch of B in the window")
    parser.add_argument("--to", dest="last", type=int, default=None, help="last epoch of B (default: its last)")
    args = parser.parse_args()

    a, b = read_history(args.a), read_history(args.b)
    last = args.last or max(b)
    window = [e for e in sorted(b) if args.first <= e <= last]
    if not window:
        raise SystemExit(f"no epochs of {args.b} between {args.first} and {last}")
    matched = [matched_epoch(b[e][0], a) for e in window]
    same = [e for e in window if e in a]
    print(f"B {args.b}, epochs {window[0]}-{window[-1]} (rate {b[window[0]][0]:.4f} -> {b[window[-1]][0]:.4f}): "
          f"mean val acc {mean([b[e][1] for e in window]):.4f}, best {max(b[e][1] for e in window):.4f}")
    print(f"A {args.a}, epochs {min(matched)}-{max(matched)} at the same rates: "
          f"mean {mean([a[e][1] for e in matched]):.4f}, best {max(a[e][1] for e in matched):.4f}")
    if same:
        print(f"A at the same epochs ({same[0]}-{same[-1]}): mean {mean([a[e][1] for e in same]):.4f}")


if __name__ == "__main__":
    main()
