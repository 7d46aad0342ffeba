"""Verification against theory: standing-mode convergence rates, energy, absorbing boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from wavefe import mesh
from wavefe.explicit import ExplicitWave, stable_dt
from wavefe.newmark import NewmarkWave
from wavefe.sources import GaussianPulse

M_MODE, N_MODE, T_END = 1, 2, 0.75


def _standing_mode_error(n: int, integrator: str) -> float:
    """Max over frames of the discrete L2 error of u = cos(wt) sin(m pi x) sin(n pi y), c = 1."""
    m = mesh.rectangle(n)
    x, y = m.points.T
    u0 = np.sin(M_MODE * np.pi * x) * np.sin(N_MODE * np.pi * y)
    omega = np.pi * np.hypot(M_MODE, N_MODE)
    dt = 0.25 / n  # fixed ratio dt / h: space-time refinement
    save = int(round(T_END / dt)) // 12  # n / 4 steps: 12 intervals ending at T_END
    assert save * 12 * dt == pytest.approx(T_END)
    if integrator == "explicit":
        sim = ExplicitWave(m, np.ones(m.n_nodes), dt=dt)
        sim.set_state(u0)
        frames = sim.run(13, save_every=save, dtype=np.float64)
    else:
        sim = NewmarkWave(m, 1.0, dt=dt)
        sim.set_state(u0)
        frames = sim.run(13, save_every=save)
    t = dt * save * np.arange(13)
    exact = np.cos(omega * t)[:, None] * u0[None]
    return float(np.max(np.sqrt(np.sum((frames - exact) ** 2, axis=1) / n**2)))


@pytest.mark.parametrize("integrator", ["explicit", "newmark"])
def test_standing_mode_converges_at_second_order(integrator):
    ns = np.array([8, 16, 32, 64])
    errors = np.array([_standing_mode_error(n, integrator) for n in ns])
    rate = -np.polyfit(np.log(ns), np.log(errors), 1)[0]
    assert abs(rate - 2.0) < 0.1, (errors, rate)
    assert errors[-1] < 2e-3


@pytest.mark.parametrize("boundary", ["dirichlet", "neumann"])
def test_explicit_discrete_energy_is_conserved(boundary):
    m = mesh.rectangle(32, 24, 1.0, 0.75)
    c = 1.0 + 0.5 * np.random.default_rng(0).random(m.n_nodes)
    sim = ExplicitWave(m, c, dt=0.9 * stable_dt(m, c), boundary=boundary)
    sim.set_state(GaussianPulse(0.4, 0.3, 0.06)(m.points), v0=np.sin(3 * m.points[:, 0]))
    e0 = sim.energy()
    drift = 0.0
    for _ in range(10):
        sim.advance(100)
        drift = max(drift, abs(sim.energy() - e0) / e0)
    assert sim.step_count == 1000
    assert drift < 1e-6


def test_newmark_energy_is_conserved():
    m = mesh.rectangle(24)
    c = 1.0 + 0.5 * np.random.default_rng(1).random(m.n_nodes)
    sim = NewmarkWave(m, c, dt=0.02, boundary="neumann")  # far above the explicit CFL limit
    sim.set_state(GaussianPulse(0.5, 0.5, 0.08)(m.points))
    e0 = sim.energy()
    sim.advance(200)
    assert abs(sim.energy() - e0) / e0 < 1e-10


@pytest.mark.parametrize("integrator", ["explicit", "newmark"])
def test_absorbing_sides_let_the_pulse_out(integrator):
    m = mesh.rectangle(48)
    c = np.ones(m.n_nodes)
    u0 = GaussianPulse(0.5, 0.5, 0.05)(m.points)
    dt = 0.5 * stable_dt(m, c)
    left = {}
    for boundary in ("absorbing", "dirichlet"):
        sim = (ExplicitWave(m, c, dt=dt, boundary=boundary) if integrator == "explicit"
               else NewmarkWave(m, c, dt=dt, boundary=boundary))
        sim.set_state(u0)
        e0 = sim.energy()
        sim.advance(int(round(1.0 / dt)))  # the front reaches the sides at t = 0.5, corners at 0.71
        left[boundary] = sim.energy() / e0
    assert left["absorbing"] < 0.05
    assert left["dirichlet"] > 0.99


def _ricker_green(t, r, c, f0):
    """Ricker wavelet convolved with the 2D Green's function H(ct - r) / (2 pi c sqrt(c^2 t^2 - r^2));
    with T = (r / c) cosh(eta) the integral is smooth: int f(t - T(eta)) d eta / (2 pi c)."""
    from wavefe.sources import ricker

    out = np.zeros_like(t)
    for k, tk in enumerate(t):
        if c * tk > r:
            eta = np.linspace(0.0, np.arccosh(c * tk / r), 4001)
            out[k] = np.trapezoid(ricker(tk - r / c * np.cosh(eta), f0), eta) / (2 * np.pi * c)
    return out


def test_point_source_matches_the_2d_greens_function():
    """Amplitude and phase of a Ricker point source against the exact free-space solution, before
    the first reflection reaches the receiver; the error falls at second order."""
    from wavefe import assemble
    from wavefe.sources import RickerSource

    c0, f0, src, rec = 1.0, 6.0, (0.5, 0.5), (0.7, 0.5)
    errors = []
    for n in (64, 128, 256):
        m = mesh.rectangle(n)
        c = np.full(m.n_nodes, c0)
        dt = 0.5 * stable_dt(m, c)
        save = max(1, int(round(0.005 / dt)))
        sim = ExplicitWave(m, c, dt=dt, sources=[RickerSource(*src, f0)])
        receiver = assemble.point_load(m, *rec).toarray().ravel()
        n_frames = int(0.75 / (save * dt))  # the wall reflection arrives at t = 0.8
        trace = sim.run(n_frames, save, dtype=np.float64) @ receiver
        exact = _ricker_green(save * dt * np.arange(n_frames), 0.2, c0, f0)
        errors.append(np.abs(trace - exact).max() / np.abs(exact).max())
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(rates > 1.8), (errors, rates)
    assert errors[-1] < 0.02
