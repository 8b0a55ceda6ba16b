"""The work behind each CLI verb: parse-free functions that take the argparse namespace."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .errors import UsageError, resolved_model_spec
from .verbs_predict import dataset_cropper


def data_stats(args: argparse.Namespace) -> int:
    import warnings

    from ..data import load_fer2013

    if args.plot is not None and Path(args.plot).suffix.lower() != ".png":  # said before the data is read
        raise UsageError(f"--plot {args.plot}: the chart is a PNG; name it .png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load_fer2013(args.path, skip_bad=args.skip_bad)
    from ..data.cache import CacheWarning

    for warning in caught:  # the rest are the data's problems, listed below
        if issubclass(warning.category, CacheWarning):
            print(f"ferkit: warning: {warning.message}", file=sys.stderr)
    problems = list(dataset.problems) + [str(w.message) for w in caught if issubclass(w.category, UserWarning)
                                         and not issubclass(w.category, CacheWarning)]
    splits = {name: split.class_counts() for name, split in dataset.splits.items()}
    repeats = {}  # faces of the other splits that are, pixel for pixel, Training faces (FER2013 has 279 in PublicTest)
    if "training" in dataset.splits:
        from ..data.overlap import repeats_of

        repeats = {name: int(repeats_of(split.images, dataset["training"].images).sum())
                   for name, split in dataset.splits.items() if name != "training"}
    if args.plot:
        from ..evaluation.report import plot_class_distribution

        plot_class_distribution(Path(args.plot), splits, f"faces per class in {Path(args.path).name}")
        print(f"wrote {args.plot}", file=sys.stderr)
    if args.json:
        print(json.dumps({"splits": splits, "repeats_of_training": repeats, "problems": problems}))
        return 0
    from ..data.classes import CLASSES

    width = max(len(c) for c in CLASSES)
    names = list(splits)
    print(f"{'class':<{width}}  " + "  ".join(f"{n:>11}" for n in names))
    for cls in CLASSES:
        print(f"{cls:<{width}}  " + "  ".join(f"{splits[n][cls]:>11,}" for n in names))
    print(f"{'total':<{width}}  " + "  ".join(f"{sum(splits[n].values()):>11,}" for n in names))
    for name, count in repeats.items():
        if count:
            print(f"{name}: {count:,} of its {sum(splits[name].values()):,} faces are Training faces again, "
                  "pixel for pixel (evaluate scores the rest apart)")
    for problem in problems:
        print(f"problem: {problem}")
    return 0


def data_augment(args: argparse.Namespace) -> int:
    """A face of each class of the training split, whole and in augmented views (the figure seed 001 draws)."""
    import numpy as np
    import torch

    from ..data import load_fer2013
    from ..data.augment import BatchAugmenter
    from ..data.augment_config import AugmentConfig
    from ..data.classes import CLASSES
    from ..evaluation.report import plot_augmentations

    if Path(args.out).suffix.lower() != ".png":
        raise UsageError(f"--out {args.out}: the picture is a PNG; name it .png")
    if not 1 <= args.views <= 20:
        raise UsageError(f"--views {args.views}: must be between 1 and 20")
    config = AugmentConfig(**{k[4:]: v for k, v in vars(args).items() if k.startswith("aug_") and v is not None})
    try:
        config.validate()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    dataset = load_fer2013(args.path, cropper=dataset_cropper(args.detector))
    split = dataset["training"] if "training" in dataset else next(iter(dataset.splits.values()))
    chosen = [int(np.flatnonzero(split.labels == c)[0]) for c in range(len(CLASSES)) if (split.labels == c).any()]
    # Training augments normalised faces, so what it pads and erases with is the mean gray: shown so here too.
    mean, std = float(split.images.mean()) / 255, max(float(split.images.std()) / 255, 1e-6)
    faces = (torch.from_numpy(split.images[chosen]).float().div(255).unsqueeze(1) - mean) / std
    augmenter = BatchAugmenter(config, torch.Generator().manual_seed(args.seed))
    views = [(augmenter(faces).squeeze(1) * std + mean).clamp(0, 1).numpy() for _ in range(args.views)]
    plot_augmentations(Path(args.out), split.images[chosen], views, [int(split.labels[i]) for i in chosen], config)
    print(f"wrote {args.out}: {len(chosen)} faces, each whole and in {args.views} augmented views")
    return 0


def data_crop(args: argparse.Namespace) -> int:
    """Write each picture's face as a 48x48 PNG under ``args.out``, in the same folders."""
    import warnings

    import cv2

    from ..atomic import atomic_write_bytes, check_folder_path
    from ..data import load_fer2013
    from ..data.fer2013 import describe_cropped

    # "~/photos" as a quoted argument or from a script: the loader expands it, and the relative paths
    # below must be taken against the same folder, or they climb out of OUT (onto the photos themselves).
    source, out = Path(args.path).expanduser(), Path(args.out).expanduser()
    if source.is_file():
        raise UsageError(f"{source}: a CSV file holds 48x48 faces already; give a folder of pictures")
    if out.resolve() == source.resolve() or source.resolve() in out.resolve().parents:
        raise UsageError(f"{out}: write the faces outside {source}, or they would be read as pictures next time")
    check_folder_path(out)  # a file in the way is said now, not after every picture has been read
    cropper = dataset_cropper(args.detector)  # as train and evaluate cut faces out (none: pictures whole)
    with warnings.catch_warnings():
        # Every picture converted is the point here, not news; other warnings (a folder not read) are.
        warnings.filterwarnings("ignore", message=".*were not 48x48")
        dataset = load_fer2013(source, skip_bad=True, cache=False, cropper=cropper)
    written: set[Path] = set()
    for split in dataset.splits.values():
        for picture, face in zip(split.sources, split.images):
            relative = Path(os.path.relpath(picture, source))  # the loader lists files below the path given
            if relative.is_absolute() or ".." in relative.parts:  # never write outside OUT
                raise UsageError(f"{picture}: not below {source}; nothing more written")
            target = out / relative.with_suffix(".png")
            if target in written:  # a.jpg and a.png side by side: keep both
                target = out / relative.parent / (relative.name + ".png")
            ok, encoded = cv2.imencode(".png", face)
            if not ok:
                raise UsageError(f"{target}: cannot encode the face as PNG")
            atomic_write_bytes(target, encoded.tobytes())
            written.add(target)
    how = (describe_cropped(dataset.cropped_total()) if cropper is not None
           else f"no detector: {dataset.converted:,} picture(s) taken whole and resized to 48x48")
    print(f"wrote {len(written):,} faces to {out} ({how})")
    for problem in dataset.problems:
        print(f"ferkit: skipped {problem}", file=sys.stderr)
    return 1 if dataset.problems else 0


