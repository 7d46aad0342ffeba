"""Small ``jamwave.wave2d/1`` files for the surrogate tests, written without ``wavefe``.

The fields come from a plain 5-point finite-difference leapfrog solution of u_tt = c^2 lap u with
Dirichlet sides, started from a Gaussian pulse at rest, on a layered speed field: real waves, so
the surrogate has something learnable, at sizes that train in seconds. ``source="ricker"`` starts
from rest with a Ricker point source on a grid node instead and also writes the frame forcing
``/fields/f`` (the source's share of each frame's second difference, as wavefe defines it).
"""

from __future__ import annotations

import h5py
import numpy as np

SCHEMA = "jamwave.wave2d/1"


def ricker(t, frequency):
    a = (np.pi * frequency * (np.asarray(t) - 1.5 / frequency)) ** 2
    return (1 - 2 * a) * np.exp(-a)


def simulate_ricker(n: int, frames: int, save_every: int, rng: np.random.Generator, h: float, dt: float):
    """From rest, a Ricker source at a random interior node; returns u, c, f (frames, n, n) and params."""
    c = np.full((n, n), 1.0)
    c[: rng.integers(n // 3, 2 * n // 3)] = rng.uniform(0.6, 1.0)
    j0, i0 = rng.integers(n // 4, 3 * n // 4, size=2)
    freq = rng.uniform(1.0, 1.4) / (save_every * dt * 4)  # about 4 frames per period, peak at 4-6
    u, prev = np.zeros((n, n)), np.zeros((n, n))
    out = np.empty((frames, n, n))
    r2 = (c * dt / h) ** 2
    for m in range(frames * save_every):
        if m % save_every == 0:
            out[m // save_every] = u
        lap = np.zeros_like(u)
        lap[1:-1, 1:-1] = (u[2:, 1:-1] + u[:-2, 1:-1] + u[1:-1, 2:] + u[1:-1, :-2] - 4 * u[1:-1, 1:-1])
        nxt = 2 * u - prev + r2 * lap
        nxt[j0, i0] += dt**2 * ricker(m * dt, freq) / h**2
        prev, u = u, nxt
    k = save_every
    j = np.arange(-(k - 1), k)
    g = ricker(dt * (k * np.arange(frames)[:, None] + j), freq) @ (k - np.abs(j)) * dt**2 / h**2
    f = np.zeros((frames, n, n))
    f[:, j0, i0] = g
    return out.astype(np.float32), c.astype(np.float32), f.astype(np.float32), (i0 * h, j0 * h, freq)


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
                    seed: int = 0, schema: str = SCHEMA, source: str = "pulse") -> str:
    """Write a small wave dataset file and return its path."""
    rng = np.random.default_rng(seed)
    h = 1.0 / (n - 1)
    dt = 0.4 * h
    us, cs, ps, fs = [], [], [], []
    for _ in range(samples):
        if source == "ricker":
            u, c, f, p = simulate_ricker(n, frames, save_every, rng, h, dt)
            fs.append(f)
        else:
            u, c, p = simulate(n, frames, save_every, rng, h, dt)
        us.append(u)
        cs.append(c)
        ps.append(p)
    with h5py.File(path, "w") as f:
        f.attrs.update({"schema": schema, "dt": dt, "save_every": save_every, "h": h, "c_max": 1.0,
                        "boundary": "dirichlet", "seed": seed})
        f.create_dataset("fields/u", data=np.stack(us), chunks=(1, min(frames, 4), n, n), compression="gzip")
        f["fields/c"] = np.stack(cs)
        if fs:
            f["fields/f"] = np.stack(fs)
        f["params/pulse"] = np.array(ps)
        f["t"] = np.arange(frames) * dt * save_every
        f["x"] = np.arange(n) * h
        f["y"] = np.arange(n) * h
        xx, yy = np.meshgrid(f["x"][:], f["y"][:])
        f["mesh/points"] = np.stack([xx.ravel(), yy.ravel()], axis=1)
        f["mesh/cells"] = np.zeros((0, 3), dtype=np.int64)
    return str(path)
