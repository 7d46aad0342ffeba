"""Stage 1 of the demo: jamming sweeps, both transitions, the bulk modulus, the jamming diagram.

Three small jamming-diagram sweeps (:func:`granular.diagram.jamming_diagram`), one folder each
under ``packings/``:

- ``media``: moderate size ratio (delta 0.5), the packings that become the granular layers of the
  wave datasets (no second transition there: both transitions coincide);
- ``asymmetric``: strong size asymmetry (delta 0.15) at X_S below and above X*_S, where the
  first transition (a backbone of large spheres, the small ones rattling) and the second (the small
  spheres join) are apart below X*_S and meet above it (Petit et al.);
- ``reference``: O'Hern et al.'s mixture (50:50 by number, diameter ratio 1.4), whose phi_J is
  published.

Each point is followed under compression (:func:`granular.follow.follow_compression`), so the bulk
modulus is known at the first transition, at the second (linear response along the path), and at
phi_J + excess_phi (strains of both signs, and the Hessian).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jamwave.demo_plots import plot_follow, plot_jamming_diagram, plot_pressure_path
from jamwave.demo_run import DemoRun
from jamwave.demo_sizes import Sweep
from jamwave.report import Document

PETIT_X_STAR = 0.21  # Petit et al.: the transitions meet at X*_S ~ 0.21 for delta = 0.15
PETIT_DELTA = 0.15
OHERN_PHI_J = 0.648  # O'Hern et al. 2003: 50:50 by number, diameter ratio 1.4, large N


@dataclass(frozen=True)
class SweepResult:
    """One finished sweep: its folder, combined table, point files and report rows (X_S order)."""

    name: str
    sweep: Sweep
    table: Path
    files: tuple
    rows: tuple


@dataclass(frozen=True)
class Packings:
    """What stage 1 hands on: the sweeps by name and where the asymmetric sweep's lines meet."""

    sweeps: dict
    crossover: dict

    @property
    def media_files(self) -> list[Path]:
        return list(self.sweeps["media"].files)


def sweeps_of(run: DemoRun) -> dict[str, Sweep]:
    """The preset's sweeps by name (``reference`` only when the preset has one)."""
    p = run.preset
    named = {"media": p.media, "asymmetric": p.asymmetric, "reference": p.reference}
    return {name: sweep for name, sweep in named.items() if sweep is not None}


def packings_stage(run: DemoRun, report: Document) -> Packings:
    """Run (or reuse) the three sweeps, write the figures and section 1 of the report."""
    from granular.diagram import read_diagram, transition_crossover

    results = {name: _run_sweep(run, name, sweep) for name, sweep in sweeps_of(run).items()}
    asym = read_diagram(results["asymmetric"].table)
    crossover = transition_crossover(asym["x_small"], asym["phi_J_mean"][0],
                                     asym["jammed_fraction_small_mean"][0], asym["phi_J_second_mean"][0])
    crossover.update(bracket_x_star(asym["x_small"], asym["phi_J_mean"][0], asym["phi_J_second_mean"][0]))
    folder = run.out / "packings"
    published = [(x, OHERN_PHI_J, f"O'Hern et al.: phi_J = {OHERN_PHI_J} (delta {s.delta:.3g})")
                 for s in [results["reference"].sweep] if "reference" in results for x in s.x_small]
    plot_jamming_diagram({r.sweep.delta: r.table for r in results.values()}, folder / "diagram.png",
                         x_star=(PETIT_DELTA, PETIT_X_STAR), crossover=crossover, published=published)
    plot_follow(results["asymmetric"].files, folder / "follow.png")
    media = results["media"]
    plot_pressure_path(media.files, media.rows, folder / "pressure_path.png")
    _plot_middle_slice(run, media)
    _write_section(run, report, results, crossover)
    return Packings(results, crossover)


def _run_sweep(run: DemoRun, name: str, sweep: Sweep) -> SweepResult:
    """Jam, follow and measure one packing per X_S of ``sweep`` in ``packings/<name>/``."""
    from granular.diagram import DiagramSettings, jamming_diagram, point_name

    p = run.preset
    run.say(f"1/5 jamming: {name} sweep, delta = {sweep.delta:g}, X_S = {sweep.x_small}, "
            f"{sweep.size_text} ({p.jamming_method})")
    folder = run.out / "packings" / name
    settings = DiagramSettings(n=sweep.n, n_large=sweep.n_large, method=p.jamming_method,
                               excess_phi=p.excess_phi, follow_step=p.follow_step,
                               follow_range=p.follow_range, backend=run.backend)
    table = jamming_diagram([sweep.delta], list(sweep.x_small), [run.seed], folder, settings,
                            scheduler=run.scheduler, workers=run.workers, force=run.force,
                            progress=run.progress)
    files = tuple(folder / point_name(sweep.delta, x, run.seed) for x in sweep.x_small)
    return SweepResult(name, sweep, table, files, tuple(packing_row(path) for path in files))


def packing_row(path: Path) -> dict:
    """The report's table row of one point file: both transitions and the modulus on each."""
    from granular.h5md import read_group

    res, mod, follow = (read_group(path, g) for g in ("results", "modulus", "follow"))
    scale = 1.0 / res["k_n"]  # K* = K d_L / k_n, d_L = 1
    phi2 = res["phi_J_second"]
    return {
        "X_S (realised)": res["x_small"], "N_S + N_L": int(res["n_small"] + res["n_large"]),
        "phi_J": res["phi_J"], "phi_J second": phi2,
        "small jammed at phi_J": res["jammed_fraction_small_at_phi_J"],
        "Z at phi_J": res["Z_backbone_at_phi_J"],
        "K* first": scale * float(follow["K"][0]),
        "K* second": scale * _along(follow["phi"], follow["K"], phi2),
        "K* at phi_J+dphi": mod["K_star"], "K* (Hessian)": scale * mod.get("K_linear_response", math.nan),
        "K*_SS": scale * mod["K_SS"], "K*_SL": scale * mod["K_SL"], "K*_LL": scale * mod["K_LL"],
    }


