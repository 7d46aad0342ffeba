"""Time integration: damped velocity Verlet and affine isotropic compression (FIRE minimisation
is in :mod:`granular.minimize`).

The loops run in compiled code on the chosen backend (many steps per host call, the Verlet-list
rebuild criterion checked inside); this module checks inputs, picks the time step, turns error
flags into exceptions naming the step, and packs results. Every function returns a *new*
:class:`~granular.space.Packing`; the input is not modified.

Time step: dt defaults to t_c / 50 of the contact between two of the smallest spheres
(:meth:`ContactLaw.default_dt`); a dt above t_c / 10 is refused. Background damping is the
viscous force -damping * v_i on every particle (LAMMPS' ``fix viscous`` convention; units of
mass / time). Masses are (4/3) pi r^3 (grain density 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from granular.backend import launch_layer, resolve_backend
from granular.contact import DEFAULT_LAW, ContactLaw
from granular.space import Packing, check_box, wrap

HISTORY_KEYS = ("time", "phi", "pressure", "z", "kinetic_energy", "potential_energy", "rebuilds")


class SimulationError(FloatingPointError):
    """A kernel flagged non-finite positions, velocities or forces (the step is in the message)."""


@dataclass
class MDResult:
    """Outcome of :func:`run_md`: the final packing, the recorded history and counters."""

    packing: Packing
    history: dict = field(default_factory=dict)
    steps: int = 0
    dt: float = 0.0
    rebuilds: int = 0
    force: np.ndarray | None = None
    kinetic_energy: float = 0.0
    potential_energy: float = 0.0
    backend: str = "cpu"


@dataclass
class CompressionResult:
    """Outcome of :func:`compress`: final packing and history arrays (keys :data:`HISTORY_KEYS`)."""

    packing: Packing
    history: dict
    steps: int
    dt: float
    backend: str


def default_skin(packing: Packing) -> float:
    """Verlet skin: 20 % of the smallest diameter."""
    return 0.4 * float(packing.radius.min())


def _setup(packing: Packing, law: ContactLaw, dt, skin, backend):
    if not isinstance(packing, Packing):
        raise ValueError(f"packing must be a granular.Packing, got {type(packing).__name__}")
    if not isinstance(law, ContactLaw):
        raise ValueError(f"law must be a granular.ContactLaw, got {type(law).__name__}")
    radius = float(packing.radius.min())  # physical masses: the lightest pair sets the step
    dt = law.default_dt(radius) if dt is None else law.check_dt(dt, radius)
    skin = default_skin(packing) if skin is None else float(skin)
    if not (np.isfinite(skin) and skin > 0):
        raise ValueError(f"skin must be a finite number > 0, got {skin}")
    check_box(packing.box, float(packing.radius.max()), skin)
    name = resolve_backend(backend)
    return dt, skin, name, launch_layer(name)


def _history(records: np.ndarray) -> dict:
    return {key: records[:, k].copy() for k, key in enumerate(HISTORY_KEYS)}


def _raise_status(status: int, step: int, what: str):
    if status != 0:
        raise SimulationError(f"{what}: non-finite position, velocity or force at step {step}; "
                              "the time step may be too large or particles overlap too much")


def _check_steps(name: str, value) -> int:
    if int(value) != value or int(value) < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value}")
    return int(value)


def check_minimize_inputs(force_tol, max_steps, energy_tol, params, params_type) -> int:
    """Validate a minimiser's common arguments (errors name the parameter); return max_steps."""
    if not (np.isfinite(force_tol) and force_tol > 0):
        raise ValueError(f"force_tol must be a finite number > 0, got {force_tol}")
    if not isinstance(params, params_type):
        raise ValueError(f"params must be a granular.{params_type.__name__}, got {type(params).__name__}")
    max_steps = _check_steps("max_steps", max_steps)
    if not (np.isfinite(energy_tol) and energy_tol >= 0):
        raise ValueError(f"energy_tol must be a finite number >= 0, got {energy_tol}")
    return max_steps


