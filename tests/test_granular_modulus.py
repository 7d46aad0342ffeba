"""Bulk modulus of DEM packings: strain method against Hessian linear response, partial moduli,
state following and the second transition."""

from __future__ import annotations

import numpy as np
import pytest

from granular.contact import ContactLaw
from granular.elasticity import bulk_modulus, linear_response
from granular.follow import follow_compression, second_transition
from granular.generate import make_packing
from granular.jamming import compress_to, find_jamming
from granular.measure import pressure
from granular.space import scale_to_phi

MIX_DELTA = 1 / 1.4
MIX_XS = MIX_DELTA**3 / (1 + MIX_DELTA**3)


# Parallel kernels on a loaded 2-core machine spend their time in thread hand-offs.
pytestmark = pytest.mark.usefixtures("one_numba_thread")


@pytest.fixture(scope="module")
def mixture():
    jam = find_jamming(make_packing(MIX_DELTA, MIX_XS, n=200, phi=0.3, seed=3))
    return jam, compress_to(jam.packing, jam.phi_j + 1e-2)


def test_strain_and_linear_response_agree_within_2_percent(mixture):
    _, state = mixture
    m = bulk_modulus(state, strain=1e-5)
    assert m.K > 0
    assert abs(m.K - m.K_linear_response) / m.K_linear_response < 0.02
    assert m.K_SS + m.K_SL + m.K_LL == pytest.approx(m.K, rel=1e-6)
    assert m.K_linear_response_SS + m.K_linear_response_SL + m.K_linear_response_LL == pytest.approx(
        m.K_linear_response, rel=1e-9)
    for a, b in ((m.K_SS, m.K_linear_response_SS), (m.K_SL, m.K_linear_response_SL),
                 (m.K_LL, m.K_linear_response_LL)):
        assert a == pytest.approx(b, rel=0.05, abs=0.01 * m.K)
    assert m.K_star == pytest.approx(m.K)  # d_L = 1, k_n = 1
    assert m.pressure == pytest.approx(pressure(state).total, rel=1e-6)


def test_modulus_scales_with_stiffness(mixture):
    _, state = mixture
    soft = linear_response(state, ContactLaw(k_n=1.0)).K
    stiff = bulk_modulus(state, ContactLaw(k_n=10.0), method="linear_response")
    assert stiff.K_linear_response == pytest.approx(10 * soft, rel=1e-6)
    assert stiff.K_star == pytest.approx(soft, rel=1e-6)


def test_modulus_jumps_to_finite_value_at_jamming(mixture):
    # K ~ (phi - phi_J)^0 for harmonic contacts, while P ~ (phi - phi_J)^1
    jam, _ = mixture
    near = bulk_modulus(compress_to(jam.packing, jam.phi_j + 1e-3), method="linear_response")
    far = bulk_modulus(compress_to(jam.packing, jam.phi_j + 1e-2), method="linear_response")
    assert far.pressure / near.pressure > 5
    assert 0.5 < far.K_linear_response / near.K_linear_response < 2.0


def test_bad_input(mixture):
    jam, state = mixture
    below = scale_to_phi(jam.packing, jam.phi_j - 0.02)
    with pytest.raises(ValueError, match="below jamming"):
        bulk_modulus(below)
    with pytest.raises(ValueError, match="strain"):
        bulk_modulus(state, strain=0.05)
    with pytest.raises(ValueError, match="strain"):
        bulk_modulus(state, strain=0.0)
    with pytest.raises(ValueError, match="method"):
        bulk_modulus(state, method="guess")
    with pytest.raises(ValueError, match="not small"):
        bulk_modulus(compress_to(jam.packing, jam.phi_j + 1e-4), strain=1e-2)


def test_second_transition_criterion():
    phi = np.array([0.70, 0.71, 0.72, 0.73])
    assert second_transition(phi, np.array([0.1, 0.2, 0.8, 0.9]))[:2] == (pytest.approx(0.715), "crossing")
    assert second_transition(phi, np.array([0.6, 0.7, 0.8, 0.9]))[:2] == (0.70, "coincident")
    p2, crit, jump = second_transition(phi, np.array([0.1, 0.1, 0.2, 0.3]))
    assert np.isnan(p2) and crit == "not reached" and jump == pytest.approx(0.1)
    assert second_transition(phi, np.zeros(4), n_small=0)[1] == "no small particles"
    with pytest.raises(ValueError, match="threshold"):
        second_transition(phi, np.zeros(4), threshold=1.5)


def test_state_following_records_the_path(mixture):
    jam, _ = mixture
    f = follow_compression(jam.packing, phi_step=5e-3, n_steps=3)
    h = f.history
    assert np.allclose(np.diff(h["phi"]), 5e-3)
    assert np.all(np.diff(h["pressure"]) > 0)
    assert np.all(np.diff(h["Z_backbone"]) > 0)
    assert np.allclose(h["pressure_SS"] + h["pressure_SL"] + h["pressure_LL"], h["pressure"])
    assert np.all(h["K"] > 0)
    # this mixture jams with its small particles: the transitions coincide
    assert f.criterion == "coincident" and f.phi_second == pytest.approx(h["phi"][0])


def test_second_transition_of_strongly_asymmetric_mixture():
    # delta = 0.15, X_S = 0.1 (below X*_S ~ 0.21): at the first transition most small particles
    # rattle inside a backbone of large ones; they jam at a clearly higher phi.
    jam = find_jamming(make_packing(0.15, 0.1, n_large=15, phi=0.3, seed=0))
    f = follow_compression(jam.packing, phi_step=0.02, phi_max=jam.phi_j + 0.2, stop_after_second=True)
    assert f.history["jammed_fraction_small"][0] < 0.5
    assert f.criterion == "crossing"
    assert f.phi_second > jam.phi_j + 0.01
    assert f.jump > 0.1


@pytest.mark.slow
def test_methods_agree_at_n1000():
    jam = find_jamming(make_packing(MIX_DELTA, MIX_XS, n=1000, phi=0.3, seed=0))
    m = bulk_modulus(compress_to(jam.packing, jam.phi_j + 1e-2))
    print(f"N=1000: K strain {m.K:.5f}, K linear response {m.K_linear_response:.5f}")
    assert abs(m.K - m.K_linear_response) / m.K_linear_response < 0.02
