"""Petit, Kumar, Luding and Sperl's claims about the jamming diagram, decided by explicit criteria.

Claims (bidisperse frictionless spheres):

(a) for delta <= 0.22 a concentration X*_S divides the diagram: below it most small spheres are not
    jammed at the first transition and jam at a second, higher one; above it they jam with the
    large ones (for delta > 0.22: no such split);
(b) at delta 0.15, X*_S ~ 0.21 (b1), at the maximum of phi_J (b2), where K jumps (b3);
(c) along the second transition K rises relative to the first (c1) but stays small against K at
    X*_S (c2);
(d) the first transition is sharp, the second smooth (d1), carried by small-large contacts (d2),
    while the small-small contacts show a transition (d3).

:func:`evaluate_claims` returns one row per part with our number, the paper's, a verdict
(``reproduced``, ``not reproduced`` or ``not resolved``) and the criterion in words; every threshold
is a module constant. Inputs are the seed means and standard errors over X_S of one size ratio
(``diagram.h5``, see :func:`granular.diagram.combine`) and the estimates of
:func:`granular.diagram_analysis.bootstrap_diagram`.
"""

from __future__ import annotations

import numpy as np

from granular.diagram_analysis import HALF, SEPARATE, jump_neighbours

REPRODUCED, NOT_REPRODUCED, NOT_RESOLVED = "reproduced", "not reproduced", "not resolved"
DELTA_SPLIT = 0.22  # the paper's largest size ratio with an X*_S
PAPER_X_STAR = {0.15: 0.21}  # X*_S read from the paper, per delta
PAPER_X_STAR_TOL = 0.01  # the paper's "~": our interval widened by this on both sides
MAX_HALF_WIDTH = 0.05  # a wider 95 % interval on X*_S does not decide (b1)
JUMP_MIN = 2.0  # "K jumps": K* just above / just below X*_S at least this (95 % lower bound)
SMALL_AGAINST = 0.5  # (c2) "small against K at X*_S": K on the second line below this fraction
SMOOTH_MAX = 2.0  # (d1) smooth: K changes by less than this factor across the second transition
SS_JUMP_MIN = 5.0  # (d3) K_SS rises at least this factor across the second transition
N_SIGMA = 2.0  # differences count where they exceed N_SIGMA combined standard errors


def _row(claim, ours, paper, verdict, criterion) -> dict:
    return {"claim": claim, "ours": ours, "paper": paper, "verdict": verdict, "criterion": criterion}


def _vote(ok: np.ndarray, bad: np.ndarray, minimum: int = 1) -> str:
    """reproduced if every one of at least ``minimum`` cases is ok, not reproduced if every case is
    bad, not resolved otherwise (mixed, or too few cases)."""
    if ok.size >= minimum and np.all(ok):
        return REPRODUCED
    if bad.size >= minimum and np.all(bad):
        return NOT_REPRODUCED
    return NOT_RESOLVED


def claim_a(x, m: dict, delta: float) -> dict:
    """(a): rattling small spheres with a distinct second line below, joint jamming above."""
    f, gap = m["jammed_fraction_small"], m["phi_J_second"] - m["phi_J"]
    split = np.isfinite(f) & (f < HALF) & np.isfinite(gap) & (gap > SEPARATE)
    joint = np.isfinite(f) & (f >= HALF)
    ours = (f"small jammed at phi_J < 1/2 with a distinct second line at X_S = {_fmt(x[split])}; "
            f">= 1/2 at X_S = {_fmt(x[joint])}")
    ordered = split.any() and joint.any() and x[split].max() < x[joint].min()
    if delta <= DELTA_SPLIT:
        verdict = (REPRODUCED if ordered else NOT_REPRODUCED if joint.any() and not split.any()
                   else NOT_RESOLVED)
        paper = "split below X*_S, joint jamming above"
    else:
        none = not split.any() and joint.any()
        verdict = REPRODUCED if none else NOT_REPRODUCED if ordered else NOT_RESOLVED
        paper = "no split (delta > 0.22)"
    return _row("(a) X*_S divides the diagram", ours, paper, verdict,
                "split: mean jammed fraction of small spheres at phi_J < 1/2 and phi_J_second - phi_J > "
                f"{SEPARATE:g}; reproduced if every split X_S lies below every joint one (delta <= "
                f"{DELTA_SPLIT}) or no split exists (delta > {DELTA_SPLIT}); not resolved when the grid "
                "does not show both sides or they interleave")


