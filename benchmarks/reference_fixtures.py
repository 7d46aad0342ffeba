"""Small stored references from other codes, for the default test suite (``tests/data``).

One jammed packing, made by the project's own protocol (``make_packing``, ``find_jamming``,
``compress_to`` phi_J + ``--excess-phi`` relaxed to max |F| <= 1e-13 k_n d_L, linear law k_n = 1,
no dashpot), stored as H5MD with two numbers computed *by other programs* on exactly that state:

* **LAMMPS** pressure: ``lmp`` with ``pair_style gran/hooke k_n 0 0 0 0 0`` (normal spring only),
  ``compute pressure NULL virial`` (contact virial, no kinetic part), ``run 0``, read from the
  thermo output with 15 digits; the data file and input script are the ones of
  :mod:`benchmarks.dem_throughput` with k_n = 1 and no damping;
* **jax-md** bulk modulus: ``jax_md.elasticity.athermal_moduli`` on the backbone, B = C_iijj / 9
  and K = B + 2P/3 (:func:`benchmarks.modulus_peer.jaxmd_bulk_modulus`).

Both go to ``/jamwave/reference`` of the file with their provenance (program versions, the LAMMPS
input script, the command, the date, the host's load average). The default test
(``tests/test_references.py``) recomputes our pressure and Hessian modulus of the stored packing
and compares; it never needs LAMMPS or jax-md. Usage (jax-md from ``pip install 'jamwave[peers]'``)::

    python -m benchmarks.reference_fixtures --out tests/data/reference_packing.h5 --force
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.dem_throughput import write_lammps_data
from jamwave.argtypes import bounded_float, bounded_int

LAMMPS_INPUT = """units lj
atom_style sphere
dimension 3
boundary p p p
newton off
comm_modify vel yes
read_data {data}
neighbor 0.3 bin
pair_style gran/hooke {kn!r} 0.0 0.0 0.0 0.0 0
pair_coeff * *
compute pv all pressure NULL virial
thermo_style custom step atoms c_pv
thermo_modify norm no format float %.17g
run 0
"""


def lammps_pressure(packing, k_n: float) -> dict:
    """Contact-virial pressure of ``packing`` computed by LAMMPS (``lmp`` on the PATH)."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_lammps_data(packing, work / "state.data")
        script = LAMMPS_INPUT.format(data="state.data", kn=float(k_n))
        (work / "in.pressure").write_text(script)
        done = subprocess.run(["lmp", "-in", "in.pressure", "-screen", "none", "-log", "log.lammps"],
                              cwd=work, capture_output=True, text=True, timeout=600)
        log = (work / "log.lammps").read_text() if (work / "log.lammps").exists() else ""
        if done.returncode != 0:
            raise RuntimeError(f"LAMMPS failed (exit {done.returncode}): {log[-800:]}")
    version = log.splitlines()[0].strip() if log else "unknown"
    rows = re.findall(r"^\s*0\s+\d+\s+([0-9.eE+-]+)\s*$", log, flags=re.M)
    return {"pressure": float(rows[0]), "version": version, "input": script}


def jaxmd_modulus(packing, law) -> dict:
    """jax-md's K = B + 2P/3 of the backbone of ``packing``."""
    import granular
    from benchmarks.modulus_peer import _version, jaxmd_bulk_modulus

    keep = granular.backbone(packing, law).jammed
    peer = jaxmd_bulk_modulus(packing, law, keep, time_warm=False)
    if not peer.converged:
        raise RuntimeError("jax-md's conjugate-gradient solve did not converge")
    return {"K": peer.K, "B": peer.B, "pressure": peer.pressure, "max_gradient": peer.max_gradient,
            "n_particles": peer.n_particles, "jax_md_version": _version("jax-md") or "unknown",
            "jax_version": _version("jax") or "unknown"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/data/reference_packing.h5", help="H5MD file to write")
    parser.add_argument("--n", type=bounded_int(8), default=64, help="particles (default 64)")
    parser.add_argument("--delta", type=bounded_float(0, 1, lo_open=True), default=1 / 1.4,
                        help="size ratio (default 1/1.4)")
    parser.add_argument("--xs", type=bounded_float(0, 1, hi_open=True), default=0.5,
                        help="X_S by volume (default 0.5)")
    parser.add_argument("--seed", type=bounded_int(0), default=0, help="seed (default 0)")
    parser.add_argument("--excess-phi", type=bounded_float(0, 0.2, lo_open=True), default=0.02,
                        help="compress to phi_J + this (default 0.02)")
    parser.add_argument("--no-jaxmd", action="store_true", help="skip jax-md (LAMMPS only)")
    parser.add_argument("--force", action="store_true", help="overwrite --out")
    args = parser.parse_args(argv)

    import granular
    from benchmarks.modulus_peer import jammed_state
    from granular.h5md import write_packing

    law = granular.ContactLaw(k_n=1.0)
    packing, phi_j, _ = jammed_state(args.delta, args.xs, args.n, args.seed, args.excess_phi, law)
    lmp = lammps_pressure(packing, law.k_n)
    reference = {
        "lammps_pressure": lmp["pressure"], "lammps_version": lmp["version"], "lammps_input": lmp["input"],
        "command": "python -m benchmarks.reference_fixtures " + " ".join(argv or sys.argv[1:]),
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "host": f"{platform.machine()} {platform.system()}, load average {os.getloadavg()[0]:.1f}",
    }
    if not args.no_jaxmd:
        jm = jaxmd_modulus(packing, law)
        reference.update({f"jaxmd_{k}": v for k, v in jm.items()})
    results = {"k_n": law.k_n, "phi": packing.packing_fraction, "phi_J": phi_j, "delta": args.delta,
               "x_small": args.xs, "n_small": packing.n_small, "n_large": packing.n - packing.n_small}
    write_packing(args.out, packing, parameters={"law": {"k_n": law.k_n, "gamma_n": 0.0, "model": "linear"},
                              "seed": args.seed, "method": "reference_fixtures"},
                  results=results, groups={"reference": reference}, overwrite=args.force)
    ours = granular.pressure(packing, law, backend="cpu").total
    print(f"wrote {args.out}: N = {packing.n}, phi = {packing.packing_fraction:.6f} (phi_J {phi_j:.6f})")
    print(f"pressure  ours {ours!r}  LAMMPS {lmp['pressure']!r}  ({lmp['version']})")
    if "jaxmd_K" in reference:
        k = granular.linear_response(packing, law).K
        print(f"K         ours (Hessian) {k!r}  jax-md {reference['jaxmd_K']!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
