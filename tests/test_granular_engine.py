"""DEM engine on the CPU: packings, forces/pressure/contacts against the O(N^2) reference,
rattlers, time integration (energy, contact duration, restitution), FIRE, compression."""

from __future__ import annotations

import math

import numpy as np
import pytest

import granular
from granular.generate import species_counts
from granular.reference import reference_contacts, reference_forces, reference_pairs, reference_pressure


def dense_random(delta, x_small, n, phi, seed):
    """Random (overlapping) positions at packing fraction phi, some outside the box."""
    p = granular.make_packing(delta, x_small, n=n, phi=0.3, seed=seed)
    q = granular.scale_to_phi(p, phi)
    rng = np.random.default_rng(seed)
    q.position[:] = rng.random(q.position.shape) * q.box
    return q


# ---------------------------------------------------------------- packings

def test_species_counts_follow_design_formula():
    assert species_counts(0.5, 0.5, n_large=444) == (444, 3552)
    n_l, n_s = species_counts(0.5, 0.5, n=4000)
    assert n_l + n_s == 4000 and abs(n_s / n_l - 8.0) < 0.05
    with pytest.raises(ValueError, match="delta"):
        species_counts(1.5, 0.5, n=10)
    with pytest.raises(ValueError, match="x_small"):
        species_counts(0.5, -0.1, n=10)


def test_make_packing_reproducible_without_overlaps():
    p = granular.make_packing(0.15, 0.2, n_large=12, phi=0.3, seed=3)
    q = granular.make_packing(0.15, 0.2, n_large=12, phi=0.3, seed=3)
    assert np.array_equal(p.position, q.position)
    assert p.n_large == 12 and p.n_small == round(12 * 0.2 / (0.8 * 0.15**3))
    assert abs(p.x_small - 0.2) < 0.01 and abs(p.packing_fraction - 0.3) < 1e-12
    assert abs(p.delta - 0.15) < 1e-12
    assert np.all((p.position >= 0) & (p.position < p.box))
    i, _, _ = reference_pairs(p.position, p.radius, p.box)
    assert i.size == 0
    with pytest.raises(ValueError, match="phi"):
        granular.make_packing(0.5, 0.5, n=100, phi=0.6)


def test_scale_to_phi_is_affine():
    p = granular.make_packing(0.5, 0.5, n=200, phi=0.3, seed=1)
    q = granular.scale_to_phi(p, 0.6)
    assert abs(q.packing_fraction - 0.6) < 1e-12
    assert np.allclose(q.position, p.position * (q.box[0] / p.box[0]))
    assert p.packing_fraction == pytest.approx(0.3)  # input untouched


# ---------------------------------------------------------------- forces vs brute force

@pytest.mark.parametrize("delta,x_small,n", [(1.0, 0.0, 300), (0.5, 0.5, 600), (0.15, 0.2, 1200)])
def test_forces_pressure_contacts_match_reference(delta, x_small, n):
    q = dense_random(delta, x_small, n, 0.72, seed=7)
    q.position[:5] += q.box  # outside the box: must be wrapped
    q.position[5:10] -= 2 * q.box
    f = granular.forces(q.position, q.radius, q.box, k_n=2.5, backend="cpu")
    f_ref = reference_forces(q.position, q.radius, q.box, k_n=2.5)
    assert np.abs(f - f_ref).max() <= 1e-10 * np.abs(f_ref).max()
    law = granular.ContactLaw(k_n=2.5)
    p = granular.pressure(q, law, backend="cpu")
    p_ref = reference_pressure(q.position, q.radius, q.box, q.species, k_n=2.5)
    for key in ("total", "ss", "sl", "ll"):
        assert getattr(p, key) == pytest.approx(p_ref[key], rel=1e-10, abs=1e-14)
    c = granular.contacts(q, law, backend="cpu")
    c_ref = reference_contacts(q.position, q.radius, q.box, k_n=2.5, species=q.species)
    assert np.array_equal(c.i, c_ref["i"]) and np.array_equal(c.j, c_ref["j"])
    for key in ("overlap", "normal", "distance", "force"):
        assert np.allclose(getattr(c, key), c_ref[key], rtol=1e-10, atol=1e-14)
    assert np.array_equal(c.pair_type, c_ref["pair_type"])
    # pairs straddling the periodic boundary are present
    straddle = np.abs(q.position[c.j] - q.position[c.i] - (c.normal * c.distance[:, None])) > 1e-6
    assert straddle.any()


