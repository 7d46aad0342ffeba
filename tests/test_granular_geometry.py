"""The one-source periodic geometry and pair law: host ufuncs against plain formulas, the neighbour
scan on both cell layouts, generation reproducing recorded packings, host forces against the
O(N^2) reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

import granular
from granular.accumulators import ACC_ENERGY, ACC_TOUCHING, ACC_VIRIAL, ACC_VIRIAL_SS, N_ACC
from granular.contact import ContactLaw, pair_force
from granular.generate import random_positions
from granular.jamming import spring_forces
from granular.measure import pair_forces
from granular.partition import bin_particles, radius_levels, scan_partners_cpu
from granular.reference import reference_forces
from granular.space import minimum_image, nearest_image, pair_separation, wrap, wrap_coordinate

# Packings made by the generator before it moved out of granular.space (same seeds, same code
# path, recorded once): position[0], position[-1], sum and sum of squares of all coordinates.
RECORDED = {
    (0.15, 0.2, "n_large", 12, 3): ([0.3729053992642045, 0.615374425013168, 0.15282358999649584],
                                    [2.320848172527859, 2.811416036184143, 1.7615566204536786],
                                    3982.802949846553, 7843.323594528755, 901),
    (0.5, 0.5, "n", 400, 11): ([0.9672296220742774, 0.10449360944289002, 2.4853800054487967],
                               [4.663031124027269, 5.257343919509567, 4.302517291910533],
                               3237.5590388122864, 11695.320240027571, 400),
}


@pytest.mark.parametrize("key", sorted(RECORDED))
def test_generation_reproduces_recorded_packings(key):
    delta, x_small, kind, count, seed = key
    first, last, total, squares, n = RECORDED[key]
    p = granular.make_packing(delta, x_small, phi=0.3, seed=seed, **{kind: count})
    assert p.n == n
    assert p.position[0].tolist() == first and p.position[-1].tolist() == last
    assert float(p.position.sum()) == pytest.approx(total, rel=1e-14)
    assert float((p.position**2).sum()) == pytest.approx(squares, rel=1e-14)


def test_generation_does_not_depend_on_cell_capacity():
    p = granular.make_packing(0.15, 0.2, n_large=12, phi=0.3, seed=3)
    a = random_positions(p.radius, p.box, 5)
    b = random_positions(p.radius, p.box, 5, cell_capacity=1)  # overflows, grows, reruns
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="cell_capacity"):
        random_positions(p.radius, p.box, 5, cell_capacity=0)


def test_image_and_wrap_match_the_plain_formulas():
    rng = np.random.default_rng(0)
    box = np.array([3.0, 4.5, 5.25])
    position = rng.uniform(-1.0, 2.0, (500, 3)) * box
    wrapped = wrap(position, box)
    assert np.all((wrapped >= 0) & (wrapped < box))
    assert np.allclose(wrapped, np.mod(position, box), rtol=0, atol=1e-12)
    d = wrapped[:, None, :] - wrapped[None, :, :]
    assert np.array_equal(minimum_image(d, box), d - box * np.rint(d / box))
    assert wrap_coordinate(-1e-300, 2.0) < 2.0 and wrap_coordinate(2.0, 2.0) == 0.0
    assert nearest_image(1.6, 3.0, 1.5) == pytest.approx(-1.4)
    assert math.isnan(nearest_image(math.nan, 3.0, 1.5))


def test_pair_separation():
    touching, r, overlap, nx, ny, nz = pair_separation(0.1, 0.0, 0.0, 3.8, 0.0, 0.0, 4.0, 4.0, 4.0, 0.5)
    assert touching and r == pytest.approx(0.3) and overlap == pytest.approx(0.2) and nx == -1.0
    assert (ny, nz) == (0.0, 0.0)
    assert not pair_separation(0.0, 0.0, 0.0, 0.6, 0.0, 0.0, 4.0, 4.0, 4.0, 0.5)[0]


@pytest.mark.parametrize("model", ["linear", "hertz"])
def test_host_pair_law_is_the_kernel_law(model):
    law = ContactLaw(k_n=2.5, gamma_n=0.3, model=model)
    overlap = np.linspace(1e-6, 0.1, 17)
    rate = np.linspace(-0.2, 0.3, 17)
    scalar = [pair_force(o, r, law.k_n, law.gamma_n, law.model_code) for o, r in zip(overlap, rate)]
    assert np.array_equal(pair_forces(overlap, law, rate), scalar)
    spring = law.k_n * overlap * (np.sqrt(overlap) if model == "hertz" else 1.0)
    assert np.allclose(pair_forces(overlap, law), spring, rtol=1e-15, atol=0)
    with pytest.raises(ValueError, match="model"):
        pair_forces(overlap, type("Law", (), {"model": "cubic"}))


@pytest.mark.parametrize("model", ["linear", "hertz"])
def test_spring_forces_match_reference(model):
    p = granular.scale_to_phi(granular.make_packing(0.5, 0.5, n=300, phi=0.3, seed=2), 0.7)
    law = ContactLaw(k_n=3.0, model=model)
    f = spring_forces(p, law)
    f_ref = reference_forces(p.position, p.radius, p.box, k_n=3.0, model=model)
    assert np.abs(f - f_ref).max() <= 1e-10 * np.abs(f_ref).max()


def test_scan_reads_both_cell_layouts_alike():
    """The GPU's fixed-capacity cells and the CPU's CSR cells give the same partners."""
    p = granular.scale_to_phi(granular.make_packing(0.15, 0.1, n_large=20, phi=0.3, seed=1), 0.6)
    level, level_rmax = radius_levels(p.radius)
    skin = 0.05
    dims, offset, cell_start, cell_list = bin_particles(p.position, p.box, level, level_rmax, skin)
    counts = np.diff(cell_start)
    cap = int(counts.max())
    fixed = np.full(counts.size * cap, -1, np.int64)
    for c in range(counts.size):
        fixed[c * cap:c * cap + counts[c]] = cell_list[cell_start[c]:cell_start[c + 1]]
    lx, ly, lz = p.box
    out_a, out_b = np.empty(400, np.int64), np.empty(400, np.int64)
    for i in range(0, p.n, 7):
        args = (p.position, p.radius, level, lx, ly, lz, skin, dims, offset)
        na = scan_partners_cpu(i, *args, cell_start, 0, cell_list, i, out_a, 0, 1, 400)
        nb = scan_partners_cpu(i, *args, counts, cap, fixed, i, out_b, 0, 1, 400)
        assert na == nb and np.array_equal(np.sort(out_a[:na]), np.sort(out_b[:nb]))
        assert scan_partners_cpu(i, *args, cell_start, 0, cell_list, i, out_a, 0, 1, 0) == na
        d = minimum_image(p.position[out_a[:na]] - p.position[i], p.box)
        assert np.all(np.sqrt((d**2).sum(axis=1)) < p.radius[i] + p.radius[out_a[:na]] + skin)


def test_accumulator_slots():
    assert len({ACC_ENERGY, ACC_VIRIAL, ACC_VIRIAL + 1, ACC_VIRIAL_SS, ACC_TOUCHING}) == N_ACC
    assert ACC_VIRIAL_SS == ACC_VIRIAL + 2
