"""Report of a jamming diagram at one size ratio: numbers (JSON), claims (Markdown), figures (PNG).

:func:`diagram_report` reads ``diagram.h5`` (:func:`granular.diagram.combine`), runs the bootstrap
(:func:`granular.diagram_analysis.bootstrap_diagram`), decides the claims
(:func:`granular.diagram_claims.evaluate_claims`) and writes into ``out``:

- ``report.json``: settings, per-X_S seed means and standard errors, the estimates with their 95 %
  intervals, the claim rows, point status counts and costs (wall time per point);
- ``claims.md``: the table "claim | ours | paper | verdict | criterion" and the key numbers;
- ``lines.png``: both transition lines with X*_S and the phi_J maximum (claims a, b);
- ``moduli.png``: K* along both lines against X_S (claim c);
- ``partial_moduli.png``: K*_SS, K*_SL, K*_LL along both lines, and K, K_SS, K_SL across the second
  transition along the followed paths when the point files sit beside the table (claim d).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from granular.diagram import mean_sem, read_diagram, read_diagram_settings
from jamcommon.files import atomic_path, atomic_write_text, check_writable

CURVE_KEYS = ("phi_J", "phi_J_second", "jammed_fraction_small", "jammed_fraction_large", "K_star",
              "K_SS", "K_SL", "K_LL", "second_K_star", "second_K_SS", "second_K_SL", "second_K_LL",
              "second_jammed_fraction_small", "second_jammed_fraction_large", "cross_K_below",
              "cross_K_above", "cross_K_SS_below", "cross_K_SS_above", "cross_K_SL_below",
              "cross_K_SL_above", "cross_K_LL_below", "cross_K_LL_above", "n_small", "wall_s")
OUTPUTS = ("report.json", "claims.md", "lines.png", "moduli.png", "partial_moduli.png")


def _select_delta(t: dict, delta: float | None) -> int:
    deltas = np.asarray(t["delta"], dtype=float)
    if delta is None:
        if deltas.size != 1:
            raise ValueError(f"the table holds several size ratios {deltas.tolist()}: choose one with delta")
        return 0
    hits = np.nonzero(np.isclose(deltas, delta, atol=1e-9))[0]
    if hits.size == 0:
        raise ValueError(f"delta = {delta} is not in the table (it holds {deltas.tolist()})")
    return int(hits[0])


def analyse(table: str | os.PathLike, delta: float | None = None, *, n_boot: int = 2000,
            seed: int = 0) -> dict:
    """Estimates, claims and curves of one size ratio of a ``diagram.h5`` (JSON-ready dict)."""
    from granular.diagram_analysis import bootstrap_diagram
    from granular.diagram_claims import evaluate_claims

    t = read_diagram(table)
    a = _select_delta(t, delta)
    d = float(t["delta"][a])
    x = np.asarray(t["x_small"], dtype=float)
    means = {k: t[f"{k}_mean"][a] for k in CURVE_KEYS if f"{k}_mean" in t}
    sems = {k: t[f"{k}_sem"][a] for k in CURVE_KEYS if f"{k}_sem" in t}
    per_seed = {k: t[k][a] for k in ("phi_J", "phi_J_second", "jammed_fraction_small", "K_star")}
    estimates = bootstrap_diagram(x, per_seed, n_boot=n_boot, seed=seed)
    claims = evaluate_claims(x, means, sems, estimates, d)
    status = t["status"][a] if "status" in t else np.where(np.isfinite(t["phi_J"][a]), 0, -1)
    wall = t["wall_s"][a] if "wall_s" in t else np.full(status.shape, np.nan)
    costs = {"points_done": int(np.sum(status == 0)), "points_timeout": int(np.sum(status == 1)),
             "points_error": int(np.sum(status == 2)), "points_missing": int(np.sum(status == -1)),
             "wall_s_sum": float(np.nansum(wall)), "wall_s_per_x_small_mean": _nanlist(mean_sem(wall)[0]),
             "wall_s_max": float(np.nanmax(wall)) if np.isfinite(wall).any() else float("nan")}
    return {"delta": d, "x_small": x.tolist(), "seeds": np.asarray(t["seed"]).tolist(),
            "settings": read_diagram_settings(table), "n_boot": n_boot, "bootstrap_seed": seed,
            "estimates": {k: v.as_dict() for k, v in estimates.items()},
            "claims": claims, "costs": costs, "status": status.tolist(),
            "means": {k: _nanlist(v) for k, v in means.items()},
            "sems": {k: _nanlist(v) for k, v in sems.items()}}


def _nanlist(values) -> list:
    """JSON-safe list: NaN -> None."""
    with np.errstate(invalid="ignore"):
        return [None if not np.isfinite(v) else float(v) for v in np.atleast_1d(np.asarray(values, float))]


def claims_markdown(result: dict) -> str:
    """The claims table and the key numbers as Markdown."""
    e = result["estimates"]

    def ci(key, fmt=".3f"):
        v = e[key]
        return f"{v['value']:{fmt}} [{v['low']:{fmt}}, {v['high']:{fmt}}]"

    lines = [f"Jamming diagram, delta = {result['delta']:g}: X_S = {result['x_small']}, "
             f"seeds {result['seeds']}, settings {result['settings']}", "",
             f"- X*_S (crossing of straight lines through the two transition lines, 95 % bootstrap "
             f"interval over seeds): {ci('x_star_lines')}; phi there {ci('phi_star_lines', '.4f')}",
             f"- X*_S (half of the small spheres jammed at phi_J): {ci('x_star_half_jammed')}",
             f"- phi_J maximum at X_S = {ci('x_phi_max')} (grid {e['x_phi_max_grid']['value']:.3f}), "
             f"phi_J max = {ci('phi_max', '.4f')}",
             f"- K* jump at X*_S (just above / just below): {ci('k_jump', '.2f')}",
             f"- points: {result['costs']}", "",
             "| claim | ours | paper | verdict | criterion |", "|---|---|---|---|---|"]
    for row in result["claims"]:
        lines.append(f"| {row['claim']} | {row['ours']} | {row['paper']} | **{row['verdict']}** | "
                     f"{row['criterion']} |")
    return "\n".join(lines) + "\n"


def _band(ax, est: dict, color: str, label: str, x) -> None:
    """Shade an estimate's interval (clipped to the X_S grid, whose range fixes the axis)."""
    lo, hi = float(np.min(x)), float(np.max(x))
    pad = 0.05 * (hi - lo) if hi > lo else 0.01
    if est["low"] is not None and np.isfinite(est["low"]):
        ax.axvspan(max(est["low"], lo - pad), min(est["high"], hi + pad), color=color, alpha=0.15,
                   label=label)
    if np.isfinite(est["value"]) and lo - pad <= est["value"] <= hi + pad:
        ax.axvline(est["value"], color=color, lw=1)
    ax.set_xlim(lo - pad, hi + pad)


