"""What the FER2013 benchmarks share: the --data and --threads options, and the data they load."""
from __future__ import annotations

import argparse

import torch

from ferkit.data import FER2013, load_fer2013


def parse_with_fer2013(parser: argparse.ArgumentParser) -> tuple[argparse.Namespace, FER2013]:
    """Add ``--data`` and ``--threads`` to ``parser``, parse the command line, use that many threads and
    load the dataset (cached after the first load, see ``ferkit data``)."""
    parser.add_argument("--data", default="../shared/fer2013")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args, load_fer2013(args.data)
