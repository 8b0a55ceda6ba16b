"""Export a ferkit model to ONNX and run it with ONNX Runtime.

The graph takes normalised faces ``N x 1 x S x S`` (float32) and returns logits, exactly as the
PyTorch model; normalisation, test-time views and the softmax stay in shared Python code
(:class:`~ferkit.data.preprocess.Normalizer`, :func:`~ferkit.data.augment.tta_views`), so both
backends compute the same thing.  For the small CNNs here ONNX Runtime has a much lower
per-call overhead than eager PyTorch (see ``benchmarks/inference_speed.py``).
Exported graphs are cached in ``$FERKIT_CACHE_DIR/onnx`` under the model file's hash.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write_bytes
from ..data.augment import tta_views
from ..data.cache import default_cache_dir
from ..models.io import LoadedModel
from ..models.onnx_export import OPSET, export_onnx  # noqa: F401  (re-exported)


def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def cached_onnx(loaded: LoadedModel) -> bytes:
    """The exported graph for this model file, from the cache when the file is unchanged."""
    digest = None
    if loaded.path and os.path.isfile(loaded.path):
        digest = hashlib.sha256(Path(loaded.path).read_bytes()).hexdigest()[:32]
    cache = default_cache_dir() / "onnx" / f"{digest}-{torch.__version__}.onnx" if digest else None
    if cache is not None and cache.is_file():
        return cache.read_bytes()
    data = export_onnx(loaded)
    if cache is not None:
        try:
            atomic_write_bytes(cache, data)
        except OSError:  # a read-only cache only costs the export time next run
            pass
    return data


def normalised(loaded: LoadedModel, faces: np.ndarray) -> torch.Tensor:
    """uint8 faces N x 48 x 48 -> the model's normalised input N x 1 x 48 x 48 (before cropping to views)."""
    prepared = loaded.normalizer.prepare(faces)
    return loaded.normalizer(torch.from_numpy(np.ascontiguousarray(prepared)).unsqueeze(1))


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
        self.session = ort.InferenceSession(graph or cached_onnx(loaded), options, providers=["CPUExecutionProvider"])

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
