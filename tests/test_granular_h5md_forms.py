"""Packings written by other tools: every form H5MD 1.1 allows opens, every broken piece is named.

The files here are written with plain h5py (not :func:`granular.h5md.write_packing`), the way a
user's own simulation code or another H5MD writer would lay them out.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from granular.h5md import PackingFileError, read_contact_stiffness, read_frame, read_packing

N = 12
BOX = np.array([3.0, 3.5, 4.0])


def arrays(seed=0):
    rng = np.random.default_rng(seed)
    species = (np.arange(N) >= N // 2).astype(np.int8)
    return {
        "position": rng.uniform(0, 1, (N, 3)) * BOX,
        "velocity": rng.normal(size=(N, 3)),
        "force": rng.normal(size=(N, 3)),
        "species": species,
        "radius": np.where(species == 0, 0.5, 0.35),
    }


def series(group, name, values, steps=(0,), times=None):
    """An H5MD time-dependent element with one frame per step (values stacked on axis 0)."""
    element = group.create_group(name)
    element["step"] = np.asarray(steps, dtype=np.int64)
    element["time"] = np.asarray(times if times is not None else steps, dtype=np.float64)
    element["value"] = values
    return element


def h5md_header(f):
    f.create_group("h5md").attrs["version"] = np.array([1, 1], dtype=np.int32)
    f["h5md"].create_group("author").attrs["name"] = "someone else"
    creator = f["h5md"].create_group("creator")
    creator.attrs["name"] = "other-tool"
    creator.attrs["version"] = "0.1"


def box_group(particles, edges, *, dimension=3, boundary=("periodic",) * 3):
    box = particles.create_group("box")
    box.attrs["dimension"] = dimension
    box.attrs["boundary"] = np.array(list(boundary), dtype=h5py.string_dtype())
    if edges is not None:
        box["edges"] = edges
    return box


def write(path, form="fixed_box", group="all", a=None):
    """Write one packing in one of the allowed forms and return the arrays written."""
    a = arrays() if a is None else a
    with h5py.File(path, "w") as f:
        h5md_header(f)
        p = f.create_group(f"particles/{group}")
        if form == "fixed_box":  # box edges a dataset; radius/species one-frame time series
            box_group(p, BOX)
            series(p, "position", a["position"][None])
            series(p, "radius", a["radius"][None])
            series(p, "species", a["species"][None])
            series(p, "velocity", a["velocity"][None])
        elif form == "series_box":  # everything time-dependent, the layout jamwave itself writes
            box = box_group(p, None)
            series(box, "edges", BOX[None])
            for name in ("position", "velocity", "force", "species", "radius"):
                series(p, name, a[name][None])
        elif form == "fixed_properties":  # radius and species time-independent, position fixed too
            box_group(p, np.diag(BOX))
            p["position"] = a["position"]
            p["radius"] = a["radius"]
            p["species"] = a["species"]
        elif form == "minimal":  # position + radius only: no velocity, force or species
            box_group(p, BOX)
            series(p, "position", a["position"][None])
            p["radius"] = a["radius"]
        elif form == "trajectory":  # several frames, properties sampled less often
            box = box_group(p, None)
            series(box, "edges", np.stack([BOX * 1.1, BOX]), steps=[0, 20])
            series(p, "position", np.stack([a["position"] * 1.1, a["position"] + 0.01, a["position"]]),
                   steps=[0, 10, 20])
            series(p, "velocity", np.stack([a["velocity"] * 0, a["velocity"]]), steps=[0, 20])
            series(p, "radius", a["radius"][None], steps=[0])
            p["species"] = a["species"]
        elif form == "fixed_interval":  # step and time as scalars (fixed sampling interval)
            box_group(p, BOX)
            element = p.create_group("position")
            element["step"] = np.int64(5)
            element["step"].attrs["offset"] = np.int64(100)
            element["time"] = 0.5
            element["value"] = np.stack([a["position"] + 0.02, a["position"]])
            p["radius"] = a["radius"]
            p["species"] = a["species"]
        elif form == "offset_box":  # box offset, positions given in [offset, offset + edges)
            box = box_group(p, BOX)
            box["offset"] = np.array([-1.0, 2.0, 0.5])
            series(p, "position", (a["position"] + box["offset"][()])[None])
            p["radius"] = a["radius"]
            p["species"] = a["species"]
        elif form == "unwrapped":  # positions outside the box (unwrapped trajectories)
            box_group(p, BOX)
            shift = np.array([1, -2, 3])[None, :] * BOX
            series(p, "position", (a["position"] + shift)[None])
            p["radius"] = a["radius"]
        else:
            raise AssertionError(form)
    return a


FORMS = ["fixed_box", "series_box", "fixed_properties", "minimal", "trajectory", "fixed_interval",
         "offset_box", "unwrapped"]


@pytest.mark.parametrize("form", FORMS)
def test_every_allowed_form_reads(tmp_path, form):
    path = tmp_path / f"{form}.h5"
    a = write(path, form)
    p = read_packing(path)
    assert np.allclose(p.position, a["position"], atol=1e-12)
    assert np.array_equal(p.box, BOX)
    assert np.array_equal(p.radius, a["radius"])
    assert np.array_equal(p.species, a["species"])  # derived from the radii when absent
    expected_v = a["velocity"] if form in ("fixed_box", "series_box", "trajectory") else np.zeros((N, 3))
    assert np.allclose(p.velocity, expected_v)
    expected_f = a["force"] if form == "series_box" else np.zeros((N, 3))
    assert np.allclose(read_frame(path)["force"], expected_f)


def test_earlier_frames_and_sampled_properties(tmp_path):
    path = tmp_path / "traj.h5"
    a = write(path, "trajectory")
    first = read_packing(path, frame=0)
    assert np.allclose(first.box, BOX * 1.1)
    assert np.allclose(first.position, a["position"] * 1.1)
    assert np.allclose(first.velocity, 0.0)
    middle = read_packing(path, frame=1)  # step 10: box and velocity sampled at step 0 apply
    assert np.allclose(middle.box, BOX * 1.1)
    assert np.allclose(middle.position, np.mod(a["position"] + 0.01, BOX * 1.1))
    with pytest.raises(PackingFileError, match="frame 7"):
        read_packing(path, frame=7)


def test_group_other_than_all(tmp_path):
    path = tmp_path / "grains.h5"
    a = write(path, "fixed_box", group="grains")
    assert np.allclose(read_packing(path).position, a["position"])  # the only group
    with h5py.File(path, "a") as f:
        f.create_group("particles/walls")
    with pytest.raises(PackingFileError, match="none is 'all'.*--group"):
        read_packing(path)
    assert np.allclose(read_packing(path, group="grains").position, a["position"])
    with pytest.raises(PackingFileError, match="no particle group /particles/fluid"):
        read_packing(path, group="fluid")


def _broken(path, change):
    write(path, "series_box")
    with h5py.File(path, "a") as f:
        change(f)


BROKEN = [
    ("no_particles", lambda f: f.__delitem__("particles"), "no /particles group"),
    ("no_position", lambda f: f.__delitem__("particles/all/position"), "/particles/all/position"),
    ("no_radius", lambda f: f.__delitem__("particles/all/radius"), "/particles/all/radius"),
    ("no_box", lambda f: f.__delitem__("particles/all/box"), "/particles/all/box is missing"),
    ("no_edges", lambda f: f.__delitem__("particles/all/box/edges"), "/particles/all/box/edges"),
    ("no_value", lambda f: f.__delitem__("particles/all/position/value"), "without a 'value'"),
    ("2d", lambda f: f["particles/all/box"].attrs.__setitem__("dimension", 2), "'dimension' is 2"),
    ("open_box", lambda f: f["particles/all/box"].attrs.__setitem__("boundary", ["none"] * 3),
     "periodic on all 3 axes"),
    ("no_boundary", lambda f: f["particles/all/box"].attrs.__delitem__("boundary"), "'boundary'"),
    ("triclinic", lambda f: (f.__delitem__("particles/all/box/edges/value"),
                             f.__setitem__("particles/all/box/edges/value", [[[3, 0.1, 0], [0, 3, 0],
                                                                             [0, 0, 3]]])), "triclinic"),
    ("edges_shape", lambda f: (f.__delitem__("particles/all/box/edges/value"),
                               f.__setitem__("particles/all/box/edges/value", [[3.0, 3.0]])),
     "edges has shape (2,)"),
    ("negative_edge", lambda f: f["particles/all/box/edges/value"].__setitem__(0, [3, -1, 3]), "> 0"),
    ("position_2d", lambda f: (f.__delitem__("particles/all/position/value"),
                               f.__setitem__("particles/all/position/value", np.zeros((1, N, 2)))),
     "(N, 3)"),
    ("radius_count", lambda f: (f.__delitem__("particles/all/radius/value"),
                                f.__setitem__("particles/all/radius/value", np.ones((1, N + 1)))),
     f"radius has shape ({N + 1},), expected ({N},)"),
    ("radius_zero", lambda f: f["particles/all/radius/value"].__setitem__(0, np.zeros(N)), "radii <= 0"),
    ("radius_text", lambda f: (f.__delitem__("particles/all/radius/value"),
                               f.__setitem__("particles/all/radius/value", np.array([["a"] * N], "S1"))),
     "expected numbers"),
    ("species_float", lambda f: (f.__delitem__("particles/all/species/value"),
                                 f.__setitem__("particles/all/species/value", np.ones((1, N)) * 0.5)),
     "expected integers"),
    ("nan_position", lambda f: f["particles/all/position/value"].__setitem__((0, 0, 0), np.nan),
     "non-finite"),
    ("step_count", lambda f: (f.__delitem__("particles/all/position/step"),
                              f.__setitem__("particles/all/position/step", [0, 1])), "one per frame"),
    ("empty_series", lambda f: (f.__delitem__("particles/all/position/value"),
                                f.__setitem__("particles/all/position/value", np.zeros((0, N, 3)))),
     "no frame"),
    ("late_radius", lambda f: f["particles/all/radius/step"].__setitem__(0, 50), "no frame at or before"),
]


@pytest.mark.parametrize("name, change, words", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_piece_is_named(tmp_path, name, change, words):
    path = tmp_path / f"{name}.h5"
    _broken(path, change)
    with pytest.raises(PackingFileError) as info:
        read_packing(path)
    message = str(info.value)
    assert words in message
    assert str(path) in message and "\n" not in message


@pytest.mark.parametrize("content, words", [
    (b"", "empty"),
    (b"this is not HDF5\n" * 10, "not an HDF5 file"),
])
def test_not_hdf5(tmp_path, content, words):
    path = tmp_path / "bad.h5"
    path.write_bytes(content)
    with pytest.raises(PackingFileError, match=words):
        read_packing(path)
    with pytest.raises(PackingFileError, match="does not exist"):
        read_packing(tmp_path / "missing.h5")


def test_truncated(tmp_path):
    path = tmp_path / "p.h5"
    write(path, "series_box")
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 100, 600):
        path.write_bytes(data[:cut])
        with pytest.raises(PackingFileError, match="truncated|not an HDF5"):
            read_packing(path)


def test_contact_law_from_the_file(tmp_path):
    path = tmp_path / "p.h5"
    write(path, "series_box")
    assert read_contact_stiffness(path) == (None, None)
    with h5py.File(path, "a") as f:
        f["jamwave/results/k_n"] = 1e4
    assert read_contact_stiffness(path) == ({"k_n": 1e4}, "/jamwave/results/k_n")
    with h5py.File(path, "a") as f:
        f["parameters/jamwave/law/k_n"] = 2.0
        f["parameters/jamwave/law/model"] = "hertz"
    assert read_contact_stiffness(path) == ({"k_n": 2.0, "model": "hertz"}, "/parameters/jamwave/law")
    with h5py.File(path, "a") as f:
        del f["parameters/jamwave/law/k_n"]
        f["parameters/jamwave/law/k_n"] = "stiff"
    with pytest.raises(PackingFileError, match="/parameters/jamwave/law/k_n"):
        read_contact_stiffness(path)
