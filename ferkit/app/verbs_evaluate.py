"""CLI verbs: evaluate, calibrate, explain, visualize-filters.

    ferkit evaluate --data PATH [--split NAME] [--model M ...] [--tta auto|none|flip|tencrop] [--json] [--report DIR]
    ferkit calibrate --data PATH [--split publictest] --model M [--out FILE] [--detector D] [--json]
    ferkit explain IMAGE --method gradcam|guided-backprop|guided-gradcam [--layer NAME] [--class NAME] [--face N]
                   [--model M] [--detector auto|haar|retinaface|none] [--min-face PX] [--detect-size PX] [--no-align]
                   --out PNG
    ferkit visualize-filters [--model M] [--layer NAME] --out PNG [--filters 16] [--steps 100] [--data PATH]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..detectors import DETECTOR_CHOICES
from ..tta import TTA_CHOICES, resolve_tta
from .errors import UsageError, option_error, refuse_idle, report_skipped, single_model
from .verbs_predict import add_dataset_detector, add_detection_options, dataset_cropper, detection_options_set

METHOD_CHOICES = ("gradcam", "guided-backprop", "guided-gradcam")


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's verbs to the ferkit parser."""
    p = sub.add_parser("evaluate", help="accuracy, per-class figures and confusion matrix on a split",
                       description="Evaluate a model, or an ensemble of several (probabilities averaged), "
                                   "on a FER2013 split.")
    p.add_argument("--data", required=True, help="fer2013.csv, a dataset root or a folder of class folders")
    p.add_argument("--split", help="split to evaluate (default: publictest, or the only split there is); splits "
                                   "joined by + are scored together (publictest+privatetest: seed 004's test set)")
    p.add_argument("--model", action="extend", nargs="+", metavar="NAME_OR_PATH",
                   help="shipped name (default, fast, default-b, or best = default+default-b), model file or run "
                        "directory; several form an ensemble (default: default)")
    p.add_argument("--tta", choices=TTA_CHOICES, default="auto",
                   help="test-time views to average: auto (default) = tencrop, as predict classifies a photo's "
                        "faces; none = the centre crop alone")
    p.add_argument("--backend", choices=("torch", "onnx", "int8"), default="torch",
                   help="inference engine (default torch; int8 scores the model's quantised graph)")
    add_dataset_detector(p, "score")
    p.add_argument("--limit", type=int, metavar="N", help="score N faces drawn at random (seed 0) from the split, "
                   "for a quick look (the figures are of those faces only; default: all)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--report", metavar="DIR", help="write figures and report.md into DIR")
    _add_skip_bad(p)
    p.set_defaults(run=evaluate_command)

    p = sub.add_parser("calibrate", help="fit temperature scaling on PublicTest and store it in the model",
                       description="Fit a softmax temperature (Guo et al. 2017) by minimising the NLL on a "
                                   "split, report the ECE before and after, and write it into the model file.")
    p.add_argument("--data", required=True)
    p.add_argument("--split", help="split to fit on (default publictest)")
    p.add_argument("--model", required=True, metavar="NAME_OR_PATH")
    p.add_argument("--out", metavar="FILE", help="model file to write (default: overwrite the given model file)")
    add_dataset_detector(p, "fit on")
    p.add_argument("--json", action="store_true")
    _add_skip_bad(p)
    p.set_defaults(run=calibrate_command)

    p = sub.add_parser("explain", help="Grad-CAM / guided backpropagation picture for one face",
                       description="Show which pixels drive a prediction. A photo larger than 48x48 is cropped "
                                   "to its largest detected face first.")
    p.add_argument("image")
    p.add_argument("--method", choices=METHOD_CHOICES, default="gradcam")
    p.add_argument("--layer", help="layer for Grad-CAM (default: the activation after the last convolution, "
                                   "batch norm and ReLU applied); with guided-backprop, the layer whose strongest "
                                   "activation in the face is traced back to the input (seed 001 fig. 4)")
    p.add_argument("--class", dest="target", metavar="NAME", help="class to explain (default: the predicted one)")
    p.add_argument("--face", type=int, default=None, metavar="N",
                   help="in a photo, explain face N, counted from 0 left to right as predict's face column; "
                        "annotated pictures and the web page count from 1, so their face 1 is --face 0 "
                        "(default: the largest face)")
    p.add_argument("--model", default="default", metavar="NAME_OR_PATH")
    p.add_argument("--detector", choices=DETECTOR_CHOICES, default="auto",
                   help="face detector for photos (default auto); none = the whole picture")
    add_detection_options(p)  # as predict's, so that --face N is predict's face N with the same options
    p.add_argument("--tta", choices=TTA_CHOICES, default="auto",
                   help="views averaged for the prediction, as predict does (default auto: ten-crop); the map "
                        "itself explains the centre view")
    p.add_argument("--out", required=True, metavar="PNG")
    p.set_defaults(run=explain_command)

    p = sub.add_parser("visualize-filters", help="activation maximisation for a layer's strongest filters",
                       description="Gradient ascent from noise on the input to maximise each filter's mean "
                                   "activation (seed 000 fig. 5). Filters are ranked by weight norm, by mean "
                                   "activation on faces from --data, or, as the paper does, by the activation "
                                   "their images reach (--rank reached: every filter of the layer is optimised).")
    p.add_argument("--model", default="default", metavar="NAME_OR_PATH")
    p.add_argument("--layer", help="layer (default: the last convolution layer)")
    p.add_argument("--out", required=True, metavar="PNG")
    p.add_argument("--filters", type=int, default=16, help="how many filters (default 16)")
    p.add_argument("--steps", type=int, default=100, help="gradient-ascent steps (default 100)")
    p.add_argument("--rank", choices=("auto", "weights", "data", "reached"), default="auto",
                   help="how the filters shown are chosen: weights (L2 norm), data (mean activation on --data's "
                        "faces), reached (seed 000: optimise all, keep those reaching the highest activation; "
                        "slower); default auto = data with --data, else weights")
    p.add_argument("--data", help="rank filters by mean activation on faces from this dataset")
    p.add_argument("--split", help="split of --data to use (default publictest)")
    add_dataset_detector(p, "rank filters on")
    _add_skip_bad(p)
    p.set_defaults(run=visualize_filters_command)


