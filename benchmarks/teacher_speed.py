"""How long an online distillation teacher takes per epoch, float32 vs int8 graph.

    python benchmarks/teacher_speed.py [--teacher default] [--threads 2] [--seconds 5]

Runs ``OnlineTeacher`` (the class training uses) on batches of 64 normalised 44 px faces for a few
seconds each way and prints faces/s and the seconds an epoch of 448 batches (FER2013's 28,709
training faces) costs.  Pause any training first: the figures are for an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import time

import torch

from ferkit.models.hub import load_model
from ferkit.models.int8_graph import Int8GraphError
from ferkit.training.distill import OnlineTeacher

STEPS_PER_EPOCH = 448


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="default", help="shipped name, run directory or model file")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_model(args.teacher)
    size = loaded.input_size
    batch = loaded.normalizer(torch.randint(0, 256, (64, 1, size, size), generator=torch.Generator().manual_seed(0)))
    for int8 in (False, True):
        try:
            teacher = OnlineTeacher(args.teacher, loaded.normalizer, size, threads=args.threads, int8=int8)
        except Int8GraphError as exc:
            print(f"{args.teacher}: no int8 row ({exc})")
            continue
        for _ in range(3):  # first runs allocate and pick kernels
            teacher(batch)
        start, runs = time.perf_counter(), 0
        while time.perf_counter() - start < args.seconds:
            teacher(batch)
            runs += 1
        elapsed = time.perf_counter() - start
        print(f"{args.teacher} ({loaded.name}), {teacher.engine}: {runs * 64 / elapsed:,.0f} faces/s, "
              f"{STEPS_PER_EPOCH * elapsed / runs:.1f} s per epoch of {STEPS_PER_EPOCH} batches of 64")


if __name__ == "__main__":
    main()
