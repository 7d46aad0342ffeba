"""PQ Index and SAP counts (Diao et al. 2023): closed forms, invariances, statistics, exact counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from surrogate.pruning import pq_index, robust_floor, sap_prune_count, sap_retained_bound

GAUSSIAN_LIMIT = 1.0 - math.gamma(0.75) ** 2 / math.sqrt(math.pi)  # (p, q) = (0.5, 1)

# Zero or 1e-3 <= |x| <= 1e3: scaled by up to 1e+-200 below, nothing under- or overflows float64.
finite = st.one_of(st.just(0.0), st.floats(1e-3, 1e3), st.floats(-1e3, -1e-3))
vectors = st.lists(finite, min_size=1, max_size=40).filter(lambda v: any(x != 0 for x in v))
orders = st.sampled_from([(0.5, 1.0), (0.25, 0.5), (1.0, 2.0), (0.5, 3.0), (1.0 / 3.0, 1.0)])


def reference_pq_index(w, p, q):
    """The definition, term by term, in plain Python floats."""
    w = [abs(float(x)) for x in w]
    d = len(w)
    norm_p = sum(x**p for x in w) ** (1 / p)
    norm_q = sum(x**q for x in w) ** (1 / q)
    return 1 - d ** (1 / q - 1 / p) * norm_p / norm_q


def test_gaussian_limit_value():
    assert GAUSSIAN_LIMIT == pytest.approx(0.152787, abs=1e-6)


@pytest.mark.parametrize("d", [1, 2, 3, 7, 100, 10_001])
@pytest.mark.parametrize("value", [1.0, -2.5, 1e-30, 3e30])
@pytest.mark.parametrize("pq", [(0.5, 1.0), (1.0, 2.0), (0.2, 0.7)])
def test_constant_vector_has_index_zero(d, value, pq):
    assert pq_index(np.full(d, value), *pq) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("d", [1, 2, 3, 4, 10, 1000])
@pytest.mark.parametrize("pq", [(0.5, 1.0), (1.0, 2.0), (0.2, 0.7), (1 / 3, 1.0)])
def test_one_hot_reaches_the_upper_bound(d, pq):
    p, q = pq
    w = torch.zeros(d)
    w[d // 2] = -4.0
    assert pq_index(w, p, q) == pytest.approx(1.0 - d ** (1 / q - 1 / p), rel=1e-12, abs=1e-15)


def test_hand_computed_values():
    # [1, 1, 0, 0]: ||w||_0.5 = 4, ||w||_1 = 2, d^(1 - 2) = 1/4  ->  I = 1 - 4/8 = 1/2.
    assert pq_index([1.0, 1.0, 0.0, 0.0]) == pytest.approx(0.5, rel=1e-15)
    # [4, 1, 1, 1]: ||w||_0.5 = (2 + 3)^2 = 25, ||w||_1 = 7  ->  I = 1 - 25/28 = 3/28.
    assert pq_index([4.0, 1.0, 1.0, 1.0]) == pytest.approx(3 / 28, rel=1e-14)
    # (p, q) = (1, 2) on [3, 4]: 1 - 2^(-1/2) 7 / 5.
    assert pq_index([3.0, 4.0], 1.0, 2.0) == pytest.approx(1 - 7 / (5 * math.sqrt(2)), rel=1e-14)


@settings(max_examples=60, deadline=None)
@given(vectors, orders)
def test_matches_the_definition_and_stays_in_range(w, pq):
    p, q = pq
    value = pq_index(w, p, q)
    assert 0.0 <= value <= 1.0 - len(w) ** (1 / q - 1 / p) + 1e-15
    assert value == pytest.approx(reference_pq_index(w, p, q), abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(vectors, orders, st.floats(min_value=1e-200, max_value=1e200), st.integers(2, 4), st.randoms())
def test_invariant_to_scale_sign_and_cloning(w, pq, scale, copies, rnd):
    p, q = pq
    base = pq_index(w, p, q)
    signs = [rnd.choice([-1.0, 1.0]) for _ in w]
    assert pq_index([scale * s * x for s, x in zip(signs, w)], p, q) == pytest.approx(base, abs=1e-12)
    assert pq_index(list(w) * copies, p, q) == pytest.approx(base, abs=1e-12)
    assert pq_index(torch.tensor(w, dtype=torch.float32).reshape(1, -1), p, q) == pytest.approx(
        pq_index(np.float32(w), p, q), abs=1e-15)


@settings(max_examples=40, deadline=None)
@given(vectors, st.lists(st.booleans(), min_size=40, max_size=40), st.floats(-1e6, 1e6))
def test_masked_entries_are_excluded(w, keep, junk):
    keep = keep[: len(w)]
    kept = [x for x, k in zip(w, keep) if k]
    with_junk = [x if k else junk for x, k in zip(w, keep)]
    value = pq_index(with_junk, mask=np.array(keep, dtype=float))
    if kept and any(x != 0 for x in kept):
        assert value == pytest.approx(pq_index(kept), abs=1e-12)
        assert sap_prune_count(with_junk, mask=keep) == sap_prune_count(kept)
    else:
        assert math.isnan(value)


def test_all_zero_or_empty_alive_vector_is_nan_and_prunes_nothing():
    assert math.isnan(pq_index(np.zeros(5)))
    assert math.isnan(pq_index([1.0, 2.0], mask=[0, 0]))
    assert math.isnan(pq_index(np.zeros(0)))
    assert math.isnan(pq_index([0.0, 0.0, 7.0], mask=[1, 1, 0]))
    assert sap_prune_count(np.zeros(5)) == 0
    assert sap_prune_count([0.0, 0.0, 7.0], mask=[1, 1, 0]) == 0


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_non_finite_alive_weights_are_rejected(bad):
    with pytest.raises(ValueError, match="finite"):
        pq_index([1.0, bad])
    assert pq_index([bad, 2.0, 2.0], mask=[0, 1, 1]) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("p, q, word", [(0.0, 1.0, "p must"), (-1, 1.0, "p must"), (1.0, 1.0, "q must"),
                                        (1.0, 0.5, "q must"), (0.5, math.inf, "q must")])
def test_orders_are_checked(p, q, word):
    with pytest.raises(ValueError, match=word):
        pq_index([1.0, 2.0], p, q)


def test_mask_shape_is_checked():
    with pytest.raises(ValueError, match="mask"):
        pq_index([1.0, 2.0, 3.0], mask=[1, 0])


def test_gaussian_limit_within_statistical_error():
    rng = np.random.default_rng(20231)
    w = rng.standard_normal(400_000)
    value = pq_index(w)
    # Delta method: I = 1 - A^2 / B, A = mean |w|^(1/2), B = mean |w|.
    a, b = np.abs(w) ** 0.5, np.abs(w)
    mean_a, mean_b = a.mean(), b.mean()
    grad = np.array([-2 * mean_a / mean_b, mean_a**2 / mean_b**2])
    sigma = math.sqrt(grad @ np.cov(np.vstack([a, b])) @ grad / w.size)
    assert sigma < 1e-3
    assert abs(value - GAUSSIAN_LIMIT) < 5 * sigma + 1e-5  # bias is O(1/d)


def test_one_sap_step_prunes_about_15_percent_of_a_gaussian_layer():
    w = torch.randn(200, 500, generator=torch.Generator().manual_seed(3))
    fraction = sap_prune_count(w) / w.numel()
    assert fraction == pytest.approx(GAUSSIAN_LIMIT, abs=3e-3)


@pytest.mark.parametrize(
    "w, kwargs, expected",
    [
        ([2.0, 0.0, 0.0, 0.0], {}, 3),                     # I = 3/4, r = 1, min(3, floor(3.6))
        ([1.0, 1.0, 0.0, 0.0], {}, 2),                     # I = 1/2, r = 2
        ([4.0, 1.0, 1.0, 1.0], {}, 0),                     # r = 25/7 = 3.57, floor(0.43)
        ([0.0] * 9 + [5.0], {}, 9),                        # I = 0.9, r = 1, min(9, floor(9.0))
        ([0.0] * 9 + [5.0], {"beta": 0.5}, 5),             # cap floor(5.0)
        ([0.0] * 9 + [5.0], {"gamma": 0.5}, 4),            # floor(4.5)
        ([0.0] * 9 + [5.0], {"eta_r": 1.0, "beta": 1.0}, 9),  # r = 10 / 4 * 0.1 = 0.25, floor(9.75)
        ([0.0] * 9 + [5.0], {"beta": 1.0}, 9),             # r = 1 keeps one
        ([1.0, 0.0, 0.0], {}, 2),                          # r = 3 (1/3) = 1 up to rounding
        ([7.0] * 6, {}, 0),                                # constant: nothing
        ([0.0] * 8 + [1.0], {"p": 1.0, "q": 2.0}, 8),      # I = 1 - 9^(-1/2) = 2/3, r = 9 (1/3)^2 = 1
        # (p, q) = (1/3, 1): I = 1 - 24/96 = 3/4, r = 4 (1/4)^(1/2) = 2
        ([3.0, 3.0, 0.0, 0.0], {"p": 1 / 3, "q": 1.0, "beta": 1.0}, 2),
    ],
)
def test_exact_prune_counts_on_hand_computed_vectors(w, kwargs, expected):
    assert sap_prune_count(w, **kwargs) == expected


def test_retained_bound_formula():
    # (p, q) = (1/3, 1): q/(q-p) = 3/2, qp/(q-p) = 1/2.
    assert sap_retained_bound(16.0, 0.75, 1 / 3, 1.0, eta_r=3.0) == pytest.approx(16 * 4**-1.5 * 0.25**0.5)


@pytest.mark.parametrize("kwargs, word", [({"eta_r": -0.1}, "eta_r"), ({"gamma": 0.0}, "gamma"),
                                          ({"beta": 1.5}, "beta"), ({"beta": -0.1}, "beta")])
def test_sap_hyperparameters_are_checked(kwargs, word):
    with pytest.raises(ValueError, match=word):
        sap_prune_count([1.0, 2.0], **kwargs)


def test_robust_floor_forgives_rounding_only():
    x = torch.tensor([2.9999999999999996, 3.0, 2.5, 2.999, -1e-17, 1e7 - 1e-9, 0.9999999])
    assert robust_floor(x).tolist() == [3.0, 3.0, 2.0, 2.0, 0.0, 1e7, 0.0]


@settings(max_examples=60, deadline=None)
@given(vectors, st.floats(0.1, 2.0), st.floats(0.0, 1.0), st.floats(0.0, 2.0))
def test_count_matches_formula_and_never_exceeds_d(w, gamma, beta, eta_r):
    d = len(w)
    c = sap_prune_count(w, gamma=gamma, beta=beta, eta_r=eta_r)
    assert 0 <= c <= d
    index = reference_pq_index(w, 0.5, 1.0)
    r = d * (1 + eta_r) ** -2 * (1 - index)
    exact = min(gamma * (d - r), beta * d)
    if abs(exact - round(exact)) > 1e-6:  # away from integers the float formula is unambiguous
        assert c == max(0, min(d, math.floor(exact)))
