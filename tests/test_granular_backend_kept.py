"""The backend is resolved once and kept on the whole path: relaxation, measurement, output file.

Under Numba's simulator (or on a GPU) with ``JAMWAVE_BACKEND=cuda`` (which a forgotten ``backend=``
would pick), ``backend="cpu"`` must launch no CUDA kernel, and ``backend="cuda"`` must call no CPU
loop; kernel launches are counted by :func:`granular.cuda_launches.record_launches`, CPU loops by wrapping the
entry points of :mod:`granular.loops_cpu`.
"""

from __future__ import annotations

import functools

import h5py
import numpy as np
import pytest

import granular
from granular import loops_cpu
from granular.backend import Engine, cuda_usable, resolve_backend, resolve_engine
from granular.cuda_launches import record_launches

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not cuda_usable(), reason="needs a CUDA GPU or NUMBA_ENABLE_CUDASIM=1")]


@pytest.fixture
def cpu_calls(monkeypatch):
    """Count calls of the CPU launch layer's entry points."""
    calls = []
    for name in ("evaluate", "pairs", "run_md", "run_fire"):
        original = getattr(loops_cpu, name)

        def counted(*args, _name=name, _f=original, **kw):
            calls.append(_name)
            return _f(*args, **kw)

        monkeypatch.setattr(loops_cpu, name, functools.wraps(original)(counted))
    return calls


def test_engine_resolves_once_and_validates(monkeypatch):
    monkeypatch.setenv("JAMWAVE_BACKEND", "cuda")
    engine = resolve_engine("cpu")
    assert engine == Engine("cpu", engine.threads) and engine.record()["backend"] == "cpu"
    assert resolve_backend(engine) == "cpu" and resolve_engine(engine) is engine
    assert resolve_engine("auto").backend == "cuda"
    with pytest.raises(ValueError, match="threads"):
        resolve_engine("cpu", threads=0)
    with pytest.raises(ValueError, match="backend"):
        Engine("auto", 1)


def test_cli_jam_with_backend_cpu_launches_no_cuda_kernel(tmp_path, monkeypatch, cpu_calls):
    from jamwave.cli import main

    monkeypatch.setenv("JAMWAVE_BACKEND", "cuda")
    out = tmp_path / "jam.h5"
    with record_launches() as log:
        main(["granular", "jam", "--delta", "0.5", "--xs", "0.5", "--n", "150", "--excess-phi", "0.01",
              "--backend", "cpu", "--out", str(out)])
    assert log.total == 0, f"CUDA kernels launched with --backend cpu: {dict(log.counts)}"
    assert "run_fire" in cpu_calls and "evaluate" in cpu_calls
    with h5py.File(out, "r") as f:
        params = f["parameters/jamwave"]
        assert params["backend"][()].decode() == "cpu" and int(params["threads"][()]) >= 1


def test_backend_cuda_measures_on_the_device(monkeypatch, cpu_calls):
    from granular.elasticity import bulk_modulus
    from granular.follow import measure_state
    from granular.jamming import compress_to, spring_forces
    from granular.protocol import results_of

    monkeypatch.setenv("JAMWAVE_BACKEND", "cpu")
    law = granular.ContactLaw()
    start = granular.make_packing(0.5, 0.5, n=90, phi=0.3, seed=2)
    state = compress_to(start, 0.72, law, force_tol=1e-13, backend="cpu")
    cpu_calls.clear()
    engine = resolve_engine("cuda")
    with record_launches() as log:
        m = bulk_modulus(state, law, method="linear_response", force_tol=1e-10, backend=engine)
        row = measure_state(state, law, backend=engine)
        res = results_of(state, law, phi_j=0.7, phi_low=0.69, phi_high=0.71, backend=engine)
        force = spring_forces(state, law, backend=engine)
    assert cpu_calls == [], f"CPU loops called with backend cuda: {cpu_calls}"
    assert log.counts["granular.kernels_cuda.force_kernel"] > 0
    assert m.K_linear_response > 0 and row["pressure"] == pytest.approx(res["pressure"], rel=1e-12)
    assert np.abs(force).max() > 0
