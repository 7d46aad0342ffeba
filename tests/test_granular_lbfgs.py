"""L-BFGS at fixed box (granular.lbfgs): the same minimum as FIRE and as scipy's L-BFGS on the
brute-force energy, the unjammed certificate, wrapped positions, input errors, and find_jamming with
``minimizer="lbfgs"``."""

from __future__ import annotations

import numpy as np
import pytest

import granular
from granular.lbfgs import LbfgsParams, lbfgs_minimize
from granular.minimize import relax, unjammed_energy


@pytest.fixture(scope="module")
def near_minimum():
    """A jammed delta 0.5, X_S 0.5, N 120 packing relaxed at phi 0.72, decompressed by 2e-4."""
    law = granular.ContactLaw()
    p = granular.make_packing(0.5, 0.5, n=120, phi=0.3, seed=2)
    c = granular.compress(p, law, target_phi=0.72, strain_rate=0.05, damping=0.5, record_every=10**6,
                          backend="cpu")
    base = granular.fire_minimize(c.packing, law, force_tol=1e-12, backend="cpu")
    return granular.scale_to_phi(base.packing, 0.7198)


def _relative(a, b, box):
    d = b - a
    d -= box * np.round(d / box)
    return d - d.mean(axis=0)


def test_lbfgs_reaches_the_minimum_fire_reaches(near_minimum):
    law = granular.ContactLaw()
    fire = granular.fire_minimize(near_minimum, law, force_tol=1e-13, backend="cpu")
    res = lbfgs_minimize(near_minimum, law, force_tol=1e-13)
    assert res.converged and res.stop == "converged" and res.max_force <= 1e-13
    assert res.energy == pytest.approx(fire.energy, rel=1e-8)
    assert res.force_evaluations >= res.iterations + 1 and res.steps == res.force_evaluations
    assert res.force_evaluations < fire.force_evaluations  # a short relaxation: L-BFGS needs fewer calls
    jammed = granular.backbone(fire.packing).jammed
    d = _relative(fire.packing.position[jammed], res.packing.position[jammed], near_minimum.box)
    assert np.abs(d).max() < 1e-7
    box = res.packing.box
    assert np.all((res.packing.position >= 0) & (res.packing.position < box))  # wrapped
    assert np.all(res.packing.velocity == 0)
    p_fire, p_lbfgs = granular.pressure(fire.packing, law).total, granular.pressure(res.packing, law).total
    assert p_lbfgs == pytest.approx(p_fire, rel=1e-8)
    # the energy decreases: a second call from the minimum stops at once
    again = lbfgs_minimize(res.packing, law, force_tol=1e-13)
    assert again.iterations == 0 and again.converged


def test_memory_and_step_cap_change_the_path_not_the_minimum(near_minimum):
    law = granular.ContactLaw()
    a = lbfgs_minimize(near_minimum, law, params=LbfgsParams(memory=3, max_move=0.02))
    b = lbfgs_minimize(near_minimum, law, params=LbfgsParams(memory=20, max_move=0.2))
    c = lbfgs_minimize(near_minimum, law, params=LbfgsParams(preconditioner="none"))
    assert a.converged and b.converged and c.converged
    assert len({a.iterations, b.iterations, c.iterations}) == 3
    assert a.energy == pytest.approx(b.energy, rel=1e-8) and c.energy == pytest.approx(b.energy, rel=1e-8)


def test_long_moves_through_list_rebuilds():
    """Random overlapping spheres at phi 0.5: particles move far (many list builds, positions leave
    the box between builds); the result has no overlap left and wrapped positions."""
    law = granular.ContactLaw()
    q = granular.scale_to_phi(granular.make_packing(0.5, 0.5, n=150, phi=0.3, seed=5), 0.5)
    q.position[:] = np.random.default_rng(5).random(q.position.shape) * q.box
    res = lbfgs_minimize(q, law)
    assert res.converged and res.rebuilds > 3
    assert granular.pressure(res.packing, law).total < 1e-10
    assert np.all((res.packing.position >= 0) & (res.packing.position < res.packing.box))
    stopped = lbfgs_minimize(q, law, max_steps=5)
    assert stopped.stop == "max_steps" and stopped.iterations == 5 and not stopped.converged


