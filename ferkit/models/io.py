"""Model files: one safetensors file holds the weights, the normalisation the model was
trained with, and its metadata (architecture, options, classes, temperature, metrics).

Safetensors cannot carry code, so loading a model never runs anything from the file.
Weights may be stored in float16 (half the size) or as int8 with one float32 scale per output
channel (a quarter; convolution and linear weights only, the rest in float16); they always load
as float32, so inference and training see an ordinary model.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..atomic import atomic_write_bytes
from ..data.classes import CLASSES
from ..data.errors import first_line
from ..data.images import FACE_SIZE
from ..data.preprocess import Normalizer
from .registry import count_parameters, create_model

FORMAT = "ferkit-model/1"
STORAGES = ("float32", "float16", "int8")
INT8_SCALE = "int8_scale."  # prefix of the per-channel scales of int8-stored weights
# Weights with fewer values than this stay float16 under int8 storage: a scale per channel would
# cost more than it saves, and first layers (1 input channel) are the most sensitive.
INT8_MIN_VALUES = 4096


class ModelFileError(ValueError):
    """A model file that is missing, corrupt or incompatible; the message names the file."""


@dataclass
class LoadedModel:
    """A model read from a file: the network, the preprocessing it was trained with, its classes,
    temperature and the metadata saved beside it (``load_model`` returns one)."""

    model: nn.Module
    normalizer: Normalizer
    name: str
    options: dict
    classes: list[str]
    temperature: float = 1.0
    meta: dict = field(default_factory=dict)
    path: str = ""

    @property
    def input_size(self) -> int:
        return int(getattr(self.model, "input_size", 48))

    @property
    def parameters(self) -> int:
        return count_parameters(self.model)


def save_model_file(path: str | Path, model: nn.Module, *, name: str, options: dict, normalizer: Normalizer,
                    classes: list[str] | tuple[str, ...] = CLASSES, temperature: float = 1.0,
                    meta: dict | None = None, storage: str = "float32") -> None:
    """Write ``model`` with its normaliser and metadata; ``storage`` is float32, float16 or int8
    (see the module docstring)."""
    if storage not in STORAGES:
        raise ValueError(f"unknown weight storage {storage!r}; choose one of: {', '.join(STORAGES)}")
    tensors = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu().contiguous()
        if storage == "int8" and value.is_floating_point() and value.ndim >= 2 and value.numel() >= INT8_MIN_VALUES:
            value, tensors[f"{INT8_SCALE}{key}"] = quantize_per_channel(value)
        elif storage != "float32" and value.is_floating_point():
            value = value.half()
        tensors[f"model.{key}"] = value
    for key, value in normalizer.state_dict().items():
        tensors[f"normalizer.{key}"] = value.detach().cpu().contiguous()
    header = {
        "format": FORMAT,
        "name": name,
        "options": options,
        "classes": list(classes),
        "input_size": int(getattr(model, "input_size", 48)),
        "temperature": float(temperature),
        "meta": meta or {},
    }
    data = st_save(tensors, metadata={"ferkit": json.dumps(header)})
    atomic_write_bytes(Path(path), data)


def read_model_file(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    if path.suffix in (".pt", ".pth", ".ckpt", ".bin"):  # never unpickled here: a file of code as well as tensors
        if path.suffix == ".pt" and (path.parent / "config.json").is_file():  # a run's last.pt, for train --resume
            raise ModelFileError(f"{path}: a training checkpoint, not a model file; give the run folder "
                                 f"({path.parent}) or its best.safetensors")
        raise ModelFileError(f"{path}: a PyTorch pickle, not a ferkit model file (ferkit reads models as "
                             ".safetensors model files; other weights go to ferkit train --pretrained)")
    raw = path.read_bytes()
    if path.suffix == ".onnx":
        raise ModelFileError(f"{path}: an ONNX graph, not a ferkit model file (ferkit export writes these from "
                             "a model file; give that file)")
    try:
        tensors = st_load(raw)
        header_len = int.from_bytes(raw[:8], "little")
        metadata = json.loads(raw[8:8 + header_len]).get("__metadata__", {})
        header = json.loads(metadata["ferkit"]) if isinstance(metadata, dict) and "ferkit" in metadata else None
    except (SafetensorError, KeyError, ValueError, AttributeError, TypeError) as exc:
        raise ModelFileError(f"{path}: not a ferkit model file ({str(exc)[:120]})") from None
    if header is None:
        raise ModelFileError(f"{path}: a safetensors file, but not a ferkit model (it has no ferkit header; "
                             "ferkit train writes model files)")
    if not isinstance(header, dict) or not isinstance(header.get("name"), str):
        raise ModelFileError(f"{path}: not a ferkit model file (its header names no model)")
    if header.get("format") != FORMAT:
        raise ModelFileError(f"{path}: unsupported model format {header.get('format')!r}")
    return header, tensors


def quantize_per_channel(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 with one scale per output channel (dimension 0): ``weight ~ q * scale``."""
    flat = weight.float().reshape(weight.shape[0], -1)
    scale = (flat.abs().amax(dim=1) / 127.0).clamp_min(torch.finfo(torch.float32).tiny)
    q = torch.round(flat / scale[:, None]).clamp(-127, 127).to(torch.int8).reshape(weight.shape)
    return q.contiguous(), scale.contiguous()


