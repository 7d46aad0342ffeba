"""The PQ Index (PQI) of a weight vector and the SAP pruning count derived from it.

Diao et al., "Pruning deep neural networks from a sparsity perspective", ICLR 2023. For
``0 < p < q`` and the ``d`` alive entries of ``w``::

    I_{p,q}(w) = 1 - d^(1/q - 1/p) ||w||_p / ||w||_q            in [0, 1 - d^(1/q - 1/p)]

(0 for a constant vector, the upper bound for a one-hot one; larger means sparser). SAP keeps at
least ``r = d (1 + eta_r)^(-q/(q-p)) (1 - I)^(qp/(q-p))`` weights of a scope and prunes
``c = min(floor(gamma (d - r)), floor(beta d))`` of its alive weights.

Conventions chosen here, used everywhere in :mod:`surrogate.pruning`:

* Everything is computed in float64 on ``|w|`` scaled by its largest alive magnitude, so the
  result does not overflow or underflow and is exactly invariant to scale and sign.
* The index is clamped to its theoretical range ``[0, 1 - d^(1/q-1/p)]``; only rounding noise of a
  few ulp is ever removed by the clamp.
* **An all-zero alive vector, or one with no alive entries, has PQI NaN** (the norm ratio is
  0/0). :func:`sap_prune_count` then prunes nothing: without a defined sparsity there is no
  evidence for pruning. Non-finite weights raise :class:`ValueError`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

__all__ = [
    "SCOPES",
    "alive_mask",
    "check_pq",
    "check_sap",
    "masked_weight",
    "pq_index",
    "pq_index_model",
    "pq_index_rows",
    "prunable_parameters",
    "robust_floor",
    "sap_prune_count",
    "sap_prune_counts",
    "sap_retained_bound",
]

SCOPES = ("global", "layer", "neuron")

# Norm layers keep their 1-d affine weights anyway; listed so a future 2-d norm weight is never pruned.
_NORM_TYPES = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
)

# Relative tolerance under which a float64 count that should be an integer is snapped to it.
_FLOOR_RTOL = 1e-10


def check_pq(p: float, q: float) -> tuple[float, float]:
    """Return ``(p, q)`` as floats after checking ``0 < p < q < inf``."""
    p, q = float(p), float(q)
    if not (math.isfinite(p) and p > 0):
        raise ValueError(f"p must be a finite number > 0, got {p}")
    if not (math.isfinite(q) and q > p):
        raise ValueError(f"q must be a finite number > p = {p}, got {q}")
    return p, q


def _as_float64(w) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(w) if not isinstance(w, torch.Tensor) else w)
    return t.detach().to(device="cpu", dtype=torch.float64)


def pq_index_rows(x: torch.Tensor, alive: torch.Tensor, p: float = 0.5, q: float = 1.0) -> torch.Tensor:
    """PQ Index of each row of ``x`` over its alive entries.

    Parameters
    ----------
    x : torch.Tensor, shape (n_rows, n)
        Values (any float dtype; converted to float64).
    alive : torch.Tensor of bool, shape (n_rows, n)
        True where an entry counts.
    p, q : float
        Norm orders, ``0 < p < q``.

    Returns
    -------
    torch.Tensor, float64, shape (n_rows,)
        The index per row; NaN for rows with no alive entry or only zero alive entries.
    """
    p, q = check_pq(p, q)
    x = _as_float64(x)
    alive = torch.as_tensor(alive, dtype=torch.bool, device="cpu")
    if x.ndim != 2 or alive.shape != x.shape:
        raise ValueError(
            f"x and alive must be 2-d of equal shape, got {tuple(x.shape)}, {tuple(alive.shape)}")
    a = torch.where(alive, x.abs(), torch.zeros((), dtype=torch.float64))
    if not torch.isfinite(a).all():
        raise ValueError("w must be finite on its alive entries (found inf or NaN)")
    d = alive.sum(dim=1).to(torch.float64)
    top = a.amax(dim=1) if a.shape[1] else torch.zeros(a.shape[0], dtype=torch.float64)
    defined = top > 0
    a = a / torch.where(defined, top, torch.ones_like(top))[:, None]
    norm_p = a.pow(p).sum(dim=1).pow(1.0 / p)
    norm_q = a.pow(q).sum(dim=1).pow(1.0 / q)
    d_safe = torch.where(defined, d, torch.ones_like(d))
    factor = d_safe.pow(1.0 / q - 1.0 / p)
    ratio = norm_p / torch.where(defined, norm_q, torch.ones_like(norm_q))
    index = 1.0 - factor * ratio
    index = torch.minimum(torch.clamp(index, min=0.0), 1.0 - factor)
    return torch.where(defined, index, torch.full_like(index, math.nan))


def pq_index(w, p: float = 0.5, q: float = 1.0, mask=None) -> float:
    """PQ Index of the alive entries of ``w``, in float64.

    Parameters
    ----------
    w : torch.Tensor or array_like, any shape
        Weights.
    p, q : float
        Norm orders, ``0 < p < q`` (defaults 0.5 and 1 as in Diao et al.).
    mask : torch.Tensor or array_like, same shape as ``w``, optional
        Nonzero where an entry is alive; default all alive.

    Returns
    -------
    float
        ``1 - d^(1/q-1/p) ||w||_p / ||w||_q`` over the ``d`` alive entries, in
        ``[0, 1 - d^(1/q-1/p)]``; NaN when no entry is alive or all alive entries are zero.

    Examples
    --------
    >>> pq_index([1.0, 0.0, 0.0, 0.0])    # one-hot: 1 - 4^(1 - 2)
    0.75
    >>> pq_index([3.0, 3.0, 3.0])
    0.0
    """
    x = _as_float64(w).reshape(1, -1)
    alive = _alive_like(x, mask)
    return float(pq_index_rows(x, alive, p, q)[0])


def _alive_like(x: torch.Tensor, mask) -> torch.Tensor:
    if mask is None:
        return torch.ones_like(x, dtype=torch.bool)
    m = _as_float64(mask)
    if m.numel() != x.numel():
        raise ValueError(f"mask must have the shape of w ({x.numel()} entries), got {tuple(m.shape)}")
    return (m != 0).reshape(x.shape)


def sap_retained_bound(d, index, p: float = 0.5, q: float = 1.0, eta_r: float = 0.0):
    """SAP's lower bound on the retained count, ``d (1+eta_r)^(-q/(q-p)) (1-I)^(qp/(q-p))``.

    ``d`` and ``index`` may be floats or float64 tensors of equal shape.
    """
    p, q = check_pq(p, q)
    if not (math.isfinite(eta_r) and eta_r >= 0):
        raise ValueError(f"eta_r must be a finite number >= 0, got {eta_r}")
    return d * (1.0 + eta_r) ** (-q / (q - p)) * (1.0 - index) ** (q * p / (q - p))


def robust_floor(x: torch.Tensor) -> torch.Tensor:
    """``floor`` of float64 values that snaps values within ``1e-10 max(1, |x|)`` below an
    integer up to it, so rounding noise (``2.9999999999999996`` for an exact 3) costs no weight."""
    nearest = torch.round(x)
    close = (x - nearest).abs() <= _FLOOR_RTOL * torch.clamp(x.abs(), min=1.0)
    return torch.where(close, nearest, torch.floor(x))


def check_sap(eta_r: float, gamma: float, beta: float) -> None:
    """Check SAP's hyperparameters: ``eta_r >= 0``, ``gamma > 0``, ``0 <= beta <= 1``."""
    if not (math.isfinite(eta_r) and eta_r >= 0):
        raise ValueError(f"eta_r must be a finite number >= 0, got {eta_r}")
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be a finite number > 0, got {gamma}")
    if not (math.isfinite(beta) and 0 <= beta <= 1):
        raise ValueError(f"beta must be in [0, 1], got {beta}")


