"""Resolve a model by name or path: the shipped models live inside the package, so they load
with no network access; anything else is a local file or a training run directory."""
from __future__ import annotations

import copy
import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import torch

from .io import LoadedModel, ModelFileError, load_model_file, read_model_file

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
SHIPPED = {"default": "default.safetensors", "fast": "fast.safetensors", "default-b": "default-b.safetensors"}
# Named ensembles of shipped models (their members' probabilities averaged): ``--model best``.
# ``default-b`` is a second ``vgg_fer`` trained independently of ``default`` (another seed and
# schedule), so the two make different mistakes; it ships for this ensemble.
SHIPPED_ENSEMBLES = {"best": ("default", "default-b")}
ENSEMBLE_FIGURES = WEIGHTS_DIR / "ensembles.json"  # their PublicTest figures (scripts/score_ensemble.py)
BATCH_NORM_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")  # buffers, not parameters
ENSEMBLE_SEPARATOR = "+"  # "default+runs/b60": an ensemble, its members' probabilities averaged


def ensemble_members(spec: str | Path | Sequence[str | Path]) -> list[str | Path]:
    """The models in ``spec``: one name or path, several joined by ``+``, or a list of either.
    A path that exists is one model even when its name holds a ``+``."""
    if not isinstance(spec, (str, Path)):
        members = [m for item in spec for m in ensemble_members(item)]
        if not members:
            raise ModelFileError("no model given")
        return members
    if isinstance(spec, str) and spec in SHIPPED_ENSEMBLES:
        return list(SHIPPED_ENSEMBLES[spec])
    if isinstance(spec, Path) or spec in SHIPPED or Path(spec).exists() or ENSEMBLE_SEPARATOR not in spec:
        return [spec]
    names = [name.strip() for name in spec.split(ENSEMBLE_SEPARATOR)]
    if not all(names):
        raise ModelFileError(f"{spec!r}: empty model name (join the models of an ensemble with "
                             f"'{ENSEMBLE_SEPARATOR}')")
    return [member for name in names for member in SHIPPED_ENSEMBLES.get(name, [name])]  # best+fast: 3 models


def shipped_path(name: str) -> Path:
    return WEIGHTS_DIR / SHIPPED[name]


def model_path(spec: str | Path | None = None) -> Path:
    """The model file behind a name (``default``, ``fast``), a run directory or a file path."""
    spec = "default" if spec is None else spec
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"model {spec!r}: a shipped name ({', '.join(SHIPPED)}), a run folder or a model file")
    if isinstance(spec, str) and spec in SHIPPED_ENSEMBLES:
        raise ModelFileError(f"{spec!r} is an ensemble of {' + '.join(SHIPPED_ENSEMBLES[spec])}; "
                             "this needs one model (give a member)")
    if isinstance(spec, str) and spec in SHIPPED:
        path = shipped_path(spec)
        if not path.exists():
            raise ModelFileError(f"{path}: the shipped model {spec!r} is missing from this installation")
        return path
    if not str(spec).strip():  # Path("") is the current folder
        names = ", ".join([*SHIPPED, *SHIPPED_ENSEMBLES])
        raise ModelFileError(f"empty model name (give a shipped name: {names}, a run directory or a file)")
    path = Path(spec)
    if path.is_dir():
        best = path / "best.safetensors"
        if not best.exists():
            what = ("run directory has no best.safetensors yet" if (path / "config.json").exists() or
                    (path / "last.pt").exists() else "a folder that is no training run (no best.safetensors, "
                    "no config.json)")
            raise ModelFileError(f"{path}: {what}")
        return best
    if not path.exists():
        names = ", ".join([*SHIPPED, *SHIPPED_ENSEMBLES])
        raise ModelFileError(f"{path}: no such model (give a shipped name: {names}, a run directory or a file)")
    return path


def load_model(spec: str | Path | None = None) -> LoadedModel:
    """Load a model by shipped name, run directory or ``.safetensors`` path.

    Files are read once (cached per file and version); every call returns its own copy, so that
    fine-tuning or changing one model never changes what a later ``load_model`` or recognizer gets.
    """
    path = model_path(spec)
    stat = path.stat()
    return copy.deepcopy(_load_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int, size: int) -> LoadedModel:
    return load_model_file(path)


