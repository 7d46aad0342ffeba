"""``jamwave wavefe ...``: P1 finite elements for the 2D wave equation and wave datasets."""

from __future__ import annotations

from jamwave.cli import add_group


def register(groups) -> None:
    """Add the ``wavefe`` group and its subcommands to ``groups``."""
    add_group(groups, "wavefe", "P1 finite elements for the 2D wave equation and wave datasets.")