def network_weights(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The network's state dict from a model file's tensors (stored under "model.", beside the
    normaliser); float16 and int8 weights come back as float32."""
    state = {}
    for k, v in tensors.items():
        if not k.startswith("model."):
            continue
        key = k[len("model."):]
        scale = tensors.get(f"{INT8_SCALE}{key}")
        if scale is not None:
            v = v.float() * scale.float().reshape(-1, *([1] * (v.ndim - 1)))
        state[key] = v.float() if v.is_floating_point() else v
    return state


def stored_as(path: str | Path) -> str:
    """How a model file stores its weights (float32, float16 or int8), so a rewrite keeps it."""
    _, tensors = read_model_file(path)
    if any(k.startswith(INT8_SCALE) for k in tensors):
        return "int8"
    return "float16" if any(v.dtype == torch.float16 for k, v in tensors.items() if k.startswith("model.")) \
        else "float32"


def load_model_file(path: str | Path) -> LoadedModel:
    header, tensors = read_model_file(path)
    options = header.get("options", {})
    classes = header.get("classes", list(CLASSES))
    if not isinstance(options, dict) or not isinstance(classes, list) or not classes \
            or not isinstance(header.get("meta", {}), dict):
        raise ModelFileError(f"{path}: bad model header (options and meta must be objects, classes a non-empty list)")
    if not all(isinstance(c, str) and c for c in classes) or len(set(classes)) != len(classes):
        raise ModelFileError(f"{path}: bad model header (classes {classes!r}: distinct names)")
    state = network_weights(tensors)
    broken = next((k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
    if broken is not None:  # a run that diverged: every answer would be NaN, said far from the cause
        raise ModelFileError(f"{path}: the weights are not finite numbers ({broken} holds NaN or infinity); the "
                             "run that made them diverged")
    _check_shapes_first(header["name"], len(classes), options, state, path)
    try:
        model = create_model(header["name"], num_classes=len(classes), **options)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: cannot build model {header.get('name')!r} ({exc})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelFileError(f"{path}: weights do not fit {header['name']} ({first_line(exc)})") from None
    input_size = header.get("input_size", getattr(model, "input_size", 48))
    temperature = header.get("temperature", 1.0)
    if isinstance(input_size, bool) or not isinstance(input_size, int):
        raise ModelFileError(f"{path}: bad model header (input_size {input_size!r}: a whole number of pixels)")
    if not 8 <= input_size <= FACE_SIZE:  # faces are 48x48 everywhere in ferkit: taken whole or centre-cropped
        raise ModelFileError(f"{path}: model takes {input_size}x{input_size} inputs but faces are "
                             f"{FACE_SIZE}x{FACE_SIZE} (a model takes them whole or centre crops of 8 pixels or more)")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 < temperature < 1e3:
        raise ModelFileError(f"{path}: bad model header (temperature {temperature!r}: a positive number)")
    model.input_size = input_size
    model.eval()
    _check_forward(model, len(classes), path)
    try:
        normalizer = Normalizer.from_state_dict(
            {k[len("normalizer."):]: v for k, v in tensors.items() if k.startswith("normalizer.")})
    except (KeyError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: missing or bad normalisation ({exc})") from None
    for part in ("mean", "std"):  # scalars or one value per pixel of the 48x48 face, finite; std above 0
        value = getattr(normalizer, part)
        if value.numel() not in (1, FACE_SIZE * FACE_SIZE) or not torch.isfinite(value).all() \
                or (part == "std" and not (value > 0).all()):
            raise ModelFileError(f"{path}: bad normalisation ({part} of shape {tuple(value.shape)}: one finite number "
                                 f"or a {FACE_SIZE}x{FACE_SIZE} map{', all above 0' if part == 'std' else ''})")
    return LoadedModel(model, normalizer, header["name"], options, list(classes),
                       float(temperature), header.get("meta", {}), str(path))


def _check_shapes_first(name: str, num_classes: int, options: dict, state: dict[str, torch.Tensor],
                        path: str | Path) -> None:
    """Build the network without memory (on the meta device) and compare its shapes with the stored
    weights: a header whose options ask for a huge layer (``fc`` 8000 in a 98 KB file) is refused before
    gigabytes are allocated for it.  Anything the meta build cannot do is left to the real build."""
    try:
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in create_model(name, num_classes=num_classes, **options)
                      .state_dict().items()}
    except Exception:  # noqa: BLE001 - the real build below reports a bad name or option in its own words
        return
    wrong = [f"{k} {tuple(state[k].shape)} vs {shape}" for k, shape in shapes.items()
             if k in state and tuple(state[k].shape) != shape]
    if wrong:
        raise ModelFileError(f"{path}: weights do not fit {name} with options {options} (shape mismatch: "
                             f"{', '.join(wrong[:3])}{' ...' if len(wrong) > 3 else ''})")


def _check_forward(model: torch.nn.Module, num_classes: int, path: str | Path) -> None:
    """One face of the stated size through the network: a header whose input size does not fit the
    weights fails here, named, instead of on every face later."""
    side = model.input_size
    try:
        with torch.no_grad():
            shape = tuple(model(torch.zeros(1, 1, side, side)).shape)
    except RuntimeError as exc:
        raise ModelFileError(f"{path}: the network cannot take {side}x{side} faces as its header says "
                             f"({first_line(exc, 120)})") from None
    if shape != (1, num_classes):
        raise ModelFileError(f"{path}: the network gives {shape} for one face, not {num_classes} class scores")


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A plain state dict from a ``.safetensors`` file (a ferkit model file included, so one run can
    start from another's weights) or a ``weights_only`` torch file."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such weights file")
    try:
        if path.suffix == ".safetensors":
            state = st_load(path.read_bytes())
            if any(k.startswith("normalizer.") for k in state):
                state = network_weights(state)  # a ferkit model file
            return state
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt files raise many types; all mean the same here
        raise ModelFileError(f"{path}: unreadable weights file ({first_line(exc, 150)})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"{path}: not a state dict of tensors")
    return state


def load_pretrained(model: nn.Module, path: str | Path, *, head_prefixes: tuple[str, ...] = ()) -> list[str]:
    """Load backbone weights from a local file into ``model``.

    Keys that start with one of ``head_prefixes`` may be missing or have another shape (a new
    classifier for 7 classes); any other missing, unexpected or mismatched key is an error.
    Returns the keys left at their initial values.
    """
    source = load_state_dict_file(path)
    target = model.state_dict()
    is_head = lambda key: any(key.startswith(p) for p in head_prefixes)  # noqa: E731
    missing = [k for k in target if k not in source and not is_head(k)]
    unexpected = [k for k in source if k not in target and not is_head(k)]
    mismatched = [f"{k} {tuple(source[k].shape)} vs {tuple(target[k].shape)}"
                  for k in target if k in source and source[k].shape != target[k].shape and not is_head(k)]
    problems = []
    if missing:
        problems.append(f"missing keys: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        problems.append(f"unexpected keys: {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}")
    if mismatched:
        problems.append(f"shape mismatch: {', '.join(mismatched[:3])}{' ...' if len(mismatched) > 3 else ''}")
    if problems:
        raise ModelFileError(f"{path}: weights do not fit the model ({'; '.join(problems)})")
    usable = {k: v for k, v in source.items() if k in target and v.shape == target[k].shape}
    model.load_state_dict(usable, strict=False)
    return [k for k in target if k not in usable]
