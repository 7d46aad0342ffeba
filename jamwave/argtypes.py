"""Argument types for the command line: each checks a range and names it in its error.

argparse turns the :class:`argparse.ArgumentTypeError` raised here into one line naming the
option, e.g. ``jamwave granular jam: error: argument --delta: must be in (0, 1], got 1.5``.
"""

from __future__ import annotations

import argparse
import math


def _interval(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    left = "(" if lo_open or lo is None else "["
    right = ")" if hi_open or hi is None else "]"
    lo_s = "-inf" if lo is None else f"{lo:g}"
    hi_s = "inf" if hi is None else f"{hi:g}"
    return f"{left}{lo_s}, {hi_s}{right}"


def bounded_float(
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
):
    """Return an argparse type accepting finite floats in the given interval."""
    where = _interval(lo, hi, lo_open, hi_open)

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number in {where}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number in {where}, got {text!r}")
        below = lo is not None and (value <= lo if lo_open else value < lo)
        above = hi is not None and (value >= hi if hi_open else value > hi)
        if below or above:
            raise argparse.ArgumentTypeError(f"must be in {where}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def bounded_int(lo: int | None = None, hi: int | None = None):
    """Return an argparse type accepting integers in ``[lo, hi]``."""
    where = _interval(lo, hi, False, False)

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer in {where}, got {text!r}") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be an integer in {where}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def float_list(
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
):
    """Return an argparse type for ``a,b,c`` lists or ``start:stop:step`` ranges (stop included).

    Every value is checked against the interval like :func:`bounded_float`.
    """
    one = bounded_float(lo, hi, lo_open=lo_open, hi_open=hi_open)

    def parse(text: str) -> list[float]:
        text = text.strip()
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 3:
                raise argparse.ArgumentTypeError(f"a range is start:stop:step, got {text!r}")
            start, stop, step = (bounded_float()(p) for p in parts)
            if step <= 0 or stop < start:
                raise argparse.ArgumentTypeError(
                    f"a range needs step > 0 and stop >= start, got {text!r}"
                )
            n = int(math.floor((stop - start) / step + 1e-9)) + 1
            values = [round(start + i * step, 12) for i in range(n)]
        else:
            values = [p for p in text.split(",") if p.strip()]
        if not values:
            raise argparse.ArgumentTypeError("the list is empty")
        return [one(str(v)) for v in values]

    parse.__name__ = "list"
    return parse
