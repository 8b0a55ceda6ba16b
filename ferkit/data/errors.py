"""The one exception type the data layer raises: its message is a complete one-line report."""
from __future__ import annotations


class DataError(ValueError):
    """Bad or missing input data. ``str(err)`` names the file (and row) and the problem."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, for a one-line report (its type's name when the
    message is empty: ``str(exc).splitlines()[0]`` raised IndexError there)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]


def os_problem(exc: OSError) -> str:
    """What went wrong, in the words of a one-line report: "permission denied"."""
    return (exc.strerror or type(exc).__name__).lower()
