"""The pressure ladder to phi_J: agreement with bisection, the P(phi) line, validation, CLI."""

from __future__ import annotations

import numpy as np
import pytest

from granular.contact import ContactLaw
from granular.generate import make_packing
from granular.h5md import read_group
from granular.jamming import find_jamming
from granular.measure import backbone, pressure
from granular.pressure_ladder import CRITERION, LadderSettings, fit_pressure_line
from jamwave.cli import main

MIX_DELTA = 1 / 1.4  # 50:50 by number, diameter ratio 1.4
MIX_XS = MIX_DELTA**3 / (1 + MIX_DELTA**3)

pytestmark = pytest.mark.usefixtures("one_numba_thread")


@pytest.fixture(scope="module")
def both():
    """Bisection and ladder on the same packing (monodisperse, N = 200)."""
    start = make_packing(1.0, 0.0, n=200, phi=0.3, seed=1)
    return find_jamming(start, method="bisection"), find_jamming(start, method="ladder")


def test_ladder_matches_bisection_on_the_same_packing(both):
    # N = 200: phi_J scatters by ~0.005 from seed to seed (O'Hern et al. 2003; test_granular_jamming);
    # the two protocols on the same packing must agree far inside that (measured: 4e-6).
    bis, lad = both
    assert lad.criterion == CRITERION and lad.method == "ladder"
    assert abs(lad.phi_j - bis.phi_j) < 2e-4
    assert lad.phi_low <= lad.phi_j <= lad.phi_high
    assert lad.phi_j_error < 1e-4
    # landed in the band: the stored state is a jamming-point packing, as the bisection's
    assert 1e-6 <= lad.pressure <= 2e-6
    assert pressure(lad.packing).total == pytest.approx(lad.pressure, rel=1e-9)
    assert abs(backbone(lad.packing).z_backbone - 6.0) < 0.1
    # fewer relaxations than the bisection, and the fit used the ladder's jammed states
    assert len(lad.history["phi"]) < len(bis.history["phi"])
    assert lad.fit.n_points >= 3


def test_relaxed_pressures_lie_on_a_line(both):
    _, lad = both
    phi, p = lad.history["phi"], lad.history["pressure"]
    jammed = (p > 1e-6) & (p < 2e-3)
    fit = fit_pressure_line(phi[jammed], p[jammed])
    assert fit.slope > 0 and fit.slope == pytest.approx(lad.fit.slope, rel=1e-9)
    assert fit.rms_relative_residual < 0.05
    # every jammed ladder state lies above the zero of the line, and P grows with phi
    assert np.all(phi[jammed] > fit.phi_j)
    order = np.argsort(phi[jammed])
    assert np.all(np.diff(p[jammed][order]) > 0)


def test_line_fit_recovers_a_known_line():
    phi_j, slope = 0.64, 0.4
    phi = phi_j + np.array([1e-5, 1e-4, 1e-3, 3e-3])
    fit = fit_pressure_line(phi, slope * (phi - phi_j))
    assert fit.phi_j == pytest.approx(phi_j, abs=1e-12)
    assert fit.slope == pytest.approx(slope, rel=1e-9)
    assert fit.phi_j_error < 1e-12 and fit.rms_relative_residual < 1e-9
    rng = np.random.default_rng(0)
    noisy = slope * (phi - phi_j) * (1 + 1e-2 * rng.standard_normal(phi.size))
    fit = fit_pressure_line(phi, noisy)
    assert abs(fit.phi_j - phi_j) < 5 * fit.phi_j_error + 1e-7
    assert np.isnan(fit_pressure_line(phi[:2], slope * (phi[:2] - phi_j)).phi_j_error)


@pytest.mark.parametrize(
    "phi, p, match",
    [([0.64], [1e-4], "length"), ([0.64, 0.65], [1e-4, 0.0], "pressure"),
     ([0.64, 0.64], [1e-4, 2e-4], "distinct")],
)
def test_line_fit_refuses_bad_data(phi, p, match):
    with pytest.raises(ValueError, match=match):
        fit_pressure_line(phi, p)


