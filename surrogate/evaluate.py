"""Rollouts and their scores: the surrogate is judged on frames it predicted from its own output.

``rollout(model, data, horizon=None, *, samples=None) -> Rollout``
    Start from the two true first frames ``u^0, u^1`` of each sample and predict ``horizon`` frames
    autoregressively (``u^2 .. u^{horizon+1}``); a model with ``forcing`` gets the data's frame
    forcing ``f^n`` with each step (the data must have it).
``rollout_metrics(result) -> dict``
    Scores over the predicted frames only (never the two context frames):

    - ``rel_l2_per_step`` (list, length horizon): ``||u_hat - u|| / ||u||`` per frame, mean over samples;
    - ``vrmse_per_step`` (list, length horizon): ``RMSE / std(u)`` per frame, mean over samples;
    - ``nrmse``: its time average; ``rel_l2_final``: its last value;
    - ``vrmse``: ``RMSE(u_hat - u) / std(u)`` per sample over all predicted frames, mean over samples;
    - ``band_low``, ``band_mid``, ``band_high``: the error's share in radial wavenumber bands
      ``|k| / k_Nyquist`` in [0, 1/3), [1/3, 2/3), [2/3, sqrt 2], relative to ``||u||`` over all predicted
      frames, per sample then averaged (for one sample ``low^2 + mid^2 + high^2`` is the squared
      relative L2 error of the whole rollout);
    - ``max_error`` (m) and ``max_error_rel`` (over ``max |u|``);
    - energy: with ``E^{n+1/2} = 1/2 sum ((u^{n+1} - u^n)/dt_f)^2 h^2 + 1/2 sum c^2 |grad u^{n+1/2}|^2 h^2``
      (forward differences, ``dt_f`` the time between frames), relative to the energy ``E_0`` of the
      context frames: ``energy_drift`` ``(E_hat(T) - E_0)/E_0``, ``energy_drift_true`` the same for
      the truth, and ``energy_error`` the mean of ``|E_hat - E| / E_0``. NaN when the file gives no
      ``dt`` or ``h``.
``evaluate(model, data, horizon=None, ...) -> dict``
    The metrics plus the costs of :mod:`surrogate.costs` (parameters, bytes, multiply-adds per frame,
    peak training activation memory, median inference time per frame).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from surrogate.data import as_trajectories

BANDS = {"band_low": (0.0, 1.0 / 3.0), "band_mid": (1.0 / 3.0, 2.0 / 3.0), "band_high": (2.0 / 3.0, 10.0)}


@dataclass(frozen=True)
class Rollout:
    """A rollout and the truth it is scored against.

    Attributes
    ----------
    pred, true : ndarray, float32, shape (S, T, ny, nx)
        Predicted and true frames ``u^2 .. u^{T+1}``.
    context : ndarray, float32, shape (S, 2, ny, nx)
        The given frames ``u^0, u^1``.
    c : ndarray, float32, shape (S, ny, nx)
        Wave speed (m/s).
    h, frame_dt : float
        Grid spacing (m) and time between frames (s); NaN when unknown.
    """

    pred: np.ndarray
    true: np.ndarray
    context: np.ndarray
    c: np.ndarray
    h: float = math.nan
    frame_dt: float = math.nan


def rollout(model: torch.nn.Module, data, horizon: int | None = None, *, samples=None,
            batch_size: int = 32, h: float | None = None, frame_dt: float | None = None,
            start: int = 0) -> Rollout:
    """Roll ``model`` out from the two true first frames of every selected sample.

    Parameters
    ----------
    model : Stepper
        Any module mapping (N, 3, ny, nx) ``(u^{n-1}, u^n, c)`` to (N, 1, ny, nx) ``u^{n+1}``; with
        ``model.forcing`` (N, 4, ny, nx), the fourth channel the frame forcing ``f^n``.
    data : path-like, WaveWindows, Trajectories, (u, c) or (u, c, f)
        Trajectories, see :func:`surrogate.data.as_trajectories` (a path is opened once).
    horizon : int, optional
        Frames to predict, in [1, n_frames - 2]; all available by default.
    samples : int, slice or sequence, optional
        Samples to roll out (all by default).
    batch_size : int
        Samples advanced together.
    h, frame_dt : float, optional
        Grid spacing and frame interval, read from the file when not given.
    start : int
        Start from the true frames ``u^start, u^{start+1}`` (default 0). Datasets whose sources
        start from rest hold near-zero first frames, on which relative errors mean little.
    """
    traj = as_trajectories(data, samples=samples)
    u, c, f = traj.u, traj.c, traj.f
    forcing = bool(getattr(model, "forcing", False))
    if forcing and f is None:
        raise ValueError("the model takes the frame forcing but the data have none (/fields/f)")
    if int(start) != start or not 0 <= start <= u.shape[1] - 3:
        raise ValueError(f"start must be an integer in [0, {u.shape[1] - 3}] for this data, got {start}")
    first = int(start)
    n_frames = u.shape[1] - first
    if horizon is None:
        horizon = n_frames - 2
    if int(horizon) != horizon or not 1 <= horizon <= n_frames - 2:
        raise ValueError(f"horizon must be an integer in [1, {n_frames - 2}] for this data and start, "
                         f"got {horizon}")
    horizon = int(horizon)
    h = traj.h if h is None else h
    frame_dt = traj.frame_dt if frame_dt is None else frame_dt
    was_training = model.training
    model.eval()
    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    pred = np.empty((u.shape[0], horizon, *u.shape[2:]), dtype=np.float32)
    try:
        with torch.no_grad():
            for b0 in range(0, u.shape[0], batch_size):
                rows = slice(b0, b0 + batch_size)
                prev = torch.from_numpy(u[rows, first]).to(dev)
                cur = torch.from_numpy(u[rows, first + 1]).to(dev)
                speed = torch.from_numpy(c[rows]).to(dev)
                for t in range(horizon):
                    extra = [torch.from_numpy(f[rows, first + t + 1]).to(dev)] if forcing else []
                    nxt = model(torch.stack([prev, cur, speed, *extra], dim=1))[:, 0]
                    pred[rows, t] = nxt.cpu().numpy()
                    prev, cur = cur, nxt
    finally:
        model.train(was_training)
    return Rollout(pred, u[:, first + 2 : first + 2 + horizon].copy(), u[:, first : first + 2].copy(), c,
                   float(h), float(frame_dt))


def _radial_wavenumber(ny: int, nx: int) -> np.ndarray:
    ky = np.fft.fftfreq(ny)[:, None]
    kx = np.fft.fftfreq(nx)[None, :]
    return np.sqrt(kx**2 + ky**2) / 0.5


def wave_energy(u: np.ndarray, c: np.ndarray, h: float, frame_dt: float) -> np.ndarray:
    """Discrete energy between consecutive frames.

    Parameters
    ----------
    u : ndarray, shape (S, F, ny, nx)
    c : ndarray, shape (S, ny, nx)

    Returns
    -------
    ndarray, shape (S, F - 1): ``E^{n+1/2}`` for n = 0 .. F-2 (J/m of thickness, unit density).
    """
    u = u.astype(np.float64)
    c2 = c.astype(np.float64)[:, None] ** 2
    kinetic = 0.5 * np.sum(((u[:, 1:] - u[:, :-1]) / frame_dt) ** 2, axis=(2, 3)) * h * h
    mid = 0.5 * (u[:, 1:] + u[:, :-1])
    gx = np.diff(mid, axis=3) / h
    gy = np.diff(mid, axis=2) / h
    potential = 0.5 * (np.sum(c2[..., :, :-1] * gx**2, axis=(2, 3))
                       + np.sum(c2[..., :-1, :] * gy**2, axis=(2, 3))) * h * h
    return kinetic + potential


def rollout_metrics(result: Rollout) -> dict:
    """Score a :class:`Rollout` on its predicted frames (see the module docstring for definitions)."""
    pred = result.pred.astype(np.float64)
    true = result.true.astype(np.float64)
    err = pred - true
    s, t = true.shape[:2]
    err_norm = np.sqrt(np.sum(err**2, axis=(2, 3)))
    true_norm = np.sqrt(np.sum(true**2, axis=(2, 3)))
    tiny = 1e-30 + 1e-12 * float(true_norm.max(initial=0.0))
    per_step = np.mean(err_norm / np.maximum(true_norm, tiny), axis=0)
    rmse = np.sqrt(np.mean(err**2, axis=(1, 2, 3)))
    std = np.maximum(true.reshape(s, -1).std(axis=1), tiny)
    vrmse_step = np.mean(np.sqrt(np.mean(err**2, axis=(2, 3))) / std[:, None], axis=0)
    metrics = {
        "horizon": int(t),
        "samples": int(s),
        "rel_l2_per_step": per_step.tolist(),
        "vrmse_per_step": vrmse_step.tolist(),
        "nrmse": float(per_step.mean()),
        "rel_l2_final": float(per_step[-1]),
        "vrmse": float(np.mean(rmse / std)),
        "max_error": float(np.abs(err).max()),
        "max_error_rel": float(np.abs(err).max() / max(float(np.abs(true).max()), tiny)),
    }
    k = _radial_wavenumber(*true.shape[2:])
    err_hat = np.abs(np.fft.fft2(err)) ** 2
    total = np.sum(np.abs(np.fft.fft2(true)) ** 2, axis=(1, 2, 3))
    for name, (lo, hi) in BANDS.items():
        band = (k >= lo) & (k < hi)
        metrics[name] = float(np.mean(np.sqrt(np.sum(err_hat[..., band], axis=(1, 2))
                                              / np.maximum(total, tiny**2))))
    if math.isfinite(result.h) and math.isfinite(result.frame_dt) and result.frame_dt > 0:
        e0 = wave_energy(result.context, result.c, result.h, result.frame_dt)[:, 0]
        e0 = np.maximum(e0, 1e-300)
        last_ctx = result.context[:, 1:2]
        e_pred = wave_energy(np.concatenate([last_ctx, result.pred], axis=1), result.c, result.h,
                             result.frame_dt)
        e_true = wave_energy(np.concatenate([last_ctx, result.true], axis=1), result.c, result.h,
                             result.frame_dt)
        metrics["energy_drift"] = float(np.mean((e_pred[:, -1] - e0) / e0))
        metrics["energy_drift_true"] = float(np.mean((e_true[:, -1] - e0) / e0))
        metrics["energy_error"] = float(np.mean(np.abs(e_pred - e_true) / e0[:, None]))
    else:
        metrics["energy_drift"] = metrics["energy_drift_true"] = metrics["energy_error"] = math.nan
    return metrics


def evaluate(model: torch.nn.Module, data, horizon: int | None = None, *, samples=None,
             timing_repeats: int = 20, memory_batch: int = 8,
             with_costs: bool = True, start: int = 0) -> tuple[dict, Rollout]:
    """Roll out, score, and measure the costs of ``model`` on ``data``.

    Returns
    -------
    metrics : dict
        :func:`rollout_metrics` (of the rollout from frame ``start``) plus, with ``with_costs``,
        ``parameters``, ``stored_bytes``,
        ``macs_per_frame``, ``train_activation_bytes`` (batch ``memory_batch``) and
        ``seconds_per_frame`` (median of ``timing_repeats`` single-frame steps).
    result : Rollout
    """
    from surrogate import costs

    result = rollout(model, data, horizon, samples=samples, start=start)
    metrics = rollout_metrics(result)
    if with_costs:
        ny, nx = result.true.shape[2:]
        metrics.update(costs.model_costs(model, ny, nx, timing_repeats=timing_repeats,
                                         memory_batch=memory_batch))
    return metrics, result
