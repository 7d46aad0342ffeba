"""``jamwave demo``: the end-to-end run from grains to a pruned surrogate, with a report."""

from __future__ import annotations

import argparse

from granular.backend import BACKENDS
from jamwave.argtypes import bounded_int


def register(groups) -> None:
    """Add the ``demo`` command to ``groups``."""
    parser = groups.add_parser(
        "demo",
        help="End-to-end run: packings, jamming, K, wave dataset, surrogates, pruning, report.",
        description=(
            "End-to-end run from grains to a pruned surrogate. Each stage writes files the next "
            "stage reads; an interrupted demo resumes where it stopped."
        ),
    )
    parser.add_argument("--out", default="demo-output", help="output folder (default: %(default)s)")
    parser.add_argument("--size", choices=["tiny", "small", "medium", "large"], default="small",
                        help="problem size: small runs in minutes on 2 CPU cores, large is for a GPU "
                        "or a cluster, tiny is a smoke test (default: small)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="DEM backend (default: auto, or $JAMWAVE_BACKEND)")
    parser.add_argument("--scheduler", default=None,
                        help="Dask scheduler address for the sweeps (default: local processes)")
    parser.add_argument("--workers", type=bounded_int(1), default=None,
                        help="local worker processes (default: all cores)")
    parser.add_argument("--seed", type=bounded_int(0), default=0, help="random seed (default: 0)")
    parser.add_argument("--force", action="store_true", help="recompute every stage from scratch")
    parser.set_defaults(func=_run, group_parser=parser)


def _run(args: argparse.Namespace) -> int:
    from jamwave.demo import run_demo

    run_demo(
        args.out,
        size=args.size,
        backend=args.backend,
        scheduler=args.scheduler,
        workers=args.workers,
        seed=args.seed,
        force=args.force,
        progress=True,
    )
    return 0
