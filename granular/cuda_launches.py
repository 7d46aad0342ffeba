"""Which CUDA kernels the host code launches, and with which argument types.

:func:`record_launches` counts every kernel launch (and records the Numba types of its arguments)
while it is active, under Numba's CUDA simulator or on a real device; :func:`launch_scenario`
drives every public entry point of the CUDA backend on a small packing (forces, contacts,
pressure, MD with compression, FIRE with every preconditioner), so that, run under the simulator,
it yields the signatures the host code really launches each kernel with. The compile check
(:mod:`granular.cuda_compile`) compiles exactly these signatures for real, so a change in the
host code (a new argument, an int that became a bool) is seen by the compiler without a GPU.

``python -m granular.cuda_launches OUT.json`` (with ``NUMBA_ENABLE_CUDASIM=1``) writes
``{kernel qualified name: [signature, ...]}`` where a signature is a list of type specs
(``"float64"`` or ``["array", "float64", ndim, layout]``).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections import Counter
from dataclasses import dataclass, field

import numba
import numpy as np


def kernel_name(func) -> str:
    """``module.qualname`` of a kernel's Python function (the key used everywhere here)."""
    return f"{func.__module__}.{func.__qualname__}"


def type_spec(value):
    """JSON-able spec of the Numba type ``value`` gets at a launch (arrays by dtype, ndim, layout)."""
    ty = numba.typeof(value)
    if isinstance(ty, numba.types.Array):
        return ["array", str(ty.dtype), int(ty.ndim), ty.layout]
    return str(ty)


def numba_type(spec):
    """Inverse of :func:`type_spec`."""
    from numba.np.numpy_support import from_dtype

    if isinstance(spec, list):
        _, dtype, ndim, layout = spec
        return numba.types.Array(from_dtype(np.dtype(dtype)), int(ndim), layout)
    return from_dtype(np.dtype("bool" if spec == "bool" else spec))


@dataclass
class LaunchLog:
    """Kernel launches seen by :func:`record_launches`: counts and distinct signatures by kernel."""

    counts: Counter = field(default_factory=Counter)
    signatures: dict = field(default_factory=dict)

    def add(self, func, args):
        name = kernel_name(func)
        self.counts[name] += 1
        sig = tuple(json.dumps(type_spec(a)) for a in args)
        self.signatures.setdefault(name, set()).add(sig)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_json(self) -> dict:
        return {k: [[json.loads(s) for s in sig] for sig in sorted(v)]
                for k, v in sorted(self.signatures.items())}


@contextlib.contextmanager
def record_launches():
    """Count and type every CUDA kernel launch made while active (simulator or real device).

    Yields a :class:`LaunchLog`. Device-function calls inside kernels are not launches and are
    not counted.
    """
    from numba import config

    log = LaunchLog()
    if config.ENABLE_CUDASIM:
        from numba.cuda.simulator.kernel import FakeCUDAKernel as cls

        original = cls.__call__

        def patched(self, *args):
            if not self._device:
                log.add(self.fn, args)
            return original(self, *args)

        name = "__call__"
    else:
        from numba.cuda.dispatcher import CUDADispatcher as cls

        original = cls.call

        def patched(self, args, *rest, **kw):
            log.add(self.py_func, args)
            return original(self, args, *rest, **kw)

        name = "call"
    setattr(cls, name, patched)
    try:
        yield log
    finally:
        setattr(cls, name, original)


def launch_scenario(n_large: int = 14, seed: int = 1) -> None:
    """Drive every entry point of the CUDA backend once on a small dense bidisperse packing."""
    import granular

    p = granular.make_packing(0.5, 0.2, n_large=n_large, phi=0.3, seed=seed)
    q = granular.scale_to_phi(p, 0.7)
    q.position[:] = np.random.default_rng(seed).random(q.position.shape) * q.box
    q.velocity[:] = np.random.default_rng(seed + 1).normal(size=q.velocity.shape) * 0.01
    law = granular.ContactLaw(gamma_n=0.01)
    granular.forces(q.position, q.radius, q.box, backend="cuda")
    granular.contacts(q, law, backend="cuda")
    granular.pressure(q, law, backend="cuda")
    granular.run_md(q, law, steps=3, damping=0.1, record_every=1, backend="cuda")
    granular.compress(q, law, target_phi=0.702, strain_rate=0.05, damping=0.1, backend="cuda")
    for preconditioner in ("unit", "physical", "jacobi"):
        granular.fire_minimize(q, law, max_steps=3, preconditioner=preconditioner, backend="cuda")
    granular.fire_minimize(q, law, max_steps=3, energy_tol=1e-30, backend="cuda")  # force sums on


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: NUMBA_ENABLE_CUDASIM=1 python -m granular.cuda_launches OUT.json", file=sys.stderr)
        return 2
    from numba import config

    if config.ENABLE_CUDASIM:  # the simulator's threads wait a switch interval at each syncthreads
        sys.setswitchinterval(1e-4)
    with record_launches() as log:
        launch_scenario()
    from jamcommon.files import atomic_write_text

    atomic_write_text(argv[0], json.dumps(log.as_json()), overwrite=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
