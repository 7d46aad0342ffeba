"""``jamwave wavefe ...``: P1 finite elements for the 2D wave equation and wave datasets."""

from __future__ import annotations

import json
from pathlib import Path

from jamwave.argtypes import bounded_float, bounded_int
from jamwave.commands import add_group

# wavefe.samples' vocabulary, repeated so that building the parser does not import the solver
# (numba, scipy); tests/test_wavefe_cli.py checks that the two agree.
SPEEDS = ("uniform", "layered", "random", "granular")
SOURCES = ("ricker", "pulse")
BOUNDARIES = ("dirichlet", "neumann", "absorbing")


def register(groups) -> None:
    """Add the ``wavefe`` group and its subcommands to ``groups``."""
    sub = add_group(groups, "wavefe", "P1 finite elements for the 2D wave equation and wave datasets.")

    ds = sub.add_parser("dataset", help="generate a wave dataset (HDF5, schema jamwave.wave2d/1)",
                        description="Simulate N samples on the unit square and write them to one HDF5 "
                        "file with an .xdmf side-car. Lengths in domain units, times in the matching "
                        "unit, speeds in length per time.")
    _common(ds)
    ds.add_argument("--samples", type=bounded_int(1), required=True, help="number of samples (>= 1)")
    ds.add_argument("--split", choices=("train", "val", "test"), default="train",
                    help="random stream of the split: sample i uses the seed [S, 0|1|2, i]")
    ds.add_argument("--out", required=True, help="output .h5 file")
    ds.add_argument("--workers", type=bounded_int(1), default=None,
                    help="worker processes (default: all cores; 1 runs in this process)")
    ds.add_argument("--batch", type=bounded_int(1), default=4, help="samples per task (default 4)")
    ds.add_argument("--dask", metavar="ADDRESS", default=None,
                    help="run the tasks on a Dask distributed scheduler at ADDRESS instead")
    ds.add_argument("--gzip-level", type=bounded_int(0, 9), default=1,
                    help="deflate level of /fields/u after the shuffle filter (0-9, default 1)")
    ds.add_argument("--no-compression", action="store_true", help="store /fields/u uncompressed")
    ds.add_argument("--force", action="store_true", help="overwrite an existing output")
    ds.set_defaults(func=run_dataset)

    sp = sub.add_parser("splits", help="train/val/test dataset files with disjoint random streams",
                        description="Write DIR/train.h5, DIR/val.h5 and DIR/test.h5 (same settings; "
                        "sample i of split k uses the seed [S, k, i], k = 0, 1, 2).")
    _common(sp)
    sp.add_argument("--train", type=bounded_int(0), default=80, help="training samples (default 80)")
    sp.add_argument("--val", type=bounded_int(0), default=10, help="validation samples (default 10)")
    sp.add_argument("--test", type=bounded_int(0), default=10, help="test samples (default 10)")
    sp.add_argument("--out", required=True, help="output folder")
    sp.add_argument("--workers", type=bounded_int(1), default=None,
                    help="worker processes (default: all cores; 1 runs in this process)")
    sp.add_argument("--force", action="store_true", help="overwrite existing outputs")
    sp.set_defaults(func=run_splits)

    so = sub.add_parser("solve", help="one simulation and a PNG of snapshots",
                        description="Simulate one sample (drawn like a dataset sample from --seed) and "
                        "write a PNG of the speed map and snapshots; optionally the frames as HDF5.")
    _common(so)
    so.add_argument("--integrator", choices=("explicit", "newmark"), default="explicit",
                    help="central differences (lumped mass) or Newmark average acceleration")
    so.add_argument("--out", required=True, help="output .png")
    so.add_argument("--h5", default=None, help="also write the run as a one-sample dataset file")
    so.add_argument("--force", action="store_true", help="overwrite existing outputs")
    so.set_defaults(func=run_solve)
    _register_export(sub)


