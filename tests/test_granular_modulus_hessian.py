"""Linear-response bulk modulus against plain references that do not use the DEM engine.

A brute-force O(N^2) numpy energy and force of harmonic spheres in a periodic box is the reference:
the sparse Hessian must equal the finite difference of its forces; the FCC crystal has an analytic
K (no non-affine relaxation by symmetry); on a disordered packing relaxed by scipy's BFGS, the
linear-response K must equal the central difference of the relaxed pressure.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from granular.elasticity import contact_hessian, contact_stiffness, linear_response_from_contacts


class Law:
    model = "linear"
    k_n = 1.0


def brute_contacts(position, radius, box, species):
    n = len(radius)
    iu, ju = np.triu_indices(n, k=1)
    rij = position[ju] - position[iu]
    rij -= box * np.round(rij / box)
    dist = np.linalg.norm(rij, axis=1)
    overlap = radius[iu] + radius[ju] - dist
    keep = overlap > 0
    i, j, dist, overlap = iu[keep], ju[keep], dist[keep], overlap[keep]
    normal = rij[keep] / dist[:, None]
    pair_type = species[i].astype(int) + species[j].astype(int)
    return i, j, normal, dist, overlap, pair_type


def energy_and_force(flat, radius, box, k=1.0):
    position = flat.reshape(-1, 3)
    n = len(radius)
    iu, ju = np.triu_indices(n, k=1)
    rij = position[ju] - position[iu]
    rij -= box * np.round(rij / box)
    dist = np.linalg.norm(rij, axis=1)
    overlap = np.maximum(radius[iu] + radius[ju] - dist, 0.0)
    energy = 0.5 * k * np.sum(overlap**2)
    fvec = (k * overlap / np.maximum(dist, 1e-300))[:, None] * rij  # force on j, along i->j
    force = np.zeros_like(position)
    np.add.at(force, ju, fvec)
    np.add.at(force, iu, -fvec)
    return energy, force


def virial_pressure(position, radius, box):
    i, j, normal, dist, overlap, _ = brute_contacts(position, radius, box, np.zeros(len(radius), int))
    return np.sum(overlap * dist) / (3.0 * np.prod(box))


def relax(position, radius, box):
    def fun(flat):
        e, f = energy_and_force(flat, radius, box)
        return e, -f.ravel()

    res = minimize(fun, position.ravel(), jac=True, method="BFGS", options={"gtol": 1e-14, "maxiter": 20000})
    return res.x.reshape(-1, 3)


def test_hessian_equals_finite_difference_of_forces():
    rng = np.random.default_rng(3)
    n, box = 24, np.array([2.0, 2.2, 1.9])
    position = rng.uniform(0, 1, (n, 3)) * box
    radius = rng.choice([0.5, 0.35], n)
    species = (radius < 0.5).astype(np.int8)
    i, j, normal, dist, overlap, _ = brute_contacts(position, radius, box, species)
    force, stiff = contact_stiffness(overlap, Law)
    h = contact_hessian(n, i, j, normal, dist, force, stiff).toarray()
    step = 1e-6
    numeric = np.zeros((3 * n, 3 * n))
    for col in range(3 * n):
        plus, minus = position.ravel().copy(), position.ravel().copy()
        plus[col] += step
        minus[col] -= step
        fp = energy_and_force(plus, radius, box)[1].ravel()
        fm = energy_and_force(minus, radius, box)[1].ravel()
        numeric[:, col] = -(fp - fm) / (2 * step)
    assert np.allclose(h, h.T)
    assert np.max(np.abs(h - numeric)) < 1e-6


def test_fcc_crystal_matches_analytic_modulus():
    a = 1.35  # nearest-neighbour distance a / sqrt(2) = 0.9546 < 1: every bond overlaps
    cells = 3
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    grid = np.array([[x, y, z] for x in range(cells) for y in range(cells) for z in range(cells)])
    position = ((grid[:, None, :] + basis[None, :, :]).reshape(-1, 3)) * a
    n = len(position)
    box = np.full(3, cells * a)
    radius = np.full(n, 0.5)
    i, j, normal, dist, overlap, ptype = brute_contacts(position, radius, box, np.zeros(n, np.int8))
    assert len(i) == 6 * n
    res = linear_response_from_contacts(n, np.prod(box), i, j, normal, dist, overlap, ptype, Law)

    # Analytic: U(s) = 6N k/2 (1 - s D)^2 with V = V0 s^3, P = -dU/dV, K = -V dP/dV.
    D, V0 = a / np.sqrt(2), np.prod(box)

    def p_of(s):
        return 6 * n * (1 - s * D) * D / (3 * V0 * s**2)

    ds = 1e-6
    k_exact = -V0 * (p_of(1 + ds) - p_of(1 - ds)) / (3 * V0 * 2 * ds)
    assert res.K_nonaffine == pytest.approx(0.0, abs=1e-12)
    assert res.pressure == pytest.approx(p_of(1.0), rel=1e-12)
    assert res.K == pytest.approx(k_exact, rel=1e-7)
    assert res.K_LL == pytest.approx(res.K, rel=1e-12)


def test_disordered_packing_matches_relaxed_strain():
    rng = np.random.default_rng(7)
    n = 40
    radius = np.where(np.arange(n) < n // 2, 0.5, 0.36)
    species = (radius < 0.5).astype(np.int8)
    volume = np.sum(4 / 3 * np.pi * radius**3) / 0.72  # phi = 0.72, well above jamming
    box = np.full(3, volume ** (1 / 3))
    position = relax(rng.uniform(0, 1, (n, 3)) * box, radius, box)
    assert np.abs(energy_and_force(position.ravel(), radius, box)[1]).max() < 1e-8

    i, j, normal, dist, overlap, ptype = brute_contacts(position, radius, box, species)
    res = linear_response_from_contacts(n, np.prod(box), i, j, normal, dist, overlap, ptype, Law)
    assert res.residual < 1e-8
    assert res.K_nonaffine > 0.0  # disorder: relaxation softens the affine response

    eps = 1e-5  # volumetric strain, positive in compression
    pressures = []
    for sign in (1, -1):
        scale = (1 - sign * eps) ** (1 / 3)
        relaxed = relax(position * scale, radius, box * scale)
        pressures.append(virial_pressure(relaxed, radius, box * scale))
    k_strain = (pressures[0] - pressures[1]) / (2 * eps)
    assert res.K == pytest.approx(k_strain, rel=5e-4)
    assert res.K_SS + res.K_SL + res.K_LL == pytest.approx(res.K, rel=1e-10)
