"""One dataset sample: its sampled medium, source and simulation (a pure function of the seed).

Sample ``i`` of split ``k`` draws every random input from
``numpy.random.default_rng([seed, k, i])`` (train k = 0, val 1, test 2), so a sample is the same
whichever worker computes it and however often: generation is idempotent and resumable, and the
three splits never share a random stream.
"""

from __future__ import annotations

import functools
import json
import zlib
from dataclasses import asdict, dataclass, field

import numpy as np

from wavefe import media, mesh, sources
from wavefe.explicit import ExplicitWave, stable_dt

SPLITS = {"train": 0, "val": 1, "test": 2}
SPEEDS = ("uniform", "layered", "random", "granular")
SOURCES = ("ricker", "pulse")
BOUNDARIES = ("dirichlet", "neumann", "absorbing")


@dataclass(frozen=True)
class DatasetConfig:
    """Settings of a wave dataset (all samples share mesh, dt and frames).

    Lengths are in domain units (the unit square by default), times in the matching unit, speeds
    in length per time.

    Attributes
    ----------
    grid : int
        Cells per side of the structured mesh of ``[0, length]^2`` (nodes per side: grid + 1).
    n_frames, save_every : int
        Frames stored per sample (the initial state first) and steps between frames.
    speed, source, boundary : str
        Medium family (:data:`SPEEDS`), source family (:data:`SOURCES`), condition on all sides.
    c_range : (float, float)
        Speed range of uniform, layered and random media.
    n_layers : int
        Layers (or granular regions, stacked along y) of layered and granular media.
    correlation_length : (float, float)
        Range of the random media's correlation length.
    frequency, amplitude, width : (float, float)
        Ricker peak-frequency and amplitude ranges; Gaussian pulse width range.
    n_sources : int
        Ricker point sources (or pulses) per sample.
    granular : tuple
        Materials for ``speed="granular"`` (table dicts or packing-file paths).
    speed_scale : float
        Reduced granular speed to domain speed (:func:`wavefe.media.from_granular`).
    cfl : float
        dt as a fraction of the stable step of the fastest admissible medium, in (0, 1].
    length : float
        Side of the square domain.
    """

    grid: int = 64
    n_frames: int = 50
    save_every: int = 4
    speed: str = "layered"
    source: str = "pulse"
    boundary: str = "absorbing"
    c_range: tuple = (1.0, 2.0)
    n_layers: int = 3
    correlation_length: tuple = (0.1, 0.3)
    frequency: tuple = (3.0, 6.0)
    amplitude: tuple = (0.5, 1.0)
    width: tuple = (0.02, 0.05)
    n_sources: int = 1
    granular: tuple = field(default_factory=tuple)
    speed_scale: float = 1.0
    cfl: float = 0.8
    length: float = 1.0

    def __post_init__(self):
        for name in ("grid", "n_frames", "save_every", "n_layers", "n_sources"):
            value = getattr(self, name)
            if int(value) != value or value < (2 if name == "grid" else 1):
                raise ValueError(f"{name} must be an integer >= {2 if name == 'grid' else 1}, got {value}")
        for name, allowed in (("speed", SPEEDS), ("source", SOURCES), ("boundary", BOUNDARIES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        lo, hi = self.c_range
        if not (0 < lo <= hi and np.isfinite(hi)):
            raise ValueError(f"c_range must satisfy 0 < lo <= hi, got {self.c_range}")
        if not 0 < self.cfl <= 1:
            raise ValueError(f"cfl must be in (0, 1], got {self.cfl}")
        if self.speed == "granular" and not self.granular:
            raise ValueError("speed='granular' needs granular materials (a table or packing files)")
        object.__setattr__(self, "granular", tuple(
            str(g) if not isinstance(g, dict) else g for g in self.granular))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DatasetConfig:
        d = json.loads(text)
        for key in ("c_range", "correlation_length", "frequency", "amplitude", "width", "granular"):
            d[key] = tuple(d[key])
        return cls(**d)

    def mesh(self) -> mesh.TriMesh:
        return mesh.rectangle(self.grid, self.grid, self.length, self.length)

    def materials(self) -> list[media.GranularMaterial]:
        return [media.material(g) for g in self.granular]

    def c_max(self) -> float:
        if self.speed == "granular":
            return self.speed_scale * max(m.speed for m in self.materials())
        return float(self.c_range[1])

    def dt(self) -> float:
        """``cfl`` times the stable step of the uniform medium at ``c_max``; the Gershgorin bound
        grows with ``c^2`` element by element, so it bounds every admissible medium."""
        return _dt(self.grid, self.length, self.c_max(), self.boundary, self.cfl)


@functools.lru_cache(maxsize=16)
def _dt(grid: int, length: float, c_max: float, boundary: str, cfl: float) -> float:
    m = mesh.rectangle(grid, grid, length, length)
    return cfl * stable_dt(m, np.full(m.n_nodes, c_max), boundary)


def sample_inputs(config: DatasetConfig, points: np.ndarray, rng: np.random.Generator):
    """Draw one sample's medium and sources.

    Returns
    -------
    c : ndarray (n_nodes,)
    ricker : list of RickerSource
    u0 : ndarray (n_nodes,) initial displacement
    params : dict of name -> ndarray (fixed shape per config)
    """
    L = config.length
    bounds = (0.0, L, 0.0, L)
    params = {}
    lo, hi = config.c_range
    nl = config.n_layers
    if config.speed == "uniform":
        c0 = rng.uniform(lo, hi)
        c = media.uniform(points, c0)
        params["c0"] = np.float64(c0)
    elif config.speed in ("layered", "granular"):
        interfaces = np.sort(rng.uniform(0.15 * L, 0.85 * L, nl - 1))
        params["interfaces"] = interfaces
        if config.speed == "layered":
            speeds = rng.uniform(lo, hi, nl)
            c = media.layered(points, speeds, interfaces)
            params["layer_speed"] = speeds
        else:
            mats = config.materials()
            index = rng.integers(0, len(mats), nl)
            c = media.from_granular(media.layer_labels(points, interfaces), [mats[k] for k in index],
                                    config.speed_scale)
            params["material"] = index.astype(np.int64)
            params["K_star"] = np.array([mats[k].K_star for k in index])
            params["phi"] = np.array([mats[k].phi for k in index])
            params["delta"] = np.array([mats[k].delta for k in index])
            params["x_small"] = np.array([mats[k].x_small for k in index])
    else:
        ell = rng.uniform(*config.correlation_length)
        c = media.random_smooth(points, rng, lo, hi, correlation_length=ell * L)
        params["correlation_length"] = np.float64(ell)
    ricker, u0 = [], np.zeros(len(points))
    rows = []
    for _ in range(config.n_sources):
        if config.source == "ricker":
            s = sources.sample_ricker(rng, bounds, config.frequency, config.amplitude)
            ricker.append(s)
            rows.append((s.x, s.y, s.frequency, s.amplitude))
        else:
            p = sources.sample_pulse(rng, bounds, tuple(w * L for w in config.width), config.amplitude)
            u0 += p(points)
            rows.append((p.x, p.y, p.width, p.amplitude))
    rows = np.array(rows)
    names = ("source_x", "source_y", "frequency", "amplitude") if config.source == "ricker" else (
        "pulse_x", "pulse_y", "width", "amplitude")
    for k, name in enumerate(names):
        params[name] = rows[:, k]
    return c, ricker, u0, params


def shuffle_deflate(block: np.ndarray, level: int | None) -> bytes:
    """Bytes of one HDF5 chunk through the shuffle and deflate filters (in that order);
    ``level=None``: the raw bytes (an uncompressed dataset)."""
    if level is None:
        return np.ascontiguousarray(block).tobytes()
    raw = np.ascontiguousarray(block).view(np.uint8).reshape(-1, block.dtype.itemsize)
    return zlib.compress(np.ascontiguousarray(raw.T).tobytes(), level)


def simulate(config_json: str, seed: int, split: int, indices, frames_per_chunk: int,
             level: int | None = 1) -> list[dict]:
    """Simulate samples ``indices`` together (one batched stencil run); the executor task.

    Returns one dict per sample with ``index``, ``c`` (ny, nx) float32, ``params`` and ``chunks``:
    the chunks of ``u`` (n_frames, ny, nx) float32 through shuffle + deflate at ``level`` (raw
    when None), ``frames_per_chunk`` frames each (the last one zero-padded, as HDF5 stores edge
    chunks whole); for Ricker sources also ``forcing_chunks``, the same for the frame forcing
    (:meth:`wavefe.explicit.ExplicitWave.frame_forcing`).
    """
    config = DatasetConfig.from_json(config_json)
    m = config.mesh()
    shape = m.node_shape
    drawn = [sample_inputs(config, m.points, np.random.default_rng([seed, split, int(i)]))
             for i in indices]
    cs = np.stack([d[0] for d in drawn])
    # dt bounds every admissible medium (DatasetConfig.dt), so the per-sample CFL check is skipped.
    sim = ExplicitWave(m, cs, dt=config.dt(), boundary=config.boundary, sources=[d[1] for d in drawn],
                       dtype=np.float32, check_cfl=False)
    sim.set_state(np.stack([d[2] for d in drawn]))
    forcing = (sim.frame_forcing(config.n_frames, config.save_every).astype(np.float32)
               if config.source == "ricker" else None)  # (nb, F, n_nodes), before run moves t
    frames = sim.run(config.n_frames, config.save_every)  # (nb, F, n_nodes) float32
    if not np.all(np.isfinite(frames)):
        raise FloatingPointError(f"samples {list(indices)}: non-finite values in the solution")
    out = []
    F, fc = config.n_frames, frames_per_chunk
    for b, i in enumerate(indices):
        result = {"index": int(i), "c": cs[b].reshape(shape).astype(np.float32),
                  "params": drawn[b][3], "chunks": _chunks(frames[b].reshape(F, *shape), fc, level)}
        if forcing is not None:
            result["forcing_chunks"] = _chunks(forcing[b].reshape(F, *shape), fc, level)
        out.append(result)
    return out


def _chunks(u: np.ndarray, fc: int, level: int | None) -> list[bytes]:
    """The HDF5 chunks (1, fc, ny, nx) of one sample's frames ``u`` (F, ny, nx), filtered."""
    chunks = []
    for start in range(0, u.shape[0], fc):
        block = np.zeros((1, fc, *u.shape[1:]), np.float32)
        block[0, :min(fc, u.shape[0] - start)] = u[start:start + fc]
        chunks.append(shuffle_deflate(block, level))
    return chunks
