"""Inference speed on this CPU: classification throughput and latency, and end-to-end video.

Prints, for each model (the shipped ``default`` and ``fast`` models when present, else the
``--model`` files given) and each backend (PyTorch, ONNX Runtime, and ONNX Runtime on the
model's int8 graph when it has one):

* batched classification throughput (faces/s, batches of 256; target > 1,000),
* batch-1 latency (ms per face, median; target < 2 ms),

and, with the fastest backend, end-to-end frames/s on a 640x360 video with one face (decode,
detect, crop, classify, track; target > 60 fps) for several detector settings, saying which:
detection at full size, on a frame downscaled to 320 px, and every third frame with the
tracker's boxes reused in between.

Numbers depend on the machine and its load: re-measure on an idle machine before quoting.

    python benchmarks/inference_speed.py [--model FILE ...] [--threads 1] [--seconds 2]
"""
from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "fer2013"


def _faces(n: int) -> np.ndarray:
    """Real FER2013 faces when ../shared is there, a seeded sample across the classes (for speed only their
    count matters; for the agreement figures of inference_engines.py, which faces they are does too)."""
    from ferkit.data.images import decode_face

    paths = sorted((SHARED / "test").glob("*/*.jpg")) if (SHARED / "test").is_dir() else []
    if paths:  # drawn across the classes (sorted, the first 256 are all angry), the same ones every run
        paths = [paths[i] for i in np.random.default_rng(0).permutation(len(paths))[:n]]
        faces = np.stack([decode_face(p)[0] for p in paths])
        return np.resize(faces, (n, 48, 48))
    return np.random.default_rng(0).integers(0, 256, (n, 48, 48), dtype=np.uint8)


def _timed(fn, seconds: float, min_calls: int = 3) -> list[float]:
    times, start = [], time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def classification(spec: str, seconds: float) -> dict[str, tuple[float, float]]:
    from ferkit.models.hub import load_model
    from ferkit.vision.backends import TorchBackend
    from ferkit.vision.onnx import OnnxBackend, onnx_available

    loaded = load_model(spec)
    threads = int(os.environ["OMP_NUM_THREADS"]) if os.environ.get("OMP_NUM_THREADS", "").isdigit() else None
    backends = [TorchBackend(loaded)] + ([OnnxBackend(loaded, threads=threads)] if onnx_available() else [])
    if _int8_graph(spec) is not None:
        backends.append(OnnxBackend(loaded, _int8_graph(spec), name="int8", threads=threads))
    batch, single = _faces(256), _faces(1)
    results = {}
    for backend in backends:
        backend.probs(batch, "none")  # warm-up
        batched = _timed(lambda b=backend: b.probs(batch, "none"), seconds)
        one = _timed(lambda b=backend: b.probs(single, "none"), seconds, min_calls=20)
        throughput = len(batch) / statistics.median(batched)
        latency = statistics.median(one) * 1000
        results[backend.name] = (throughput, latency)
        print(f"  {backend.name:<5} batched {throughput:8,.0f} faces/s   batch-1 {latency:6.2f} ms/face", flush=True)
    print(f"  ({loaded.name}, {loaded.parameters:,} parameters, input {loaded.input_size}px)")
    return results


def make_video(path: Path, frames: int) -> None:
    """640x360, one real face (the astronaut of ferkit/assets/portraits.jpg, head about 90 px
    high) drifting across a textured background."""
    portrait = cv2.imread(str(ROOT / "ferkit" / "assets" / "portraits.jpg"))[:, :480]
    person = cv2.resize(portrait, (300, 300), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(40, 200, (360, 640, 3), dtype=np.uint8), (0, 0), 6)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 360))
    for t in range(frames):
        frame = background.copy()
        x = (3 * t) % 340
        frame[30:330, x:x + 300] = person
        writer.write(frame)
    writer.release()


@functools.lru_cache(maxsize=None)
def _int8_graph(spec: str) -> bytes | None:
    """The model's int8 graph, or None (said once) when it has none or a stale one."""
    from ferkit.models.hub import load_model
    from ferkit.vision.int8 import load_int8_graph
    from ferkit.vision.onnx import onnx_available

    if not onnx_available():
        return None
    try:
        return load_int8_graph(load_model(spec))
    except ValueError as error:
        print(f"  (no int8 rows: {error})")
        return None


def end_to_end(spec: str, video: Path, frames: int) -> None:
    from ferkit.vision import retinaface
    from ferkit.vision.recognizer import EmotionRecognizer

    settings = []
    if retinaface.available():
        settings += [("retinaface, detect every frame at 640x360", dict(detector="retinaface")),
                     ("retinaface, detect every frame downscaled to 320x180", dict(detector="retinaface",
                                                                                   detect_size=320)),
                     ("retinaface, detect every 3rd frame at 320x180, boxes reused between",
                      dict(detector="retinaface", detect_size=320, detect_every=3))]
        if _int8_graph(spec) is not None:
            settings.append(("retinaface, detect every 3rd frame at 320x180, boxes reused between, int8 classifier",
                             dict(detector="retinaface", detect_size=320, detect_every=3, backend="int8")))
    settings += [("haar, detect every frame at 640x360", dict(detector="haar")),
                 ("haar, detect every 3rd frame at 320x180, boxes reused between",
                  dict(detector="haar", detect_size=320, detect_every=3))]
    for label, options in settings:
        rec = EmotionRecognizer(spec, **options)
        next(iter(rec.predict_video(video)))  # warm-up (sessions, caches)
        start = time.perf_counter()
        count = found = 0
        for result in rec.predict_video(video):
            count += 1
            found += len(result.faces) == 1
        fps = count / (time.perf_counter() - start)
        print(f"  {fps:7.1f} fps  ({found}/{count} frames with the face)  {label}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description="Inference speed: classification and end-to-end video.")
    parser.add_argument("--model", action="append", default=[], metavar="SPEC",
                        help="model file, run directory or shipped name (default: every shipped model)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch and ONNX Runtime threads (default: what the environment gives)")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement (default 2)")
    parser.add_argument("--frames", type=int, default=150, help="frames of the test video (default 150)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    from ferkit.models.hub import SHIPPED, shipped_path

    specs = args.model or [name for name in SHIPPED if shipped_path(name).exists()]
    if not specs:
        print("no shipped model in this installation yet: pass --model FILE", file=sys.stderr)
        return 2
    print(f"CPU threads available: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f} "
          "(figures are only comparable on an idle machine)")
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "bench.avi"
        make_video(video, args.frames)
        for spec in specs:
            print(f"\nmodel {spec}: classification of 48x48 faces")
            classification(spec, args.seconds)
            print(f"model {spec}: end to end on a 640x360 video with one face ({args.frames} frames, incl. decoding)")
            end_to_end(spec, video, args.frames)
    return 0


if __name__ == "__main__":
    sys.exit(main())
