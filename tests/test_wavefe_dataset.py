"""Wave datasets: layout by schema, equality with a direct run, resume, splits, executors, XDMF."""

from __future__ import annotations

import shutil
import subprocess

import h5py
import numpy as np
import pytest

import wavefe.dataset as dataset
from jamcommon.files import OutputExistsError
from wavefe.explicit import ExplicitWave
from wavefe.samples import DatasetConfig, sample_inputs

SMALL = dict(grid=16, n_frames=6, save_every=3)


def test_layout_and_content(tmp_path):
    cfg = DatasetConfig(speed="random", source="ricker", grid=16, n_frames=6, save_every=12)
    path = dataset.generate_dataset(tmp_path / "d.h5", 5, config=cfg, seed=7, workers=1, batch=2)
    with h5py.File(path, "r") as f:
        a = f.attrs
        assert a["schema"] == "jamwave.wave2d/1"
        for key in ("pde", "element", "scheme", "dt", "save_every", "h", "c_max", "domain", "boundary",
                    "generator", "seed", "split"):
            assert key in a
        assert a["h"] == pytest.approx(1 / 16) and a["seed"] == 7 and a["split"] == "train"
        u = f["fields/u"]
        assert u.shape == (5, 6, 17, 17) and u.dtype == np.float32
        assert u.chunks[0] == 1 and u.compression == "gzip" and u.shuffle
        assert f["fields/c"].shape == (5, 17, 17)
        np.testing.assert_allclose(f["t"][:], a["dt"] * 12 * np.arange(6))
        np.testing.assert_allclose(f["x"][:], np.linspace(0, 1, 17))
        assert f["mesh/points"].shape == (289, 2) and f["mesh/cells"].shape == (512, 3)
        assert set(f["params"]) == {"source_x", "source_y", "frequency", "amplitude", "correlation_length"}
        assert f["params/frequency"].shape == (5, 1)
        assert "progress" not in f
        stored = u[3]
        c3 = f["fields/c"][3]
        fx = f["params/source_x"][3, 0]
    # Sample 3 again, directly: same inputs from the documented stream, same solution.
    m = cfg.mesh()
    c, ricker, u0, params = sample_inputs(cfg, m.points, np.random.default_rng([7, 0, 3]))
    assert params["source_x"][0] == fx
    np.testing.assert_allclose(c3.ravel(), c, rtol=1e-6)
    sim = ExplicitWave(m, c, dt=cfg.dt(), boundary=cfg.boundary, sources=ricker)
    sim.set_state(u0)
    direct = sim.run(6, 12, dtype=np.float64).reshape(6, 17, 17)
    assert np.abs(direct).max() > 1e-3
    np.testing.assert_allclose(stored, direct, atol=1e-5 * np.abs(direct).max())
    assert (tmp_path / "d.xdmf").exists()


def test_uncompressed_equals_compressed(tmp_path):
    a = dataset.generate_dataset(tmp_path / "a.h5", 2, workers=1, **SMALL)
    b = dataset.generate_dataset(tmp_path / "b.h5", 2, workers=1, compression=None, **SMALL)
    with h5py.File(a) as f, h5py.File(b) as g:
        assert g["fields/u"].compression is None and f["fields/u"].compression == "gzip"
        np.testing.assert_array_equal(f["fields/u"][:], g["fields/u"][:])
    with pytest.raises(ValueError, match="compression"):
        dataset.generate_dataset(tmp_path / "c.h5", 2, compression=12, **SMALL)


def test_existing_output_is_kept_and_bad_input(tmp_path):
    path = dataset.generate_dataset(tmp_path / "d.h5", 1, workers=1, **SMALL)
    with pytest.raises(OutputExistsError):
        dataset.generate_dataset(path, 1, workers=1, **SMALL)
    with pytest.raises(ValueError, match="n_samples"):
        dataset.generate_dataset(tmp_path / "e.h5", 0, **SMALL)
    with pytest.raises(ValueError, match="speed must be one of"):
        DatasetConfig(speed="wobbly")
    with pytest.raises(ValueError, match="granular"):
        DatasetConfig(speed="granular")
    with pytest.raises(ValueError, match="split"):
        dataset.generate_dataset(tmp_path / "f.h5", 1, split="dev", **SMALL)