def test_polydisperse_radii_match_reference():
    """Radii spread over 5 size levels: the multi-level grids must still find every contact."""
    rng = np.random.default_rng(8)
    n = 500
    radius = 0.5 * np.exp(rng.uniform(np.log(0.04), 0.0, n))
    box = np.full(3, ((4 / 3) * np.pi * np.sum(radius**3) / 0.7) ** (1 / 3))
    position = rng.random((n, 3)) * box
    f = granular.forces(position, radius, box, backend="cpu")
    f_ref = reference_forces(position, radius, box)
    assert np.abs(f - f_ref).max() <= 1e-10 * np.abs(f_ref).max()
    from granular.partition import radius_levels

    assert radius_levels(radius)[1].size >= 4


def test_hertz_pressure_matches_reference():
    q = dense_random(0.5, 0.5, 400, 0.7, seed=2)
    law = granular.ContactLaw(k_n=3.0, model="hertz")
    p = granular.pressure(q, law, backend="cpu")
    p_ref = reference_pressure(q.position, q.radius, q.box, q.species, k_n=3.0, model="hertz")
    assert p.total == pytest.approx(p_ref["total"], rel=1e-10)


def test_forces_rejects_bad_input():
    with pytest.raises(ValueError, match="position"):
        granular.forces(np.zeros((3, 2)), np.ones(3), np.full(3, 10.0))
    with pytest.raises(ValueError, match="box"):
        granular.forces(np.zeros((3, 3)), np.full(3, 0.5), np.full(3, 1.5))
    with pytest.raises(ValueError, match="backend"):
        granular.forces(np.zeros((3, 3)), np.full(3, 0.5), np.full(3, 10.0), backend="gpu")


# ---------------------------------------------------------------- rattlers

def _lattice(n_side=4, a=0.98):
    pos = np.stack(np.meshgrid(*[np.arange(n_side)] * 3, indexing="ij"), -1).reshape(-1, 3) * a + a / 2
    n = len(pos)
    return granular.Packing(pos, None, np.full(n, 0.5), np.zeros(n, np.int8), np.full(3, n_side * a))


def test_backbone_of_overlapping_cubic_lattice():
    p = _lattice()
    b = granular.backbone(p)
    assert b.n_rattlers == 0 and b.z_backbone == pytest.approx(6.0)
    # shrink one particle: it loses its 6 contacts and rattles, its neighbours keep 5 each
    p.radius[0] = 0.3
    p.species[0] = 1
    b = granular.backbone(p)
    assert b.n_rattlers == 1 and not b.jammed[0]
    assert b.jammed_fraction_small == 0.0 and b.jammed_fraction_large == 1.0
    assert b.n_contacts_backbone == 3 * 64 - 6


def test_backbone_removal_is_iterative():
    # a chain of three touching spheres: ends have 1 contact, the middle 2
    pos = np.array([[1.0, 2, 2], [1.9, 2, 2], [2.8, 2, 2]])
    p = granular.Packing(pos, None, np.full(3, 0.5), np.zeros(3, np.int8), np.full(3, 5.0))
    assert granular.contact_numbers(p).tolist() == [1, 2, 1]
    b = granular.backbone(p, min_contacts=2)
    assert b.n_rattlers == 3 and b.z_backbone == 0.0


# ---------------------------------------------------------------- dynamics

def _head_on(law, speed=0.5, delta=0.5):
    r = 0.5 * delta
    pos = np.array([[2.0 - 1.5 * r, 2.0, 2.0], [2.0 + 1.5 * r, 2.0, 2.0]])
    vel = np.array([[speed, 0, 0], [-speed, 0, 0]])
    return granular.Packing(pos, vel, np.full(2, r), np.ones(2, np.int8), np.full(3, 4.0))


@pytest.mark.parametrize("gamma_n", [0.0, 0.02])
def test_binary_collision_duration_and_restitution(gamma_n):
    """Linear spring-dashpot: contact lasts t_c = pi/omega, restitution e = exp(-beta t_c)."""
    law = granular.ContactLaw(k_n=1.0, gamma_n=gamma_n)
    p = _head_on(law)
    t_c = law.contact_duration(p.radius[0])
    dt = t_c / 2000
    res = granular.run_md(p, law, dt=dt, steps=int(3 * t_c / dt), record_every=1, backend="cpu")
    touching = res.history["z"] > 0
    duration = touching.sum() * dt
    assert duration == pytest.approx(t_c, rel=2e-3)
    m_eff = 0.5 * (4 / 3) * math.pi * p.radius[0] ** 3
    e_expected = math.exp(-gamma_n / (2 * m_eff) * t_c)
    e = (res.packing.velocity[1, 0] - res.packing.velocity[0, 0]) / (2 * 0.5)
    assert e == pytest.approx(e_expected, rel=1e-3)


