"""H5MD 1.1 packing files: layout, round trip, atomic writes, and reading with MDAnalysis."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from granular.h5md import (
    append_group,
    read_group,
    read_observables,
    read_packing,
    read_parameters,
    read_results,
    write_packing,
)
from granular.space import Packing
from jamcommon.files import OutputExistsError


def sample_packing(n=50, seed=0):
    rng = np.random.default_rng(seed)
    box = np.array([4.0, 4.5, 5.0])
    species = (np.arange(n) >= n // 2).astype(np.int8)
    radius = np.where(species == 0, 0.5, 0.25)
    return Packing(rng.uniform(0, 1, (n, 3)) * box, rng.normal(size=(n, 3)), radius, species, box)


def write_sample(path, packing, **kwargs):
    force = np.arange(packing.n * 3, dtype=float).reshape(-1, 3)
    return write_packing(
        path,
        packing,
        force=force,
        observables={"phi": np.array([0.5, 0.6, 0.64]), "pressure": np.array([0.0, 0.0, 1e-6])},
        parameters={"delta": 0.5, "x_small": 0.3, "seed": 3, "backend": "cpu", "law": {"k_n": 1.0},
                    "method": "bisection", "n": None},
        results={"phi_J": 0.64, "n_small": packing.n_small},
        **kwargs,
    )


def test_layout_follows_h5md(tmp_path):
    packing = sample_packing()
    path = write_sample(tmp_path / "p.h5", packing)
    with h5py.File(path, "r") as f:
        assert list(f["h5md"].attrs["version"]) == [1, 1]
        assert f["h5md/author"].attrs["name"] == "jamwave"
        assert f["h5md/creator"].attrs["name"] == "jamwave"
        assert "version" in f["h5md/creator"].attrs
        box = f["particles/all/box"]
        assert box.attrs["dimension"] == 3
        assert [b.decode() if isinstance(b, bytes) else b for b in box.attrs["boundary"]] == ["periodic"] * 3
        assert np.allclose(box["edges/value"][0], packing.box)
        for name in ("position", "velocity", "force", "species", "radius"):
            element = f[f"particles/all/{name}"]
            assert set(element) == {"step", "time", "value"}
            assert element["value"].shape[:2] == (1, packing.n)
        assert f["particles/all/position/value"].dtype == np.float64
        assert f["observables/pressure/value"].shape == (3,)


def test_round_trip(tmp_path):
    packing = sample_packing()
    path = write_sample(tmp_path / "p.h5", packing)
    back = read_packing(path)
    for name in ("position", "velocity", "radius", "species", "box"):
        assert np.array_equal(getattr(back, name), getattr(packing, name))
    assert read_results(path) == {"phi_J": 0.64, "n_small": packing.n_small}
    params = read_parameters(path)
    assert params["law"] == {"k_n": 1.0} and params["backend"] == "cpu" and params["n"] == "none"
    obs = read_observables(path)
    assert np.allclose(obs["phi"], [0.5, 0.6, 0.64])


def test_existing_file_is_kept_without_overwrite(tmp_path):
    path = write_sample(tmp_path / "p.h5", sample_packing(seed=0))
    before = path.read_bytes()
    with pytest.raises(OutputExistsError):
        write_sample(path, sample_packing(seed=1))
    assert path.read_bytes() == before
    write_sample(path, sample_packing(seed=1), overwrite=True)
    assert np.array_equal(read_packing(path).position, sample_packing(seed=1).position)
    assert [p.name for p in tmp_path.iterdir()] == ["p.h5"]  # no temporary left behind


def test_append_group(tmp_path):
    path = write_sample(tmp_path / "p.h5", sample_packing())
    append_group(path, "modulus", {"K": 0.1, "strain": 1e-5})
    assert read_group(path, "modulus") == {"K": 0.1, "strain": 1e-5}
    with pytest.raises(OutputExistsError):
        append_group(path, "modulus", {"K": 0.2})
    append_group(path, "modulus", {"K": 0.2}, overwrite=True)
    assert read_group(path, "modulus") == {"K": 0.2}
    assert read_results(path)["phi_J"] == 0.64


def test_mdanalysis_reads_the_file(tmp_path):
    mda = pytest.importorskip("MDAnalysis")
    packing = sample_packing()
    path = write_sample(tmp_path / "p.h5", packing)
    from MDAnalysis.coordinates.H5MD import H5MDReader

    reader = H5MDReader(str(path), convert_units=False)
    assert reader.n_atoms == packing.n
    assert reader.n_frames == 1
    ts = reader[0]
    assert np.allclose(ts.positions, packing.position, atol=1e-5)  # MDAnalysis keeps float32
    assert np.allclose(ts.dimensions[:3], packing.box)
    assert np.allclose(ts.dimensions[3:], 90.0)
    assert np.allclose(ts.velocities, packing.velocity, atol=1e-5)
    assert ts.data["pressure"] == pytest.approx(0.0)
    reader.close()
    assert mda.__version__