def _integrate(packing, law, *, dt, steps, damping, log_scale, record_every, skin, backend, progress,
               what):
    """Shared driver of run_md and compress: runs in blocks (for progress) and concatenates."""
    dt, skin, name, layer = _setup(packing, law, dt, skin, backend)
    if not (np.isfinite(damping) and damping >= 0):
        raise ValueError(f"damping must be a finite number >= 0, got {damping}")
    steps = _check_steps("steps", steps)
    record_every = _check_steps("record_every", record_every)
    out = packing.copy()
    n_blocks = min(20, steps) if (progress and steps > 0) else 1
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, desc=what, unit="step")
    chunks, done, rebuilds = [], 0, 0
    force, totals = np.zeros_like(out.position), np.zeros(5)
    for block in range(n_blocks):
        end = (steps * (block + 1)) // n_blocks
        if record_every > 0 and block < n_blocks - 1:
            end -= end % record_every  # blocks end on recorded steps, so records stay evenly spaced
        n_steps = end - done
        if n_steps <= 0 and block < n_blocks - 1:
            continue
        status, step, records, block_rebuilds, force, totals = layer.run_md(
            out.position, out.velocity, out.radius, out.species, out.box, law.k_n, law.gamma_n,
            law.model_code, dt, damping, log_scale, n_steps, record_every, skin)
        _raise_status(status, done + step, what)
        if records.size:
            records[:, 0] += done * dt
            records[:, 6] += rebuilds
            # a later block's first row repeats the previous block's last recorded state
            chunks.append(records[1:] if chunks else records)
        rebuilds += block_rebuilds
        done += n_steps
        if bar is not None:
            bar.update(n_steps)
    if bar is not None:
        bar.close()
    records = np.concatenate(chunks) if chunks else np.zeros((0, len(HISTORY_KEYS)))
    kinetic = 0.5 * float(np.sum(out.mass[:, None] * out.velocity**2))
    return out, _history(records), dt, name, rebuilds, force, kinetic, float(totals[0])


def run_md(packing: Packing, law: ContactLaw = DEFAULT_LAW, *, dt: float | None = None, steps: int,
           damping: float = 0.0, record_every: int = 0, skin: float | None = None,
           backend: str = "auto", progress: bool = False) -> MDResult:
    """Velocity Verlet with the contact law and background viscous damping, at fixed box.

    Parameters
    ----------
    packing : Packing
        Initial state (not modified).
    law : ContactLaw
    dt : float, optional
        Time step; default t_c / 50 of the smallest-sphere contact, at most t_c / 10.
    steps : int
        Number of steps (>= 0).
    damping : float
        Background viscous coefficient (force -damping v, >= 0).
    record_every : int
        Record (time, phi, pressure, z, kinetic and potential energy, rebuilds) every this many
        steps (0: no history).
    skin : float, optional
        Verlet skin (default 20 % of the smallest diameter).
    backend : {"auto", "cpu", "cuda"}
    progress : bool
        Show a tqdm bar. The run is then split into up to 20 compiled calls; each restarts
        with a list build and a force call at on-step velocities, so with damping or a
        dashpot the trajectory differs from an unsplit run at the level of the time-step error.
    """
    out, history, dt, name, rebuilds, force, kinetic, potential = _integrate(
        packing, law, dt=dt, steps=steps, damping=damping, log_scale=0.0, record_every=record_every,
        skin=skin, backend=backend, progress=progress, what="run_md")
    return MDResult(out, history, int(steps), dt, rebuilds, force, kinetic, potential, name)


def compress(packing: Packing, law: ContactLaw = DEFAULT_LAW, *, target_phi: float,
             strain_rate: float, damping: float, record_every: int = 100, dt: float | None = None,
             skin: float | None = None, backend: str = "auto", progress: bool = False) -> CompressionResult:
    """Isotropic compression (or decompression) to ``target_phi`` by affine rescaling every step.

    Box edges and positions are multiplied by a constant factor each step, so the true strain
    rate |d ln L / dt| equals ``strain_rate`` (the last step lands exactly on ``target_phi``);
    the damped dynamics relaxes the packing along the way. Velocities are not rescaled.

    Parameters
    ----------
    target_phi : float
        Final packing fraction, in (0, 1).
    strain_rate : float
        |d ln L / dt| > 0, in 1 / time (reduced units).
    damping : float
        Background viscous coefficient (>= 0).
    record_every : int
        History every this many steps (>= 1).
    """
    if not (np.isfinite(target_phi) and 0 < target_phi < 1):
        raise ValueError(f"target_phi must be in (0, 1), got {target_phi}")
    if not (np.isfinite(strain_rate) and strain_rate > 0):
        raise ValueError(f"strain_rate must be a finite number > 0, got {strain_rate}")
    if int(record_every) < 1:
        raise ValueError(f"record_every must be >= 1, got {record_every}")
    dt_used, _, _, _ = _setup(packing, law, dt, skin, backend)
    log_ratio = math.log(packing.packing_fraction / target_phi) / 3.0  # ln(L_final / L_0)
    steps = max(1, math.ceil(abs(log_ratio) / (strain_rate * dt_used))) if log_ratio != 0 else 0
    final_box = packing.box * math.exp(log_ratio)
    check_box(final_box, float(packing.radius.max()), 0.0)
    out, history, dt_used, name, _, _, _, _ = _integrate(
        packing, law, dt=dt, steps=steps, damping=damping,
        log_scale=log_ratio / steps if steps else 0.0, record_every=int(record_every), skin=skin,
        backend=backend, progress=progress, what="compress")
    out.box = final_box.copy()  # remove the rounding of repeated scaling
    out.position = wrap(out.position, out.box)
    return CompressionResult(out, history, steps, dt_used, name)
