"""Test configuration shared by the whole suite.

Numba's CUDA simulator must be chosen before numba is first imported, so this happens here, at
the top of the first module pytest loads. On a machine with an NVIDIA GPU the real device is used
(unless ``NUMBA_ENABLE_CUDASIM`` is set explicitly); everywhere else the CUDA kernels run under
the simulator, so every CI run exercises them.
"""

from __future__ import annotations

import os
import shutil
import sys


def _gpu_present() -> bool:
    return os.path.exists("/dev/nvidia0") or shutil.which("nvidia-smi") is not None


if "NUMBA_ENABLE_CUDASIM" not in os.environ and not _gpu_present():
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    # The simulator runs each CUDA thread as a Python thread and its block manager polls them
    # in a loop that holds the GIL: at every syncthreads a thread waits for the interpreter's
    # switch interval (5 ms by default). 0.1 ms makes the block reductions 2-3x cheaper.
    sys.setswitchinterval(1e-4)

# Keep the suite light on the 2-core CI machine: one BLAS/torch thread per process, and
# matplotlib never looks for a display.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    """Make torch single-threaded and deterministic across the suite (when torch is imported)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        yield
        return
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="module")
def one_numba_thread():
    """Run a module's Numba kernels on one thread (restored afterwards)."""
    import numba

    old = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(old)
