"""Export a ferkit model to ONNX and run it with ONNX Runtime.

The graph takes normalised faces ``N x 1 x S x S`` (float32) and returns logits, exactly as the
PyTorch model; normalisation, test-time views and the softmax stay in shared Python code
(:class:`~ferkit.data.preprocess.Normalizer`, :func:`~ferkit.data.augment.tta_views`), so both
backends compute the same thing.  For the small CNNs here ONNX Runtime has a much lower
per-call overhead than eager PyTorch (see ``benchmarks/inference_speed.py``).
Exported graphs are cached in ``$FERKIT_CACHE_DIR/onnx`` under a hash of the network they were exported from.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from ..data.augment import tta_views
from ..data.cache import default_cache_dir, save_in_cache
from ..data.errors import first_line
from ..models.io import LoadedModel, ModelFileError
from ..models.onnx_export import OPSET, export_onnx  # noqa: F401  (re-exported)


def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def graph_key(loaded: LoadedModel) -> str:
    """What an exported graph depends on: the network in memory (architecture, options, weights) and
    the metadata written into it, not the file it came from, which may have changed since it was read
    (a run still training rewrites best.safetensors) or not hold what is in memory at all."""
    from ..models.int8_graph import weights_digest

    digest = hashlib.sha256()
    for part in (loaded.name, json.dumps(loaded.options, sort_keys=True, default=str), loaded.input_size,
                 list(loaded.classes), loaded.temperature, loaded.normalizer.mean.tolist(),
                 loaded.normalizer.std.tolist(), bool(loaded.normalizer.equalize), weights_digest(loaded)):
        digest.update(json.dumps(part, default=str).encode())
    return digest.hexdigest()[:32]


def cached_onnx(loaded: LoadedModel, *, refresh: bool = False) -> bytes:
    """The exported graph of this model, from the cache when one was exported from the same network
    (``refresh``: export again, replacing an entry that would not load)."""
    cache = default_cache_dir() / "onnx" / f"{graph_key(loaded)}-{torch.__version__}.onnx"
    if cache.is_file() and not refresh:
        return cache.read_bytes()
    data = export_onnx(loaded)
    save_in_cache(cache, lambda out: out.write(data))
    return data


def normalised(loaded: LoadedModel, faces: np.ndarray) -> torch.Tensor:
    """uint8 faces N x 48 x 48 -> the model's normalised input N x 1 x 48 x 48 (before cropping to views)."""
    return loaded.normalizer.to_tensor(faces)


class OnnxBackend:
    name = "onnx"

    def __init__(self, loaded: LoadedModel, graph: bytes | None = None, threads: int | None = None,
                 name: str = "onnx"):
        import onnxruntime as ort

        self.loaded, self.name = loaded, name
        options = ort.SessionOptions()
        options.log_severity_level = 3
        # The per-call thread pool start-up costs more than it gains for single faces.
        options.intra_op_num_threads = threads or min(2, os.cpu_count() or 1)
        def session(data: bytes) -> ort.InferenceSession:
            return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])

        if graph is not None:
            try:
                self.session = session(graph)
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for damaged graphs
                raise ModelFileError(f"{loaded.path or loaded.name}: its {name} graph does not load in ONNX Runtime "
                                     f"({first_line(exc)})") from None
            return
        data = cached_onnx(loaded)  # an export that fails, fails once, here
        try:
            self.session = session(data)
        except Exception:  # noqa: BLE001 - a damaged cache entry (disk full, killed copy): export it again
            self.session = session(cached_onnx(loaded, refresh=True))

    def logits(self, faces: np.ndarray, tta: str = "none", batch_size: int = 256) -> np.ndarray:
        """Logits V x N x C for uint8 faces N x 48 x 48 (V test-time views)."""
        lm = self.loaded
        parts = []
        for start in range(0, len(faces), batch_size):
            views = tta_views(normalised(lm, faces[start:start + batch_size]), lm.input_size, tta)
            flat = views.reshape(-1, *views.shape[2:]).numpy()
            out = self.session.run(None, {"faces": np.ascontiguousarray(flat, dtype=np.float32)})[0]
            parts.append(out.reshape(views.shape[0], views.shape[1], -1))
        return np.concatenate(parts, axis=1)

    def probs(self, faces: np.ndarray, tta: str) -> np.ndarray:
        logits = self.logits(faces, tta) / self.loaded.temperature
        logits = logits - logits.max(axis=-1, keepdims=True)
        e = np.exp(logits)
        return (e / e.sum(axis=-1, keepdims=True)).mean(axis=0).astype(np.float32)
