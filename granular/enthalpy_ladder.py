"""The jamming point from states at target pressures reached by enthalpy minimisation.

``find_jamming(..., method="enthalpy")``: the pressure ladder of :mod:`granular.pressure_ladder`
with its relaxations replaced by minimisations of the enthalpy U + P_t V over the positions and
the box (:func:`granular.enthalpy.relax_at_pressure`). A state at a target pressure is reached
directly: no Newton step in phi, no retries, no unjammed state below phi_J.

1. Approach (``approach``): ``"compress"`` (the default) compresses in steps of ``phi_step`` with
   fixed-box relaxations until a relaxed state is jammed (P above the lower end of the band), the
   bisection's own path, so that both search from the same jammed structure; ``"enthalpy"``
   minimises the enthalpy at the first (highest) target pressure from the start itself (a pressure
   quench: the dilute packing collapses at the box's strain limit, then creeps at P_t until it is
   mechanically stable), another protocol with its own phi_J.
2. Descend: each target pressure below the lowest state's (strictly decreasing) is reached from
   the previous state; with ``land`` one more at the middle of the pressure band, so that the
   stored packing is a jamming-point state as the bisection's is (backbone Z, jammed fractions).
3. phi_J is the zero of the weighted straight-line fit of P(phi)
   (:func:`granular.pressure_ladder.fit_pressure_line`) over the states with P <= ``fit_max``;
   criterion ``"enthalpy fit"``.

Bracket: ``phi_high`` is the lowest packing fraction found jammed, ``phi_low`` the largest found
unjammed (the compression's last unjammed state; 0 with the enthalpy approach, which meets none).

**Protocol dependence, cost** (benchmarks/RESULTS.md "Enthalpy minimisation"). The structure
that jams depends on the path to it, and the approach decides the path. Descending from the
compression's first jammed state reproduces the bisection's phi_J (delta 0.15, X_S 0.2,
n_large 40, seed 0: 0.775689 against 0.775693; 1:1.4 mixture N 200, 8 seeds: within 4e-5), at
about its cost (1.04x and 0.99x the force evaluations). The enthalpy approach at P_t = 1e-3
creeps at constant pressure into a denser skeleton at delta 0.15 (phi_J 0.7811, 1.55x the
bisection's force evaluations; at P_t = 1e-5, 0.7686), and on the mixture gives phi_J
0.6385 +- 0.0010 against 0.6408 +- 0.0014 (seed means), at 0.78x the cost.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from granular.enthalpy import DEFAULT_BOX, BoxParams
from granular.pressure_ladder import DEFAULT_PRESSURES, LineFit, check_ladder, fit_pressure_line
from granular.space import scale_to_phi

CRITERION = "enthalpy fit"
APPROACHES = ("enthalpy", "compress")


@dataclass(frozen=True)
class EnthalpySettings:
    """Parameters of ``find_jamming(..., method="enthalpy")`` (pressures in units of k_n / d_L).

    Attributes
    ----------
    pressures : tuple of float
        Target pressures, >= 2 finite values > 0, strictly decreasing.
    land : bool
        Finish with a state at the middle of the pressure band (the stored packing).
    fit_max : float, optional
        Largest pressure of a state used in the fit (default: twice the first target).
    approach : {"enthalpy", "compress"}
        How the first jammed state is reached (module docstring).
    box : granular.enthalpy.BoxParams
        Pressure tolerance, box mass and strain limit of every enthalpy minimisation.
    """

    pressures: tuple = DEFAULT_PRESSURES
    land: bool = True
    fit_max: float | None = None
    approach: str = "compress"
    box: BoxParams = DEFAULT_BOX

    def __post_init__(self):
        object.__setattr__(self, "pressures", check_ladder(self.pressures, self.fit_max))
        if self.approach not in APPROACHES:
            raise ValueError(f"approach must be one of {APPROACHES}, got {self.approach!r}")
        if not isinstance(self.box, BoxParams):
            raise ValueError(f"box must be a granular.enthalpy.BoxParams, got {self.box!r}")

    @property
    def fit_limit(self) -> float:
        return float(self.fit_max) if self.fit_max is not None else 2.0 * self.pressures[0]


def enthalpy_search(packing, evaluate: Callable, law, *, p_low: float, p_high: float, phi_step: float,
                    settings: EnthalpySettings):
    """Run the search (module docstring).

    ``evaluate(packing)`` relaxes at fixed box, ``evaluate(packing, pressure=P, box=BoxParams)`` at
    pressure P (:func:`granular.enthalpy.relax_at_pressure`); both record the state and return
    it (fields packing, pressure, split, z, steps). Pressures are in the units of ``law`` (already
    multiplied by k_n).

    Returns
    -------
    (phi_j, phi_low, phi_high, criterion, state, fit) : the fields of a JammingResult and the
    :class:`granular.pressure_ladder.LineFit`.
    """
    targets = [t * law.k_n for t in settings.pressures]
    if settings.land:
        targets.append(math.sqrt(p_low * p_high))
    if settings.approach == "compress":
        state, phi_low = _compress(packing, evaluate, p_low, phi_step)
    else:
        state, phi_low = evaluate(packing, pressure=targets.pop(0), box=settings.box), 0.0
    states = [state]
    for target in targets:
        if target < state.pressure * (1.0 - 10.0 * settings.box.pressure_tol):  # only downwards
            state = evaluate(state.packing, pressure=target, box=settings.box)
            states.append(state)
    fit = _fit(states, settings.fit_limit * law.k_n)
    final = min(states, key=lambda s: s.pressure)
    phi_high = min(s.packing.packing_fraction for s in states)
    phi_j = fit.phi_j if np.isfinite(fit.phi_j) else phi_high
    return float(np.clip(phi_j, phi_low, phi_high)), phi_low, phi_high, CRITERION, final, fit


def _compress(packing, evaluate: Callable, p_low: float, phi_step: float):
    """Fixed-box relaxations at phi, phi + phi_step, ... until one is jammed; returns it and the
    largest packing fraction found unjammed (0 if the start is jammed)."""
    state, phi_low = evaluate(packing), 0.0
    while state.pressure < p_low:
        phi_low = state.packing.packing_fraction
        if phi_low + phi_step >= 1.0:
            raise RuntimeError(f"no jamming point below phi = 1 (last phi = {phi_low:.6f})")
        state = evaluate(scale_to_phi(state.packing, phi_low + phi_step))
    return state, phi_low


def _fit(states, fit_limit: float) -> LineFit:
    """The line through the states with P <= fit_limit (the two lowest if fewer qualify)."""
    chosen = [s for s in states if s.pressure <= fit_limit]
    if len(chosen) < 2:
        chosen = sorted(states, key=lambda s: s.pressure)[:2]
    if len(chosen) < 2:
        raise RuntimeError("enthalpy search: fewer than two jammed states to fit P(phi); give more "
                           "pressures below the first jammed state's")
    return fit_pressure_line([s.packing.packing_fraction for s in chosen], [s.pressure for s in chosen])