def test_killed_generation_resumes(tmp_path, monkeypatch):
    full = dataset.generate_dataset(tmp_path / "full.h5", 6, workers=1, batch=2, seed=3, **SMALL)
    real = dataset.simulate
    calls = []

    def dying(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt  # the user pressed Ctrl-C during the third task
        calls.append(args[3])
        return real(*args, **kwargs)

    monkeypatch.setattr(dataset, "simulate", dying)
    target = tmp_path / "resumed.h5"
    with pytest.raises(KeyboardInterrupt):
        dataset.generate_dataset(target, 6, workers=1, batch=2, seed=3, **SMALL)
    assert not target.exists()
    partial = tmp_path / ".resumed.h5.partial"
    with h5py.File(partial, "r") as f:
        assert f["progress/completed"][:].tolist() == [True] * 4 + [False] * 2
    calls.clear()
    monkeypatch.setattr(dataset, "simulate", lambda *a, **k: calls.append(a[3]) or real(*a, **k))
    dataset.generate_dataset(target, 6, workers=1, batch=2, seed=3, **SMALL)
    assert calls == [[4, 5]]  # only the missing samples ran
    assert not partial.exists()
    with h5py.File(full) as f, h5py.File(target) as g:
        np.testing.assert_array_equal(f["fields/u"][:], g["fields/u"][:])
        np.testing.assert_array_equal(f["params/pulse_x"][:], g["params/pulse_x"][:])
    # a partial file of other settings is not silently mixed in
    with pytest.raises(KeyboardInterrupt):
        monkeypatch.setattr(dataset, "simulate", dying)
        calls.clear()
        dataset.generate_dataset(tmp_path / "x.h5", 6, workers=1, batch=2, seed=3, **SMALL)
    with pytest.raises(ValueError, match="other settings"):
        dataset.generate_dataset(tmp_path / "x.h5", 6, workers=1, batch=2, seed=4, **SMALL)


def test_splits_use_disjoint_streams(tmp_path):
    paths = dataset.generate_splits(tmp_path, {"train": 2, "val": 1, "test": 1}, seed=5, workers=1,
                                    **SMALL)
    assert sorted(paths) == ["test", "train", "val"]
    xs = {}
    for name, p in paths.items():
        with h5py.File(p) as f:
            assert f.attrs["split"] == name and f.attrs["seed"] == 5
            xs[name] = f["params/pulse_x"][0, 0]
    assert len(set(xs.values())) == 3


def test_process_pool_and_dask_match_serial(tmp_path):
    serial = dataset.generate_dataset(tmp_path / "s.h5", 4, workers=1, batch=1, **SMALL)
    pool = dataset.generate_dataset(tmp_path / "p.h5", 4, workers=2, batch=1, **SMALL)
    with h5py.File(serial) as f, h5py.File(pool) as g:
        np.testing.assert_array_equal(f["fields/u"][:], g["fields/u"][:])
    distributed = pytest.importorskip("distributed")
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2,
                            dashboard_address=None) as client:
        dask_path = dataset.generate_dataset(tmp_path / "d.h5", 4, executor=client.get_executor(),
                                             batch=1, **SMALL)
    with h5py.File(serial) as f, h5py.File(dask_path) as g:
        np.testing.assert_array_equal(f["fields/u"][:], g["fields/u"][:])


