"""Run every benchmark script at its default (machine-sized) settings: ``make bench``."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = [
    "benchmarks.dem_throughput",
    "benchmarks.fe_throughput",
    "benchmarks.surrogate_compression",
    "benchmarks.pruning_study",
    "benchmarks.jamming_diagram",
    "benchmarks.modulus_peer",
]


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            print(f"== {name}: not available ({exc})")
            continue
        print(f"== {name}")
        try:
            module.main([])
        except Exception as exc:  # keep going: one broken benchmark must not hide the others
            print(f"== {name} failed: {exc!r}")
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