def sap_prune_counts(d: torch.Tensor, index: torch.Tensor, p: float = 0.5, q: float = 1.0,
                     eta_r: float = 0.0, gamma: float = 1.0, beta: float = 0.9) -> torch.Tensor:
    """Vectorised SAP count ``c = min(floor(gamma (d - r)), floor(beta d))`` clamped to ``[0, d]``.

    Parameters
    ----------
    d : torch.Tensor, shape (n,)
        Alive counts per scope unit.
    index : torch.Tensor, float64, shape (n,)
        PQ Index per unit (NaN units prune nothing).

    Returns
    -------
    torch.Tensor, int64, shape (n,)
    """
    check_sap(eta_r, gamma, beta)
    d = torch.as_tensor(d, dtype=torch.float64)
    index = torch.as_tensor(index, dtype=torch.float64)
    r = sap_retained_bound(d, torch.nan_to_num(index, nan=0.0), p, q, eta_r)
    by_bound = robust_floor(gamma * (d - r))
    by_cap = robust_floor(beta * d)
    c = torch.minimum(by_bound, by_cap)
    c = torch.clamp(torch.minimum(c, d), min=0.0)
    c = torch.where(torch.isnan(index), torch.zeros_like(c), c)
    return c.to(torch.int64)


def sap_prune_count(w, p: float = 0.5, q: float = 1.0, eta_r: float = 0.0, gamma: float = 1.0,
                    beta: float = 0.9, mask=None) -> int:
    """Number of alive weights of ``w`` that one SAP step prunes (Diao et al. 2023, Algorithm 1).

    Parameters
    ----------
    w : torch.Tensor or array_like
        Weights of one scope unit (a neuron, a layer, or all prunable weights concatenated).
    p, q : float
        PQ Index orders, ``0 < p < q``.
    eta_r : float
        Compression-ratio hyperparameter, ``>= 0`` (larger keeps fewer weights).
    gamma : float
        Step size on ``d - r``, ``> 0``.
    beta : float
        Cap on the pruned fraction per step, in ``[0, 1]``.
    mask : array_like, optional
        Nonzero where alive.

    Returns
    -------
    int
        ``c = min(floor(gamma (d - r)), floor(beta d))`` with
        ``r = d (1+eta_r)^(-q/(q-p)) (1-I)^(qp/(q-p))``, computed in float64 with
        :func:`robust_floor`, clamped to ``[0, d]``; 0 when the index is NaN.

    Examples
    --------
    >>> sap_prune_count([2.0, 0.0, 0.0, 0.0])    # I = 3/4, r = 1: prune min(3, floor(3.6))
    3
    """
    x = _as_float64(w).reshape(1, -1)
    alive = _alive_like(x, mask)
    index = pq_index_rows(x, alive, p, q)
    d = alive.sum(dim=1)
    return int(sap_prune_counts(d, index, p, q, eta_r, gamma, beta)[0])


