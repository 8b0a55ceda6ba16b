"""Finding and loading the int8 ONNX graph stored beside a model file (made by
:mod:`ferkit.vision.int8`, which explains the quantisation).  It lives here, with the model files,
so that both the ``int8`` inference backend and distillation's teacher can use it.

A graph may be stored *compact*: without its int8 weights and int32 biases, which are nearly all
of its bytes and hold nothing the model file does not (they are the network's weights, batch norm
folded in, divided by the per-channel scales the graph keeps).  Loading recomputes them from the
model: the float graph is exported again and each tensor quantised with the stored scale and zero
point, the same arithmetic as ONNX Runtime's quantiser.  What the graph must keep is what only
calibration on faces can give: the activation ranges.  The shipped models' graphs are compact, so
every shipped model has an int8 graph for the price of a few kilobytes.  The rebuilt graph is cached in
``$FERKIT_CACHE_DIR/int8`` (the rebuild exports the model, a second or two for ``default``); a cached
graph is used only if compacting it gives back the very bytes stored beside the model.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .io import LoadedModel, ModelFileError

QUANTISED_SUFFIX = "_quantized"  # ONNX Runtime's name for a quantised initializer (``<float name>_quantized``)
COMPACT_KEY = "ferkit_compact"  # metadata: the names of the quantised tensors left out, to recompute on load


class Int8GraphError(ModelFileError):
    """The int8 graph for a model is missing, unreadable, or made from other weights."""


def weights_digest(loaded: LoadedModel) -> str:
    """SHA-256 of the network's weights (names and float32 values), independent of file metadata."""
    digest = hashlib.sha256()
    for name, tensor in sorted(loaded.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().contiguous().numpy().tobytes())
    return digest.hexdigest()


def int8_path(loaded: LoadedModel | str | os.PathLike) -> Path:
    """Where a model's int8 graph lives: beside its file (``best.safetensors`` -> ``best.int8.onnx``);
    ``loaded`` is the loaded model or its file's path."""
    if not isinstance(loaded, LoadedModel):
        return Path(loaded).with_suffix(".int8.onnx")
    if not loaded.path:
        raise Int8GraphError(f"{loaded.name}: a model not loaded from a file has no int8 graph")
    return Path(loaded.path).with_suffix(".int8.onnx")


def load_int8_graph(loaded: LoadedModel) -> bytes:
    """The int8 graph stored beside the model file, checked to be made from that very file."""
    import onnx

    path = int8_path(loaded)
    if not path.is_file():
        raise Int8GraphError(f"{path}: no int8 graph for this model; make it with "
                             f"`ferkit export --model {loaded.path} --int8 --data FER2013_PATH`")
    data = path.read_bytes()
    try:
        props = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}
    except Exception as exc:  # a damaged file names itself, not a protobuf traceback
        raise Int8GraphError(f"{path}: not a readable ONNX graph ({type(exc).__name__})") from None
    if props.get("weights_sha256") != weights_digest(loaded):
        raise Int8GraphError(f"{path}: made from other weights than {Path(loaded.path).name}'s; "
                             "re-create it with `ferkit export --int8`")
    if COMPACT_KEY in props:
        return _restored_cached(data, loaded, where=str(path))
    return data


def _restored_cached(compact: bytes, loaded: LoadedModel, where: str) -> bytes:
    """:func:`restore_weights`, through a cache keyed by the compact graph's bytes."""
    from ..data.cache import default_cache_dir, save_in_cache

    cache = default_cache_dir() / "int8" / f"{hashlib.sha256(compact).hexdigest()[:32]}.onnx"
    try:
        cached = cache.read_bytes()
        # The compact record holds a digest of the left-out tensors, so this checks every byte that matters.
        if compact_graph(cached) == compact:
            return cached
    except Exception:  # missing, unreadable or damaged: rebuild it
        pass
    data = restore_weights(compact, loaded, where=where)
    save_in_cache(cache, lambda out: out.write(data))
    return data


def _dequantize_inputs(proto) -> dict[str, tuple[str, str, int]]:
    """For each quantised initializer: its scale, its zero point and the axis of its scales."""
    found = {}
    for node in proto.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0].endswith(QUANTISED_SUFFIX):
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            found[node.input[0]] = (node.input[1], node.input[2] if len(node.input) > 2 else "", axis)
    return found


def _tensors_digest(tensors) -> str:
    """SHA-256 of quantised tensors (names and integer values), to check a restore against the original."""
    from onnx import numpy_helper

    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.name.encode())
        digest.update(np.ascontiguousarray(numpy_helper.to_array(tensor)).tobytes())
    return digest.hexdigest()


