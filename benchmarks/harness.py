"""Shared benchmark harness: warm-up, repeats, median, machine record, table and JSON output.

Every benchmark script measures with :func:`measure`, prints with :func:`print_table` and saves
with :func:`write_results` (``benchmarks/results/<name>.json``), so figures in
``benchmarks/RESULTS.md`` can be traced to a file that names the machine, the date and the command.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPOSITORY_ROOT = RESULTS_DIR.parents[1]


@dataclass(frozen=True)
class Timing:
    """Wall-clock times of repeated calls, in seconds."""

    times: tuple[float, ...]
    warmup: int

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def best(self) -> float:
        return min(self.times)

    def to_dict(self) -> dict:
        return {"median_s": self.median, "best_s": self.best, "times_s": list(self.times),
                "warmup": self.warmup}


def measure(fn: Callable[[], object], *, warmup: int = 1, repeats: int = 5,
            sync: Callable[[], object] | None = None) -> Timing:
    """Time ``fn()`` after ``warmup`` untimed calls; ``sync`` (e.g. a device synchronise) runs
    after each call inside the timed region."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
        if sync is not None:
            sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if sync is not None:
            sync()
        times.append(time.perf_counter() - start)
    return Timing(tuple(times), warmup)


def machine_info() -> dict:
    """Facts about the machine and software a figure was measured with."""
    info = {
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
    for module in ("numpy", "scipy", "numba", "torch"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = None
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@dataclass
class Report:
    """Rows of one benchmark run and the machine they were measured on."""

    name: str
    rows: list[dict] = field(default_factory=list)
    notes: dict = field(default_factory=dict)

    def add(self, **row) -> None:
        self.rows.append(row)


def print_table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """Print ``rows`` as an aligned text table and return the text."""
    if not rows:
        print("(no rows)")
        return ""
    columns = list(columns or rows[0].keys())
    cells = [[_fmt(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
    text = "\n".join(lines)
    print(text)
    return text


def _fmt(value) -> str:
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}"
    return str(value)


def write_results(report: Report, directory: Path | None = None) -> Path:
    """Write ``report`` with :func:`machine_info` to ``<directory>/<name>.json`` atomically."""
    directory = Path(directory or RESULTS_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{report.name}.json"
    payload = _repository_relative({"machine": machine_info(), **asdict(report)})
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_json_default))
    os.replace(tmp, path)
    print(f"wrote {path}")
    return path


def _repository_relative(value):
    """``value`` with every string that names a path inside the repository made relative to its root,
    so that results files carry no machine path."""
    if isinstance(value, dict):
        return {k: _repository_relative(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_repository_relative(v) for v in value]
    if isinstance(value, str) and value.startswith(str(REPOSITORY_ROOT) + os.sep):
        return Path(value).relative_to(REPOSITORY_ROOT).as_posix()
    return value


def _json_default(value):
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