def prunable_parameters(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """The tensors pruning acts on: every parameter with more than one dimension.

    Conv and linear weights and CP factors are prunable; biases (any name containing ``bias``)
    and the parameters of normalisation layers never are. A tensor already under
    :mod:`torch.nn.utils.prune` reparametrisation (``weight_orig`` + ``weight_mask``) is listed
    under its plain name (``weight``).

    Returns
    -------
    list of (qualified_name, module, name)
        In ``model.named_modules()`` order, e.g. ``("net.0.weight", <Conv2d>, "weight")``.
    """
    out = []
    for mod_name, module in model.named_modules():
        if isinstance(module, _NORM_TYPES):
            continue
        for pname, param in module.named_parameters(recurse=False):
            name = pname
            if pname.endswith("_orig") and hasattr(module, pname[: -len("_orig")] + "_mask"):
                name = pname[: -len("_orig")]
            if param.ndim <= 1 or "bias" in name:
                continue
            qualified = f"{mod_name}.{name}" if mod_name else name
            out.append((qualified, module, name))
    return out


def alive_mask(module: nn.Module, name: str) -> torch.Tensor:
    """Boolean mask of the alive entries of ``module.<name>`` (all True when not pruned)."""
    mask = getattr(module, name + "_mask", None)
    if mask is None:
        return torch.ones_like(getattr(module, name), dtype=torch.bool)
    return mask.detach() != 0


def masked_weight(module: nn.Module, name: str) -> torch.Tensor:
    """Current effective value of ``module.<name>``: ``orig * mask`` when pruned (never stale)."""
    orig = getattr(module, name + "_orig", None)
    if orig is None:
        return getattr(module, name).detach()
    return orig.detach() * getattr(module, name + "_mask").to(orig.dtype)


def pq_index_model(model: nn.Module, scope: str = "global", p: float = 0.5, q: float = 1.0):
    """PQ Index of the prunable weights of ``model`` per scope, over alive entries.

    Parameters
    ----------
    model : nn.Module
    scope : {"global", "layer", "neuron"}
        ``global``: one value for all prunable weights together; ``layer``: one per tensor;
        ``neuron``: one per output row (index 0 of the weight: an output channel of a conv, an
        output feature of a linear layer, a row of a CP factor).
    p, q : float
        Norm orders, ``0 < p < q``.

    Returns
    -------
    float, or dict of str to float, or dict of str to torch.Tensor (float64, shape (rows,))
        For ``global``, ``layer`` and ``neuron`` respectively; keys are qualified parameter names.
    """
    check_pq(p, q)
    params = prunable_parameters(model)
    if not params:
        raise ValueError("model has no prunable parameters (weights with more than one dimension)")
    if scope == "global":
        x = torch.cat([masked_weight(m, n).reshape(-1).to(torch.float64) for _, m, n in params])
        alive = torch.cat([alive_mask(m, n).reshape(-1) for _, m, n in params])
        return float(pq_index_rows(x[None], alive[None], p, q)[0])
    if scope == "layer":
        return {
            qn: float(pq_index_rows(masked_weight(m, n).reshape(1, -1), alive_mask(m, n).reshape(1, -1),
                                    p, q)[0])
            for qn, m, n in params
        }
    if scope == "neuron":
        out = {}
        for qn, m, n in params:
            w = masked_weight(m, n)
            rows = w.shape[0]
            out[qn] = pq_index_rows(w.reshape(rows, -1), alive_mask(m, n).reshape(rows, -1), p, q)
        return out
    raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