def claim_b(x, phi_first, estimates: dict, delta: float) -> list[dict]:
    """(b1) X*_S location, (b2) at the phi_J maximum, (b3) K jumps there."""
    xs, xm, kj = estimates["x_star_lines"], estimates["x_phi_max"], estimates["k_jump"]
    paper = PAPER_X_STAR.get(round(delta, 4))
    ours = f"{xs.value:.3f} [{xs.low:.3f}, {xs.high:.3f}]"
    if paper is None or not np.isfinite(xs.low) or xs.half_width > MAX_HALF_WIDTH:
        v1 = NOT_RESOLVED
    else:
        inside = xs.low - PAPER_X_STAR_TOL <= paper <= xs.high + PAPER_X_STAR_TOL
        v1 = REPRODUCED if inside else NOT_REPRODUCED
    rows = [_row("(b1) X*_S", ours, "~0.21" if paper else "not given", v1,
                 f"the paper's value within our 95 % interval widened by {PAPER_X_STAR_TOL}; not resolved "
                 f"without a paper value or when the half-width exceeds {MAX_HALF_WIDTH}")]
    measured = x[np.isfinite(phi_first)]
    edge = measured.size == 0 or estimates["x_phi_max_grid"].value in (measured.min(), measured.max())
    if not (np.isfinite(xm.low) and np.isfinite(xs.low)) or edge:
        v2 = NOT_RESOLVED
    else:
        v2 = REPRODUCED if xm.low <= xs.high and xs.low <= xm.high else NOT_REPRODUCED
    rows.append(_row("(b2) X*_S at the maximum of phi_J",
                     f"phi_J max at X_S = {xm.value:.3f} [{xm.low:.3f}, {xm.high:.3f}] (grid "
                     f"{estimates['x_phi_max_grid'].value:.3f}), phi_J = {estimates['phi_max'].value:.4f}",
                     "yes", v2, "the 95 % intervals of the phi_J-maximum location and of X*_S overlap; not "
                     "resolved when either is undefined or the maximum is at the first or last measured X_S"))
    v3 = (NOT_RESOLVED if not np.isfinite(kj.low) else REPRODUCED if kj.low >= JUMP_MIN
          else NOT_REPRODUCED if kj.high < JUMP_MIN else NOT_RESOLVED)
    rows.append(_row("(b3) K* jumps at X*_S",
                     f"K* ratio above/below {kj.value:.2f} [{kj.low:.2f}, {kj.high:.2f}]",
                     "jump", v3, f"95 % lower bound of the ratio >= {JUMP_MIN}: reproduced; upper bound < "
                     f"{JUMP_MIN}: not reproduced"))
    return rows


def _below_star(x, m: dict) -> np.ndarray:
    """X_S below X*_S with a measured second line: lines distinct and a second-line modulus."""
    gap = m["phi_J_second"] - m["phi_J"]
    return np.isfinite(gap) & (gap > SEPARATE) & np.isfinite(m["second_K_star"])


