"""The jamming point: bisection with FIRE, compression-decompression, isostaticity, scaling laws."""

from __future__ import annotations

import numpy as np
import pytest

from granular.contact import ContactLaw
from granular.generate import make_packing
from granular.jamming import compress_to, find_jamming
from granular.measure import backbone, pressure

MIX_DELTA = 1 / 1.4  # 50:50 by number, diameter ratio 1.4
MIX_XS = MIX_DELTA**3 / (1 + MIX_DELTA**3)


# Parallel kernels on a loaded 2-core machine spend their time in thread hand-offs.
pytestmark = pytest.mark.usefixtures("one_numba_thread")


@pytest.fixture(scope="module")
def mono_jammed():
    return find_jamming(make_packing(1.0, 0.0, n=200, phi=0.3, seed=1))


def test_bisection_brackets_and_hits_the_pressure_band(mono_jammed):
    r = mono_jammed
    assert r.criterion == "pressure band"
    assert 1e-6 <= r.pressure <= 2e-6
    assert r.phi_low <= r.phi_j <= r.phi_high
    assert r.bracket_width < 1e-3
    assert pressure(r.packing).total == pytest.approx(r.pressure, rel=1e-9)
    # every relaxed state of the history is listed in order, and the band state is the last one
    assert r.history["phi"][-1] == pytest.approx(r.phi_j)
    pressures, phis = np.asarray(r.history["pressure"]), np.asarray(r.history["phi"])
    earlier, earlier_phi = pressures[:-1], phis[:-1]
    # the first relaxed state inside the band ends the search: no earlier state is in it
    assert not np.any((earlier >= 1e-6) & (earlier <= 2e-6))
    # bracketed from both sides, every unjammed state below phi_J and every jammed one above it
    unjammed, jammed = earlier_phi[earlier < 1e-6], earlier_phi[earlier > 2e-6]
    assert unjammed.size > 0 and jammed.size > 0
    assert unjammed.max() == pytest.approx(r.phi_low)
    assert unjammed.max() < r.phi_j < jammed.min()


def test_monodisperse_phi_j_and_isostatic_backbone(mono_jammed):
    # N = 200: finite-size phi_J scatter is ~0.005 around ~0.635 (O'Hern et al. 2003)
    assert 0.62 < mono_jammed.phi_j < 0.65
    bb = backbone(mono_jammed.packing)
    assert abs(bb.z_backbone - 6.0) < 0.15
    assert bb.n_rattlers < 0.05 * mono_jammed.packing.n


def test_pressure_and_contact_scaling_above_jamming(mono_jammed):
    excess = np.logspace(-3.5, -1, 6)
    phi_j = mono_jammed.phi_j
    state = mono_jammed.packing
    p, z = [], []
    for d in excess:
        state = compress_to(state, phi_j + d)
        p.append(pressure(state).total)
        z.append(backbone(state).z_backbone)
    slope_p = np.polyfit(np.log(excess), np.log(p), 1)[0]
    slope_z = np.polyfit(np.log(excess), np.log(np.array(z) - 6.0), 1)[0]
    assert abs(slope_p - 1.0) < 0.15, slope_p
    assert abs(slope_z - 0.5) < 0.15, slope_z


def test_cut_short_relaxation_is_refused():
    with pytest.raises(RuntimeError, match="did not converge"):
        find_jamming(make_packing(1.0, 0.0, n=100, phi=0.3, seed=0), max_steps=20, phi_step=0.1)


def test_starting_above_jamming_decompresses():
    p = compress_to(make_packing(1.0, 0.0, n=120, phi=0.3, seed=2), 0.70)
    r = find_jamming(p, phi_step=0.02)
    assert r.criterion == "pressure band"
    assert 0.6 < r.phi_j < 0.66
    assert r.history["pressure"][0] > 2e-6


def test_compression_decompression_agrees_with_bisection():
    start = make_packing(MIX_DELTA, MIX_XS, n=80, phi=0.3, seed=4)
    a = find_jamming(start, method="bisection")
    b = find_jamming(start, method="compress", phi_step=0.02)
    assert b.criterion == "decompression"
    assert b.phi_low <= b.phi_j <= b.phi_high
    assert abs(a.phi_j - b.phi_j) < 0.01


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "shake"}, "method"),
        ({"pressure_band": (2e-6, 1e-6)}, "pressure_band"),
        ({"phi_step": 0.0}, "phi_step"),
        ({"phi_step": 0.5}, "phi_step"),
        ({"force_tol": -1.0}, "force_tol"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        find_jamming(make_packing(1.0, 0.0, n=50, phi=0.3), ContactLaw(), **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_binary_mixture_reference_n2000(seed):
    """50:50 mixture, diameter ratio 1.4, N = 2000: O'Hern et al. give 0.648 for this protocol at large
    N; LAMMPS compressing in steps of 0.002 with FIRE gave 0.642-0.644."""
    r = find_jamming(make_packing(MIX_DELTA, MIX_XS, n=2000, phi=0.3, seed=seed), max_steps=10**7)
    print(f"mixture N=2000 seed {seed}: phi_J = {r.phi_j:.5f}, Z = {backbone(r.packing).z_backbone:.3f}")
    assert 0.638 < r.phi_j < 0.652
    assert abs(backbone(r.packing).z_backbone - 6.0) < 0.1


@pytest.mark.slow
def test_monodisperse_reference_n1000():
    r = find_jamming(make_packing(1.0, 0.0, n=1000, phi=0.3, seed=0), max_steps=10**7)
    print(f"monodisperse N=1000: phi_J = {r.phi_j:.5f}, Z = {backbone(r.packing).z_backbone:.3f}")
    assert 0.630 < r.phi_j < 0.645
    assert abs(backbone(r.packing).z_backbone - 6.0) < 0.1