def test_dt_limits():
    law = granular.ContactLaw()
    p = _head_on(law)
    t_c = law.contact_duration(p.radius.min())
    with pytest.raises(ValueError, match="dt"):
        granular.run_md(p, law, dt=t_c / 9, steps=1, backend="cpu")
    res = granular.run_md(p, law, steps=1, backend="cpu")
    assert res.dt == pytest.approx(t_c / 50)


def test_nonfinite_state_is_reported_with_step():
    law = granular.ContactLaw()
    p = _head_on(law)
    p.velocity[0, 0] = np.inf
    with pytest.raises(granular.SimulationError, match="step 1"):
        granular.run_md(p, law, steps=5, backend="cpu")


@pytest.fixture(scope="module")
def jammed():
    """A dense bidisperse packing (delta = 0.5, X_S = 0.5, N = 400) compressed to phi = 0.70 and
    relaxed by FIRE."""
    law = granular.ContactLaw()
    p = granular.make_packing(0.5, 0.5, n=400, phi=0.3, seed=11)
    c = granular.compress(p, law, target_phi=0.70, strain_rate=0.02, damping=0.5, record_every=50,
                          backend="cpu")
    r = granular.fire_minimize(c.packing, law, force_tol=1e-12, backend="cpu")
    return c, r


def test_compression_reaches_target_and_records_history(jammed):
    c, _ = jammed
    assert c.packing.packing_fraction == pytest.approx(0.70, rel=1e-12)
    phi = c.history["phi"]
    assert phi[0] == pytest.approx(0.3) and np.all(np.diff(phi) > 0)
    assert c.history["pressure"][-1] > 0 and c.history["z"][-1] > 4
    assert np.all(np.diff(c.history["time"]) > 0)


def test_fire_reaches_force_tolerance_on_jammed_state(jammed):
    _, r = jammed
    assert r.converged and r.max_force <= 1e-12
    f = granular.forces(r.packing.position, r.packing.radius, r.packing.box, backend="cpu")
    assert np.abs(f).max() <= 1.5e-12  # independently recomputed
    b = granular.backbone(r.packing)
    assert b.z_backbone > 6.0  # above isostatic: jammed
    assert granular.pressure(r.packing).total > 1e-3


def test_unit_and_physical_mass_fire_reach_the_same_minimum():
    """FIRE's masses change the path, not the minima: from a rescaled minimum (a bisection step of
    find_jamming) at delta = 0.15 (mass ratio 296) both reach the same state."""
    law = granular.ContactLaw()
    p = granular.make_packing(0.15, 0.1, n_large=13, phi=0.3, seed=0)
    c = granular.compress(p, law, target_phi=0.80, strain_rate=0.05, damping=0.5, record_every=1000,
                          backend="cpu")
    base = granular.fire_minimize(c.packing, law, force_tol=1e-12, mass="physical", backend="cpu")
    start = granular.scale_to_phi(base.packing, 0.799)
    unit = granular.fire_minimize(start, law, force_tol=1e-13, mass="unit", backend="cpu")
    phys = granular.fire_minimize(start, law, force_tol=1e-13, mass="physical", backend="cpu")
    assert unit.converged and phys.converged and max(unit.max_force, phys.max_force) <= 1e-12
    assert unit.steps != phys.steps  # two different trajectories
    p_unit, p_phys = granular.pressure(unit.packing, law).total, granular.pressure(phys.packing, law).total
    assert p_phys > 1e-2 and abs(p_unit - p_phys) <= 1e-9 * p_phys
    assert unit.energy == pytest.approx(phys.energy, rel=1e-9)
    with pytest.raises(ValueError, match="mass"):
        granular.fire_minimize(start, law, mass="heavy", backend="cpu")


@pytest.mark.parametrize("model", ["linear", "hertz"])
def test_undamped_md_conserves_energy(jammed, model):
    _, r = jammed
    law = granular.ContactLaw(model=model)
    p = r.packing.copy()
    rng = np.random.default_rng(0)
    p.velocity[:] = rng.normal(size=p.velocity.shape) * 1e-2
    res = granular.run_md(p, law, steps=10_000, record_every=100, backend="cpu")
    energy = res.history["kinetic_energy"] + res.history["potential_energy"]
    assert res.history["kinetic_energy"][0] > 0.05 * energy[0]
    assert abs(energy[-1] - energy[0]) / energy[0] < 1e-4
    assert np.abs(energy - energy[0]).max() / energy[0] < 1e-4


