"""Safe output files: atomic writes and an explicit overwrite flag.

Every file the project writes goes through :func:`atomic_path`: the content is written under a
temporary name in the destination folder and renamed into place only when complete, so a crash
never leaves a half-written file under the final name, and an existing output is never replaced
unless ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


class OutputExistsError(FileExistsError):
    """Raised when an output file exists and overwriting was not asked for."""


def check_writable(path: str | os.PathLike, *, overwrite: bool = False, flag: str = "--force") -> Path:
    """Return ``path`` as a :class:`~pathlib.Path` after checking it may be written.

    Parameters
    ----------
    path : path-like
        Destination file.
    overwrite : bool
        Allow replacing an existing file.
    flag : str
        Name of the option that allows overwriting, quoted in the error message.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is false.
    IsADirectoryError
        If ``path`` is a folder.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "output is a folder, expected a file name", str(path))
    if path.exists() and not overwrite:
        raise OutputExistsError(f"output {str(path)!r} exists; pass {flag} to overwrite it")
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike, *, overwrite: bool = False, flag: str = "--force"
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    Parameters
    ----------
    path : path-like
        Final destination.
    overwrite : bool
        Allow replacing an existing ``path``.
    flag : str
        Option name quoted in the error when ``path`` exists.

    Examples
    --------
    >>> with atomic_path("out.h5", overwrite=True) as tmp:   # doctest: +SKIP
    ...     with h5py.File(tmp, "w") as f:
    ...         f["x"] = 1
    """
    final = check_writable(path, overwrite=overwrite, flag=flag)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_text(path: str | os.PathLike, text: str, *, overwrite: bool = False) -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text)
    return Path(path)