def test_granular_dataset_from_packing_files(tmp_path):
    files = []
    for k, (phi, K) in enumerate(((0.65, 0.05), (0.70, 0.4))):
        p = tmp_path / f"pack{k}.h5"
        with h5py.File(p, "w") as f:
            f["/jamwave/results/phi"] = phi
            f["/jamwave/results/delta"] = 0.15
            f["/jamwave/results/x_small"] = 0.1 * (k + 1)
            f["/jamwave/results/k_n"] = 1.0
            f["/jamwave/modulus/K"] = K
        files.append(str(p))
    path = dataset.generate_dataset(tmp_path / "g.h5", 3, workers=1, speed="granular", granular=files,
                                    speed_scale=2.0, **SMALL)
    speeds = 2.0 * np.sqrt(np.array([0.05 / 0.65, 0.4 / 0.70]))
    with h5py.File(path) as f:
        np.testing.assert_allclose(f["granular/K_star"][:], [0.05, 0.4])
        assert f.attrs["c_max"] == pytest.approx(speeds.max())
        mat = f["params/material"][:]
        assert mat.shape == (3, 3)
        c = f["fields/c"][:]
        for s in range(3):
            assert np.all(np.isclose(c[s][..., None], speeds, rtol=1e-6).any(axis=-1))
            bottom = c[s, 0, 0]
            assert bottom == pytest.approx(speeds[mat[s, 0]], rel=1e-6)


PARAVIEW_SCRIPT = """
import json, sys
from paraview.simple import OpenDataFile, XDMFReader, UpdatePipeline, servermanager
path, which = sys.argv[1], sys.argv[2]
r = OpenDataFile(path) if which == "default" else XDMFReader(FileNames=[path])
r.UpdatePipelineInformation()
times = list(r.TimestepValues)
UpdatePipeline(time=times[4], proxy=r)
d = servermanager.Fetch(r)
b = d.GetBlock(0) if d.IsA("vtkMultiBlockDataSet") else d
pd = b.GetPointData()
u, c = pd.GetArray("u"), pd.GetArray("c")
print("RESULT", json.dumps({"reader": r.GetXMLName(), "times": times, "points": b.GetNumberOfPoints(),
      "u": [u.GetValue(i) for i in range(u.GetNumberOfTuples())] if u else None,
      "c": [c.GetValue(i) for i in range(c.GetNumberOfTuples())] if c else None}))
"""


@pytest.mark.skipif(shutil.which("pvpython") is None, reason="ParaView (pvpython) is not installed")
@pytest.mark.parametrize("which", ["default", "legacy"])
def test_paraview_reads_the_xdmf_time_series(tmp_path, which):
    """ParaView's default reader for .xdmf (Xdmf3, what OpenDataFile picks) and the legacy
    XDMFReader both see the fields, with the values of /fields/u at a time step."""
    import json

    path = dataset.generate_dataset(tmp_path / "d.h5", 2, workers=1, **SMALL)
    assert (tmp_path / "d_xdmf.hdf5").exists()
    script = tmp_path / "read.py"
    script.write_text(PARAVIEW_SCRIPT)
    # an absolute path: ParaView 5.11's Xdmf3 reader mis-resolves relative names of a bare "d.xdmf"
    out = subprocess.run(["pvpython", str(script), str(tmp_path / "d.xdmf"), which], capture_output=True,
                         text=True, timeout=300, cwd=str(tmp_path.parent))
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT")]
    assert line, out.stdout + out.stderr
    assert "Skipping unrecognized array type" not in out.stderr
    got = json.loads(line[0][len("RESULT "):])
    assert got["reader"] == ("Xdmf3ReaderS" if which == "default" else "XdmfReader")
    with h5py.File(path) as f:
        u, c = f["fields/u"][0, 4], f["fields/c"][0]
        assert got["times"] == pytest.approx(list(f["t"][:])) and got["points"] == 289
    assert got["u"] is not None and got["c"] is not None, "ParaView saw the mesh but not the fields"
    assert np.array_equal(np.array(got["u"], dtype=np.float32), u.reshape(-1))
    assert np.array_equal(np.array(got["c"], dtype=np.float32), c.reshape(-1))
