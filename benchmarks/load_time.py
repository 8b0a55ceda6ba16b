"""Cold and warm load time of a FER2013 copy (decode + cache write, then cache read).

    python benchmarks/load_time.py [PATH]   (default ../shared/fer2013)
"""
from __future__ import annotations

import argparse
import tempfile
import time

from ferkit.data import load_fer2013


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default="../shared/fer2013", help="a FER2013 copy (default ../shared/fer2013)")
    path = parser.parse_args().path
    with tempfile.TemporaryDirectory() as cache_dir:
        started = time.perf_counter()
        data = load_fer2013(path, cache_dir=cache_dir)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        load_fer2013(path, cache_dir=cache_dir)
        warm = time.perf_counter() - started
    faces = sum(len(s) for s in data.splits.values())
    print(f"{path}: {faces:,} faces  cold load {cold:.1f} s  warm (cached) load {warm:.2f} s")


if __name__ == "__main__":
    main()