def list_models_command(args: argparse.Namespace) -> int:
    from ..models import list_models

    if args.shipped:
        return _list_shipped(args.json)
    rows = list_models()
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'name':<18} {'params':>12} {'paper':>10} {'input':>5}  source")
    for r in rows:
        paper = f"{r['paper_params'] / 1e6:.2f}M" if r["paper_params"] else "-"
        print(f"{r['name']:<18} {r['params']:>12,} {paper:>10} {r['input_size']:>5}  {r['source']}")
    return 0


def _list_shipped(as_json: bool) -> int:
    from ..models.hub import shipped_models

    rows = shipped_models()
    if as_json:
        print(json.dumps(rows))
        return 0
    percent = lambda v: f"{v:.1%}" if v is not None else "-"  # noqa: E731
    print(f"{'name':<10} {'architecture':<14} {'params':>10} {'MB':>6} {'storage':<8} {'int8':<5} "
          f"{'centre':>7} {'flip':>7} {'tencrop':>7}  training")
    for r in rows:
        if "error" in r:
            print(f"{r['name']:<10} {r['error']}")
            continue
        if "members" in r:
            print(f"{r['name']:<10} {'ensemble: ' + ' + '.join(r['members']):<48} {percent(r['publictest_none']):>7} "
                  f"{percent(r['publictest_flip']):>7} {percent(r['publictest_tencrop']):>7}")
            continue
        print(f"{r['name']:<10} {r['architecture']:<14} {r['parameters']:>10,} {r['megabytes']:>6.2f} "
              f"{r['storage']:<8} {'yes' if r['int8_graph'] else 'no':<5} {percent(r['publictest_none']):>7} "
              f"{percent(r['publictest_flip']):>7} {percent(r['publictest_tencrop']):>7}  "
              f"{r['epochs']} epochs, {r['train_minutes']} min on 2 CPU cores")
    print("accuracy: PublicTest (the split the models were selected on), centre view and two test-time views")
    return 0


def _restore_config(config_path: Path) -> None:
    """config.json, deleted by hand, written again from the configuration every last.pt keeps."""
    from ..training import TrainConfig
    from ..training.checkpoint import load_checkpoint

    state = load_checkpoint(config_path.parent / "last.pt")  # weights_only: data, no code
    if isinstance(state.get("config"), dict):
        TrainConfig.from_dict(state["config"]).save(config_path)
        print(f"ferkit: {config_path} was missing: written again from last.pt", file=sys.stderr)


