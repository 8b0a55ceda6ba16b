"""ferkit's shipped classifiers against the `fer` package's mini-Xception, measured in one run.

ferkit's models run in ONNX Runtime, in float32 and on their int8 graphs (``--backend int8``).
For each side: batched classification throughput (faces/s, batches of 256), batch-1 latency
(ms per face, median), and accuracy on FER2013 PublicTest (centre view, no TTA) when
``../shared/fer2013`` is there. Both sides get the same number of threads.

`fer` needs TensorFlow, which does not belong in ferkit's environment, so it runs in a child
process with the interpreter of an environment where it is installed
(``python -m venv /tmp/fervenv && /tmp/fervenv/bin/pip install --no-deps fer && /tmp/fervenv/bin/pip install
tensorflow-cpu opencv-python-headless``; fer's own dependencies pull in facenet-pytorch and with it a
CUDA build of PyTorch, gigabytes that only its MTCNN detector, unused here, needs):

    python benchmarks/fer_comparison.py --fer-python /tmp/fervenv/bin/python [--threads 2]

fer ships two classifiers, both measured: the Keras mini-Xception (``emotion_model.hdf5``, the one
``fer.FER`` runs) and an int8-quantised TFLite version of it (``emotion_model_quantized.tflite``).
Numbers depend on the machine and its load: run it on an idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from inference_speed import _timed  # benchmarks/ is on sys.path when a script in it runs

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "fer2013"

# Runs inside the fer environment: reads faces (N x 48 x 48 uint8) and labels from an .npz, prints JSON.
FER_SIDE = r'''
import json, os, statistics, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, cv2
import tensorflow as tf
threads = int(sys.argv[2])
tf.config.threading.set_intra_op_parallelism_threads(threads)
tf.config.threading.set_inter_op_parallelism_threads(1)
import importlib.util  # fer's folder, without importing fer (and its video and detector dependencies)
data = np.load(sys.argv[1])
faces, labels, seconds = data["faces"], data["labels"], float(sys.argv[3])
base = os.path.join(importlib.util.find_spec("fer").submodule_search_locations[0], "data")

def timed(fn, min_calls=3):
    times, start = [], time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < seconds:
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return statistics.median(times)

def prepare(batch, size):  # what fer.FER does to a face: resize, /255, then (x - 0.5) * 2 (mini-Xception "v2")
    x = np.stack([cv2.resize(f, (size, size)) for f in batch]).astype(np.float32) / 255.0
    return ((x - 0.5) * 2.0)[..., None]

out = {}
model = tf.keras.models.load_model(os.path.join(base, "emotion_model.hdf5"), compile=False)
size = model.input_shape[1]
run = tf.function(lambda v: model(v, training=False))
batch, single = prepare(faces[:256], size), prepare(faces[:1], size)
run(batch); run(single)
predictions = np.concatenate([run(prepare(faces[i:i + 256], size)).numpy() for i in range(0, len(faces), 256)])
out["keras"] = {"params": int(model.count_params()), "input": int(size),
                "batched": 256 / timed(lambda: run(batch).numpy()),
                "latency_ms": 1000 * timed(lambda: run(single).numpy(), 20),
                "accuracy": float((predictions.argmax(1) == labels).mean())}

interp = tf.lite.Interpreter(model_path=os.path.join(base, "emotion_model_quantized.tflite"), num_threads=threads)
inp, outp = interp.get_input_details()[0], interp.get_output_details()[0]
def tflite(x):
    if interp.get_input_details()[0]["shape"][0] != len(x):
        interp.resize_tensor_input(inp["index"], [len(x), size, size, 1]); interp.allocate_tensors()
    if inp["dtype"] != np.float32:
        scale, zero = inp["quantization"]
        x = np.clip(np.round(x / scale + zero), np.iinfo(inp["dtype"]).min, np.iinfo(inp["dtype"]).max)
    interp.set_tensor(inp["index"], x.astype(inp["dtype"])); interp.invoke()
    return interp.get_tensor(outp["index"])
predictions = np.concatenate([tflite(prepare(faces[i:i + 256], size)) for i in range(0, len(faces) - 255, 256)]
                             + [tflite(prepare(faces[i:i + 1], size)) for i in range(len(faces) // 256 * 256, len(faces))])
out["tflite_int8"] = {"params": out["keras"]["params"], "input": int(size),
                      "batched": 256 / timed(lambda: tflite(batch)),
                      "latency_ms": 1000 * timed(lambda: tflite(single), 20),
                      "accuracy": float((predictions.argmax(1) == labels).mean())}
print(json.dumps(out))
'''


def publictest() -> tuple[np.ndarray, np.ndarray]:
    if not SHARED.is_dir():
        rng = np.random.default_rng(0)  # speed only: accuracy is then meaningless and not printed
        return rng.integers(0, 256, (512, 48, 48), dtype=np.uint8), np.full(512, -1)
    from ferkit.data import load_fer2013

    split = load_fer2013(SHARED).splits["publictest"]
    return split.images, split.labels


def timed(fn, seconds: float, min_calls: int = 3) -> float:
    """Median seconds per call (the same timing as ``inference_speed.py``)."""
    return statistics.median(_timed(fn, seconds, min_calls))


def ferkit_side(spec: str, faces: np.ndarray, labels: np.ndarray, threads: int, seconds: float,
                int8: bool = False) -> dict:
    from ferkit.models.hub import load_model
    from ferkit.vision.int8 import load_int8_graph
    from ferkit.vision.onnx import OnnxBackend

    loaded = load_model(spec)
    graph = load_int8_graph(loaded) if int8 else None
    backend = OnnxBackend(loaded, graph, threads=threads)
    batch, single = faces[:256], faces[:1]
    backend.probs(batch, "none")
    predictions = np.concatenate([backend.probs(faces[i:i + 256], "none") for i in range(0, len(faces), 256)])
    return {"params": loaded.parameters, "input": loaded.input_size,
            "batched": len(batch) / timed(lambda: backend.probs(batch, "none"), seconds),
            "latency_ms": 1000 * timed(lambda: backend.probs(single, "none"), seconds, 20),
            "accuracy": float((predictions.argmax(1) == labels).mean())}


def main() -> int:
    parser = argparse.ArgumentParser(description="ferkit's shipped models vs the fer package, in one run.")
    parser.add_argument("--fer-python", help="python of an environment with fer and TensorFlow installed")
    parser.add_argument("--models", default="fast,default", help="ferkit models to measure (default fast,default)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement (default 3)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    faces, labels = publictest()
    have_labels = bool((labels >= 0).all())
    print(f"{len(faces):,} faces ({'FER2013 PublicTest' if have_labels else 'random, speed only'}); "
          f"{args.threads} threads; load average {os.getloadavg()[0]:.1f}")
    rows = {}
    for spec in args.models.split(","):
        rows[f"ferkit {spec} (ONNX Runtime)"] = ferkit_side(spec, faces, labels, args.threads, args.seconds)
        try:
            rows[f"ferkit {spec} (ONNX Runtime int8)"] = ferkit_side(spec, faces, labels, args.threads, args.seconds,
                                                                     int8=True)
        except ValueError as error:  # a model without an int8 graph beside it: say so, measure the rest
            print(f"ferkit {spec}: no int8 row ({error})")
    if args.fer_python:
        with tempfile.TemporaryDirectory() as tmp:
            np.savez(Path(tmp) / "faces.npz", faces=faces, labels=labels)
            done = subprocess.run([args.fer_python, "-c", FER_SIDE, str(Path(tmp) / "faces.npz"), str(args.threads),
                                   str(args.seconds)], capture_output=True, text=True)
        if done.returncode != 0:
            print(f"fer side failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
        else:
            fer = json.loads(done.stdout.strip().splitlines()[-1])
            rows["fer mini-Xception (Keras)"] = fer["keras"]
            rows["fer mini-Xception (TFLite int8)"] = fer["tflite_int8"]
    print(f"\n| classifier | params | input | batched faces/s | batch-1 ms | PublicTest acc |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        accuracy = f"{r['accuracy']:.1%}" if have_labels else "-"
        print(f"| {name} | {r['params']:,} | {r['input']} | {r['batched']:,.0f} | {r['latency_ms']:.2f} | {accuracy} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
