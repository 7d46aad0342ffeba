"""The CUDA host loops read the device once per chunk of steps and stay exact (simulator).

MD: chunks that see a particle move past the rebuild threshold are restored and redone step by
step, so the trajectory equals the one of a flag read after every step, and the CPU's to 1e-12.
FIRE: blocks of steps grow to 64 between two reads of the device state; the kernels of a block
do nothing after a halt, so the loop stops where the CPU's does."""

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

    p = granular.scale_to_phi(granular.make_packing(1.0, 0.0, n=32, phi=0.3, seed=3), 0.66)  # one block
    q = granular.fire_minimize(p, force_tol=1e-10, backend="cpu").packing  # no force
    q.velocity[:] = np.random.default_rng(3).normal(size=q.velocity.shape) * 1e-6  # no rebuild
    stats = {}
    pos, vel, box, out = _run(loops_cuda, q, 128, 0.0, record_every=0, check_every=64, stats=stats)
    pos_c, _, _, out_c = _run(loops_cpu, q, 128, 0.0, record_every=0)
    assert out[3] == out_c[3] == 1 and np.abs(pos - pos_c).max() < 1e-12
    assert stats["redos"] == 0 and stats["flag_reads"] == 2  # one read per 64 steps


def test_fire_blocks_grow_to_check_every_and_stop_at_the_cap():
    from granular.fire_cuda import CHECK_EVERY, block_length

    assert CHECK_EVERY >= 50  # one read per >= 50 steps in steady state
    assert [block_length(s, 10**6, s) for s in (0, 4, 8, 16, 32, 64, 640)] == [4, 4, 8, 16, 32, 64, 64]
    assert block_length(100, 110, 500) == 11  # steps 101-110, then the iteration that halts
    assert block_length(110, 110, 500) == 1 and block_length(120, 110, 0) == 1


def test_quiet_fire_reads_its_state_once_per_64_steps(monkeypatch):
    """Near a minimum (no rebuild, no convergence) the blocks grow 4, 4, 8, 16, 32, 64 and end at
    the step cap with the halting iteration; the result is the CPU's."""
    from granular import fire_cuda, loops_cuda

    law = granular.ContactLaw()
    p = granular.scale_to_phi(granular.make_packing(1.0, 0.0, n=32, phi=0.3, seed=3), 0.7)  # one block
    q = granular.fire_minimize(p, law, force_tol=1e-6, backend="cpu").packing
    stats = {}
    monkeypatch.setattr(loops_cuda, "fire_on_device",
                        lambda *args, **_: fire_cuda.fire_on_device(*args, stats=stats))
    a = granular.fire_minimize(q, law, force_tol=1e-14, max_steps=128, backend="cuda")
    b = granular.fire_minimize(q, law, force_tol=1e-14, max_steps=128, backend="cpu")
    assert a.stop == b.stop == "max_steps" and a.steps == b.steps == 128
    assert a.rebuilds == b.rebuilds == 1, "the state must stay within the skin"
    assert stats["blocks"] == [4, 4, 8, 16, 32, 64, 1]
    assert np.abs(a.packing.position - b.packing.position).max() < 1e-12
    assert a.energy == pytest.approx(b.energy, rel=1e-12)
