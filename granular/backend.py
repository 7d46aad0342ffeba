"""Choice of the compute backend: ``"cpu"`` (Numba, all cores) or ``"cuda"`` (Numba-CUDA).

``backend="auto"`` picks the GPU when a real one is present and the CPU otherwise; the environment
variable ``JAMWAVE_BACKEND`` (``auto``, ``cpu`` or ``cuda``) replaces ``"auto"`` (an explicit
``backend="cpu"`` or ``"cuda"`` argument wins over the environment). Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``) counts as a CUDA device only when asked for explicitly, because it
is slow: ``"auto"`` never picks it.

A run resolves its choice once, into an :class:`Engine` (backend and CPU thread count), and passes
that on to every call, relaxation and measurement alike; every function that takes ``backend=``
accepts an :class:`Engine` as well as a name, and output files record ``Engine.record()``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

BACKENDS = ("auto", "cpu", "cuda")
ENV_VAR = "JAMWAVE_BACKEND"


def cuda_simulated() -> bool:
    """True when Numba runs CUDA kernels in its simulator."""
    from numba import config

    return bool(config.ENABLE_CUDASIM)


def cuda_usable() -> bool:
    """True when CUDA kernels can run (a real GPU, or the simulator)."""
    if cuda_simulated():
        return True
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # noqa: BLE001 - a missing driver raises several kinds of error
        return False


def gpu_present() -> bool:
    """True when a real CUDA GPU is usable (not the simulator)."""
    return not cuda_simulated() and cuda_usable()


@dataclass(frozen=True)
class Engine:
    """A resolved compute backend, held for a whole run.

    Parameters
    ----------
    backend : {"cpu", "cuda"}
        Resolved backend name (never "auto").
    threads : int
        Numba CPU threads the run uses (>= 1), for the CPU kernels and host-side work.
    """

    backend: str
    threads: int

    def __post_init__(self):
        if self.backend not in ("cpu", "cuda"):
            raise ValueError(f"Engine.backend must be 'cpu' or 'cuda', got {self.backend!r}")
        if not (isinstance(self.threads, int) and self.threads >= 1):
            raise ValueError(f"Engine.threads must be an int >= 1, got {self.threads!r}")

    @property
    def layer(self):
        """The launch layer module (:mod:`granular.loops_cpu` or :mod:`granular.loops_cuda`)."""
        return launch_layer(self.backend)

    def record(self) -> dict:
        """What output files store about the engine: ``{"backend": ..., "threads": ...}``."""
        return {"backend": self.backend, "threads": self.threads}


def resolve_engine(backend: str | Engine = "auto", threads: int | None = None) -> Engine:
    """Resolve the backend (see :func:`resolve_backend`) and the thread count once.

    Parameters
    ----------
    backend : {"auto", "cpu", "cuda"} or Engine
        An Engine is returned unchanged (``threads`` must then be None or equal to its own).
    threads : int, optional
        Numba threads, in [1, NUMBA_NUM_THREADS]; set with ``numba.set_num_threads``. Default:
        the current ``numba.get_num_threads()``.
    """
    import numba

    if isinstance(backend, Engine):
        if threads is not None and threads != backend.threads:
            raise ValueError(f"threads={threads} contradicts the engine's {backend.threads}")
        return backend
    name = resolve_backend(backend)
    if threads is None:
        return Engine(name, int(numba.get_num_threads()))
    top = numba.config.NUMBA_NUM_THREADS
    if not (isinstance(threads, int) and 1 <= threads <= top):
        raise ValueError(f"threads must be an int in [1, {top}], got {threads!r}")
    numba.set_num_threads(threads)
    return Engine(name, threads)


def resolve_backend(name: str | Engine = "auto") -> str:
    """Resolve ``name`` to ``"cpu"`` or ``"cuda"``.

    Parameters
    ----------
    name : {"auto", "cpu", "cuda"} or Engine
        ``"auto"`` consults ``JAMWAVE_BACKEND``, then uses the GPU if one is present; an
        :class:`Engine` gives its own (already resolved) backend.

    Raises
    ------
    ValueError
        For an unknown name (argument or environment), or ``"cuda"`` without a usable device.
    """
    if isinstance(name, Engine):
        return name.backend
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "auto":
        env = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
        if env not in BACKENDS:
            raise ValueError(f"{ENV_VAR} must be one of {BACKENDS}, got {env!r}")
        name = env
    if name == "auto":
        return "cuda" if gpu_present() else "cpu"
    if name == "cuda" and not cuda_usable():
        raise ValueError("backend 'cuda' needs a CUDA GPU (or NUMBA_ENABLE_CUDASIM=1 set before numba "
                         "is imported); use backend='cpu'")
    return name


def launch_layer(name: str):
    """The kernel module of a resolved backend name (``"cpu"`` or ``"cuda"``)."""
    if name == "cpu":
        from granular import loops_cpu

        return loops_cpu
    if name == "cuda":
        from granular import loops_cuda

        return loops_cuda
    raise ValueError(f"backend must be 'cpu' or 'cuda' after resolution, got {name!r}")