def _arr(result: dict, key: str, sem: bool = False) -> np.ndarray:
    values = (result["sems"] if sem else result["means"]).get(key)
    return np.array([np.nan if v is None else v for v in values], dtype=float) if values else \
        np.full(len(result["x_small"]), np.nan)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def plot_lines(result: dict, path: Path) -> Path:
    """phi_J of both lines and the jammed fraction of small spheres against X_S (claims a, b)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, e = np.asarray(result["x_small"]), result["estimates"]
    fig, (ax, ax_f) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax.errorbar(x, _arr(result, "phi_J"), _arr(result, "phi_J", True), marker="o", label="first transition")
    ax.errorbar(x, _arr(result, "phi_J_second"), _arr(result, "phi_J_second", True), marker="s", mfc="none",
                ls="--", label="second transition")
    _band(ax, e["x_star_lines"], "C3", "X*_S (lines meet), 95 %", x)
    _band(ax, e["x_phi_max"], "C2", "phi_J maximum, 95 %", x)
    ax.set(xlabel="X_S", ylabel="phi_J", title=f"delta = {result['delta']:g}: transition lines")
    ax.legend(fontsize=7)
    ax_f.errorbar(x, _arr(result, "jammed_fraction_small"), _arr(result, "jammed_fraction_small", True),
                  marker="o", label="small, at phi_J")
    ax_f.errorbar(x, _arr(result, "jammed_fraction_large"), _arr(result, "jammed_fraction_large", True),
                  marker="^", label="large, at phi_J")
    ax_f.errorbar(x, _arr(result, "second_jammed_fraction_small"),
                  _arr(result, "second_jammed_fraction_small", True), marker="s", mfc="none", ls="--",
                  label="small, at phi_J_second + dphi")
    _band(ax_f, e["x_star_lines"], "C3", "X*_S, 95 %", x)
    ax_f.set(xlabel="X_S", ylabel="jammed (non-rattler) fraction", ylim=(-0.05, 1.05),
             title="jammed fractions")
    ax_f.legend(fontsize=7)
    _save(fig, path)
    return path


def plot_moduli(result: dict, path: Path) -> Path:
    """K* at phi + dphi along the first and the second transition against X_S (claim c)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.asarray(result["x_small"])
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.errorbar(x, _arr(result, "K_star"), _arr(result, "K_star", True), marker="o",
                label="first line: K* at phi_J + dphi")
    ax.errorbar(x, _arr(result, "second_K_star"), _arr(result, "second_K_star", True), marker="s",
                mfc="none", ls="--", label="second line: K* at phi_J_second + dphi")
    _band(ax, result["estimates"]["x_star_lines"], "C3", "X*_S, 95 %", x)
    ax.set(xlabel="X_S", ylabel="K* = K d_L / k_n", yscale="log",
           title=f"delta = {result['delta']:g}: bulk modulus along both lines")
    ax.legend(fontsize=7)
    _save(fig, path)
    return path


