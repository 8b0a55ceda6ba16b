"""Dataclass fields that carry their command-line help: the configs stay plain data, and
``ferkit train --help`` reads each option's meaning from the field it sets."""
from __future__ import annotations

from dataclasses import field
from typing import Any


def option(default: Any, help: str) -> Any:
    """A dataclass field with ``default`` and the help text its command-line option shows."""
    return field(default=default, metadata={"help": help})
