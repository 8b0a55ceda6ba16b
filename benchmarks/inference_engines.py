"""Which inference engine runs a shipped model's graph fastest on this CPU?

Times the bare network (normalised 44 px faces in, logits out; no preprocessing, so the engines
are compared on equal terms) in each engine that is installed:

* ONNX Runtime, float32 -- what ferkit's ``onnx`` backend uses;
* ONNX Runtime, int8 -- :mod:`ferkit.vision.int8`'s static quantisation, calibrated on 512
  training faces, with its reduced weight range and without it;
* OpenVINO, float32 -- only when ``openvino`` is importable (``pip install openvino``; not a
  ferkit dependency).

For each: batched throughput (faces/s, batches of 256), batch-1 latency (ms, median) and the
share of faces with the same top emotion as ONNX Runtime float32, and the largest probability
difference from it, on the same 256 PublicTest faces.  This is the
evidence behind the README's engine choices:

    python benchmarks/inference_engines.py [--model default --model fast] [--threads 2]

Numbers depend on the machine and its load: run it on an idle machine.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from inference_speed import SHARED, _faces, _timed  # benchmarks/ is on sys.path when a script in it runs


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _measure(name: str, run, batch: np.ndarray, single: np.ndarray, reference: np.ndarray | None,
             seconds: float) -> np.ndarray:
    out = run(batch)
    throughput = len(batch) / statistics.median(_timed(lambda: run(batch), seconds))
    latency = statistics.median(_timed(lambda: run(single), seconds, min_calls=20)) * 1000
    diff = "" if reference is None else (f"   same top emotion {(out.argmax(1) == reference.argmax(1)).mean():6.1%}"
                                         f"   max prob. diff {np.abs(_softmax(out) - _softmax(reference)).max():.1e}")
    print(f"  {name:<28} batched {throughput:8,.0f} faces/s   batch-1 {latency:6.2f} ms{diff}", flush=True)
    return out


def _ort_session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"faces": x})[0]


def _openvino(path: Path, threads: int):
    import openvino as ov

    core = ov.Core()
    compiled = {}

    def run(x: np.ndarray) -> np.ndarray:
        if len(x) not in compiled:  # a static shape per batch size, as OpenVINO prefers
            model = core.read_model(str(path))
            model.reshape({model.inputs[0].any_name: list(x.shape)})
            net = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
                                                    "INFERENCE_PRECISION_HINT": "f32"})
            compiled[len(x)] = (net.create_infer_request(), net.outputs[0])
        request, output = compiled[len(x)]
        return request.infer({0: x})[output]

    return run


def engines(spec: str, threads: int, seconds: float) -> None:
    from ferkit.models.hub import load_model
    from ferkit.vision.int8 import calibration_set, network_inputs, quantize_int8
    from ferkit.vision.onnx import export_onnx

    loaded = load_model(spec)
    batch, single = network_inputs(loaded, _faces(256)), network_inputs(loaded, _faces(1))
    print(f"\nmodel {spec} ({loaded.name}, {loaded.parameters:,} parameters, input {loaded.input_size}px)")
    with tempfile.TemporaryDirectory() as tmp:
        graph = Path(tmp) / "model.onnx"
        export_onnx(loaded, graph)
        reference = _measure("ONNX Runtime float32", _ort_session(graph, threads), batch, single, None, seconds)
        calibration = calibration_set(SHARED) if (SHARED / "train").is_dir() else _faces(512)
        for reduce_range, label in ((True, "int8 (ferkit's)"), (False, "int8 full range")):
            int8 = Path(tmp) / f"model.int8.{reduce_range}.onnx"
            quantize_int8(loaded, calibration, int8, reduce_range=reduce_range)
            _measure(f"ONNX Runtime {label}", _ort_session(int8, threads), batch, single, reference, seconds)
        try:
            import openvino  # noqa: F401
        except ImportError:
            print("  OpenVINO float32             not installed (pip install openvino to include it)")
        else:
            _measure("OpenVINO float32", _openvino(graph, threads), batch, single, reference, seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description="Inference engines on the bare network graph.")
    parser.add_argument("--model", action="append", default=[], metavar="SPEC",
                        help="model file, run directory or shipped name (default: every shipped model)")
    parser.add_argument("--threads", type=int, default=2, help="threads per engine (default 2)")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement (default 2)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from ferkit.models.hub import SHIPPED, shipped_path

    specs = args.model or [name for name in SHIPPED if shipped_path(name).exists()]
    print(f"CPU threads available: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f} "
          "(figures are only comparable on an idle machine)")
    for spec in specs:
        engines(spec, args.threads, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