def test_damped_md_loses_energy_monotonically(jammed):
    _, r = jammed
    p = r.packing.copy()
    p.velocity[:] = np.random.default_rng(1).normal(size=p.velocity.shape) * 1e-2
    res = granular.run_md(p, granular.ContactLaw(gamma_n=0.01), steps=2000, damping=0.2,
                          record_every=200, backend="cpu")
    energy = res.history["kinetic_energy"] + res.history["potential_energy"]
    assert np.all(np.diff(energy) < 0)


def test_resolve_backend(monkeypatch):
    monkeypatch.delenv("JAMWAVE_BACKEND", raising=False)
    assert granular.resolve_backend("cpu") == "cpu"
    monkeypatch.setenv("JAMWAVE_BACKEND", "cpu")
    assert granular.resolve_backend("auto") == "cpu"
    monkeypatch.setenv("JAMWAVE_BACKEND", "tpu")
    with pytest.raises(ValueError, match="JAMWAVE_BACKEND"):
        granular.resolve_backend()
    with pytest.raises(ValueError, match="backend"):
        granular.resolve_backend("gpu")


@pytest.mark.parametrize("log_scale", [-3e-3, 3e-3])
def test_verlet_list_stays_valid_under_fast_affine_deformation(log_scale):
    """Compression shrinks gaps faster than particles move: the rebuild criterion must account
    for it. The last forces of the loop must equal brute-force forces of the final positions."""
    from granular import loops_cpu

    p = granular.scale_to_phi(granular.make_packing(0.15, 0.1, n_large=30, phi=0.3, seed=2),
                              0.45 if log_scale < 0 else 0.75)
    p.velocity[:] = np.random.default_rng(2).normal(size=p.velocity.shape) * 0.05
    pos, vel, box = p.position.copy(), p.velocity.copy(), p.box.copy()
    law = granular.ContactLaw()
    dt = law.default_dt(p.radius.min())
    status, _, _, rebuilds, force, _ = loops_cpu.run_md(pos, vel, p.radius, p.species, box, 1.0, 0.0, 0, dt,
                                                         0.1, log_scale, 150, 0, 0.4 * p.radius.min())
    assert status == 0 and rebuilds > 3
    assert abs(box[0] / p.box[0] - np.exp(150 * log_scale)) < 1e-12
    f_ref = reference_forces(pos, p.radius, box)
    assert np.abs(force - f_ref).max() <= 1e-10 * np.abs(f_ref).max()


def test_decompression_reaches_lower_target():
    p = granular.scale_to_phi(granular.make_packing(0.5, 0.5, n=300, phi=0.3, seed=4), 0.62)
    c = granular.compress(p, granular.ContactLaw(), target_phi=0.5, strain_rate=0.05, damping=0.5,
                          record_every=10, backend="cpu")
    assert c.packing.packing_fraction == pytest.approx(0.5, rel=1e-12)
    assert np.all(np.diff(c.history["phi"]) < 0)
    with pytest.raises(ValueError, match="strain_rate"):
        granular.compress(p, granular.ContactLaw(), target_phi=0.5, strain_rate=-1.0, damping=0.5)


@pytest.mark.skipif(__import__("numba").config.NUMBA_NUM_THREADS < 2, reason="needs 2 Numba threads")
def test_multithreaded_chunks_match_single_thread(monkeypatch):
    """Two threads split the half list into two chunks with their own force buffers; forces,
    pressure and a short damped run must agree with one thread and the reference."""
    q = dense_random(0.5, 0.5, 500, 0.72, seed=9)
    monkeypatch.setenv("JAMWAVE_THREADS", "2")
    f2 = granular.forces(q.position, q.radius, q.box, backend="cpu")
    p2 = granular.pressure(q, backend="cpu")
    law = granular.ContactLaw(gamma_n=0.01)
    r2 = granular.run_md(q, law, steps=30, damping=0.1, record_every=10, backend="cpu")
    monkeypatch.setenv("JAMWAVE_THREADS", "1")
    r1 = granular.run_md(q, law, steps=30, damping=0.1, record_every=10, backend="cpu")
    f_ref = reference_forces(q.position, q.radius, q.box)
    assert np.abs(f2 - f_ref).max() <= 1e-10 * np.abs(f_ref).max()
    assert p2.total == pytest.approx(granular.pressure(q, backend="cpu").total, rel=1e-12)
    assert np.abs(r2.packing.position - r1.packing.position).max() < 1e-10
    assert np.allclose(r2.history["pressure"], r1.history["pressure"], rtol=1e-10)
