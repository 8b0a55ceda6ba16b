"""CLI verbs: evaluate (being written)."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's verbs to the ferkit parser."""
