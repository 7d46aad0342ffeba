"""The settings every stage of one ``jamwave demo`` run reads."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from jamwave.demo_sizes import DemoSize


@dataclass(frozen=True)
class DemoRun:
    """The settings of one demo run (see :func:`jamwave.demo.run_demo` for their meaning)."""

    out: Path
    preset: DemoSize
    backend: str = "auto"
    scheduler: str | None = None
    workers: int | None = None
    seed: int = 0
    force: bool = False
    progress: bool = False

    def say(self, message: str) -> None:
        """Print a progress line on stderr when ``progress`` is on."""
        if self.progress:
            print(f"[jamwave demo] {message}", file=sys.stderr, flush=True)


def dask_executor(scheduler: str | None):
    """(executor, closer): a Dask client's executor for ``scheduler``, or (None, None) for the
    libraries' default local process pool."""
    if scheduler is None:
        return None, None
    from distributed import Client

    client = Client(scheduler)
    return client.get_executor(), client.close