def train_command(args: argparse.Namespace) -> int:
    import warnings

    from ..data.augment_config import AugmentConfig
    from ..training import TrainConfig, train
    from ..training.config import RESUMABLE_CHANGES, config_differences
    from ..training.loop import with_fusion_members

    if os.environ.get("RANK", "0") != "0":
        # Under torchrun every process reads the same data and would repeat its warnings; the first says
        # them (run_safely scopes this filter to the command).
        warnings.simplefilter("ignore")

    given = {k: v for k, v in vars(args).items()
             if v is not None and k not in ("run", "verb", "resume", "model_option") and not k.startswith("aug_")}
    if "data" in given:  # absolute, so the run resumes from any working directory
        given["data"] = str(Path(given["data"]).resolve())
    # Teachers and starting weights too, when they are files or run folders (shipped names stay names).
    for path in ("pretrained", "superres"):
        if given.get(path) and Path(given[path]).exists():
            given[path] = str(Path(given[path]).resolve())
    for spec in ("distill", "fuse"):
        if given.get(spec):
            given[spec] = resolved_model_spec(given[spec])
    augment = {k[4:]: v for k, v in vars(args).items() if k.startswith("aug_") and v is not None}
    options = {}
    for item in args.model_option:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--model-option {item!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    if args.resume:
        config_path = Path(args.resume) / "config.json"
        if not config_path.exists() and (Path(args.resume) / "last.pt").is_file():
            _restore_config(config_path)
        if not config_path.exists():
            raise UsageError(f"{args.resume}: no run to resume (no config.json)")
        if "out" in given and Path(given["out"]).resolve() != Path(args.resume).resolve():
            raise UsageError("--out cannot be used with --resume: a resumed run stays in its own directory")
        config = TrainConfig.load(config_path)
        saved = config.to_dict()
        wanted = {**saved, **given, "augment": {**saved["augment"], **augment}}
        if args.model_option:
            wanted["model_options"] = options
        # The run lives where --resume points (it may have been moved); its data may have moved too
        # (the training loop checks it is the same data) and it may use another thread count.
        changed = config_differences(saved, wanted)
        if changed:
            hint = ("; to train a finished run further, start a new run from its weights: --pretrained "
                    f"{Path(args.resume) / 'best.safetensors'} --out NEW_RUN" if any(c.startswith("epochs ") for c in changed)
                    else "; resume without those options or start a new --out")
            raise UsageError(f"{args.resume} holds a different configuration ({'; '.join(changed)}){hint}")
        moved = {key: given[key] for key in RESUMABLE_CHANGES if key in given and key != "out"}
        config = config.replace(out=str(args.resume), **moved)
    else:
        if "data" not in given:
            raise UsageError("train needs --data PATH (or --resume RUNDIR)")
        given.setdefault("detector", "auto")  # photos are read as evaluate reads them: their faces
        if given.get("fuse"):  # seed 001's fusion: a new classifier over the members' features, they stay as trained
            given.setdefault("model", "fusion")
            given.setdefault("freeze", -1)
        config = with_fusion_members(TrainConfig(**given, model_options=options, augment=AugmentConfig(**augment)))
        try:
            input_size = config.input_size()
        except (ValueError, TypeError):  # an unknown model: train's own check names the choices
            input_size = None
        if "crop" in augment and input_size is not None and augment["crop"] != input_size:
            raise UsageError(f"--aug-crop {augment['crop']}: {config.model} takes {input_size}x{input_size} faces and is "
                             "trained on crops of that size; choose another with --model-option input_size=N")
    summary = train(config, resume=bool(args.resume), cropper=dataset_cropper(config.detector))
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one summary line, not one per process
        print(json.dumps(summary))
    return 0


def superres_command(args: argparse.Namespace) -> int:
    """``ferkit superres``: train (or resume) an SRGAN generator; prints its summary as JSON."""
    import dataclasses

    from ..training.superres import SuperResConfig, train_superres

    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(SuperResConfig)
             if getattr(args, f.name) is not None}
    if "data" in given:
        given["data"] = str(Path(given["data"]).resolve())
    if args.resume:
        config_path = Path(args.resume) / "config.json"
        if not config_path.is_file():
            raise UsageError(f"{args.resume}: no run to resume (no config.json)")
        if "out" in given and Path(given["out"]).resolve() != Path(args.resume).resolve():
            raise UsageError("--out cannot be used with --resume: a resumed run stays in its own directory")
        try:
            saved = json.loads(config_path.read_text())
            config = SuperResConfig(**{**saved, **given, "out": str(args.resume)})
        except (ValueError, TypeError) as exc:
            raise UsageError(f"{config_path}: not a superres configuration ({exc})") from None
    else:
        if "data" not in given:
            raise UsageError("superres needs --data PATH (or --resume RUNDIR)")
        config = SuperResConfig(**given)
    print(json.dumps(train_superres(config, resume=bool(args.resume))))
    return 0