def _follow_paths(point_dir: Path, delta: float, x_values, seeds) -> list:
    """(x_small, phi - phi_J_second, K, K_SS, K_SL) along the followed path of each point file
    with a second transition (crossing); empty when the point files are not there."""
    from granular.diagram import point_name
    from granular.h5md import read_group

    paths = []
    for x in x_values:
        for s in seeds:
            path = point_dir / point_name(delta, x, s)
            if not path.exists():
                continue
            results, follow = read_group(path, "results"), read_group(path, "follow")
            second = results.get("phi_J_second", np.nan)
            if np.isfinite(second) and second > results["phi_J"] + 1e-3:
                phi = np.asarray(follow["phi"]) - second
                moduli = (np.asarray(follow[k]) / results["k_n"] for k in ("K", "K_SS", "K_SL"))
                paths.append((x, phi, *moduli))
    return paths


def plot_partial_moduli(result: dict, path: Path, point_dir: Path | None = None) -> Path:
    """K*_SS, K*_SL, K*_LL along both lines against X_S, and across the second transition along
    the followed paths (claim d)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.asarray(result["x_small"])
    paths = _follow_paths(point_dir, result["delta"], x, result["seeds"]) if point_dir else []
    fig, axes = plt.subplots(1, 3 if paths else 2, figsize=(16 if paths else 11, 4.2))
    for ax, prefix, title in ((axes[0], "", "first line (phi_J + dphi)"),
                              (axes[1], "second_", "second line (phi_J_second + dphi)")):
        for key, marker in (("K_SS", "o"), ("K_SL", "s"), ("K_LL", "^")):
            ax.errorbar(x, _arr(result, prefix + key), _arr(result, prefix + key, True), marker=marker,
                        label=key)
        _band(ax, result["estimates"]["x_star_lines"], "C3", "X*_S, 95 %", x)
        ax.set(xlabel="X_S", ylabel="partial K* (units k_n / d_L)", yscale="symlog",
               title=f"delta = {result['delta']:g}: {title}")
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.legend(fontsize=7)
    if paths:
        ax = axes[2]
        for k, (xs, phi, k_all, k_ss, k_sl) in enumerate(paths):
            c = f"C{int(np.searchsorted(x, xs)) % 10}"
            lab = k == 0 or xs != paths[k - 1][0]
            ax.plot(phi, k_all, color=c, marker="o", ms=3, label=f"K, X_S = {xs:g}" if lab else None)
            ax.plot(phi, k_sl, color=c, ls="--", label="K_SL" if k == 0 else None)
            ax.plot(phi, k_ss, color=c, ls=":", label="K_SS" if k == 0 else None)
        ax.axvline(0, color="k", lw=0.8)
        ax.set(xlabel="phi - phi_J_second", ylabel="K (linear response, k_n / d_L)",
               title="across the second transition (followed paths)")
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.legend(fontsize=7)
    _save(fig, path)
    return path


def diagram_report(table: str | os.PathLike, out: str | os.PathLike, *, delta: float | None = None,
                   n_boot: int = 2000, seed: int = 0, overwrite: bool = False) -> dict:
    """Write the report of one size ratio of ``table`` into the folder ``out`` (see module doc).

    Parameters
    ----------
    table : path-like
        A ``diagram.h5``; its point files, if beside it, add the followed paths to the figure.
    out : path-like
        Output folder (created).
    delta : float, optional
        Size ratio to report (required when the table holds several).
    n_boot, seed
        Bootstrap replicates and seed.
    overwrite : bool
        Replace existing report files.

    Returns
    -------
    dict
        The content of ``report.json``.
    """
    table = Path(table)
    if not table.is_file():
        raise ValueError(f"table: file {str(table)!r} does not exist")
    out = Path(out)
    for name in OUTPUTS:
        check_writable(out / name, overwrite=overwrite)
    out.mkdir(parents=True, exist_ok=True)
    result = analyse(table, delta, n_boot=n_boot, seed=seed)
    atomic_write_text(out / "report.json", json.dumps(result, indent=1, default=_json_default),
                      overwrite=True)
    atomic_write_text(out / "claims.md", claims_markdown(result), overwrite=True)
    plot_lines(result, out / "lines.png")
    plot_moduli(result, out / "moduli.png")
    plot_partial_moduli(result, out / "partial_moduli.png", table.parent)
    return result


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
