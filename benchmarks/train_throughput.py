"""Training throughput of the model zoo: images/s of full SGD steps (forward, loss, backward, update)
per model, in fp32 and under bf16 autocast, optionally with torch.compile.

    python benchmarks/train_throughput.py                       # every zoo model, fp32 + bf16
    python benchmarks/train_throughput.py --models sepconv,resnet18 --compile
    python benchmarks/train_throughput.py --quick --models tiny # smoke check: a few tiny steps
    python benchmarks/train_throughput.py --models vgg_fer --precisions fp32 --memory-format contiguous

Random faces at each model's input size, batch 64, channels_last (as ``ferkit train``; ``--memory-format
contiguous`` for the comparison), 2 threads by default.  Only the
model step is timed (no data loading or augmentation: see augment_throughput.py for those).
Run it on an idle machine: any other load on the cores skews every figure.  On CPUs without
AVX512-BF16/AMX, bf16 autocast is expected to be much slower than fp32.
"""
from __future__ import annotations

import argparse
import contextlib
import time

import torch
import torch.nn.functional as F

from ferkit.models import count_parameters, create_model, model_info, model_names


def time_steps(name: str, *, batch: int, bf16: bool, compile_model: bool, warmup: int, steps: int,
               seconds: float, channels_last: bool = True) -> float:
    """Images per second of training steps: at least ``steps`` steps and ``seconds`` seconds."""
    torch.manual_seed(0)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = create_model(name, **model_info(name).example_options).train().to(memory_format=memory_format)
    size = model.input_size
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    step_model = torch.compile(model) if compile_model else model
    x = torch.randn(batch, 1, size, size).to(memory_format=memory_format)
    y = torch.randint(0, 7, (batch,))

    def step() -> None:
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with autocast:
            loss = F.cross_entropy(step_model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):  # first steps allocate, pick kernels, and compile
        step()
    count, started = 0, time.perf_counter()
    while count < steps or time.perf_counter() - started < seconds:
        step()
        count += 1
    return count * batch / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated names (default: every registered model)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32, bf16")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd models")
    parser.add_argument("--seconds", type=float, default=10.0, help="minimum timed seconds per cell")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--memory-format", choices=("channels_last", "contiguous"), default="channels_last")
    parser.add_argument("--quick", action="store_true", help="smoke check: batch 8, 1 warm-up + 2 steps, fp32")
    args = parser.parse_args()

    names = args.models.split(",") if args.models else model_names()
    unknown = [n for n in names if n not in model_names()]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(model_names())}")
    precisions = args.precisions.split(",")
    if set(precisions) - {"fp32", "bf16"}:
        parser.error(f"--precisions {args.precisions!r}: use fp32 and/or bf16")
    batch, warmup, steps, seconds = args.batch, args.warmup, 3, args.seconds
    if args.quick:
        batch, warmup, steps, seconds, precisions = 8, 1, 2, 0.0, ["fp32"]
    torch.set_num_threads(args.threads)

    columns = [(p, False) for p in precisions] + ([(p, True) for p in precisions] if args.compile else [])
    titles = [f"{p}{' compiled' if c else ''}" for p, c in columns]
    print(f"training step throughput, images/s: batch {batch}, {args.threads} threads, SGD, {args.memory_format}"
          f"{' (QUICK smoke check: not a measurement)' if args.quick else ''}")
    print(f"| {'model':<16} | {'params':>12} | {'input':>5} | " + " | ".join(f"{t:>14}" for t in titles) + " |")
    print(f"|{'-' * 18}|{'-' * 13}:|{'-' * 6}:|" + "|".join("-" * 15 + ":" for _ in titles) + "|")
    errors: list[str] = []
    for name in names:
        with torch.device("meta"):
            probe = create_model(name, **model_info(name).example_options)
        cells = []
        for precision, compiled in columns:
            try:
                rate = time_steps(name, batch=batch, bf16=precision == "bf16", compile_model=compiled,
                                  warmup=warmup, steps=steps, seconds=seconds,
                                  channels_last=args.memory_format == "channels_last")
                cells.append(f"{rate:>14,.1f}")
            except Exception as exc:  # e.g. torch.compile without a C compiler: report it, go on
                cells.append(f"{'error':>14}")
                first_line = str(exc).splitlines()[0][:150] if str(exc) else ""
                errors.append(f"{name} {precision}{' compiled' if compiled else ''}: {type(exc).__name__}: {first_line}")
        print(f"| {name:<16} | {count_parameters(probe):>12,} | {probe.input_size:>5} | " + " | ".join(cells) + " |",
              flush=True)
    for error in errors:
        print(f"error: {error}")


if __name__ == "__main__":
    main()