def _add_skip_bad(p: argparse.ArgumentParser) -> None:
    p.add_argument("--skip-bad", action="store_true", help="leave out unreadable faces or rows (each listed) "
                   "instead of stopping")


# --------------------------------------------------------------------------- evaluate


def evaluate_command(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate

    specs = args.model or ["default"]
    if args.report:  # a file in the way is said before the evaluation, which can take minutes
        from ..atomic import check_folder_path

        check_folder_path(Path(args.report))
    backend = None
    if args.backend != "torch":
        from ..vision.backends import create_backend

        backend = lambda loaded: create_backend(loaded, args.backend).probs  # noqa: E731
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit {args.limit}: at least 1 face")
    result = evaluate(args.data, split=args.split, models=specs, tta=args.tta, backend=backend,
                      skip_bad=args.skip_bad, cropper=dataset_cropper(args.detector), limit=args.limit)
    report_skipped(result.skipped, args.data)
    result.backend = args.backend
    if args.report:
        report = _write_report(Path(args.report), result, result.specs)
        print(f"report: {report}", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps({**result.to_dict(), "backend": args.backend}))
        return 0
    _print_summary(result)
    if args.backend != "torch":
        print(f"backend: {args.backend}")
    return 0


def _write_report(out: Path, result, specs: list[str]) -> Path:
    from ..atomic import make_folder
    from ..evaluation.evaluate import run_directory
    from ..evaluation.report import write_report

    make_folder(out)
    if (out / "report.md").is_file():  # an earlier report's curves (of other runs) must not linger beside this one
        for stale in out.glob("training_curves*.png"):
            stale.unlink()
    extra = []
    histories: dict[str, list[dict]] = {}
    for i, (spec, loaded) in enumerate(zip(specs, result.models)):
        run = run_directory(spec, loaded)
        if run is None:
            continue
        name = "training_curves.png" if len(specs) == 1 else f"training_curves_{i + 1}.png"
        history = _read_history(run)
        if _plot_run_curves(run, history, out / name):
            extra.append((f"Training curves ({run})", name))
        if any(row.get("val_acc") is not None for row in history):
            histories[f"{i + 1}: {run.name}"] = history
    if len(histories) > 1:  # the runs side by side, as seed 002 fig. 9 compares its configurations
        from ..training.report import plot_runs_compared

        try:
            plot_runs_compared(out / "training_curves_compared.png", histories)
            extra.insert(0, ("Validation curves of the runs compared", "training_curves_compared.png"))
        except (KeyError, TypeError, ValueError) as exc:  # a history with odd rows: the report goes on
            print(f"ferkit: warning: cannot compare the runs' curves ({exc})", file=sys.stderr)
    return write_report(out, result, extra)


def _read_history(run: Path) -> list[dict]:
    """A run's history.json, read afresh (the run may still be training), or nothing when it cannot be
    read (its curves.png is then all there is)."""
    try:
        history = json.loads((run / "history.json").read_text())
    except (OSError, ValueError) as exc:
        if (run / "history.json").exists():
            print(f"ferkit: warning: {run / 'history.json'}: cannot read ({exc})", file=sys.stderr)
        return []
    if isinstance(history, list) and all(isinstance(r, dict) and "epoch" in r for r in history):
        return history
    print(f"ferkit: warning: {run / 'history.json'}: not a list of epochs; not plotted", file=sys.stderr)
    return []


def _plot_run_curves(run: Path, history: list[dict], target: Path) -> bool:
    """Plot the run's history; fall back to its curves.png."""
    from ..atomic import atomic_write_bytes
    from ..training.report import plot_curves

    try:
        if history:
            plot_curves(target, history)
            return True
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"ferkit: warning: {run / 'history.json'}: cannot plot ({exc})", file=sys.stderr)
    if (run / "curves.png").is_file():
        atomic_write_bytes(target, (run / "curves.png").read_bytes())
        return True
    return False


