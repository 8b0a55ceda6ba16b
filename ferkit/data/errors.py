"""The one exception type the data layer raises: its message is a complete one-line report."""
from __future__ import annotations


class DataError(ValueError):
    """Bad or missing input data. ``str(err)`` names the file (and row) and the problem."""


def os_problem(exc: OSError) -> str:
    """What went wrong, in the words of a one-line report: "permission denied"."""
    return (exc.strerror or type(exc).__name__).lower()