def claim_c(x, m: dict, s: dict) -> list[dict]:
    """(c1) K on the second line above K on the first; (c2) small against K just above X*_S."""
    below = _below_star(x, m)
    diff = m["second_K_star"][below] - m["K_star"][below]
    err = np.sqrt(np.nan_to_num(s["second_K_star"][below]) ** 2 + np.nan_to_num(s["K_star"][below]) ** 2)
    ratio = m["second_K_star"][below] / m["K_star"][below]
    rows = [_row("(c1) along the second line K rises against the first",
                 f"K*(second) / K*(first) = {_fmt(ratio)} at X_S = {_fmt(x[below])}", "rises",
                 _vote(diff > N_SIGMA * err, diff < -N_SIGMA * err, minimum=2),
                 f"at every X_S below X*_S (at least 2) K* at phi_J_second + dphi exceeds K* at phi_J + "
                 f"dphi by more than {N_SIGMA:g} combined standard errors; not reproduced if below at all")]
    pair = jump_neighbours(x, m["phi_J"], m["phi_J_second"], separate=SEPARATE)
    k_ref = m["K_star"][pair[1]] if pair is not None else np.nan
    if not below.any() or not np.isfinite(k_ref):
        verdict, top = NOT_RESOLVED, np.nan
    else:
        top = np.nanmax(m["second_K_star"][below]) / k_ref
        verdict = REPRODUCED if top < SMALL_AGAINST else NOT_REPRODUCED
    rows.append(_row("(c2) ... but stays small against K at X*_S",
                     f"max K*(second) / K*(just above X*_S) = {top:.3g}", "small", verdict,
                     f"largest mean K* on the second line below {SMALL_AGAINST} x K* at the first X_S "
                     "above X*_S"))
    return rows


def claim_d(x, m: dict) -> list[dict]:
    """(d1) second transition smooth in K, (d2) carried by SL contacts, (d3) SS show a transition."""
    cross = np.isfinite(m["cross_K_below"]) & np.isfinite(m["cross_K_above"]) & (m["cross_K_below"] > 0)
    ratio = m["cross_K_above"][cross] / m["cross_K_below"][cross]
    first_sharp = bool(np.all(m["K_star"][np.isfinite(m["K_star"])] > 0))
    v1 = _vote(ratio < SMOOTH_MAX, ratio >= SMOOTH_MAX) if first_sharp else NOT_REPRODUCED
    rows = [_row("(d1) first transition sharp, second smooth",
                 f"K* > 0 at phi_J + dphi at every point: {first_sharp}; K ratio across the second "
                 f"transition {_fmt(ratio)} at X_S = {_fmt(x[cross])}", "sharp / smooth", v1,
                 "first: K jumps from 0 (unjammed) to K* > 0 at phi_J + dphi at every point; second: K "
                 f"changes by less than x{SMOOTH_MAX:g} between the followed states just below and above "
                 "phi_J_second (one follow step apart)")]
    below = _below_star(x, m)
    sl, ss = m["second_K_SL"][below], m["second_K_SS"][below]
    rows.append(_row("(d2) the second transition is carried by small-large contacts",
                     f"K*_SL / K*_SS on the second line = {_fmt(sl / np.where(ss > 0, ss, np.nan))} at X_S = "
                     f"{_fmt(x[below])}", "SL", _vote(sl > ss, sl <= ss),
                     "K*_SL > K*_SS at phi_J_second + dphi at every X_S below X*_S"))
    ss_b, ss_a = m["cross_K_SS_below"][cross], m["cross_K_SS_above"][cross]
    jump = np.where(ss_b > 0, ss_a / np.where(ss_b > 0, ss_b, 1.0), np.where(ss_a > 0, np.inf, 1.0))
    rows.append(_row("(d3) small-small contacts show a transition",
                     f"K_SS ratio across the second transition {_fmt(jump)}", "transition in SS",
                     _vote((jump >= SS_JUMP_MIN) & (jump > ratio), jump < SS_JUMP_MIN),
                     f"K_SS rises at least x{SS_JUMP_MIN:g} across phi_J_second (and more than K does)"))
    return rows


def evaluate_claims(x, means: dict, sems: dict, estimates: dict, delta: float) -> list[dict]:
    """All claim rows for one size ratio (see the module docstring).

    Parameters
    ----------
    x : ndarray (B,)
        X_S grid.
    means, sems : dict of ndarray (B,)
        Seed means and standard errors of the ``diagram.h5`` keys (without ``_mean``).
    estimates : dict of Estimate
        From :func:`granular.diagram_analysis.bootstrap_diagram`.
    delta : float
        Size ratio.
    """
    x = np.asarray(x, dtype=float)
    return [claim_a(x, means, delta), *claim_b(x, means["phi_J"], estimates, delta),
            *claim_c(x, means, sems), *claim_d(x, means)]


def _fmt(values) -> str:
    values = np.atleast_1d(values)
    return ", ".join(f"{v:.3g}" for v in values) if values.size else "none"
