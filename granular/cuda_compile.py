"""Compile every CUDA kernel of ``granular`` for a GPU target without a GPU, and read its resources.

Numba-CUDA (``pip install 'jamwave[cuda-compile]'``) brings NVVM and ``ptxas`` as wheels, so the
real compiler runs on any machine: :func:`compile_kernel` turns a kernel and a launch signature
into PTX for a compute capability, :func:`ptxas_resources` assembles it with ``ptxas -v`` and
returns registers, spills, stack and shared memory per function. :func:`discover_kernels` finds
the kernels generically (every Numba-CUDA dispatcher in a ``granular`` module), so new kernels
are covered without being listed anywhere.

The shim (:func:`target_cc`). A kernel that calls a device function types that call by compiling
the device function, and Numba-CUDA (0.30) takes the compute capability for it from the current
device (``numba.cuda.dispatcher.get_current_device().compute_capability``), which needs a driver.
No configuration variable replaces it (``NUMBA_FORCE_CUDA_CC`` only reaches NVRTC), so while
:func:`target_cc` is active that one name, in that one module, returns a stand-in device whose
only attribute is the requested compute capability; compiled device functions are cached per
argument types, not per target, so the context also empties those caches on entry and exit.
Nothing else is patched, and only for the duration of a compile.

``python -m granular.cuda_compile SIGNATURES.json OUT.json --cc 80 90`` compiles the signatures
recorded by :mod:`granular.cuda_launches` and writes ``{"cc": {kernel: [resources, ...]}}`` plus
the kernels that were found but never launched and the device functions never compiled.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import tempfile
import types as pytypes
from pathlib import Path

from granular.cuda_launches import kernel_name, numba_type


def compile_tools_missing() -> str | None:
    """Why real compilation cannot run here (None when it can): Numba-CUDA, NVVM or ptxas missing."""
    if importlib.util.find_spec("numba_cuda") is None:
        return "numba-cuda is not installed (pip install 'jamwave[cuda-compile]')"
    if ptxas_path() is None:
        return "ptxas not found (pip install 'jamwave[cuda-compile]' brings nvidia-cuda-nvcc-cu12)"
    return None


def ptxas_path() -> str | None:
    """The ``ptxas`` of the nvidia-cuda-nvcc wheel, else the one on PATH."""
    spec = importlib.util.find_spec("nvidia")
    for root in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(root) / "cuda_nvcc" / "bin" / "ptxas"
        if candidate.is_file():
            return str(candidate)
    return shutil.which("ptxas")


def is_dispatcher(obj) -> bool:
    """True for a real Numba-CUDA dispatcher (kernel or device function)."""
    from numba.cuda.dispatcher import CUDADispatcher

    return isinstance(obj, CUDADispatcher)


def discover_kernels(package: str = "granular") -> tuple[dict, dict]:
    """Kernels and device functions defined in the modules of ``package``.

    Returns
    -------
    kernels, device_functions : dict
        ``{qualified name: dispatcher}``; a name is ``module.qualname`` of the Python function.
    """
    pkg = importlib.import_module(package)
    kernels, device = {}, {}
    for info in pkgutil.iter_modules(pkg.__path__, prefix=f"{package}."):
        if info.name.endswith("cuda_compile"):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if is_dispatcher(value):
                name = kernel_name(value.py_func)
                (device if value.targetoptions.get("device") else kernels)[name] = value
    return kernels, device


@contextlib.contextmanager
def target_cc(cc: tuple[int, int], device_functions=()):
    """Compile device functions for ``cc`` instead of asking the driver (the documented shim)."""
    from numba.cuda import dispatcher as module

    original = module.get_current_device
    stand_in = pytypes.SimpleNamespace(compute_capability=tuple(cc))
    for func in device_functions:
        func.overloads.clear()
    module.get_current_device = lambda: stand_in
    try:
        yield
    finally:
        module.get_current_device = original
        for func in device_functions:
            func.overloads.clear()


def compile_kernel(kernel, signature, cc: tuple[int, int]) -> str:
    """PTX of ``kernel`` for argument types ``signature`` (type specs) at compute capability ``cc``."""
    from numba import cuda

    argtypes = tuple(numba_type(spec) for spec in signature)
    ptx, _ = cuda.compile_ptx(kernel.py_func, argtypes, cc=tuple(cc))
    return ptx


_FUNC = re.compile(r"Function properties for (\S+)")
_ENTRY = re.compile(r"Compiling entry function '(\S+)'")
_STACK = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")


def parse_ptxas(text: str) -> dict:
    """Resources of the entry function in ``ptxas -v`` output.

    Returns a dict with registers, spill_stores, spill_loads (bytes, summed over the entry and
    any non-inlined device functions), stack (bytes of the entry), smem (static bytes).
    """
    entry = _ENTRY.search(text)
    if entry is None:
        raise ValueError(f"no entry function in ptxas output:\n{text}")
    out = {"registers": None, "spill_stores": 0, "spill_loads": 0, "stack": 0, "smem": 0}
    current = None
    for line in text.splitlines():
        if m := _FUNC.search(line):
            current = m.group(1)
        elif m := _STACK.search(line):
            out["spill_stores"] += int(m.group(2))
            out["spill_loads"] += int(m.group(3))
            if current == entry.group(1):
                out["stack"] = int(m.group(1))
        elif (m := _USED.search(line)) and current == entry.group(1):
            out["registers"] = int(m.group(1))
            smem = _SMEM.search(line)
            out["smem"] = int(smem.group(1)) if smem else 0
    if out["registers"] is None:
        raise ValueError(f"no register count for the entry function in ptxas output:\n{text}")
    return out


def ptxas_resources(ptx: str, cc: tuple[int, int]) -> dict:
    """Assemble ``ptx`` for ``sm_<cc>`` with ``ptxas -v``; raise RuntimeError on an assembler error."""
    arch = f"sm_{cc[0]}{cc[1]}"
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "k.ptx")
        Path(src).write_text(ptx)
        run = subprocess.run([ptxas_path(), f"-arch={arch}", "-v", src, "-o", os.path.join(tmp, "k.cubin")],
                             capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"ptxas -arch={arch} failed:\n{run.stderr}")
    return parse_ptxas(run.stdout + run.stderr)


def compile_all(signatures: dict, ccs, package: str = "granular") -> dict:
    """Compile and assemble every recorded signature of every kernel for every ``cc``.

    Returns ``{"targets": {"sm_90": {kernel: [resources...]}}, "not_launched": [...],
    "device_functions_unused": [...], "errors": [...]}``; compile errors are collected, not raised.
    """
    kernels, device = discover_kernels(package)
    result = {"targets": {}, "not_launched": sorted(set(kernels) - set(signatures)), "errors": [],
              "unknown_launched": sorted(set(signatures) - set(kernels))}
    used = set()
    for cc in ccs:
        table = result["targets"].setdefault(f"sm_{cc[0]}{cc[1]}", {})
        with target_cc(cc, device.values()):
            for name, kernel in sorted(kernels.items()):
                for sig in signatures.get(name, []):
                    try:
                        res = ptxas_resources(compile_kernel(kernel, sig, cc), cc)
                    except Exception as exc:  # noqa: BLE001 - reported per kernel
                        result["errors"].append(f"{name} sm_{cc[0]}{cc[1]}: {type(exc).__name__}: {exc}")
                        continue
                    table.setdefault(name, []).append(res)
            used |= {name for name, func in device.items() if func.overloads}
    result["device_functions"] = sorted(device)
    result["device_functions_unused"] = sorted(set(device) - used)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m granular.cuda_compile",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("signatures", help="JSON written by `python -m granular.cuda_launches`")
    parser.add_argument("out", help="JSON of resources per target and kernel")
    parser.add_argument("--cc", nargs="+", default=["90"],
                        help="compute capabilities, e.g. 80 90 (default 90)")
    args = parser.parse_args(argv)
    why = compile_tools_missing()
    if why:
        print(why, file=sys.stderr)
        return 3
    ccs = []
    for text in args.cc:
        if not re.fullmatch(r"\d\d", text):
            parser.error(f"--cc takes two digits like 80 or 90, got {text!r}")
        ccs.append((int(text[0]), int(text[1])))
    signatures = json.loads(Path(args.signatures).read_text())
    result = compile_all(signatures, ccs)
    from jamcommon.files import atomic_write_text

    atomic_write_text(args.out, json.dumps(result, indent=1), overwrite=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