def _print_summary(result) -> None:
    from ..evaluation.evaluate import describe_model
    from ..evaluation.report import class_figures

    m = result.metrics
    for spec, loaded in zip(result.specs, result.models):
        d = describe_model(loaded)
        print(f"model: {spec} ({d['name']}, {d['parameters']:,} parameters, depth {d['depth']}, "
              f"temperature {d['temperature']:.3g})")
    if len(result.models) > 1:
        print(f"ensemble of {len(result.models)} models (probabilities averaged)")
    sample = f", drawn at random from its {result.sample_of:,} (--limit)" if result.sample_of else ""
    print(f"split: {result.split} ({m['n']:,} faces{sample})   tta: {result.tta}")
    if result.data_caveat:
        print(f"warning: {result.data_caveat}")
    if set(result.cropped) - {"crop"}:  # some pictures were photos, not FER2013-style crops
        from ..data.fer2013 import describe_cropped

        print(describe_cropped(result.cropped))
    caveat = f" ({result.ece_caveat})" if result.ece_caveat else ""
    print(f"accuracy {m['accuracy']:.4f}   macro F1 {m['macro_f1']:.4f}   ECE {m['ece']:.4f}{caveat}")
    if (unseen := result.unseen) and unseen["accuracy"] is not None:
        print(f"accuracy {unseen['accuracy']:.4f} on the {unseen['faces']:,} faces that are not Training faces again "
              f"({unseen['repeats_of_training']:,} of these {result.split} faces repeat one, pixel for pixel)")
    classes = m["classes"]
    width = max(len(c) for c in classes)
    print(f"\n{'class':<{width}}  precision  recall      f1      n")
    predicted = [sum(column) for column in zip(*m["confusion_matrix"])]
    for c, times in zip(classes, predicted):
        precision, recall, f1 = class_figures(m["per_class"][c], times)
        print(f"{c:<{width}}  {precision:>9}  {recall:>6}  {f1:>6}  {m['per_class'][c]['n']:5d}")
    print("\nconfusion matrix (rows true, columns predicted)")
    short = [c[:5] for c in classes]
    print(" " * width + "  " + " ".join(f"{s:>5}" for s in short))
    for c, row in zip(classes, m["confusion_matrix"]):
        print(f"{c:<{width}}  " + " ".join(f"{v:5d}" for v in row))


# --------------------------------------------------------------------------- calibrate


def calibrate_command(args: argparse.Namespace) -> int:
    from ..data import load_fer2013
    from ..evaluation import calibrate_model, select_split
    from ..evaluation.calibration import FEW_FACES_FOR_TEMPERATURE
    from ..models.hub import WEIGHTS_DIR, load_model, model_path
    from ..models.io import save_model_file, stored_as

    source = model_path(single_model(args.model, "calibrate"))
    if args.out is None and source.resolve().is_relative_to(WEIGHTS_DIR.resolve()):
        raise UsageError(f"{source} is a shipped model: give --out FILE to write the calibrated copy elsewhere")
    target = Path(args.out) if args.out else source
    loaded = load_model(args.model)
    dataset = load_fer2013(args.data, skip_bad=args.skip_bad, cropper=dataset_cropper(args.detector))
    report_skipped(dataset.problems, args.data)
    name, split = select_split(dataset, args.split)
    result = calibrate_model(loaded, split)
    if result.n < FEW_FACES_FOR_TEMPERATURE:
        print(f"ferkit: warning: temperature fitted on only {result.n} face(s) of {name}; below "
              f"{FEW_FACES_FOR_TEMPERATURE} faces it changes from sample to sample", file=sys.stderr)
    meta = {**loaded.meta, "calibration": result.record(name, split.images)}
    save_model_file(target, loaded.model, name=loaded.name, options=loaded.options, normalizer=loaded.normalizer,
                    classes=loaded.classes, temperature=result.temperature, meta=meta, storage=stored_as(source))
    if args.json:
        print(json.dumps({**result.to_dict(), "split": name, "model": str(target)}))
        return 0
    print(f"temperature {result.previous_temperature:.3g} -> {result.temperature:.4f} (fitted on {name}, "
          f"{result.n:,} faces)")
    print(f"ECE (15 bins) {result.ece_before:.4f} -> {result.ece_after:.4f} "
          f"({result.heldout_text()} with T fitted on the other half)   "
          f"NLL {result.nll_before:.4f} -> {result.nll_after:.4f}")
    print(f"wrote {target}")
    return 0


