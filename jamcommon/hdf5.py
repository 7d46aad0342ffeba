"""Opening an existing HDF5 file for reading, with one clear line when it cannot be read.

The packing reader (:mod:`granular.h5md_reader`) and the wave-dataset reader (:mod:`surrogate.data`)
both turn h5py's multi-line errors on absent, empty, foreign, truncated or damaged files into one
line that names the file's role and path, raised as the caller's own error class.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its class name when the message is empty)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0].strip("'\"")


def open_hdf5(path: str | os.PathLike, *, role: str, error: type[Exception] = ValueError) -> h5py.File:
    """Open ``path`` read-only, or raise ``error`` with one line naming ``role`` and the path.

    Parameters
    ----------
    path : path-like
        An existing HDF5 file.
    role : str
        What the file is to the caller, e.g. ``"packing file"``; starts every message.
    error : exception class
        Raised (with the message as its only argument) when the file is absent, empty, not HDF5,
        or cannot be opened.

    Returns
    -------
    h5py.File
        Open for reading; the caller closes it (``with``).
    """
    path = Path(path)
    where = f"{role} {str(path)!r}"
    if not path.is_file():
        raise error(f"{where} does not exist")
    if path.stat().st_size == 0:
        raise error(f"{where} is empty (0 bytes), not an HDF5 file")
    if not h5py.is_hdf5(path):
        raise error(f"{where} is not an HDF5 file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise error(f"{where} cannot be opened as HDF5 (truncated or damaged?): {first_line(exc)}") from None
