"""Finding and loading the int8 ONNX graph stored beside a model file (made by
:mod:`ferkit.vision.int8`, which explains the quantisation).  It lives here, with the model files,
so that both the ``int8`` inference backend and distillation's teacher can use it.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from .io import LoadedModel, ModelFileError


class Int8GraphError(ModelFileError):
    """The int8 graph for a model is missing, unreadable, or made from other weights."""


def weights_digest(loaded: LoadedModel) -> str:
    """SHA-256 of the network's weights (names and float32 values), independent of file metadata."""
    digest = hashlib.sha256()
    for name, tensor in sorted(loaded.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().contiguous().numpy().tobytes())
    return digest.hexdigest()


def int8_path(loaded: LoadedModel) -> Path:
    """Where a model's int8 graph lives: beside its file (``best.safetensors`` -> ``best.int8.onnx``)."""
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
    return data