# --------------------------------------------------------------------------- explain


def _file_box(box: tuple[int, int, int, int], image: np.ndarray, scale: float) -> tuple[int, ...]:
    """A detector's box clipped to the picture and given in the file's pixels, as predict gives it."""
    from ..vision.crop import clip_box
    from ..vision.recognizer import in_file_pixels

    return in_file_pixels(clip_box(box, image.shape[1], image.shape[0]), scale)


def _face_from_image(image: np.ndarray, detector: str, index: int | None = None,
                     scale: float = 1.0, **finding) -> tuple[np.ndarray, str]:
    """A 48x48 face from a crop or a photo (the largest, or face ``index`` counted left to right),
    and a note saying how it was found; ``finding``: :class:`LargestFaceCropper`'s ``align``,
    ``min_face`` and ``max_side``.

    Detection lives in the vision layer, which the explain layer must not import; so it is
    done here, in the application layer."""
    from ..data.images import FACE_SIZE, to_face_size, to_gray
    from ..vision.crop import LargestFaceCropper

    whole = detector == "none" or image.shape[:2] == (FACE_SIZE, FACE_SIZE)  # one face: the picture
    if whole and index not in (None, 0):
        raise UsageError(f"--face {index}: the picture is one face (face 0): "
                         f"{'a 48x48 crop' if detector != 'none' else '--detector none'}")
    if detector == "none" and image.shape[:2] != (FACE_SIZE, FACE_SIZE):
        # As `predict --no-detect` and `evaluate --detector none` read such a picture: whole.
        return to_face_size(to_gray(image)), f"detector none: the whole {image.shape[1]}x{image.shape[0]} image as the face"
    cropper = LargestFaceCropper(detector, **finding)
    if index is not None and image.shape[:2] != (FACE_SIZE, FACE_SIZE):
        try:
            face = cropper.face_at(image, index)
        except ValueError as exc:
            raise UsageError(f"--{exc}") from None
        return face, (f"face {index} of {cropper.faces_in_last} (left to right): "
                      f"{_file_box(cropper.last_box, image, scale)} found by {cropper.detector.name}")
    face = cropper(image)
    if cropper.last == "crop":
        return face, "48x48 face crop"
    if cropper.last == "detected":
        return face, (f"face {_file_box(cropper.last_box, image, scale)} found by {cropper.detector.name} "
                      f"({cropper.faces_in_last} face(s) in the image)")
    side = min(image.shape[:2])
    return face, f"no face detected: using the central {side}x{side} square of the image"


