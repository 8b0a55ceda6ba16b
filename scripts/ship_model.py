"""Ship a trained run as one of the package's models (``ferkit/weights/NAME.safetensors``).

    python scripts/ship_model.py RUN_DIR NAME [--command "ferkit train ..."] [--recalibrate-bn]

Writes the run's best weights in float16 (half the size; they load as float32; ``--storage int8``:
a quarter, per-channel int8 convolution and linear weights), fits a
temperature on PublicTest (``ferkit calibrate``; it never changes the centre-view prediction),
then evaluates *the shipped file* on PublicTest with each test-time augmentation and stores those
figures, the training wall time and the command in the file's metadata, and writes the int8
graph beside it (``NAME.int8.onnx``, calibrated on training faces; compact: its int8 weights are
recomputed from the shipped file on load) with its PublicTest accuracy, which
``ferkit evaluate``, ``GET /api/model`` and the README table read.  PublicTest is the
validation split the run selected on; PrivateTest is withheld and scored from outside.

``--recalibrate-bn`` first re-estimates the batch-norm statistics on the clean Training faces
(:mod:`ferkit.models.batch_norm`; the weights are untouched) and records it in the metadata.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path

from ferkit.data import load_fer2013
from ferkit.data.overlap import LEARNT_SHARE, learnt_share, repeats_of, training_sample
from ferkit.evaluation import calibrate_model, evaluate_split
from ferkit.models.batch_norm import recalibrate_batch_norm
from ferkit.models.hub import WEIGHTS_DIR
from ferkit.models.io import load_model_file, save_model_file
from ferkit.vision.int8 import make_int8_graph
from ferkit.vision.onnx import OnnxBackend


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} (no GPU)"


def earlier_runs(config: dict) -> list[dict]:
    """The runs this one continued from (``--pretrained`` pointing at a run's best.safetensors),
    newest first, so the shipped file records the whole training, not only its last leg."""
    runs, pretrained = [], config.get("pretrained")
    while pretrained:
        path = Path(pretrained)
        run_dir = path.parent if path.is_file() else path
        if not (run_dir / "history.json").exists() or not (run_dir / "config.json").exists():
            runs.append({"pretrained": str(path), "note": "not a run directory; its training is not counted"})
            break
        history = json.loads((run_dir / "history.json").read_text())
        earlier = json.loads((run_dir / "config.json").read_text())
        runs.append({"run": run_dir.name, "epochs_run": len(history),
                     "train_seconds": round(sum(r["seconds"] for r in history)), "train_config": earlier})
        pretrained = earlier.get("pretrained")
    return runs


def face_sample(run_meta: dict, config: dict, data: str) -> dict | None:
    """The hashes of a sample of the training faces (evaluate's caveat, :mod:`ferkit.data.overlap`): the
    run's own, else sampled from ``data``'s Training split when that is the dataset the run trained on and
    all it trained on (runs older than the sample), else none."""
    if isinstance(run_meta.get("face_sample"), dict):
        return run_meta["face_sample"]
    trained_from = run_meta.get("data") or config.get("data")
    if not isinstance(trained_from, str) or os.path.realpath(trained_from) != os.path.realpath(data):
        print(f"warning: the run trained on {trained_from!r}, not {data}: no sample of its training faces "
              "(evaluate's caveat goes by path only)")
        return None
    if run_meta.get("trained_on", ["training"]) == ["training"] and not config.get("limit_train") and \
            config.get("val_split", "auto") in ("auto", "publictest"):
        return training_sample(load_fer2013(data)["training"].images)
    print("warning: the run's model file has no sample of its training faces; evaluate's caveat goes by path only")
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("name")
    parser.add_argument("--data", default="../shared/fer2013")
    parser.add_argument("--command", default="", help="the exact training command, for the record")
    parser.add_argument("--tta", default="none,flip,tencrop", help="test-time views to evaluate (comma-separated)")
    parser.add_argument("--storage", choices=("float16", "int8"), default="float16",
                        help="how the weights are stored (both load as float32); the figures are those of the stored file")
    parser.add_argument("--no-int8-graph", action="store_true",
                        help="ship no int8 graph (and remove a stale one)")
    parser.add_argument("--recalibrate-bn", action="store_true",
                        help="re-estimate the batch-norm statistics on the clean Training faces (centre + mirror)")
    args = parser.parse_args()

    source = load_model_file(args.run / "best.safetensors")
    summary_path = args.run / "summary.json"
    history = json.loads((args.run / "history.json").read_text())
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    config = json.loads((args.run / "config.json").read_text())
    meta = {
        "run": args.run.name,
        "epoch": source.meta.get("epoch"),
        "epochs_run": len(history),
        "epochs_planned": config.get("epochs"),
        "train_seconds": round(sum(r["seconds"] for r in history)),
        "train_machine": machine(),
        "train_command": args.command,
        "train_config": config,
        "finished": bool(summary),
    }
    # Where the run learnt from (evaluate's caveat by path): the run's own record, resolved when it trained.
    meta.update({key: source.meta[key] for key in ("data", "trained_on", "validation") if key in source.meta})
    meta["continued_from"] = earlier_runs(config)
    meta["face_sample"] = face_sample(source.meta, config, args.data)
    if args.recalibrate_bn:
        layers = recalibrate_batch_norm(source.model, source.normalizer, load_fer2013(args.data)["training"].images)
        meta["batch_norm"] = {"recalibrated_on": "training", "views": "flip", "layers": layers}
        print(f"{args.name}: batch-norm statistics of {layers} layers re-estimated on the clean Training faces")
    meta["train_seconds_total"] = meta["train_seconds"] + sum(r.get("train_seconds", 0) for r in meta["continued_from"])
    meta["epochs_total"] = meta["epochs_run"] + sum(r.get("epochs_run", 0) for r in meta["continued_from"])
    target = WEIGHTS_DIR / f"{args.name}.safetensors"
    graph_path = target.with_suffix(".int8.onnx")
    # Everything is made and measured in a staging folder beside the shipped files and swapped in at the
    # end: a failure, Ctrl+C or a kill on the way leaves the files shipped before as they were (a model
    # training from the shipped one as its teacher never sees a half-shipped file).
    staging = Path(tempfile.mkdtemp(dir=WEIGHTS_DIR, prefix=".shipping-"))
    try:
        staged = ship(args, source, meta, staging / target.name, staging / graph_path.name)
        graph_path.unlink(missing_ok=True)  # no moment with the new weights beside the old graph
        os.replace(staged[0], target)
        if staged[1] is not None:
            os.replace(staged[1], graph_path)
    except BaseException:
        print(f"{args.name}: not shipped; the files shipped before are as they were")
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB), trained {meta['train_seconds_total'] / 60:.0f} min "
          f"over {meta['epochs_total']} epochs in {1 + len(meta['continued_from'])} run(s)")


def ship(args: argparse.Namespace, source, meta: dict, target: Path, graph_path: Path) -> tuple[Path, Path | None]:
    """Write the model file (and its int8 graph) at ``target`` (``graph_path``), measured as stored;
    returns what was written."""
    save_model_file(target, source.model, name=source.name, options=source.options, normalizer=source.normalizer,
                    classes=source.classes, temperature=source.temperature, meta=meta, storage=args.storage)

    shipped = load_model_file(target)
    dataset = load_fer2013(args.data)
    split = dataset["publictest"]
    # The figures are stored as the model's PublicTest figures: only those of the dataset it trained on.
    if isinstance(meta.get("face_sample"), dict) and \
            learnt_share(meta["face_sample"], dataset["training"].images) < LEARNT_SHARE:
        raise SystemExit(f"{args.data}: not the dataset {args.run} trained on (its Training split lacks the "
                         "run's training faces): score it on that dataset")
    meta["scored_on"] = {"data": os.path.basename(os.path.realpath(args.data)), "publictest_faces": len(split)}
    repeats = repeats_of(split.images, dataset["training"].images)  # FER2013's 279 repeats of Training faces
    calibration = calibrate_model(shipped, split)
    shipped.temperature = calibration.temperature
    meta["calibration"] = calibration.record("publictest", split.images)
    print(f"{args.name}: temperature {calibration.temperature:.3f}; ECE {calibration.ece_before:.4f} -> "
          f"{calibration.ece_after:.4f} ({calibration.heldout_text()} with T fitted on the other half)")
    for tta in args.tta.split(","):
        evaluation = evaluate_split([shipped], split, split_name="publictest", tta=tta)
        evaluation.repeats = repeats
        result, unseen = evaluation.metrics, evaluation.unseen
        meta[f"publictest_acc_{tta}"] = round(result["accuracy"], 4)
        meta[f"publictest_macro_f1_{tta}"] = round(result["macro_f1"], 4)
        line = f"{args.name}: PublicTest tta={tta:<8} accuracy {result['accuracy']:.4f}  macro-F1 {result['macro_f1']:.4f}"
        if unseen and unseen["accuracy"] is not None:  # none when no face (or every face) repeats a Training face
            meta[f"publictest_unseen_acc_{tta}"] = round(unseen["accuracy"], 4)  # without the repeats
            line += f"  on the {unseen['faces']:,} faces that are not Training faces again {unseen['accuracy']:.4f}"
        print(line)
    if args.no_int8_graph:
        graph_path = None  # and the graph shipped before goes: it would not match these weights
    else:  # The int8 graph beside it (--backend int8), calibrated on training faces, scored on PublicTest.
        # Compact: the int8 weights are left out and recomputed from the shipped file on load (a few
        # kilobytes instead of a second copy of the weights); make_int8_graph checks, before writing,
        # that loading gives back this very graph, so scoring it scores what users load.
        graph, agreement, _ = make_int8_graph(shipped, args.data, graph_path, compact=True)
        int8 = evaluate_split([shipped], split, split_name="publictest",
                              classifiers=[OnnxBackend(shipped, graph, name="int8").probs]).metrics
        meta["int8"] = {"publictest_acc_none": round(int8["accuracy"], 4),
                        "publictest_macro_f1_none": round(int8["macro_f1"], 4),
                        "same_top_emotion_as_float": round(agreement, 4)}
        print(f"{args.name}: int8 graph PublicTest accuracy {int8['accuracy']:.4f}  macro-F1 {int8['macro_f1']:.4f}; "
              f"same top emotion as float on {agreement:.1%} of held-out training faces")
    save_model_file(target, shipped.model, name=shipped.name, options=shipped.options, normalizer=shipped.normalizer,
                    classes=shipped.classes, temperature=shipped.temperature, meta=meta, storage=args.storage)
    return target, graph_path


if __name__ == "__main__":
    main()
