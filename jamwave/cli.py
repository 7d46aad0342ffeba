"""The ``jamwave`` command: one entry point, a subcommand group per package, and ``demo``.

Each group's subcommands live in :mod:`jamwave.commands` (one module per package, each with a
``register(subparsers)`` function; none imports this module back); this module wires them
together and turns bad input into exit status 2 with a single line that names the parameter.
"""

from __future__ import annotations

import argparse
import sys

from jamcommon import __version__
from jamcommon.files import OutputExistsError


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """Return the full ``jamwave`` argument parser."""
    from jamwave.commands import demo, granular, surrogate, wavefe

    parser = OneLineParser(
        prog="jamwave",
        description="Granular jamming (DEM) -> waves (FE) -> compressed neural surrogates.",
    )
    parser.add_argument("--version", action="version", version=f"jamwave {__version__}")
    groups = parser.add_subparsers(dest="group", metavar="{granular,wavefe,surrogate,demo}")
    groups.required = True
    for module in (granular, wavefe, surrogate, demo):
        module.register(groups)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        # A group given without a subcommand: show its help.
        args.group_parser.print_help()
        return 2
    try:
        status = func(args)
    except OutputExistsError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        # Library functions raise ValueError for bad input, with a message naming the parameter.
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # Files that cannot be read or written (a folder that cannot be created, no permission, a
        # full disk): one line naming the path, never a traceback.
        print(f"{parser.prog}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; finished outputs are kept, rerun to resume", file=sys.stderr)
        return 130
    return int(status or 0)


def describe_os_error(exc: OSError) -> str:
    """One line for an :class:`OSError`: what failed and on which path."""
    text = str(exc).strip()
    reason = exc.strerror or (text.splitlines()[0] if text else type(exc).__name__)
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{reason}: {' -> '.join(repr(p) for p in paths)}" if paths else reason


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
