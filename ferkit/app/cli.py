"""``ferkit`` command line: one verb per job, in the manner of ultralytics' CLI.

    ferkit data stats PATH [--json]
    ferkit data crop PATH OUT [--detector auto|retinaface|haar|none]
    ferkit models
    ferkit train --data PATH --model NAME --out RUNDIR [options] | --resume RUNDIR
    ferkit evaluate / calibrate / explain / visualize-filters / predict / export / serve

Errors in user input print one line (``ferkit: error: ...``) and exit with status 2; the
commands never show a Python traceback for bad input.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from typing import NoReturn, Sequence

from ..detectors import DETECTOR_CHOICES
from . import commands, verbs_evaluate, verbs_predict, verbs_serve

EXIT_USAGE = 2


def _add_train(sub: argparse._SubParsersAction) -> None:
    from ..data.augment_config import AugmentConfig
    from ..training.config import TrainConfig, option_choices

    p = sub.add_parser("train", help="train a model (FER2013, or your own class folders)",
                       description="Train a model. Each epoch is scored on validation faces (PublicTest, or a held-out tenth "
                                   "of your own data) and the best epoch's weights are kept.")
    p.add_argument("--resume", metavar="RUNDIR", help="continue the run in RUNDIR where it stopped")
    defaults = TrainConfig()
    choices = option_choices()
    for f in fields(TrainConfig):
        if f.name in ("augment", "model_options"):
            continue
        default = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        meaning = f.metadata.get("help", "").replace("%", "%%") + " "
        if f.name == "detector":
            p.add_argument(flag, choices=DETECTOR_CHOICES, default=None,
                           help="in a picture that is not a 48x48 face crop, train on the largest face this detector "
                                "finds (the central square where none is found), as evaluate scores it; none = the "
                                "whole picture, resized (default auto for a new run; a resumed run keeps its own)")
        elif f.name == "data":
            p.add_argument(flag, default=None, help=meaning)
        else:
            _add_field_option(p, flag, default, meaning, choices.get(f.name))
    _add_augment_options(p)
    p.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="architecture option, e.g. dropout=0.4 or widths=[32,64,128,256] (JSON values)")
    p.set_defaults(run=commands.train_command)


def _add_superres(sub: argparse._SubParsersAction) -> None:
    from ..training.superres import SuperResConfig

    p = sub.add_parser("superres", help="train SRGAN's generator to enlarge faces 2x (seed 001)",
                       description="Train SRGAN's generator (Ledig et al. 2017) on the faces of a dataset, each shrunk "
                                   "to half size and given back, for seed 001's 2x super-resolution: train --superres "
                                   "RUN --model-option upscale=srgan then puts it, frozen, in front of a network. "
                                   "Each epoch prints the held-out faces' PSNR beside bicubic upscaling's.")
    p.add_argument("--resume", metavar="RUNDIR", help="continue the run in RUNDIR where it stopped")
    defaults = SuperResConfig()
    for f in fields(SuperResConfig):
        default = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        _add_field_option(p, flag, default, f.metadata.get("help", "").replace("%", "%%") + " ")
    p.set_defaults(run=commands.superres_command)


def _add_augment_options(p: argparse.ArgumentParser) -> None:
    """``--aug-*``: one option per :class:`AugmentConfig` field (train, and data augment's preview)."""
    from ..data.augment_config import AugmentConfig

    for f in fields(AugmentConfig):
        default = getattr(AugmentConfig(), f.name)
        flag = "--aug-" + f.name.replace("_", "-")
        _add_field_option(p, flag, default, "augmentation: " + f.metadata.get("help", f.name).replace("%", "%%") + " ")


def _add_field_option(p: argparse.ArgumentParser, flag: str, default: object, meaning: str,
                      choices: tuple[str, ...] | None = None) -> None:
    """The option that sets a config dataclass field: yes/no for a flag, else the field's type (or choices);
    unset (None) unless given, so that a resumed run can tell what was typed."""
    if isinstance(default, bool):
        _add_yes_no(p, flag, f"{meaning}(default {'yes' if default else 'no'})")
    elif choices:
        p.add_argument(flag, choices=choices, default=None, help=f"{meaning}(default {default})")
    else:
        p.add_argument(flag, type=type(default), default=None, help=f"{meaning}(default {default!r})")


def _add_yes_no(parser: argparse.ArgumentParser, flag: str, help_text: str) -> None:
    """A yes/no option that also stands alone: ``--skip-bad`` is ``--skip-bad yes``."""
    parser.add_argument(flag, type=_parse_bool, nargs="?", const=True, metavar="yes|no", default=None,
                        help=help_text)


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "yes", "true", "on"):
        return True
    if lowered in ("0", "no", "false", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected yes or no, got {text!r}")


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a mistake on the command line is one line, not the verb's whole usage (34 lines
    for ``train``) with the error at the bottom."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="ferkit", description="Facial expression recognition toolkit.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True

    data = sub.add_parser("data", help="dataset statistics, and photos cut into 48x48 face crops")
    data_sub = data.add_subparsers(dest="data_verb", metavar="ACTION")
    data_sub.required = True
    stats = data_sub.add_parser("stats", help="faces per split and class, and problems found")
    stats.add_argument("path", help="fer2013.csv, a dataset root (train/, test/) or a folder of class folders")
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    stats.add_argument("--skip-bad", action="store_true", help="skip bad files and list them instead of stopping")
    stats.add_argument("--plot", metavar="PNG", help="also draw the faces per class and split (a bar chart)")
    stats.set_defaults(run=commands.data_stats)
    crop = data_sub.add_parser("crop", help="a dataset of photos as 48x48 FER2013-style face crops",
                               description="Cut the largest face out of every picture of a dataset folder (class "
                                           "folders, optionally under split folders), framed as FER2013 frames "
                                           "faces, and write it as a 48x48 gray PNG under OUT with the same folders "
                                           "and names, so that ferkit train and evaluate read the faces alone. "
                                           "Pictures without a face give their central square (with --detector "
                                           "none, every picture is taken whole, as train reads it); unreadable "
                                           "ones are listed and the rest go on.")
    crop.add_argument("path", help="a dataset root (train/, test/) or a folder of class folders")
    crop.add_argument("out", help="folder to write the faces into (the same layout)")
    crop.add_argument("--detector", choices=DETECTOR_CHOICES, default="auto",
                      help="face detector (default auto: RetinaFace when installed, else Haar); none = whole pictures, resized")
    crop.set_defaults(run=commands.data_crop)

    augment = data_sub.add_parser("augment", help="picture a few faces as training's augmentation sees them",
                                  description="Draw one face of each class of the training split (or the only "
                                              "split), whole and as --views random augmentations with the --aug-* "
                                              "settings train takes (seed 001 fig. 3, seed 004 fig. 3).")
    augment.add_argument("path", help="fer2013.csv, a dataset root (train/, test/) or a folder of class folders")
    augment.add_argument("--out", required=True, metavar="PNG", help="the picture to write")
    augment.add_argument("--views", type=int, default=6, help="augmented views per face (default 6)")
    augment.add_argument("--seed", type=int, default=0, help="seeds the faces' augmentations (default 0)")
    augment.add_argument("--detector", choices=DETECTOR_CHOICES, default="auto",
                         help="in a picture that is not a 48x48 face crop, the largest face this detector finds, as "
                              "train reads it (default auto); none = the whole picture, resized")
    _add_augment_options(augment)
    augment.set_defaults(run=commands.data_augment)

    models = sub.add_parser("models", help="list the model zoo with parameter counts")
    models.add_argument("--json", action="store_true")
    models.add_argument("--shipped", action="store_true",
                        help="list the trained models inside the package, with their PublicTest accuracy")
    models.set_defaults(run=commands.list_models_command)

    _add_train(sub)
    _add_superres(sub)
    # Larger verbs live in their own modules, each with a ``register(subparsers)``.
    for module in (verbs_evaluate, verbs_predict, verbs_serve):
        module.register(sub)
    return parser


def _version() -> str:
    from .. import __version__

    return f"ferkit {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    from .errors import run_safely, terminate_like_ctrl_c

    # A file name that is not valid UTF-8 (an old zip's) must not stop a listing half-way through a
    # strict UTF-8 stdout: it is printed with its odd bytes escaped (stderr already does so).
    if hasattr(sys.stdout, "reconfigure"):
        try:
            sys.stdout.reconfigure(errors="backslashreplace")
        except (ValueError, OSError):  # a stream that cannot change mid-way: left as it is
            pass
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a mistake argparse has already explained
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    terminate_like_ctrl_c()
    return run_safely(lambda: args.run(args), parser.prog)


if __name__ == "__main__":
    sys.exit(main())