def shipped_models() -> list[dict]:
    """The models inside the package with the figures measured when they were shipped
    (PublicTest, the split they were selected on), for ``ferkit models --shipped``."""
    from .int8_graph import int8_path
    from .io import read_model_file, stored_as

    rows = []
    for name in SHIPPED:
        path = shipped_path(name)
        if not path.is_file():
            rows.append({"name": name, "error": f"{path}: missing from this installation"})
            continue
        header, tensors = read_model_file(path)
        meta = header.get("meta", {})
        parameters = sum(v.numel() for k, v in tensors.items()  # int8-stored weights count too
                         if k.startswith("model.") and not k.endswith(BATCH_NORM_STATISTICS))
        rows.append({
            "name": name, "architecture": header["name"], "parameters": parameters,
            "megabytes": round(path.stat().st_size / 1e6, 2), "storage": stored_as(path),
            "int8_graph": int8_path(path).is_file(),
            **{f"publictest_{tta}": meta.get(f"publictest_acc_{tta}") for tta in ("none", "flip", "tencrop")},
            "epochs": meta.get("epochs_total"), "train_minutes": round(meta.get("train_seconds_total", 0) / 60),
        })
    for name, members in SHIPPED_ENSEMBLES.items():
        measured = shipped_ensemble_figures(name)
        rows.append({"name": name, "members": list(members),
                     **{f"publictest_{tta}": measured.get(f"publictest_acc_{tta}") for tta in ("none", "flip", "tencrop")}})
    return rows


def shipped_ensemble_figures(name: str) -> dict:
    """The PublicTest figures stored for the shipped ensemble ``name`` (``publictest_acc_tencrop``, ...);
    none when they were measured on another line-up, or on members since re-shipped."""
    figures = json.loads(ENSEMBLE_FIGURES.read_text()) if ENSEMBLE_FIGURES.is_file() else {}
    measured, members = figures.get(name, {}), SHIPPED_ENSEMBLES[name]
    if measured.get("members") != list(members) or measured.get("files") != member_digests(members):
        return {}
    return {key: value for key, value in measured.items() if key.startswith("publictest_")}


def model_label(spec: str | Path | Sequence[str | Path] | None) -> str:
    """A short name for the model(s) ``spec`` names, to show users: a shipped name as it is, a file or
    run folder by its own name (no folders of the machine it lives on), an ensemble's joined by '+'."""
    if spec is None:
        return "default"
    if isinstance(spec, str) and (spec in SHIPPED or spec in SHIPPED_ENSEMBLES):
        return spec
    members = ensemble_members(spec)
    if len(members) == 1 and isinstance(spec, (str, Path)):
        return Path(members[0]).name or str(members[0])
    return ENSEMBLE_SEPARATOR.join(model_label(member) for member in members)


def member_digests(members: Sequence[str]) -> dict[str, str]:
    """A SHA-256 of what each shipped member computes with, so an ensemble's stored figures can be matched
    to its members: the stored tensors (weights, normaliser) and the header but its metadata, which may
    gain records (``scripts/add_face_sample.py``) without changing a prediction."""
    return {m: _computation_digest(shipped_path(m)) if shipped_path(m).is_file() else "" for m in members}


def weights_digest(spec: str | Path | Sequence[str | Path]) -> str:
    """A short digest of what the model(s) ``spec`` names compute with, to notice a file retrained or replaced
    at the same path; empty when one cannot be read (loading it then says why)."""
    try:
        return "+".join(_computation_digest(model_path(member))[:16] for member in ensemble_members(spec))
    except (ModelFileError, OSError, TypeError):
        return ""


def _computation_digest(path: Path) -> str:
    header, tensors = read_model_file(path)
    digest = hashlib.sha256(json.dumps({k: v for k, v in header.items() if k != "meta"}, sort_keys=True).encode())
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(str(tensors[name].dtype).encode())
        digest.update(tensors[name].contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
