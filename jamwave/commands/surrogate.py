"""``jamwave surrogate ...``: CNN surrogates of wave datasets: training, evaluation, pruning."""

from __future__ import annotations

from jamwave.cli import add_group
from jamwave.commands import surrogate_pruning


def register(groups) -> None:
    """Add the ``surrogate`` group and its subcommands to ``groups``."""
    sub = add_group(groups, "surrogate", "CNN surrogates of wave datasets: training, evaluation, pruning.")
    surrogate_pruning.register(sub)
