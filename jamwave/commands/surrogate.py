"""``jamwave surrogate ...``: CNN surrogates of wave datasets: training, evaluation, pruning."""

from __future__ import annotations

from jamwave.cli import add_group


def register(groups) -> None:
    """Add the ``surrogate`` group and its subcommands to ``groups``."""
    add_group(groups, "surrogate", "CNN surrogates of wave datasets: training, evaluation, pruning.")
