"""The CUDA MD host loop reads flags once per chunk of steps and stays exact (simulator).

Chunks that see a particle move past the rebuild threshold are restored and redone step by step,
so the trajectory equals the one of a flag read after every step, and the CPU's to 1e-12."""

from __future__ import annotations

import numpy as np
import pytest

import granular
from granular import loops_cpu
from granular.backend import cuda_usable

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not cuda_usable(), reason="needs a CUDA GPU or NUMBA_ENABLE_CUDASIM=1")]


def _system(seed=7):
    p = granular.make_packing(0.5, 0.5, n=90, phi=0.3, seed=seed)
    q = granular.scale_to_phi(p, 0.66)
    rng = np.random.default_rng(seed)
    q.velocity[:] = rng.normal(size=q.velocity.shape) * 0.02
    return q


def _run(layer, q, steps, log_scale, record_every=10, **kw):
    pos, vel, box = q.position.copy(), q.velocity.copy(), q.box.copy()
    out = layer.run_md(pos, vel, q.radius, q.species, box, 1.0, 0.02, 0, 0.02, 0.05, log_scale, steps,
                       record_every, 0.08, **kw)
    return pos, vel, box, out


def test_chunked_md_matches_per_step_and_cpu():
    from granular import loops_cuda

    q = _system()
    steps, log_scale = 50, -2e-4  # with compression
    stats, stats1 = {}, {}
    pos, vel, box, out = _run(loops_cuda, q, steps, log_scale, check_every=16, stats=stats)
    pos1, vel1, box1, out1 = _run(loops_cuda, q, steps, log_scale, check_every=1, stats=stats1)
    pos_c, vel_c, box_c, out_c = _run(loops_cpu, q, steps, log_scale)
    assert out[0] == out1[0] == out_c[0] == 0 and out[1] == steps
    # as the flag read after every step: same rebuild steps, same arithmetic (up to the order of
    # the float atomics, which the simulator's threads do not fix either)
    assert np.abs(pos - pos1).max() < 1e-13 and np.abs(vel - vel1).max() < 1e-13 * np.abs(vel1).max()
    assert np.allclose(out[2], out1[2], rtol=1e-13, atol=1e-16)
    assert out[3] == out1[3] == out_c[3] and out[3] >= 3, "the run must rebuild several times"
    assert np.abs(pos - pos_c).max() < 1e-12
    assert np.abs(vel - vel_c).max() < 1e-12 * np.abs(vel_c).max()
    assert np.allclose(out[2], out_c[2], rtol=1e-12, atol=1e-15)
    assert np.allclose(box, box_c, rtol=1e-15)
    assert stats1["flag_reads"] == steps
    assert stats["flag_reads"] < steps and stats["chunks"] > 0
    assert stats["redos"] >= 1, "no chunk was restored: the redo path went untested"


def test_quiet_state_reads_flags_once_per_chunk():
    from granular import loops_cuda

    q = granular.fire_minimize(_system(3), force_tol=1e-10, backend="cpu").packing  # no force
    q.velocity[:] = np.random.default_rng(3).normal(size=q.velocity.shape) * 1e-6  # no rebuild
    stats = {}
    pos, vel, box, out = _run(loops_cuda, q, 128, 0.0, record_every=0, check_every=64, stats=stats)
    pos_c, _, _, out_c = _run(loops_cpu, q, 128, 0.0, record_every=0)
    assert out[3] == out_c[3] == 1 and np.abs(pos - pos_c).max() < 1e-12
    assert stats["redos"] == 0 and stats["flag_reads"] == 2  # one read per 64 steps
