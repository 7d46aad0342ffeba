"""Subcommand groups of the ``jamwave`` command line, one module per package.

Each module exposes ``register(subparsers)``; :mod:`jamwave.cli` imports them and calls it, and
none of them imports the CLI back.
"""

from __future__ import annotations

import argparse


def add_group(groups, name: str, help_text: str) -> argparse._SubParsersAction:
    """Add a subcommand group ``name`` to ``groups`` and return the group's subparsers action.

    Parameters
    ----------
    groups : argparse._SubParsersAction
        The top-level subparsers of the ``jamwave`` parser.
    name : str
        Group name (``granular``, ``wavefe``, ``surrogate``).
    help_text : str
        One-line help, also the group's description.
    """
    group = groups.add_parser(name, help=help_text, description=help_text)
    group.set_defaults(group_parser=group, func=None)
    return group.add_subparsers(dest="command", metavar="COMMAND")
