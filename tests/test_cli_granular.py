"""``jamwave granular jam | show | modulus``: files, results, validation, exit status 2."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from granular.generate import make_packing
from granular.h5md import read_group, read_packing, write_packing
from granular.measure import pressure
from granular.protocol import RESULT_KEYS
from jamwave.cli import main

# Parallel kernels on a loaded 2-core machine spend their time in thread hand-offs.
pytestmark = pytest.mark.usefixtures("one_numba_thread")


@pytest.fixture(scope="module")
def jammed_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("jam") / "packing.h5"
    status = main(["granular", "jam", "--delta", "0.714", "--xs", "0.27", "--n", "80", "--seed", "2",
                   "--out", str(path), "--excess-phi", "0.01", "--backend", "cpu"])
    assert status == 0
    return path


def test_jam_writes_every_result(jammed_file):
    results = read_group(jammed_file, "results")
    for key in RESULT_KEYS:
        assert key in results, key
    assert results["phi_J_low"] <= results["phi_J"] <= results["phi_J_high"]
    assert results["phi"] == pytest.approx(results["phi_J"] + 0.01, abs=1e-9)
    assert 0.60 < results["phi_J"] < 0.68
    assert results["n_small"] + results["n_large"] == 80
    params = read_group(jammed_file, "/parameters/jamwave")
    assert params["backend"] == "cpu" and params["excess_phi"] == 0.01 and "version" in params
    assert params["law"]["k_n"] == 1.0


def test_jam_with_lbfgs_records_the_minimizer(tmp_path):
    path = tmp_path / "lbfgs.h5"
    status = main(["granular", "jam", "--delta", "0.714", "--xs", "0.27", "--n", "80", "--seed", "2",
                   "--out", str(path), "--backend", "cpu", "--minimizer", "lbfgs"])
    assert status == 0
    assert read_group(path, "/parameters/jamwave")["minimizer"] == "lbfgs"
    results = read_group(path, "results")
    assert 0.60 < results["phi_J"] < 0.68 and 1e-6 <= results["pressure"] <= 2e-6


def test_stored_pressure_equals_recomputed(jammed_file):
    results = read_group(jammed_file, "results")
    split = pressure(read_packing(jammed_file))
    assert split.total == pytest.approx(results["pressure"], rel=1e-12)
    assert split.ss == pytest.approx(results["pressure_SS"], rel=1e-12, abs=1e-18)
    assert split.sl == pytest.approx(results["pressure_SL"], rel=1e-12)
    assert split.ll == pytest.approx(results["pressure_LL"], rel=1e-12)


def test_existing_output_needs_force(jammed_file, capsys):
    before = jammed_file.read_bytes()
    status = main(["granular", "jam", "--delta", "1", "--xs", "0", "--n", "60", "--out", str(jammed_file)])
    assert status == 2
    assert "--force" in capsys.readouterr().err
    assert jammed_file.read_bytes() == before


@pytest.mark.parametrize(
    "args, word",
    [
        (["--delta", "1.5", "--xs", "0.2", "--n", "100"], "--delta"),
        (["--delta", "0", "--xs", "0.2", "--n", "100"], "--delta"),
        (["--delta", "nan", "--xs", "0.2", "--n", "100"], "--delta"),
        (["--delta", "0.5", "--xs", "1", "--n", "100"], "--xs"),
        (["--delta", "0.5", "--xs", "-0.1", "--n", "100"], "--xs"),
        (["--delta", "0.5", "--xs", "0.2", "--n", "8"], "n is too small"),
        (["--delta", "0.5", "--xs", "0.2"], "--n"),
        (["--delta", "0.5", "--xs", "0.2", "--n", "100", "--n-large", "10"], "--n-large"),
        (["--delta", "0.5", "--xs", "0.2", "--n", "100", "--excess-phi", "-1"], "--excess-phi"),
        (["--delta", "0.5", "--xs", "0.2", "--n", "100", "--backend", "gpu"], "--backend"),
        (["--delta", "0.5", "--xs", "0.2", "--n", "100", "--minimizer", "cg"], "--minimizer"),
    ],
)
def test_bad_input_exits_2_and_leaves_no_file(tmp_path, capsys, args, word):
    out = tmp_path / "x.h5"
    with pytest.raises(SystemExit) if word.startswith("--") else _no_raise():
        status = main(["granular", "jam", *args, "--out", str(out)])
        assert status == 2
    err = capsys.readouterr().err
    assert word in err
    assert len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_modulus_appends_group(jammed_file, capsys):
    assert main(["granular", "modulus", "--in", str(jammed_file)]) == 0
    m = read_group(jammed_file, "modulus")
    assert m["backend"] == "cpu" and m["threads"] >= 1  # the engine is recorded
    for key in ("K", "K_SS", "K_SL", "K_LL", "K_star", "K_linear_response", "strain"):
        assert np.isfinite(m[key]), key
    assert abs(m["K"] - m["K_linear_response"]) / m["K_linear_response"] < 0.02
    assert "K* = K d_L / k_n" in capsys.readouterr().out
    assert main(["granular", "modulus", "--in", str(jammed_file)]) == 2  # exists, no --force
    assert main(["granular", "modulus", "--in", str(jammed_file), "--force", "--method", "strain"]) == 0
    with h5py.File(jammed_file, "r") as f:
        assert "particles/all/position" in f  # the packing survives the rewrite


def test_modulus_refuses_unjammed_packing(tmp_path, capsys):
    path = write_packing(tmp_path / "loose.h5", make_packing(1.0, 0.0, n=60, phi=0.3))
    assert main(["granular", "modulus", "--in", str(path)]) == 2  # no contact law stored, none given
    assert "pass --k-n" in capsys.readouterr().err
    assert main(["granular", "modulus", "--in", str(path), "--k-n", "1"]) == 2
    assert "below jamming" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["granular", "modulus", "--in", str(path), "--strain", "0.5"])
    assert main(["granular", "modulus", "--in", str(tmp_path / "missing.h5")]) == 2


def test_show_prints_summary_and_writes_png(jammed_file, tmp_path, capsys):
    png = tmp_path / "slice.png"
    assert main(["granular", "show", str(jammed_file), "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert "phi_J" in out and "jammed fraction small" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["granular", "show", str(jammed_file), "--png", str(png)]) == 2
    assert main(["granular", "show", str(jammed_file), "--png", str(png), "--force"]) == 0


def test_jam_output_reads_in_mdanalysis(jammed_file):
    pytest.importorskip("MDAnalysis")
    from MDAnalysis.coordinates.H5MD import H5MDReader

    packing = read_packing(jammed_file)
    reader = H5MDReader(str(jammed_file), convert_units=False)
    ts = reader[0]
    assert reader.n_atoms == packing.n
    assert np.allclose(ts.positions, packing.position, atol=1e-5)
    assert np.allclose(ts.dimensions[:3], packing.box)
    reader.close()


def test_modulus_of_a_foreign_file_uses_its_stiffness(jammed_file, tmp_path, capsys):
    """A packing written by plain h5py (fixed box, one-frame radius/species series) with k_n = 1e4
    stored only in /jamwave/results: K scales with k_n, K* does not, and nothing is assumed."""
    packing = read_packing(jammed_file)
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f.create_group("h5md").attrs["version"] = [1, 1]
        p = f.create_group("particles/grains")
        p.create_group("box").attrs.update({"dimension": 3, "boundary": ["periodic"] * 3})
        p["box/edges"] = packing.box
        for name in ("position", "radius", "species"):
            p[f"{name}/step"] = [0]
            p[f"{name}/time"] = [0.0]
            p[f"{name}/value"] = getattr(packing, name)[None]
        f["jamwave/results/k_n"] = 1e4
    assert main(["granular", "modulus", "--in", str(path), "--method", "linear_response"]) == 0
    assert "k_n = 10000 (from" in capsys.readouterr().out
    stiff = read_group(path, "modulus")
    assert main(["granular", "modulus", "--in", str(jammed_file), "--method", "linear_response",
                 "--force"]) == 0
    unit = read_group(jammed_file, "modulus")
    assert stiff["K_linear_response"] == pytest.approx(1e4 * unit["K_linear_response"], rel=1e-9)
    assert stiff["K_star"] == pytest.approx(unit["K_star"], rel=1e-9)
    assert main(["granular", "modulus", "--in", str(path), "--k-n", "1", "--force"]) == 2
    assert "disagrees" in capsys.readouterr().err
    assert main(["granular", "show", str(path), "--png", str(tmp_path / "s.png")]) == 0
    assert "not written by jamwave" in capsys.readouterr().out
