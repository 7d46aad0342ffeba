"""The jamming-diagram sweep: idempotent point files, resume, Dask LocalCluster, combined table."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np
import pytest

from granular.diagram import DiagramSettings, check_grid, jamming_diagram, point_name, read_diagram
from granular.h5md import read_group
from jamwave.cli import main

SETTINGS = DiagramSettings(n_large=24, excess_phi=5e-3, follow_step=0.01, follow_range=0.05)


class CountingExecutor(ThreadPoolExecutor):
    """A thread pool that records what it was asked to run."""

    def __init__(self):
        super().__init__(max_workers=1)
        self.submitted = []

    def submit(self, fn, *args, **kwargs):
        self.submitted.append(args[:3])
        return super().submit(fn, *args, **kwargs)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    distributed = pytest.importorskip("distributed")
    out = tmp_path_factory.mktemp("diagram")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        table = jamming_diagram([0.5], [0.0, 0.3], 2, out, SETTINGS, client=client)
    return out, table


def test_table_layout(sweep):
    out, table = sweep
    t = read_diagram(table)
    assert np.allclose(t["delta"], [0.5]) and np.allclose(t["x_small"], [0.0, 0.3])
    assert list(t["seed"]) == [0, 1]
    for key in ("phi_J", "phi_J_second", "K_star", "K_SS", "K_SL", "K_LL", "jammed_fraction_small"):
        assert t[key].shape == (1, 2, 2)
        assert t[f"{key}_mean"].shape == (1, 2) and t[f"{key}_sem"].shape == (1, 2)
    assert np.all((t["phi_J"] > 0.55) & (t["phi_J"] < 0.7))
    assert np.all(t["K_star"] > 0)
    # monodisperse column: no small particles, no second transition, no small-particle moduli
    assert np.all(np.isnan(t["phi_J_second"][0, 0])) and np.all(t["K_SS"][0, 0] == 0)
    assert np.allclose(t["phi_J_mean"], t["phi_J"].mean(axis=2))
    sem = t["phi_J"].std(axis=2, ddof=1) / np.sqrt(2)
    assert np.allclose(t["phi_J_sem"], sem)
    assert np.allclose(t["K_SS"] + t["K_SL"] + t["K_LL"], t["K_star"], rtol=1e-6)
    with h5py.File(table, "r") as f:
        assert [f["phi_J"].dims[k][0].name for k in range(3)] == ["/delta", "/x_small", "/seed"]
        assert [str(v) for v in f.attrs["dims"].astype(str)] == ["delta", "x_small", "seed"]
    assert (out / "diagram.png").read_bytes()[:4] == b"\x89PNG"


def test_point_files_are_complete_packings(sweep):
    out, _ = sweep
    path = out / point_name(0.5, 0.3, 1)
    results = read_group(path, "results")
    modulus = read_group(path, "modulus")
    follow = read_group(path, "follow")
    assert results["phi"] == pytest.approx(results["phi_J"] + 5e-3, abs=1e-9)
    assert modulus["K_linear_response"] == pytest.approx(modulus["K"], rel=0.02)
    assert follow["phi"][0] == pytest.approx(results["phi_J"])


def test_rerun_skips_finished_points_and_resumes(sweep):
    out, table = sweep
    stamp = {p.name: p.stat().st_mtime_ns for p in out.glob("point_*.h5")}
    ex = CountingExecutor()
    jamming_diagram([0.5], [0.0, 0.3], 2, out, SETTINGS, executor=ex)
    assert ex.submitted == []
    (out / point_name(0.5, 0.0, 1)).unlink()  # as if the sweep had been killed before this point
    jamming_diagram([0.5], [0.0, 0.3], 2, out, SETTINGS, executor=ex)
    assert ex.submitted == [(0.5, 0.0, 1)]
    ex.shutdown()
    for p in out.glob("point_*.h5"):
        if p.name != point_name(0.5, 0.0, 1):
            assert p.stat().st_mtime_ns == stamp[p.name]
    assert not list(out.glob(".*tmp"))  # no temporary files left
    assert np.all(np.isfinite(read_diagram(table)["phi_J"]))


def test_grid_validation():
    with pytest.raises(ValueError, match="empty"):
        check_grid([], [0.1], 2)
    with pytest.raises(ValueError, match="empty"):
        check_grid([0.5], [0.1], 0)
    with pytest.raises(ValueError, match="deltas"):
        check_grid([1.5], [0.1], 1)
    with pytest.raises(ValueError, match="x_small"):
        check_grid([0.5], [1.0], 1)
    with pytest.raises(ValueError, match="repeated"):
        check_grid([0.5, 0.5], [0.1], 1)
    with pytest.raises(ValueError, match="n_large is too small"):
        jamming_diagram([0.5], [0.0], 1, "unused", DiagramSettings(n_large=3))


def test_cli_rejects_bad_grids(tmp_path, capsys):
    base = ["granular", "diagram", "--n-large", "20", "--out", str(tmp_path / "d")]
    for extra, word in ((["--delta", "", "--xs", "0.1"], "--delta"),
                        (["--delta", "0.5", "--xs", "0.5:0.1:0.1"], "--xs"),
                        (["--delta", "0.5,1.2", "--xs", "0.1"], "--delta"),
                        (["--delta", "0.5", "--xs", "0.1", "--seeds", "0"], "--seeds")):
        with pytest.raises(SystemExit) as exc:
            main(base + extra)
        assert exc.value.code == 2
        assert word in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_partial_moduli_fall_back_to_linear_response(tmp_path):
    from granular.diagram import _point_values
    from granular.generate import make_packing
    from granular.h5md import write_packing

    modulus = {"K": float("nan"), "K_SS": float("nan"), "K_SL": float("nan"), "K_LL": float("nan"),
               "K_star": 0.3, "K_linear_response": 0.3, "K_linear_response_SS": 0.05,
               "K_linear_response_SL": 0.1, "K_linear_response_LL": 0.15}
    results = {"k_n": 1.0, "phi_J": 0.65, "phi_J_second": 0.65, "jammed_fraction_small_at_phi_J": 1.0,
               "jammed_fraction_large_at_phi_J": 1.0, "Z_backbone_at_phi_J": 6.0, "x_small": 0.3,
               "n_small": 10, "n_large": 10}
    path = write_packing(tmp_path / "p.h5", make_packing(1.0, 0.0, n=30), results=results,
                         groups={"modulus": modulus})
    values = _point_values(path)
    assert (values["K_SS"], values["K_SL"], values["K_LL"]) == (0.05, 0.1, 0.15)


def test_transition_crossover_intersects_the_two_lines():
    from granular.diagram import transition_crossover

    x = np.array([0.05, 0.1, 0.15, 0.2, 0.3])
    first = 0.64 + 0.8 * x
    second = 0.9 - 0.3 * x
    phi_j = np.where(x < 0.25, first, 0.80)
    phi_j[3] = np.nan  # a failed point is skipped
    phi_second = np.where(x < 0.25, second, phi_j)
    f_small = np.array([0.0, 0.0, 0.01, np.nan, 0.95])
    out = transition_crossover(x, phi_j, f_small, phi_second)
    assert out["x_lines_meet"] == pytest.approx(0.26 / 1.1, rel=1e-12)
    assert out["phi_lines_meet"] == pytest.approx(0.64 + 0.8 * 0.26 / 1.1, rel=1e-12)
    assert out["x_at_max_phi_J"] == 0.3
    assert out["x_transitions_meet"] == 0.3
    # half of the small particles jammed: interpolated across the failed X_S = 0.2
    assert out["x_transitions_meet_interpolated"] == pytest.approx(0.15 + 0.15 * 0.49 / 0.94, rel=1e-12)
    # without distinct lines there is no intersection
    assert "x_lines_meet" not in transition_crossover(x, phi_j, f_small, phi_j)