def _common(p) -> None:
    p.add_argument("--grid", type=bounded_int(2, 8192), default=64,
                   help="cells per side of the unit square (nodes per side: grid + 1); default 64")
    p.add_argument("--frames", type=bounded_int(1), default=50, help="frames per sample, t = 0 first")
    p.add_argument("--save-every", type=bounded_int(1), default=4, help="time steps between frames")
    p.add_argument("--speed", choices=SPEEDS, default="layered", help="medium family")
    p.add_argument("--source", choices=SOURCES, default="pulse",
                   help="Gaussian initial pulse(s) at rest (default; well posed for next-frame "
                   "surrogates) or Ricker point source(s)")
    p.add_argument("--boundary", choices=BOUNDARIES, default="absorbing", help="condition on all sides")
    p.add_argument("--seed", type=bounded_int(0), default=0, help="root random seed (>= 0)")
    p.add_argument("--c-min", type=bounded_float(0, lo_open=True), default=1.0,
                   help="lowest speed of uniform/layered/random media (length/time), default 1")
    p.add_argument("--c-max", type=bounded_float(0, lo_open=True), default=2.0,
                   help="highest speed of uniform/layered/random media (length/time), default 2")
    p.add_argument("--layers", type=bounded_int(1, 64), default=3, help="layers / granular regions")
    p.add_argument("--sources", type=bounded_int(1, 64), default=1, help="sources per sample")
    p.add_argument("--frequency", type=bounded_float(0, lo_open=True), nargs=2, default=(3.0, 6.0),
                   metavar=("LO", "HI"), help="Ricker peak-frequency range (1/time), default 3 6")
    p.add_argument("--cfl", type=bounded_float(0, 1, lo_open=True), default=0.8,
                   help="dt as a fraction of the stable step at the fastest speed, in (0, 1]")
    p.add_argument("--granular", nargs="+", default=(), metavar="FILE",
                   help="materials for --speed granular: packing files (.h5, from `jamwave granular`) "
                   "or JSON tables (lists of {K_star, phi} or {K, phi, k_n, d_L})")
    p.add_argument("--speed-scale", type=bounded_float(0, lo_open=True), default=1.0,
                   help="reduced granular speed sqrt(K*/phi) to domain speed factor, default 1")


def _materials(files) -> tuple:
    """The ``--granular`` entries, each checked now (before any output is written)."""
    from wavefe.media import material

    out = []
    for name in files:
        path = Path(name)
        if not path.is_file():
            raise ValueError(f"--granular: {name} does not exist or is not a file")
        if path.suffix.lower() == ".json":
            try:
                table = json.loads(path.read_text())
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ValueError(f"--granular: {name} is not a JSON file ({exc})") from None
            if not isinstance(table, list) or not table:
                raise ValueError(f"--granular: {name} must hold a non-empty JSON list of materials")
            entries = table
        else:
            entries = [str(path)]
        for k, entry in enumerate(entries):
            if not isinstance(entry, dict) and path.suffix.lower() == ".json":
                raise ValueError(f"--granular: {name}, entry {k}: expected an object with K_star and phi "
                                 f"(or K, phi, k_n), got {type(entry).__name__}")
            try:
                material(entry)
            except (TypeError, ValueError) as exc:
                where = "" if str(path) in str(exc) else f"{name}: "
                raise ValueError(f"--granular: {where}{exc}") from None
        out.extend(entries)
    return tuple(out)


def _config(args):
    from wavefe.samples import DatasetConfig

    if args.c_min > args.c_max:
        raise ValueError(f"--c-min ({args.c_min}) must not exceed --c-max ({args.c_max})")
    if args.frequency[0] > args.frequency[1]:
        raise ValueError(f"--frequency LO HI needs LO <= HI, got {args.frequency}")
    return DatasetConfig(grid=args.grid, n_frames=args.frames, save_every=args.save_every,
                         speed=args.speed, source=args.source, boundary=args.boundary,
                         c_range=(args.c_min, args.c_max), n_layers=args.layers,
                         n_sources=args.sources, frequency=tuple(args.frequency), cfl=args.cfl,
                         granular=_materials(args.granular), speed_scale=args.speed_scale)


def run_dataset(args) -> int:
    from wavefe.dataset import generate_dataset

    config = _config(args)
    executor, client = None, None
    if args.dask:
        from distributed import Client

        client = Client(args.dask)
        executor = client.get_executor()
    try:
        path = generate_dataset(args.out, args.samples, config=config, seed=args.seed, split=args.split,
                                workers=args.workers, executor=executor, batch=args.batch,
                                overwrite=args.force, progress=True,
                                compression=None if args.no_compression else args.gzip_level)
    finally:
        if client is not None:
            client.close()
    preview = _preview(path, overwrite=args.force)
    print(f"wrote {path}, {path.with_suffix('.xdmf')} and {preview}")
    return 0


