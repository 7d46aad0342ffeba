"""``jamwave surrogate prune`` and ``compare-pruning``: PQI-driven SAP and its baselines."""

from __future__ import annotations


def register(sub) -> None:
    """Add the pruning subcommands to the ``surrogate`` group's subparsers ``sub``."""