def _along(phi: np.ndarray, values: np.ndarray, at: float) -> float:
    """``values`` interpolated linearly in ``phi`` at ``at`` (NaN outside the path or for NaN)."""
    phi, values = np.asarray(phi, float), np.asarray(values, float)
    ok = np.isfinite(values)
    if not math.isfinite(at) or ok.sum() == 0 or not phi[ok][0] <= at <= phi[ok][-1]:
        return math.nan
    return float(np.interp(at, phi[ok], values[ok]))


def bracket_x_star(x: np.ndarray, phi_j: np.ndarray, phi_j_second: np.ndarray,
                   separate: float = 1e-3) -> dict:
    """Bracket X*_S: the largest X_S where the transitions are apart and the smallest above it
    where they coincide (``x_star_low``, ``x_star_high``; NaN where the sweep does not show it)."""
    x, phi_j, phi2 = (np.asarray(a, float) for a in (x, phi_j, phi_j_second))
    apart = np.isfinite(phi_j) & ((phi2 - phi_j > separate) | np.isnan(phi2))
    together = np.isfinite(phi_j) & np.isfinite(phi2) & (phi2 - phi_j <= separate)
    low = x[apart].max() if apart.any() else math.nan
    above = x[together & (x > low)] if math.isfinite(low) else x[together]
    high = above.min() if above.size else math.nan
    return {"x_star_low": float(low), "x_star_high": float(high)}


def _plot_middle_slice(run: DemoRun, media: SweepResult) -> None:
    """``packings/slice.png``: a slice through the middle media packing (kept unless ``force``)."""
    slice_png = run.out / "packings" / "slice.png"
    if run.force or not slice_png.exists():
        from granular.h5md import read_packing
        from granular.slice_plot import plot_slice

        k = len(media.files) // 2
        plot_slice(read_packing(media.files[k]), slice_png,
                   title=f"delta = {media.sweep.delta:g}, X_S = {media.rows[k]['X_S (realised)']:.2f}")


def _write_section(run: DemoRun, report: Document, results: dict, crossover: dict) -> None:
    p = run.preset
    sec = report.section("1. Packings, jamming and bulk modulus")
    sec.text(
        f"Random bidisperse packings of frictionless spheres jammed by FIRE relaxation "
        f"(find_jamming method '{p.jamming_method}'), followed under quasi-static compression in "
        f"steps of {p.follow_step} to the second transition (where half of the small spheres have "
        f"joined the backbone), and measured at phi_J + {p.excess_phi}: K* = K d_L / k_n from "
        "strains of both signs and, independently, from the Hessian (affine minus non-affine). "
        "K* first and K* second are the linear-response moduli on the followed path at the two "
        "transitions."
    )
    titles = {"media": "Moderate size ratio (the media of the wave datasets)",
              "asymmetric": "Strong size asymmetry: both transitions",
              "reference": "O'Hern et al.'s mixture (50:50 by number, diameter ratio 1.4)"}
    for name, result in results.items():
        sec.text(f"{titles[name]}: delta = {result.sweep.delta:.4g}, {result.sweep.size_text}.")
        sec.table(list(result.rows))
    sec.text(_crossover_text(crossover, results["asymmetric"].sweep))
    sec.figure("packings/diagram.png", f"Jamming diagram: phi_J of both transitions and K* against "
               f"X_S (dashed: Petit et al.'s X*_S = {PETIT_X_STAR} at delta = {PETIT_DELTA})")
    sec.figure("packings/follow.png", "Strong size asymmetry: jammed fraction of small spheres and K "
               "along the compression from phi_J (a gap in K: a relaxed state without a force-bearing "
               "backbone, which small boxes can reach by rearranging)")
    sec.figure("packings/slice.png", "Slice through the middle of a media packing at phi_J + excess_phi")
    sec.figure("packings/pressure_path.png", "P and Z of the relaxed media states near jamming")
    for name, result in results.items():
        s = result.sweep
        xs = ",".join(f"{x:g}" for x in s.x_small)
        sec.command(f"jamwave granular diagram --delta {s.delta:.6g} --xs {xs} --seeds 1 "
                    f"{s.size_option} --method {p.jamming_method} --excess-phi {p.excess_phi} "
                    f"--follow-step {p.follow_step} --follow-range {p.follow_range} "
                    f"--out {run.out / 'packings' / name}")


def _crossover_text(crossover: dict, sweep: Sweep) -> str:
    """Where the asymmetric sweep puts X*_S, in words."""
    low, high = crossover["x_star_low"], crossover["x_star_high"]
    if math.isfinite(low) and math.isfinite(high):
        where = f"the transitions are apart at X_S = {low:g} and coincide at X_S = {high:g}"
    elif math.isfinite(low):
        where = f"the transitions are still apart at the largest X_S, {low:g}"
    else:
        where = "the transitions coincide at every X_S of the sweep"
    text = f"At delta = {sweep.delta:g} {where}"
    est = crossover.get("x_transitions_meet_interpolated", math.nan)
    if math.isfinite(est):
        text += f"; half of the small spheres jam at the first transition from X_S = {est:.3f} (interpolated)"
    if "x_lines_meet" in crossover:
        text += (f"; straight lines through the two transition lines meet at X_S = "
                 f"{crossover['x_lines_meet']:.3f}, phi = {crossover['phi_lines_meet']:.3f}")
    return text + f". Petit et al. find X*_S ~ {PETIT_X_STAR} at delta = {PETIT_DELTA}."