def _preview(path: Path, overwrite: bool) -> Path:
    """PNG of sample 0 next to a dataset file."""
    from wavefe.dataset import read_sample
    from wavefe.plots import plot_snapshots

    s = read_sample(path, 0)
    extent = (s["x"][0], s["x"][-1], s["y"][0], s["y"][-1])
    out = path.with_suffix(".png")
    a = s["attrs"]
    return plot_snapshots(out, s["u"], s["c"], s["t"], extent, overwrite=overwrite,
                          title=f"{path.name}: sample 0 ({a['speed']} medium, {a['source']}, "
                          f"{a['boundary']} sides)")


def run_splits(args) -> int:
    from wavefe.dataset import generate_splits

    sizes = {"train": args.train, "val": args.val, "test": args.test}
    if not any(sizes.values()):
        raise ValueError("--train, --val and --test are all 0: nothing to write")
    paths = generate_splits(args.out, sizes, config=_config(args), seed=args.seed, workers=args.workers,
                            overwrite=args.force, progress=True)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def run_solve(args) -> int:
    import numpy as np

    from jamcommon.files import check_writable
    from wavefe.explicit import ExplicitWave
    from wavefe.newmark import NewmarkWave
    from wavefe.plots import plot_snapshots
    from wavefe.samples import sample_inputs

    config = _config(args)
    check_writable(args.out, overwrite=args.force)
    m = config.mesh()
    c, ricker, u0, params = sample_inputs(config, m.points, np.random.default_rng([args.seed, 0, 0]))
    dt = config.dt()
    if args.integrator == "explicit":
        sim = ExplicitWave(m, c, dt=dt, boundary=config.boundary, sources=ricker)
    else:
        sim = NewmarkWave(m, c, dt=dt, boundary=config.boundary, sources=ricker)
    sim.set_state(u0)
    frames = sim.run(config.n_frames, config.save_every).reshape(config.n_frames, *m.node_shape)
    t = dt * config.save_every * np.arange(config.n_frames)
    xmin, xmax, ymin, ymax = m.bounds
    plot_snapshots(args.out, frames, c.reshape(m.node_shape), t, (xmin, xmax, ymin, ymax),
                   title=f"{config.speed} medium, {config.source} source, {config.boundary} sides, "
                   f"{args.integrator}", overwrite=args.force)
    print(f"wrote {args.out}")
    if args.h5:
        from wavefe.dataset import generate_dataset

        generate_dataset(args.h5, 1, config=config, seed=args.seed, workers=1, overwrite=args.force)
        print(f"wrote {args.h5}")
    return 0


def _register_export(sub) -> None:
    ex = sub.add_parser("export", help="write wave datasets in another tool's layout (The Well)",
                        description="Convert jamwave.wave2d/1 files into The Well's HDF5 layout "
                        "(OUT/data/{train,valid,test}/NAME.hdf5: t0_fields/u, the speed as the "
                        "time-independent field c, dimensions, boundary_conditions, scalars), readable "
                        "by the_well.data.WellDataset(path=OUT, well_split_name=SPLIT).")
    ex.add_argument("--format", choices=("the-well",), required=True, help="target layout")
    ex.add_argument("--train", default=None, help="training split (.h5 from `jamwave wavefe dataset`)")
    ex.add_argument("--valid", default=None, help="validation split")
    ex.add_argument("--test", default=None, help="test split")
    ex.add_argument("--splits", default=None, metavar="DIR",
                    help="a folder from `jamwave wavefe splits` (train.h5, val.h5, test.h5 that exist)")
    ex.add_argument("--name", default="jamwave_wave2d", help="dataset name and file stem")
    ex.add_argument("--out", required=True, help="output folder")
    ex.add_argument("--force", action="store_true", help="overwrite exported files that exist")
    ex.set_defaults(func=run_export)


def run_export(args) -> int:
    from wavefe.well import export_the_well

    splits = {k: v for k, v in (("train", args.train), ("valid", args.valid), ("test", args.test)) if v}
    if args.splits:
        folder = Path(args.splits)
        if not folder.is_dir():
            raise ValueError(f"--splits: {args.splits} is not a folder")
        for split, stem in (("train", "train"), ("valid", "val"), ("test", "test")):
            if (folder / f"{stem}.h5").exists():
                splits.setdefault(split, str(folder / f"{stem}.h5"))
    if not splits:
        raise ValueError("give --train, --valid, --test or --splits DIR: nothing to export")
    paths = export_the_well(splits, args.out, name=args.name, overwrite=args.force)
    for split, path in paths.items():
        print(f"{split}: {path}")
    return 0
