"""Reference checks of the jamming point and the bulk modulus (benchmarks/RESULTS.md, "Reference checks").

Two tables, each row one system made and measured by the library's public functions:

* ``--table jamming``: ``find_jamming(make_packing(delta, X_S, n=N, phi=0.3, seed=s),
  max_steps=10**7)`` (O'Hern et al.'s FIRE-relaxed bisection) for the monodisperse system
  (N = 200 seeds 0, 1; N = 1000 seed 0) and the 50:50-by-number mixture of diameter ratio 1.4
  (delta = 1/1.4, X_S = delta^3 / (1 + delta^3); N = 1000 and 2000, seeds 0, 1): phi_J, the bracket
  width, the backbone's Z (:func:`granular.backbone`), the FIRE steps of all relaxations
  (``history["steps"]``) and the wall time.
* ``--table modulus``: the same protocol, then ``compress_to(phi_J + 0.01)`` and
  ``bulk_modulus(method="both")``: K from strains of +-1e-5 (FIRE to 1e-13) against the Hessian
  linear response, for the 1.4 mixture at N = 150 (seeds 0-2) and N = 2000 (seed 1), and
  delta = 0.15, X_S = 0.1 with 15 large spheres (seed 0).

The N = 2000 rows take 10-20 minutes each on a loaded 2-core machine; ``--quick`` keeps the rows of
N <= 1000 (minutes). Results go to ``benchmarks/results/jamming_reference_<table>.json``.

Usage::

    NUMBA_NUM_THREADS=1 python -m benchmarks.jamming_reference --table jamming
    NUMBA_NUM_THREADS=1 python -m benchmarks.jamming_reference --table modulus --quick
"""

from __future__ import annotations

import argparse
import os
import time

from benchmarks.harness import Report, print_table, write_results

MIX_DELTA = 1 / 1.4
MIX_XS = MIX_DELTA**3 / (1 + MIX_DELTA**3)

# (label, delta, X_S, size keyword, size, seed)
JAMMING_ROWS = [
    ("monodisperse", 1.0, 0.0, "n", 200, 0),
    ("monodisperse", 1.0, 0.0, "n", 200, 1),
    ("monodisperse", 1.0, 0.0, "n", 1000, 0),
    ("50:50 by number, d ratio 1.4", MIX_DELTA, MIX_XS, "n", 1000, 0),
    ("50:50 by number, d ratio 1.4", MIX_DELTA, MIX_XS, "n", 1000, 1),
    ("50:50 by number, d ratio 1.4", MIX_DELTA, MIX_XS, "n", 2000, 0),
    ("50:50 by number, d ratio 1.4", MIX_DELTA, MIX_XS, "n", 2000, 1),
]
MODULUS_ROWS = [
    ("50:50 by number, d ratio 1.4", MIX_DELTA, MIX_XS, "n", 150, 0),
    ("50:50 by number, d ratio 1.4", MIX_DELTA, MIX_XS, "n", 150, 1),
    ("50:50 by number, d ratio 1.4", MIX_DELTA, MIX_XS, "n", 150, 2),
    ("50:50 by number, d ratio 1.4", MIX_DELTA, MIX_XS, "n", 2000, 1),
    ("delta 0.15, X_S 0.1", 0.15, 0.1, "n_large", 15, 0),
]


def jam(delta: float, x_small: float, size_key: str, size: int, seed: int):
    """The jamming result of one system and its wall time."""
    import granular

    start = time.perf_counter()
    packing = granular.make_packing(delta, x_small, **{size_key: size}, phi=0.3, seed=seed)
    result = granular.find_jamming(packing, max_steps=10**7)
    return result, time.perf_counter() - start


def jamming_row(label, delta, x_small, size_key, size, seed) -> dict:
    import granular

    r, wall = jam(delta, x_small, size_key, size, seed)
    return {"system": label, "N": r.packing.n, "seed": seed, "phi_J": r.phi_j,
            "bracket_width": r.bracket_width, "Z_backbone": granular.backbone(r.packing).z_backbone,
            "fire_steps": int(sum(r.history["steps"])), "wall_s": wall}


def modulus_row(label, delta, x_small, size_key, size, seed, excess: float = 0.01) -> dict:
    import granular

    start = time.perf_counter()
    r, _ = jam(delta, x_small, size_key, size, seed)
    law = granular.ContactLaw()
    state = granular.compress_to(r.packing, r.phi_j + excess, law, force_tol=1e-13, max_steps=10**7)
    m = granular.bulk_modulus(state, law, strain=1e-5, method="both")
    return {"system": label, "N": state.n, "seed": seed, "phi_J": r.phi_j, "phi": state.packing_fraction,
            "K_strain": m.K, "K_hessian": m.K_linear_response,
            "relative_difference": abs(m.K - m.K_linear_response) / m.K_linear_response,
            "wall_s": time.perf_counter() - start}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", choices=("jamming", "modulus"), required=True)
    parser.add_argument("--quick", action="store_true", help="only the rows with N <= 1000")
    args = parser.parse_args(argv)
    rows = JAMMING_ROWS if args.table == "jamming" else MODULUS_ROWS
    if args.quick:
        rows = [row for row in rows if row[3] == "n_large" or row[4] <= 1000]
    report = Report(f"jamming_reference_{args.table}")
    report.notes["load_before"] = os.getloadavg()
    measure = jamming_row if args.table == "jamming" else modulus_row
    for row in rows:
        report.add(**measure(*row))
        print_table(report.rows[-1:])
    report.notes["load_after"] = os.getloadavg()
    print_table(report.rows)
    print(f"load average before/after: {report.notes['load_before']} / {report.notes['load_after']}")
    write_results(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
