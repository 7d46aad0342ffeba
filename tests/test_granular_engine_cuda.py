"""CUDA kernels (under Numba's simulator when no GPU is present) against the brute-force reference
and against the CPU backend: forces, pressure, contacts, MD, FIRE, overflow reallocation."""

from __future__ import annotations

import numpy as np
import pytest

import granular
from granular.backend import cuda_usable
from granular.reference import reference_contacts, reference_forces, reference_pressure

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not cuda_usable(), reason="needs a CUDA GPU or NUMBA_ENABLE_CUDASIM=1")]


def dense_random(delta, x_small, n, phi, seed):
    p = granular.make_packing(delta, x_small, n=n, phi=0.3, seed=seed)
    q = granular.scale_to_phi(p, phi)
    q.position[:] = np.random.default_rng(seed).random(q.position.shape) * q.box
    return q


@pytest.mark.parametrize("delta,x_small,n", [(1.0, 0.0, 60), (0.5, 0.5, 120), (0.15, 0.05, 220)])
def test_cuda_matches_reference_and_cpu(delta, x_small, n):
    q = dense_random(delta, x_small, n, 0.72, seed=5)
    q.position[:3] += q.box  # outside the box
    f = granular.forces(q.position, q.radius, q.box, k_n=2.0, backend="cuda")
    f_ref = reference_forces(q.position, q.radius, q.box, k_n=2.0)
    f_cpu = granular.forces(q.position, q.radius, q.box, k_n=2.0, backend="cpu")
    scale = np.abs(f_ref).max()
    assert np.abs(f - f_ref).max() <= 1e-10 * scale and np.abs(f - f_cpu).max() <= 1e-10 * scale
    law = granular.ContactLaw(k_n=2.0)
    p = granular.pressure(q, law, backend="cuda")
    p_ref = reference_pressure(q.position, q.radius, q.box, q.species, k_n=2.0)
    for key in ("total", "ss", "sl", "ll"):
        assert getattr(p, key) == pytest.approx(p_ref[key], rel=1e-10, abs=1e-14)
    c = granular.contacts(q, law, backend="cuda")
    c_ref = reference_contacts(q.position, q.radius, q.box, k_n=2.0, species=q.species)
    assert np.array_equal(c.i, c_ref["i"]) and np.array_equal(c.j, c_ref["j"])
    assert np.allclose(c.force, c_ref["force"], rtol=1e-10, atol=0)


def test_cuda_md_and_fire_follow_cpu():
    q = dense_random(0.5, 0.5, 90, 0.7, seed=3)
    q.velocity[:] = np.random.default_rng(3).normal(size=q.velocity.shape) * 0.01
    law = granular.ContactLaw(gamma_n=0.01)
    a = granular.run_md(q, law, steps=4, damping=0.1, record_every=2, backend="cuda")
    b = granular.run_md(q, law, steps=4, damping=0.1, record_every=2, backend="cpu")
    assert a.backend == "cuda" and b.backend == "cpu"
    assert np.abs(a.packing.position - b.packing.position).max() < 1e-10
    assert np.abs(a.packing.velocity - b.packing.velocity).max() < 1e-10 * np.abs(b.packing.velocity).max()
    for key in ("pressure", "kinetic_energy", "potential_energy", "z"):
        assert np.allclose(a.history[key], b.history[key], rtol=1e-10, atol=0)
    cpu = {}
    for mass in ("unit", "physical"):
        fa = granular.fire_minimize(q, law, max_steps=4, preconditioner=mass, backend="cuda")
        cpu[mass] = fb = granular.fire_minimize(q, law, max_steps=4, preconditioner=mass, backend="cpu")
        assert fa.steps == fb.steps == 4
        assert fa.max_force == pytest.approx(fb.max_force, rel=1e-10)
        assert np.abs(fa.packing.position - fb.packing.position).max() < 1e-10
    # the masses change the trajectory, so the agreement above covers both mass options
    assert np.abs(cpu["unit"].packing.position - cpu["physical"].packing.position).max() > 1e-8


def test_cuda_overflow_flags_trigger_reallocation():
    from granular.loops_cuda import DeviceSystem

    q = dense_random(0.5, 0.5, 120, 0.9, seed=4)
    dev = DeviceSystem(q.position, q.velocity, q.radius, q.species, q.box, 0.05)
    dev.cell_cap, dev.max_nbr = 1, 1  # far too small: both flags must fire and be fixed
    dev.rebuild()
    assert dev.reallocations >= 2 and dev.cell_cap > 1 and dev.max_nbr > 1
    owner, partner = dev.pairs()
    cpu_i, cpu_j = granular.loops_cpu.pairs(q.position, q.radius, q.box)
    assert owner.size >= cpu_i.size  # skin 0.05 keeps at least the touching pairs
    dev.forces(1.0, 0.0, 0)
    f_ref = reference_forces(q.position, q.radius, q.box)
    assert np.abs(dev.force.copy_to_host() - f_ref).max() <= 1e-10 * np.abs(f_ref).max()


def test_cuda_nonfinite_flag_raises_with_step():
    q = dense_random(0.5, 0.5, 90, 0.6, seed=6)
    q.velocity[3, 1] = np.nan
    with pytest.raises(granular.SimulationError, match="step 1"):
        granular.run_md(q, granular.ContactLaw(), steps=3, backend="cuda")
