"""FIRE 2.0 and its preconditioners (granular.minimize): the same minimum in both mixing metrics and as
scipy's L-BFGS on the brute-force energy, parameter validation, and the CUDA loop against the CPU."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

import granular
from granular.backend import cuda_usable
from granular.minimize import FireParams, pressure_bound, relax, unjammed_energy
from granular.reference import reference_contacts, reference_forces

VARIANTS = [("physical", "mass-metric"), ("physical", "euclidean"), ("unit", "mass-metric"),
            ("jacobi", "mass-metric")]


@pytest.fixture(scope="module")
def near_minimum():
    """A jammed bidisperse packing (delta 0.5, X_S 0.5, N 120) relaxed at phi = 0.72, then
    decompressed by 2e-4 in phi: the start of one bisection step of find_jamming."""
    law = granular.ContactLaw()
    p = granular.make_packing(0.5, 0.5, n=120, phi=0.3, seed=2)
    c = granular.compress(p, law, target_phi=0.72, strain_rate=0.05, damping=0.5, record_every=10**6,
                          backend="cpu")
    base = granular.fire_minimize(c.packing, law, force_tol=1e-12, backend="cpu")
    assert base.converged and granular.pressure(base.packing, law).total > 1e-3
    return granular.scale_to_phi(base.packing, 0.7198)


def _relative(a, b, box):
    """Displacement b - a (minimum image) with the mean removed (FIRE may translate the packing)."""
    d = b - a
    d -= box * np.round(d / box)
    return d - d.mean(axis=0)


def _energy(flat, radius, box):
    x = flat.reshape(-1, 3)
    c = reference_contacts(x, radius, box)
    return 0.5 * float(np.sum(c["overlap"] ** 2)), -reference_forces(x, radius, box).ravel()


@pytest.fixture(scope="module")
def relaxed(near_minimum):
    law = granular.ContactLaw()
    out = {}
    for pre, variant in VARIANTS:
        out[pre, variant] = granular.fire_minimize(near_minimum, law, force_tol=1e-13, preconditioner=pre,
                                                   params=FireParams(variant=variant), backend="cpu")
    return out


def test_every_variant_reaches_the_minimum_scipy_finds(near_minimum, relaxed):
    q = near_minimum
    ref = minimize(_energy, q.position.ravel(), args=(q.radius, q.box), jac=True, method="L-BFGS-B",
                   options={"gtol": 1e-14, "ftol": 1e-20, "maxiter": 100000, "maxcor": 30})
    x_ref = ref.x.reshape(-1, 3)
    e_ref = _energy(ref.x, q.radius, q.box)[0]
    assert np.abs(reference_forces(x_ref, q.radius, q.box)).max() < 1e-8
    steps = set()
    for key, r in relaxed.items():
        assert r.converged and r.max_force <= 1e-13 and r.stop == "converged", key
        assert r.force_evaluations == r.steps + 1
        steps.add(r.steps)
        assert r.energy == pytest.approx(e_ref, rel=1e-8), key
        jammed = granular.backbone(r.packing).jammed  # rattlers may sit anywhere in their cages
        assert jammed.sum() > 0.9 * q.n
        d = _relative(x_ref[jammed], r.packing.position[jammed], q.box)
        assert np.abs(d).max() < 1e-6, key
    assert len(steps) == len(VARIANTS)  # four different paths


def test_preconditioners_reach_the_same_positions(relaxed, near_minimum):
    base = relaxed["physical", "mass-metric"].packing
    jammed = granular.backbone(base).jammed
    for key, r in relaxed.items():
        d = _relative(base.position[jammed], r.packing.position[jammed], base.box)
        assert np.abs(d).max() < 1e-8, key
        assert granular.pressure(r.packing).total == pytest.approx(granular.pressure(base).total, rel=1e-9)


def test_euclidean_and_mass_metric_agree_with_unit_masses(near_minimum):
    """With unit masses the two metrics coincide: the variants differ only in the dt_min rule,
    which a short run never reaches, so the trajectories agree."""
    law = granular.ContactLaw()
    a = granular.fire_minimize(near_minimum, law, max_steps=300, preconditioner="unit",
                               params=FireParams(variant="mass-metric"), backend="cpu")
    b = granular.fire_minimize(near_minimum, law, max_steps=300, preconditioner="unit",
                               params=FireParams(variant="euclidean"), backend="cpu")
    assert a.steps == b.steps == 300 and a.stop == "max_steps" and not a.converged
    assert np.abs(a.packing.position - b.packing.position).max() < 1e-12
    c = granular.fire_minimize(near_minimum, law, max_steps=300, params=FireParams(variant="euclidean"),
                               backend="cpu")
    d = granular.fire_minimize(near_minimum, law, max_steps=300, params=FireParams(variant="mass-metric"),
                               backend="cpu")
    assert np.abs(c.packing.position - d.packing.position).max() > 1e-10  # the metric matters


def test_relax_takes_the_preconditioner(near_minimum):
    law = granular.ContactLaw()
    a = relax(near_minimum, law, force_tol=1e-12, max_steps=10**5, backend="cpu", preconditioner="jacobi")
    b = relax(near_minimum, law, force_tol=1e-12, max_steps=10**5, backend="cpu")
    assert a.steps != b.steps and a.pressure == pytest.approx(b.pressure, rel=1e-8)


def test_energy_stop_certifies_an_unjammed_state():
    """Random overlapping spheres at phi = 0.6 (below jamming): FIRE stops once the energy bound
    certifies P < 1e-6, long before max |F| <= 1e-12, and the converged state agrees."""
    law = granular.ContactLaw()
    q = granular.scale_to_phi(granular.make_packing(0.5, 0.5, n=120, phi=0.3, seed=4), 0.6)
    q.position[:] = np.random.default_rng(4).random(q.position.shape) * q.box
    e = unjammed_energy(q, 1e-6, law)
    assert pressure_bound(q, e, law) < 1e-6 < pressure_bound(q, 1.001 * e, law)
    short = granular.fire_minimize(q, law, energy_tol=e, backend="cpu")
    full = granular.fire_minimize(q, law, backend="cpu")
    assert short.stop == "energy" and not short.converged and short.energy <= e
    assert full.converged and short.steps < full.steps
    assert granular.pressure(full.packing, law).total < 1e-6
    r = relax(q, law, force_tol=1e-12, max_steps=10**5, backend="cpu", unjammed_pressure=1e-6,
              certify="step")
    assert r.steps == short.steps and r.pressure < 1e-6
    with pytest.raises(ValueError, match="certify"):
        relax(q, law, force_tol=1e-12, max_steps=10, backend="cpu", certify="never")
    with pytest.raises(ValueError, match="energy_tol"):
        granular.fire_minimize(q, law, energy_tol=-1.0, backend="cpu")
    hertz = granular.ContactLaw(model="hertz")
    e = unjammed_energy(q, 1e-6, hertz)
    assert pressure_bound(q, e, hertz) < 1e-6 < pressure_bound(q, 1.001 * e, hertz)


@pytest.mark.parametrize("kwargs,match", [
    ({"variant": "fire3"}, "variant"), ({"n_delay": -1}, "n_delay"), ({"n_delay": 2.5}, "n_delay"),
    ({"f_inc": 0.9}, "f_inc"), ({"f_dec": 1.0}, "f_dec"), ({"alpha_start": 0.0}, "alpha_start"),
    ({"f_alpha": 1.5}, "f_alpha"), ({"dt_max_factor": 0.5}, "dt_max_factor"),
    ({"dt_min_factor": -0.1}, "dt_min_factor"), ({"max_uphill": -1}, "max_uphill"),
    ({"jacobi_floor": 0.0}, "jacobi_floor"), ({"initial_delay": 1}, "initial_delay"),
    ({"f_inc": float("nan")}, "f_inc"),
])
def test_fire_params_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FireParams(**kwargs)


def test_fire_minimize_validation(near_minimum):
    law = granular.ContactLaw()
    with pytest.raises(ValueError, match="preconditioner"):
        granular.fire_minimize(near_minimum, law, preconditioner="heavy", backend="cpu")
    with pytest.raises(ValueError, match="dt must be in"):
        granular.fire_minimize(near_minimum, law, preconditioner="jacobi", dt=2.0, backend="cpu")
    with pytest.raises(ValueError, match="params"):
        granular.fire_minimize(near_minimum, law, params={"n_delay": 5}, backend="cpu")
    with pytest.raises(ValueError, match="max_steps"):
        granular.fire_minimize(near_minimum, law, max_steps=-1, backend="cpu")


def test_stuck_stop_is_reported(near_minimum):
    """A time step far above stability makes every step uphill: with max_uphill the loop stops."""
    law = granular.ContactLaw()
    r = granular.fire_minimize(near_minimum, law, preconditioner="jacobi", dt=1.0,
                               params=FireParams(max_uphill=3, dt_min_factor=1.0, n_delay=0,
                                                 f_inc=2.0, dt_max_factor=100.0),
                               max_steps=5000, backend="cpu")
    assert r.stop == "stuck" and not r.converged and r.resets >= 4


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_usable(), reason="needs a CUDA GPU or NUMBA_ENABLE_CUDASIM=1")
@pytest.mark.parametrize("pre,variant,energy_tol", [
    ("physical", "mass-metric", 0.0), ("physical", "euclidean", 0.0), ("jacobi", "mass-metric", 0.0),
    ("unit", "mass-metric", 1.0)])
def test_cuda_fire_equals_cpu(pre, variant, energy_tol):
    """The device loop (reads its state once per block of steps; rebuilds and convergence halt
    inside a block) follows the CPU loop step by step, list rebuilds included, and stops at the
    same step."""
    p = granular.make_packing(0.5, 0.5, n=90, phi=0.3, seed=3)
    q = granular.scale_to_phi(p, 0.7)
    q.position[:] = np.random.default_rng(3).random(q.position.shape) * q.box
    law = granular.ContactLaw()
    params = FireParams(variant=variant)
    a = granular.fire_minimize(q, law, max_steps=21, preconditioner=pre, params=params, backend="cuda")
    b = granular.fire_minimize(q, law, max_steps=21, preconditioner=pre, params=params, backend="cpu")
    assert a.steps == b.steps == 21 and a.resets == b.resets and a.rebuilds == b.rebuilds > 2
    assert a.max_force == pytest.approx(b.max_force, rel=1e-12)
    assert a.energy == pytest.approx(b.energy, rel=1e-12)
    assert np.abs(a.packing.position - b.packing.position).max() < 1e-12
    if energy_tol:  # stop on the energy, between two checks of the host
        e = granular.fire_minimize(q, law, max_steps=5, preconditioner=pre, params=params,
                                   backend="cpu").energy
        c = granular.fire_minimize(q, law, preconditioner=pre, params=params, energy_tol=e, backend="cuda")
        d = granular.fire_minimize(q, law, preconditioner=pre, params=params, energy_tol=e, backend="cpu")
        assert c.stop == d.stop == "energy" and c.steps == d.steps <= 5 and c.energy <= e
        return
    tol = 1.01 * b.max_force  # reached at step 21 or before: both stop at the same step
    c = granular.fire_minimize(q, law, force_tol=tol, preconditioner=pre, params=params, backend="cuda")
    d = granular.fire_minimize(q, law, force_tol=tol, preconditioner=pre, params=params, backend="cpu")
    assert c.converged and d.converged and c.steps == d.steps <= 21
