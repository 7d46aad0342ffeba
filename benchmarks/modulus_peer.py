"""Bulk modulus of a jammed packing: jamwave's two methods against jax-md's athermal elasticity.

One packing per system, made with the project's own protocol (``make_packing``, ``find_jamming``
by FIRE-relaxed bisection, ``compress_to`` phi_J + ``excess_phi`` relaxed to max |F| <= 1e-13 k_n
d_L), and three bulk moduli of that same relaxed state:

* **strain**: :func:`granular.bulk_modulus` with ``method="strain"``, K = dP/d(epsilon_v) from
  volumetric strains of both signs, each state relaxed with FIRE (epsilon_v = -dV/V), at each
  amplitude of ``--strains`` (the first, the library default 1e-5, is the reference of the
  ``rel_vs_strain`` column);
* **hessian**: :func:`granular.linear_response`, affine minus non-affine part from the sparse
  Hessian of the backbone (scipy LU), plus 2P/3;
* **jax-md**: ``jax_md.elasticity.athermal_moduli``, the elastic tensor C_ijkl of the same energy
  with the box as the strain variable (``space.periodic_general``, fractional coordinates, float64,
  non-affine response by conjugate gradients on Hessian-vector products), and its bulk part
  B = C_iijj / 9 (``extract_isotropic_moduli``). The energy is jax-md's harmonic soft sphere,
  U = (epsilon / 2) (1 - r / sigma)^2 for r < sigma, with sigma = r_i + r_j by species pair and
  epsilon = k_n sigma^2, i.e. exactly our linear law U = k_n xi^2 / 2 with xi = sigma - r
  (:mod:`granular.contact`). The pressure P used below is jax-md's own (``quantity.pressure``).

**Relation between B and K.** jax-md expands the energy in the displacement gradient of the box,
F = I + e (fractional coordinates fixed, then relaxed), U/V0 = U0/V0 + s0_ij e_ij +
C_ijkl e_ij e_kl / 2, and B is the response to e = (gamma / 3) I: B = (1/V0) d^2U/dgamma^2 along
the isotropic scaling s = 1 + gamma / 3, V = V0 s^3. With P = -dU/dV and K = -V dP/dV:

    dU/ds = -3 V0 s^2 P,   d^2U/ds^2 = -3 V0 (s^2 dP/ds + 2 s P),   dP/ds|_(s=1) = -3 K,

so d^2U/dgamma^2 = (1/9) d^2U/ds^2 = V0 (K - 2P/3), i.e.

    K = B + 2P/3.

(With the Lagrangian strain (F^T F - I)/2 instead of F - I the correction would be P/3.) For
harmonic spheres P/K ~ (phi - phi_J) near jamming, so at phi_J + 0.01 the correction is about
1 % of K: the raw B does not meet a 1 % check, the corrected one must.

**Rattlers.** The comparison runs on the backbone (particles with at least four force-bearing
contacts, rattlers removed iteratively, :func:`granular.backbone`), as the Hessian method does;
``--rattler-check`` reruns jax-md on all particles (rattlers' zero modes held by jax-md's tether
1e-10) to show that they do not change K.

Usage::

    python -m benchmarks.modulus_peer                      # a: delta 1/1.4 N 1000; b: delta 0.5 N 300
    python -m benchmarks.modulus_peer --n-a 2000 --seed-a 1 --systems a
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from dataclasses import dataclass

import numpy as np

from benchmarks.harness import Report, measure, print_table, write_results
from jamwave.argtypes import bounded_float, bounded_int, float_list

SYSTEMS = {
    # (delta, X_S by volume): the 1:1.4 mixture (half the solid volume small, not 50:50 by number)
    # and a stronger size ratio.
    "a": (1.0 / 1.4, 0.5),
    "b": (0.5, 0.5),
}


@dataclass(frozen=True)
class JaxmdModulus:
    """Bulk modulus of one state from jax-md's elastic tensor (units k_n / d_L).

    Attributes
    ----------
    B : float
        Raw bulk part of the elastic tensor, C_iijj / 9.
    K : float
        B + 2P/3, comparable with dP/d(epsilon_v).
    pressure : float
        jax-md's pressure -dU/dV of the state.
    max_gradient : float
        max |dU/ds| over fractional coordinates s (units k_n d_L^2): zero at a relaxed state.
    converged : bool
        Whether jax-md's conjugate-gradient solve met ``cg_tol``.
    n_particles : int
        Particles given to jax-md.
    first_s, warm_s : float
        Wall time of the first call (tracing and XLA compilation included) and of a second call.
    """

    B: float
    K: float
    pressure: float
    max_gradient: float
    converged: bool
    n_particles: int
    first_s: float
    warm_s: float


def import_jax():
    """Import jax on one CPU thread with float64 enabled; returns the ``jax`` module."""
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax


def jammed_state(delta: float, x_small: float, n: int, seed: int, excess_phi: float, law):
    """A packing at phi_J + ``excess_phi``, relaxed to max |F| <= 1e-13 k_n d_L.

    Returns
    -------
    packing : granular.Packing
    phi_j : float
    wall_s : float
        Wall time of making, jamming and compressing it.
    """
    import granular

    start = time.perf_counter()
    jam = granular.find_jamming(granular.make_packing(delta, x_small, n=n, phi=0.3, seed=seed), law,
                                max_steps=10**7)
    packing = granular.compress_to(jam.packing, jam.phi_j + excess_phi, law, force_tol=1e-13,
                                   max_steps=10**7)
    return packing, jam.phi_j, time.perf_counter() - start


def species_sigma(radius: np.ndarray, species: np.ndarray) -> np.ndarray:
    """Contact distance sigma_ab = r_a + r_b for each pair of species, shape (S, S), units d_L.

    Raises ValueError unless every species has a single radius (jax-md's soft sphere takes its
    parameters per species pair).
    """
    n_species = int(species.max()) + 1
    r = np.zeros(n_species)
    for s in range(n_species):
        values = np.unique(radius[species == s])
        if values.size != 1:
            raise ValueError(f"species {s} has {values.size} radii; need exactly one per species")
        r[s] = values[0]
    return r[:, None] + r[None, :]


def jaxmd_bulk_modulus(packing, law, keep: np.ndarray | None = None, *, cg_tol: float = 1e-10,
                       time_warm: bool = True) -> JaxmdModulus:
    """K of a relaxed packing from ``jax_md.elasticity.athermal_moduli`` (see the module docstring).

    Parameters
    ----------
    packing : granular.Packing
        Relaxed state (orthorhombic box of edges ``packing.box``).
    law : granular.ContactLaw
        Linear law; its ``k_n`` sets epsilon = k_n sigma^2.
    keep : ndarray (N,) bool, optional
        Particles to include (default all); the box, hence the volume, is unchanged.
    cg_tol : float
        Relative tolerance of jax-md's conjugate-gradient solve of the non-affine response.
    time_warm : bool
        Run the compiled computation a second time to time it without compilation (else
        ``warm_s`` is NaN).
    """
    if law.model != "linear":
        raise ValueError("the jax-md cross-check uses jax-md's harmonic soft sphere: "
                         "law.model must be 'linear'")
    jax = import_jax()
    import jax.numpy as jnp
    from jax_md import elasticity, energy, partition, quantity, space

    keep = np.ones(packing.n, dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
    species = packing.species[keep].astype(np.int32)
    sigma = species_sigma(packing.radius[keep], species)
    box = jnp.diag(jnp.asarray(packing.box, dtype=jnp.float64))
    fractional = jnp.asarray(np.mod(packing.position[keep], packing.box) / packing.box)
    displacement, _ = space.periodic_general(box, fractional_coordinates=True)
    neighbor_fn, energy_fn = energy.soft_sphere_neighbor_list(
        displacement, box, species=jnp.asarray(species), sigma=jnp.asarray(sigma),
        epsilon=jnp.asarray(law.k_n * sigma**2), alpha=2.0, dr_threshold=0.0,
        fractional_coordinates=True, format=partition.Sparse)
    with warnings.catch_warnings():
        # jax-md scatters int64 indices into its int32 neighbour buffer under x64; harmless here.
        warnings.filterwarnings("ignore", message="scatter inputs have incompatible types",
                                category=FutureWarning)
        neighbors = neighbor_fn.allocate(fractional)
        moduli_fn = elasticity.athermal_moduli(energy_fn, cg_tol=cg_tol, check_convergence=True)
        results = []

        def run():
            tensor, converged = moduli_fn(fractional, box, neighbor=neighbors)
            results.append((jax.block_until_ready(tensor), bool(converged)))

        first = measure(run, warmup=0, repeats=1)
        warm_s = measure(run, warmup=0, repeats=1).best if time_warm else float("nan")
        tensor, converged = results[-1]
        bulk = float(elasticity.extract_isotropic_moduli(tensor)["B"])
        pressure = float(quantity.pressure(energy_fn, fractional, box, neighbor=neighbors))
        gradient = float(jnp.max(jnp.abs(jax.grad(energy_fn)(fractional, neighbor=neighbors))))
    return JaxmdModulus(B=bulk, K=bulk + 2.0 * pressure / 3.0, pressure=pressure, max_gradient=gradient,
                        converged=converged, n_particles=int(keep.sum()), first_s=first.best,
                        warm_s=warm_s)


def compare_system(label: str, delta: float, x_small: float, n: int, seed: int, *, excess_phi: float,
                   strains: list[float], repeats: int, rattler_check: bool,
                   cg_tol: float) -> tuple[list[dict], dict]:
    """Rows (one per method) and notes for one system."""
    import granular

    law = granular.ContactLaw()
    packing, phi_j, jam_s = jammed_state(delta, x_small, n, seed, excess_phi, law)
    backbone = granular.backbone(packing, law)
    results = {}
    strain_timings = [measure(lambda s=s: results.__setitem__(
        s, granular.bulk_modulus(packing, law, strain=s, method="strain")), warmup=0, repeats=repeats)
        for s in strains]
    hessian_timing = measure(lambda: results.__setitem__(
        "hessian", granular.linear_response(packing, law)), warmup=1, repeats=repeats)
    peer = jaxmd_bulk_modulus(packing, law, backbone.jammed, cg_tol=cg_tol)
    k_strain, k_hessian = results[strains[0]].K, results["hessian"].K
    case = f"{label}: delta={delta:.4g} X_S={x_small:g}"
    common = {"case": case, "n": packing.n}

    def rel(k):
        return {"rel_vs_strain": (k - k_strain) / k_strain, "rel_vs_hessian": (k - k_hessian) / k_hessian}

    rows = [
        {**common, "method": f"strain (FIRE, eps={s:g})", "n_used": packing.n, "K_raw": "",
         "K": results[s].K, **rel(results[s].K), "wall_s": timing.median, "first_s": ""}
        for s, timing in zip(strains, strain_timings)
    ]
    rows += [
        {**common, "method": "hessian (scipy LU)", "n_used": results["hessian"].n_active, "K_raw": "",
         "K": k_hessian, **rel(k_hessian), "wall_s": hessian_timing.median, "first_s": ""},
        {**common, "method": "jax-md backbone", "n_used": peer.n_particles, "K_raw": peer.B, "K": peer.K,
         **rel(peer.K), "wall_s": peer.warm_s, "first_s": peer.first_s},
    ]
    notes = {"delta": delta, "x_small": x_small, "seed": seed, "phi_J": phi_j,
             "phi": packing.packing_fraction,
             "pressure": results[strains[0]].pressure, "pressure_jaxmd": peer.pressure,
             "z_backbone": backbone.z_backbone, "n_backbone": int(backbone.jammed.sum()),
             "jaxmd_converged": peer.converged, "jaxmd_max_gradient": peer.max_gradient,
             "raw_B_rel_vs_hessian": (peer.B - k_hessian) / k_hessian, "jam_wall_s": jam_s}
    if rattler_check:
        every = jaxmd_bulk_modulus(packing, law, None, cg_tol=cg_tol)
        rows.append({**common, "method": "jax-md all particles", "n_used": every.n_particles,
                     "K_raw": every.B, "K": every.K, **rel(every.K), "wall_s": every.warm_s,
                     "first_s": every.first_s})
        notes["jaxmd_all_converged"] = every.converged
    return rows, notes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", default="a,b", help="comma-separated systems: a (delta 1/1.4, X_S 0.5), "
                        "b (delta 0.5, X_S 0.5) (default: a,b)")
    parser.add_argument("--n-a", type=bounded_int(20), default=1000,
                        help="particles of system a (default: 1000)")
    parser.add_argument("--n-b", type=bounded_int(20), default=300,
                        help="particles of system b (default: 300)")
    parser.add_argument("--seed-a", type=bounded_int(0), default=1, help="seed of system a (default: 1)")
    parser.add_argument("--seed-b", type=bounded_int(0), default=0, help="seed of system b (default: 0)")
    parser.add_argument("--excess-phi", type=bounded_float(0, 0.1, lo_open=True), default=0.01,
                        help="phi - phi_J of the measured state (default: 0.01)")
    parser.add_argument("--strains", type=float_list(0, 1e-2, lo_open=True), default="1e-5,1e-6",
                        help="volumetric strains of the strain method (default: 1e-5,1e-6)")
    parser.add_argument("--cg-tol", type=bounded_float(0, 1e-3, lo_open=True), default=1e-10,
                        help="relative tolerance of jax-md's CG solve (default: 1e-10)")
    parser.add_argument("--rattler-check", default="b",
                        help="systems where jax-md also runs on all particles, rattlers included "
                        "(default: b)")
    parser.add_argument("--repeats", type=bounded_int(1), default=3,
                        help="timed repeats of the strain and Hessian methods (median reported; default: 3)")
    args = parser.parse_args(argv)
    labels = [s for s in args.systems.split(",") if s]
    check = {s for s in args.rattler_check.split(",") if s}
    unknown = (set(labels) | check) - set(SYSTEMS)
    if unknown:
        parser.error(f"--systems/--rattler-check: unknown system(s) {sorted(unknown)}; "
                     f"choose from {sorted(SYSTEMS)}")
    try:
        import jax_md  # noqa: F401
    except ImportError:
        print("jax-md is not installed (pip install 'jamwave[peers]'): nothing to compare")
        return 0
    import jax

    size = {"a": (args.n_a, args.seed_a), "b": (args.n_b, args.seed_b)}
    report = Report("modulus_peer", notes={"excess_phi": args.excess_phi, "strains": args.strains,
                                           "cg_tol": args.cg_tol, "jax": jax.__version__,
                                           "jax_md": _version("jax-md"), "load_before": os.getloadavg()})
    for label in labels:
        rows, notes = compare_system(label, *SYSTEMS[label], *size[label], excess_phi=args.excess_phi,
                                     strains=args.strains, repeats=args.repeats,
                                     rattler_check=label in check, cg_tol=args.cg_tol)
        report.rows.extend(rows)
        report.notes[label] = notes
    report.notes["load_after"] = os.getloadavg()
    print_table(report.rows, ["case", "n", "method", "n_used", "K_raw", "K", "rel_vs_strain",
                              "rel_vs_hessian", "wall_s", "first_s"])
    for label in labels:
        notes = report.notes[label]
        print(f"{label}: phi_J = {notes['phi_J']:.5f}, phi = {notes['phi']:.5f}, P = {notes['pressure']:.6g} "
              f"(jax-md {notes['pressure_jaxmd']:.6g}), backbone {notes['n_backbone']} particles "
              f"Z = {notes['z_backbone']:.3f}, raw B vs hessian {notes['raw_B_rel_vs_hessian']:+.3%}, "
              f"jamming {notes['jam_wall_s']:.0f} s")
    print(f"load average before/after: {report.notes['load_before']} / {report.notes['load_after']}")
    write_results(report)
    return 0


def _version(distribution: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
