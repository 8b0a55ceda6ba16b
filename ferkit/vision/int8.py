"""int8 ONNX graphs of a ferkit model, for the ``int8`` backend.

Static quantisation with ONNX Runtime: int8 weights (per output channel) and uint8 activations
whose ranges are measured on real training faces.  Two choices matter on this project's CPU
(``benchmarks/inference_engines.py``):

* ``reduce_range`` (7-bit weights).  Without VNNI, x86 multiplies uint8 by int8 with an
  instruction that saturates its 16-bit sums; full-range weights then flip about one prediction
  in eight on ``vgg_fer``, reduced range about one in a hundred.
* QDQ format with ``quant_pre_process`` (shape inference and graph fusion first), which gives
  ONNX Runtime's fused int8 convolutions.

Calibration needs faces, and the package cannot ship FER2013's, so the graph is made once
(``ferkit export --int8 --data FER2013``, or ``scripts/ship_model.py`` for the shipped models)
and stored beside its model file as ``<stem>.int8.onnx``.  It records a SHA-256 of the network
weights it was made from, so a retrained model never runs with a stale graph (the temperature and
normaliser are applied outside the graph, so re-calibrating a model does not invalidate it).
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_bytes
from ..data.augment import tta_views
from ..data.fer2013 import FaceCropper
from ..models.int8_graph import (Int8GraphError, compact_graph, int8_path, load_int8_graph,  # noqa: F401 (re-exported)
                                 restore_weights, weights_digest)
from ..models.io import LoadedModel
from .onnx import export_onnx, normalised

CALIBRATION_FACES = 512


def network_inputs(loaded: LoadedModel, faces: np.ndarray) -> np.ndarray:
    """uint8 faces N x 48 x 48 -> the graph's input (normalised centre views, N x 1 x S x S)."""
    return np.ascontiguousarray(tta_views(normalised(loaded, faces), loaded.input_size, "none")[0].numpy(),
                                dtype=np.float32)


def quantize_int8(loaded: LoadedModel, calibration_faces: np.ndarray, path: str | Path | None = None, *,
                  reduce_range: bool = True) -> bytes:
    """The model as an int8 ONNX graph, activation ranges measured on ``calibration_faces``
    (uint8 N x 48 x 48, training faces, never the evaluation split); written to ``path`` if given.
    ``reduce_range=False`` is there for the benchmark that shows why it is on."""
    import onnx
    import onnx.numpy_helper
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    inputs = network_inputs(loaded, calibration_faces)

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"faces": inputs[i:i + 64]} for i in range(0, len(inputs), 64)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        float_graph, prepared, int8_graph = (Path(tmp) / n for n in ("model.onnx", "prepared.onnx", "int8.onnx"))
        export_onnx(loaded, float_graph)
        # onnxruntime's symbolic shape inference gives up on the super-resolution modules' pixel shuffle
        # (DepthToSpace), and then leaves a copy of the graph in the working folder; the plain ONNX shape
        # inference is enough to quantise those graphs.
        pixel_shuffle = any(node.op_type == "DepthToSpace" for node in onnx.load(str(float_graph)).graph.node)
        quant_pre_process(str(float_graph), str(prepared), skip_symbolic_shape=pixel_shuffle)
        quantize_static(str(prepared), str(int8_graph), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=reduce_range, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        proto = onnx.load(str(int8_graph))
    bad = [init.name for init in proto.graph.initializer if init.name.endswith("_scale")
           and not np.isfinite(onnx.numpy_helper.to_array(init)).all()]
    if bad:  # an infinite range (e.g. -inf padding) quantises every value to one level: wrong answers, no error
        raise Int8GraphError(f"{loaded.path or loaded.name}: cannot quantise {loaded.name}: {len(bad)} value range(s) "
                             f"are not finite ({bad[0]}); use the onnx backend for this model")
    meta = {"ferkit_name": loaded.name, "classes": json.dumps(list(loaded.classes)),
            "input_size": str(loaded.input_size), "weights_sha256": weights_digest(loaded),
            "quantization": f"static QDQ: int8 weights per channel{' (reduced range)' * reduce_range}, "
                            "uint8 activations",
            "calibration_faces": str(len(calibration_faces))}
    del proto.metadata_props[:]  # the quantiser may or may not carry the float graph's entries over
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    data = proto.SerializeToString()
    if path is not None:
        atomic_write_bytes(path, data)
    return data


def calibration_set(data: str | Path, count: int = CALIBRATION_FACES, seed: int = 0,
                    skip_bad: bool = False, cropper: FaceCropper | None = None) -> np.ndarray:
    """``count`` faces drawn at random from the training split of a FER2013 copy (or, in a folder of
    class folders, from its faces: the split ``train`` trains on); ``cropper`` cuts the face out of
    pictures that are not 48x48 crops, as ``train`` and ``evaluate`` read them."""
    from ..data import load_fer2013

    dataset = load_fer2013(data, skip_bad=skip_bad, cropper=cropper)
    train = dataset.split("all" if "training" not in dataset.splits and "all" in dataset.splits else "training")
    rng = np.random.default_rng(seed)
    return train.images[rng.choice(len(train), size=min(count, len(train)), replace=False)]


def make_int8_graph(loaded: LoadedModel, data: str | Path, out: str | Path | None = None,
                    skip_bad: bool = False, compact: bool = False,
                    cropper: FaceCropper | None = None) -> tuple[bytes, float, int]:
    """Quantise ``loaded`` calibrated on 512 training faces of ``data`` and write it to ``out``
    (default: beside the model file; ``compact``: without the int8 weights, which loading
    recomputes from the model file).  Returns the whole graph, the share of other training faces
    on which it gives the float model's top emotion, and how many faces that share was measured on."""
    from .onnx import OnnxBackend

    faces = calibration_set(data, count=2 * CALIBRATION_FACES, seed=0, skip_bad=skip_bad, cropper=cropper)
    if len(faces) < 2:  # one half calibrates, the other checks
        from ..data import DataError

        raise DataError(f"{data}: {len(faces)} training face(s); an int8 graph is calibrated on at least 2 "
                        f"(ferkit uses up to {2 * CALIBRATION_FACES})")
    half = min(CALIBRATION_FACES, len(faces) // 2)
    calibration, check = faces[:half], faces[half:]
    graph = quantize_int8(loaded, calibration)
    stored = graph
    if compact:
        stored = compact_graph(graph)
        try:  # the graph users will load must be this one, bit for bit
            same = restore_weights(stored, loaded) == graph
        except Int8GraphError:
            same = False
        if not same:
            raise Int8GraphError(f"{out or int8_path(loaded)}: not written: the compact graph would not load as "
                                 "the quantised one; export without --compact")
    atomic_write_bytes(out if out is not None else int8_path(loaded), stored)
    int8_top = OnnxBackend(loaded, graph, name="int8").probs(check, "none").argmax(1)
    float_top = OnnxBackend(loaded).probs(check, "none").argmax(1)
    return graph, float((int8_top == float_top).mean()) if len(check) else float("nan"), len(check)
