"""Small ``jamwave.wave2d/1`` files for the surrogate tests, written without ``wavefe``.

The fields come from a plain 5-point finite-difference leapfrog solution of u_tt = c^2 lap u with
Dirichlet sides, started from a Gaussian pulse at rest, on a layered speed field: real waves, so
the surrogate has something learnable, at sizes that train in seconds.
"""

from __future__ import annotations

import h5py
import numpy as np

SCHEMA = "jamwave.wave2d/1"


def simulate(n: int, frames: int, save_every: int, rng: np.random.Generator, h: float, dt: float):
    x = np.arange(n) * h
    xx, yy = np.meshgrid(x, x)
    c = np.full((n, n), 1.0)
    c[: rng.integers(n // 3, 2 * n // 3)] = rng.uniform(0.6, 1.0)
    x0, y0 = rng.uniform(0.3, 0.7, size=2) * x[-1]
    width = rng.uniform(2.0, 3.0) * h
    u = np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * width**2))
    u[0, :] = u[-1, :] = u[:, 0] = u[:, -1] = 0.0
    prev = u.copy()
    out = np.empty((frames, n, n))
    r2 = (c * dt / h) ** 2
    for f in range(frames):
        out[f] = u
        for _ in range(save_every):
            lap = np.zeros_like(u)
            lap[1:-1, 1:-1] = (u[2:, 1:-1] + u[:-2, 1:-1] + u[1:-1, 2:] + u[1:-1, :-2] - 4 * u[1:-1, 1:-1])
            prev, u = u, 2 * u - prev + r2 * lap
    return out.astype(np.float32), c.astype(np.float32), (x0, y0, width)


def write_wave_file(path, *, samples: int = 4, frames: int = 12, n: int = 16, save_every: int = 2,
                    seed: int = 0, schema: str = SCHEMA) -> str:
    """Write a small wave dataset file and return its path."""
    rng = np.random.default_rng(seed)
    h = 1.0 / (n - 1)
    dt = 0.4 * h
    us, cs, ps = [], [], []
    for _ in range(samples):
        u, c, p = simulate(n, frames, save_every, rng, h, dt)
        us.append(u)
        cs.append(c)
        ps.append(p)
    with h5py.File(path, "w") as f:
        f.attrs.update({"schema": schema, "dt": dt, "save_every": save_every, "h": h, "c_max": 1.0,
                        "boundary": "dirichlet", "seed": seed})
        f.create_dataset("fields/u", data=np.stack(us), chunks=(1, min(frames, 4), n, n), compression="gzip")
        f["fields/c"] = np.stack(cs)
        f["params/pulse"] = np.array(ps)
        f["t"] = np.arange(frames) * dt * save_every
        f["x"] = np.arange(n) * h
        f["y"] = np.arange(n) * h
        xx, yy = np.meshgrid(f["x"][:], f["y"][:])
        f["mesh/points"] = np.stack([xx.ravel(), yy.ravel()], axis=1)
        f["mesh/cells"] = np.zeros((0, 3), dtype=np.int64)
    return str(path)