def test_energy_stop_and_relax(near_minimum):
    law = granular.ContactLaw()
    q = granular.scale_to_phi(granular.make_packing(0.5, 0.5, n=120, phi=0.3, seed=4), 0.6)
    q.position[:] = np.random.default_rng(4).random(q.position.shape) * q.box
    e = unjammed_energy(q, 1e-6, law)
    short = lbfgs_minimize(q, law, energy_tol=e)
    assert short.stop == "energy" and short.energy <= e and not short.converged
    r = relax(q, law, force_tol=1e-12, max_steps=10**5, backend="cpu", unjammed_pressure=1e-6,
              relaxer="lbfgs")
    assert r.steps == short.force_evaluations and r.pressure < 1e-6
    jammed = relax(near_minimum, law, force_tol=1e-12, max_steps=10**5, backend="cpu", relaxer="lbfgs")
    fire = relax(near_minimum, law, force_tol=1e-12, max_steps=10**5, backend="cpu")
    assert jammed.pressure == pytest.approx(fire.pressure, rel=1e-8)
    with pytest.raises(RuntimeError, match="L-BFGS did not converge"):
        relax(near_minimum, law, force_tol=1e-12, max_steps=3, backend="cpu", relaxer="lbfgs")


@pytest.mark.parametrize("kwargs,match", [
    ({"memory": 0}, "memory"), ({"memory": 2.5}, "memory"), ({"memory": True}, "memory"),
    ({"max_move": 0.0}, "max_move"), ({"max_move": 1.5}, "max_move"),
    ({"max_move": float("nan")}, "max_move"), ({"preconditioner": "physical"}, "preconditioner"),
])
def test_params_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LbfgsParams(**kwargs)


def test_minimize_validation(near_minimum):
    for kwargs, match in (({"force_tol": 0.0}, "force_tol"), ({"max_steps": -1}, "max_steps"),
                          ({"energy_tol": -1.0}, "energy_tol"), ({"backend": "cuda"}, "backend"),
                          ({"params": {"memory": 3}}, "params")):
        with pytest.raises(ValueError, match=match):
            lbfgs_minimize(near_minimum, **kwargs)


def test_find_jamming_with_lbfgs_agrees_with_fire():
    """Monodisperse N 128, seeds 0-2: phi_J with L-BFGS relaxations within the seed scatter of the
    FIRE bisection's (the minimisers take different paths, so single seeds may differ), with fewer
    force evaluations in total."""
    fire, lbfgs, fire_steps, lbfgs_steps = [], [], 0, 0
    for seed in range(3):
        p = granular.make_packing(1.0, 0.5, n=128, phi=0.3, seed=seed)
        a = granular.find_jamming(p, backend="cpu")
        b = granular.find_jamming(p, backend="cpu", minimizer="lbfgs")
        fire.append(a.phi_j)
        lbfgs.append(b.phi_j)
        fire_steps += int(np.sum(a.history["steps"]))
        lbfgs_steps += int(np.sum(b.history["steps"]))
        assert 0.60 < b.phi_j < 0.66 and b.pressure <= 2e-6
    scatter = max(np.std(fire), 2e-3)
    assert abs(np.mean(lbfgs) - np.mean(fire)) < 3 * scatter
    assert lbfgs_steps < fire_steps
    with pytest.raises(ValueError, match="minimizer"):
        granular.find_jamming(p, backend="cpu", minimizer="cg")


def test_pressure_ladder_with_lbfgs_matches_its_bisection():
    """The ladder's rungs relaxed by L-BFGS: phi_J within 1e-3 of the L-BFGS bisection on the same
    packing (the same approach states), P of the stored packing in the band."""
    p = granular.make_packing(1.0, 0.5, n=128, phi=0.3, seed=1)
    a = granular.find_jamming(p, backend="cpu", minimizer="lbfgs")
    b = granular.find_jamming(p, backend="cpu", minimizer="lbfgs", method="ladder")
    assert b.criterion == "ladder fit" and 1e-6 <= b.pressure <= 2e-6
    assert abs(a.phi_j - b.phi_j) < 1e-3