@pytest.mark.parametrize(
    "kwargs",
    [{"pressures": (1e-4, 1e-3)}, {"pressures": (1e-3,)}, {"pressures": (1e-3, -1e-4)},
     {"pressures": (1e-3, float("nan"))}, {"fit_max": 0.0}, {"approach_steps": 0},
     {"approach_steps": 2.5}, {"rung_cap": 0.5}],
)
def test_ladder_settings_validation(kwargs):
    with pytest.raises(ValueError, match="pressures|fit_max|approach_steps|rung_cap"):
        LadderSettings(**kwargs)


def test_find_jamming_refuses_a_wrong_ladder_argument():
    start = make_packing(1.0, 0.0, n=50, phi=0.3)
    with pytest.raises(ValueError, match="ladder"):
        find_jamming(start, ContactLaw(), method="ladder", ladder=(1e-3, 1e-4))
    with pytest.raises(ValueError, match="method"):
        find_jamming(start, ContactLaw(), method="quench")


def test_ladder_without_landing_on_a_mixture():
    start = make_packing(MIX_DELTA, MIX_XS, n=150, phi=0.3, seed=3)
    bis = find_jamming(start, method="bisection")
    lad = find_jamming(start, method="ladder", ladder=LadderSettings(pressures=(1e-3, 1e-4, 1e-5),
                                                                      land=False))
    assert abs(lad.phi_j - bis.phi_j) < 2e-4
    assert lad.pressure > 2e-6  # not landed: the stored state is the lowest rung
    assert lad.phi_j < lad.phi_high


def test_cli_jam_with_the_ladder(tmp_path, capsys):
    out = tmp_path / "ladder.h5"
    status = main(["granular", "jam", "--delta", "1", "--xs", "0", "--n", "120", "--seed", "1",
                   "--out", str(out), "--method", "ladder", "--backend", "cpu"])
    assert status == 0
    text = capsys.readouterr().out
    assert "ladder fit" in text and "(fit)" in text
    params = read_group(out, "/parameters/jamwave")
    assert params["method"] == "ladder" and params["criterion"] == CRITERION
    assert np.allclose(params["ladder_pressures"], LadderSettings().pressures)
    results = read_group(out, "results")
    assert results["phi_J_low"] <= results["phi_J"] <= results["phi_J_high"]
    assert 0 < results["phi_J_error"] < 1e-3


@pytest.mark.parametrize(
    "extra, word",
    [(["--method", "shake"], "--method"), (["--method", "quench"], "--method")],
)
def test_cli_bad_method_arguments_exit_2(tmp_path, capsys, extra, word):
    try:  # argparse type errors exit through SystemExit, library ValueErrors return 2
        status = main(["granular", "jam", "--delta", "1", "--xs", "0", "--n", "60",
                       "--out", str(tmp_path / "x.h5"), *extra])
    except SystemExit as exc:
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err
    assert word in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.h5").exists()


def test_frozen_rattlers_reach_the_same_minimum():
    from granular.jamming import compress_to
    from granular.minimize import fire_minimize
    from granular.pressure_ladder import relax_frozen
    from granular.space import scale_to_phi

    # delta 0.2, X_S 0.1: a backbone of large spheres with most small ones free at phi ~ 0.7
    jammed = compress_to(make_packing(0.2, 0.1, n_large=30, phi=0.3, seed=0), 0.72, max_steps=10**6)
    start = scale_to_phi(jammed, 0.719)
    plain = fire_minimize(start, force_tol=1e-12, max_steps=10**6)
    out, steps, converged, energy = relax_frozen(start, ContactLaw(), force_tol=1e-12, max_steps=10**6,
                                                 backend="cpu")
    from granular.pressure_ladder import FREEZE_BELOW, near_contact

    assert near_contact(start, ContactLaw(), 0.0).mean() < FREEZE_BELOW  # it froze
    assert converged and plain.converged
    assert energy == pytest.approx(plain.energy, rel=1e-6)
    assert pressure(out).total == pytest.approx(pressure(plain.packing).total, rel=1e-6)
    # positions may differ by a rigid translation (a zero mode of the periodic box): compare contacts
    assert backbone(out).n_contacts_backbone == backbone(plain.packing).n_contacts_backbone
