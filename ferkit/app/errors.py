"""Turn expected failures into one-line messages: the CLI never shows a traceback for bad input."""
from __future__ import annotations

import sys
from typing import Callable


class UsageError(ValueError):
    """A bad argument combination found after parsing."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``docker stop``, a scheduler's preemption), raised like Ctrl+C so that
    every ``finally`` runs: temporary files are removed and finished work is kept."""


def terminate_like_ctrl_c() -> None:
    """Turn SIGTERM into :class:`Terminated` in this (main) thread."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)


def expected_errors() -> tuple[type[BaseException], ...]:
    from ..data.errors import DataError
    from ..data.images import ImageDecodeError
    from ..models.io import ModelFileError
    from ..training.checkpoint import CheckpointError
    from ..training.loop import TrainingError

    return (UsageError, DataError, ImageDecodeError, ModelFileError, CheckpointError, TrainingError,
            OSError)  # a missing or unwritable path, an existing file where a folder must go, a full disk...


def resolved_model_spec(spec: str) -> str:
    """A model spec with its files and run folders as absolute paths (shipped names stay names), so
    that it names the same model from any working directory; ensembles member by member."""
    from pathlib import Path

    from ..models.hub import ENSEMBLE_SEPARATOR, ensemble_members

    try:
        members = ensemble_members(spec)
    except ValueError:  # an empty member: the loader's own check names it
        return spec
    return ENSEMBLE_SEPARATOR.join(str(Path(m).resolve()) if Path(m).exists() else str(m) for m in members)


def single_model(spec: str, verb: str) -> str:
    """``spec`` when it names one model; a verb that works on one network refuses an ensemble (``a+b``)."""
    from ..models.hub import ensemble_members

    if len(ensemble_members(spec)) > 1:
        raise UsageError(f"{verb} works on one model, not an ensemble ({spec!r}); give one of its members")
    return spec


def refuse_idle(given: dict[str, bool], needed: str) -> None:
    """Refuse options that act only with ``needed`` when it is absent: an option the command
    would ignore without a word lets a user believe it was applied.  ``given``: flag -> set."""
    idle = [flag for flag, is_set in given.items() if is_set]
    if idle:
        it = "it" if len(idle) == 1 else "them"
        raise UsageError(f"{' and '.join(idle)} {'acts' if len(idle) == 1 else 'act'} only with {needed}, so "
                         f"{'it' if len(idle) == 1 else 'they'} would be ignored here: leave {it} out")


def option_error(exc: ValueError) -> ValueError:
    """The Python API names its arguments (``min_face=0: ...``), the command line its options
    (``--min-face 0: ...``): an error about a detection size as the user typed it; others as they are."""
    import re

    named = re.match(r"(min_face|detect_size|detect_every)=(.*)", str(exc))
    return UsageError(f"--{named.group(1).replace('_', '-')} {named.group(2)}") if named else exc


def report_skipped(problems: list[str], data: object, shown: int = 5) -> None:
    """One stderr line per skipped item (the first ``shown``), so a result computed without them says so."""
    if not problems:
        return
    print(f"ferkit: skipped {len(problems)} bad item(s) in {data}:", file=sys.stderr)
    for problem in problems[:shown]:
        print(f"  {problem}", file=sys.stderr)
    if len(problems) > shown:
        print(f"  ... and {len(problems) - shown} more (ferkit data stats {data} --skip-bad lists them all)",
              file=sys.stderr)


def run_safely(action: Callable[[], int | None], prog: str = "ferkit") -> int:
    import warnings

    def one_line(message, category, filename, lineno, file=None, line=None) -> None:
        # A library warning (photos converted, file names that disagree with their folder) is news
        # for the user, not for a developer: one line, no source location.
        print(f"{prog}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = one_line
        return _run_reporting_errors(action, prog)


def _run_reporting_errors(action: Callable[[], int | None], prog: str) -> int:
    try:
        return int(action() or 0)
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        print(f"{prog}: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return 143 if terminated else 130
    except BrokenPipeError:
        return 0
    except expected_errors() as exc:
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except ValueError as exc:  # unknown names (models, optimisers, schedules...) are ValueErrors
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return 2


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    return " ".join(text.split())
