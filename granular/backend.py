"""Choice of the compute backend: ``"cpu"`` (Numba, all cores) or ``"cuda"`` (Numba-CUDA).

``backend="auto"`` picks the GPU when a real one is present and the CPU otherwise; the environment
variable ``JAMWAVE_BACKEND`` (``auto``, ``cpu`` or ``cuda``) replaces ``"auto"`` (an explicit
``backend="cpu"`` or ``"cuda"`` argument wins over the environment). Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``) counts as a CUDA device only when asked for explicitly, because it
is slow: ``"auto"`` never picks it.
"""

from __future__ import annotations

import os

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


def resolve_backend(name: str = "auto") -> str:
    """Resolve ``name`` to ``"cpu"`` or ``"cuda"``.

    Parameters
    ----------
    name : {"auto", "cpu", "cuda"}
        ``"auto"`` consults ``JAMWAVE_BACKEND``, then uses the GPU if one is present.

    Raises
    ------
    ValueError
        For an unknown name (argument or environment), or ``"cuda"`` without a usable device.
    """
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
