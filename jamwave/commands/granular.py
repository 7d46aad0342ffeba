"""``jamwave granular ...``: DEM of bidisperse sphere packings, jamming, bulk modulus, diagram."""

from __future__ import annotations

from jamwave.cli import add_group


def register(groups) -> None:
    """Add the ``granular`` group and its subcommands to ``groups``."""
    add_group(
        groups, "granular", "DEM of bidisperse sphere packings: jamming, bulk modulus, jamming diagram."
    )