def explain_command(args: argparse.Namespace) -> int:
    from ..data.images import ImageDecodeError, read_image_scaled
    from ..explain.faces import class_of, explain_faces
    from ..explain.render import picture_format, save_explanation
    from ..models.hub import load_model
    from ..vision.crop import min_face_at
    from ..vision.detect import check_detection_sizes

    picture_format(args.out)  # a suffix it cannot write fails before the work
    if args.detector == "none":
        refuse_idle(detection_options_set(args), "a face detector (--detector none takes the picture as the face)")
    try:
        check_detection_sizes(args.min_face, args.detect_size)
    except ValueError as exc:
        raise option_error(exc) from None
    loaded = load_model(single_model(args.model, "explain"))
    try:
        target = None if args.target is None else class_of(loaded.classes, args.target)
    except ValueError as exc:
        raise UsageError(f"--{exc}") from None
    try:
        image, scale = read_image_scaled(args.image)
    except ImageDecodeError as exc:
        from ..vision.sources import VIDEO_EXTENSIONS

        if Path(args.image).suffix.lower() in VIDEO_EXTENSIONS and Path(args.image).is_file():
            raise UsageError(f"{args.image}: a video; explain takes one picture (save the frame to explain as "
                             "an image first)") from None
        message = str(exc)
        named = message.startswith(f"{args.image}:")  # read_image's errors name the problem, not the file
        raise ImageDecodeError(message if named else f"{args.image}: {message}") from None
    # min_face is in the file's pixels, as predict takes it (its face numbers are the ones --face counts)
    face, note = _face_from_image(image, args.detector, args.face, scale, align=not args.no_align,
                                  min_face=min_face_at(args.min_face, scale), max_side=args.detect_size)
    # The prediction is the one ``predict`` gives (same views); by default the map explains that class.
    result = explain_faces(loaded, face, args.method, target=target, layer=args.layer, tta=resolve_tta(args.tta))
    predicted, explained, probs = int(result.predicted[0]), int(result.targets[0]), result.probs[0]
    # Show what the network saw: its centre view of the face, and the map over it.
    x, y, w, h = result.view
    layer = f", layer {result.layer}" if result.layer else ""
    explaining = (f"filter {int(result.filters[0])} of layer {result.layer}, where it is strongest in this face"
                  if result.filters is not None else f"{loaded.classes[explained]} ({probs[explained]:.0%}){layer}")
    title = f"{Path(args.image).name}: predicted {loaded.classes[predicted]} ({probs[predicted]:.0%}); explaining {explaining}"
    save_explanation(args.out, result.faces[0][y:y + h, x:x + w], args.method, result.maps[0][y:y + h, x:x + w], title)
    print(f"{note}; {title} -> {args.out}")
    if args.method != "guided-backprop" and not result.maps[0].any():  # Grad-CAM's ReLU left nothing
        print(f"note: the map is empty: nothing in layer {result.layer} supports {loaded.classes[explained]} "
              "for this face (try another --layer or --class)")
    return 0


# --------------------------------------------------------------------------- visualize-filters


def visualize_filters_command(args: argparse.Namespace) -> int:
    from ..explain import best_reached_filters, maximize_filters, model_input, strongest_filters
    from ..explain.render import picture_format
    from ..models.hub import load_model

    if args.filters < 1 or args.steps < 1:
        raise UsageError("--filters and --steps must be at least 1")
    picture_format(args.out)
    if args.rank == "data" and not args.data:
        raise UsageError("--rank data ranks filters on faces: give --data")
    if not args.data or args.rank not in ("auto", "data"):
        refuse_idle({"--data": args.data is not None, "--split": args.split is not None, "--skip-bad": args.skip_bad,
                     "--detector": args.detector != "auto"},
                    "--rank data (they choose the faces that rank the filters)")
    loaded = load_model(single_model(args.model, "visualize-filters"))
    if args.rank == "reached":
        layer, filters, images, reached = best_reached_filters(loaded.model, args.layer, args.filters,
                                                               steps=args.steps)
        return _save_filters(args, layer, filters, images, reached, "the activation their images reach "
                                                                    "(all filters optimised)")
    inputs = None
    ranking = "weight norm"
    if args.data:
        from ..data import load_fer2013
        from ..evaluation import select_split

        dataset = load_fer2013(args.data, skip_bad=args.skip_bad, cropper=dataset_cropper(args.detector))
        report_skipped(dataset.problems, args.data)
        name, split = select_split(dataset, args.split)
        # 256 faces: enough for a stable mean activation, cheap on a CPU; drawn across the split (a folder of
        # class folders lists its angry faces first, and the first 256 would all be angry).
        chosen = np.sort(np.random.default_rng(0).permutation(len(split))[:256])
        faces = split.images[chosen]
        inputs = model_input(loaded.normalizer, faces, loaded.input_size)
        ranking = f"mean activation on {len(faces)} {name} faces"
    layer, filters, scores = strongest_filters(loaded.model, args.layer, args.filters, inputs)
    images, reached = maximize_filters(loaded.model, filters, layer, steps=args.steps)
    return _save_filters(args, layer, filters, images, reached, ranking)


def _save_filters(args: argparse.Namespace, layer: str, filters: np.ndarray, images: np.ndarray,
                  reached: np.ndarray, ranking: str) -> int:
    from ..explain.render import save_filter_grid

    labels = [f"filter {f}\nact {a:.2f}" for f, a in zip(filters, reached)]
    title = (f"{layer}: {len(filters)} strongest filters by {ranking}; input maximising each "
             f"({args.steps} steps of gradient ascent from noise)")
    save_filter_grid(args.out, images, labels, title)
    print(f"{title} -> {args.out}")
    return 0