def compact_graph(data: bytes) -> bytes:
    """The int8 graph without the quantised weights and biases that :func:`restore_weights` recomputes
    (a graph that is compact already comes back unchanged)."""
    import onnx

    proto = onnx.load_from_string(data)
    if any(p.key == COMPACT_KEY for p in proto.metadata_props):
        return data
    quantised = _dequantize_inputs(proto)
    dropped = [(index, t) for index, t in enumerate(proto.graph.initializer)
               if t.name in quantised and t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.INT32)]
    # Positions too, so that the restored graph is the same bytes; the digest checks the restored values.
    record = {"tensors": [[index, t.name] for index, t in dropped], "sha256": _tensors_digest(t for _, t in dropped)}
    for index, _ in reversed(dropped):
        del proto.graph.initializer[index]
    entry = proto.metadata_props.add()
    entry.key, entry.value = COMPACT_KEY, json.dumps(record)
    return proto.SerializeToString()


def restore_weights(data: bytes, loaded: LoadedModel, where: str = "") -> bytes:
    """A compact graph made whole again from ``loaded``'s weights (see the module docstring).

    The tensors are matched by the names the ONNX exporter gives them, which is one reason torch is
    pinned; any mismatch, or values other than those the graph was made with, is an :class:`Int8GraphError`.
    """
    import onnx
    from onnx import numpy_helper

    from .onnx_export import export_onnx

    where = where or loaded.path or loaded.name
    redo = "re-create the graph with `ferkit export --int8`"
    proto = onnx.load_from_string(data)
    props = {p.key: p.value for p in proto.metadata_props}
    try:
        record = json.loads(props[COMPACT_KEY])
        dropped, expected = [(int(i), str(n)) for i, n in record["tensors"]], str(record["sha256"])
    except (ValueError, KeyError, TypeError):
        raise Int8GraphError(f"{where}: damaged compact-graph record; {redo}") from None
    try:
        floats = {t.name: t for t in onnx.load_from_string(export_onnx(loaded)).graph.initializer}
    except Exception as exc:  # the exporter's own traceback says nothing a user can act on
        raise Int8GraphError(f"{where}: cannot export the model to rebuild its compact int8 graph "
                             f"({type(exc).__name__}: {exc})") from None
    stored = {t.name: t for t in proto.graph.initializer}
    quantised = _dequantize_inputs(proto)
    restored = []
    for _, name in dropped:
        source = floats.get(name[:-len(QUANTISED_SUFFIX)])
        if source is None or name not in quantised or not set(quantised[name][:2]) <= set(stored):
            raise Int8GraphError(f"{where}: cannot rebuild {name} from the model's float graph (another version "
                                 f"of the ONNX exporter?); {redo}")
        scale_name, zero_name, axis = quantised[name]
        try:
            weights = numpy_helper.to_array(source)
            scale, zero = numpy_helper.to_array(stored[scale_name]), numpy_helper.to_array(stored[zero_name])
            shape = [1] * weights.ndim
            if scale.size > 1:  # per channel, along ``axis``; a per-tensor scale may still have shape [1]
                shape[axis] = -1
            # ONNX Runtime divides weights in float32 and biases (int32) in float64; so do we, to get its integers.
            wide = np.float64 if zero.dtype == np.int32 else np.float32
            values = np.round(weights.astype(wide) / scale.astype(wide).reshape(shape)) + zero.reshape(shape)
            info = np.iinfo(zero.dtype)
        except (ValueError, IndexError, TypeError) as exc:
            raise Int8GraphError(f"{where}: cannot rebuild {name} ({exc}); {redo}") from None
        restored.append(numpy_helper.from_array(np.clip(values, info.min, info.max).astype(zero.dtype), name))
    if _tensors_digest(restored) != expected:
        raise Int8GraphError(f"{where}: the int8 weights rebuilt from the model differ from those the graph was "
                             f"made with (another onnxruntime or torch version?); {redo}")
    initializers = [onnx.TensorProto() for _ in proto.graph.initializer]
    for copy, original in zip(initializers, proto.graph.initializer):
        copy.CopyFrom(original)
    for (index, _), tensor in zip(dropped, restored):  # ascending positions: each lands where it was
        initializers.insert(index, tensor)
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(initializers)
    for index in reversed(range(len(proto.metadata_props))):
        if proto.metadata_props[index].key == COMPACT_KEY:
            del proto.metadata_props[index]
    return proto.SerializeToString()
