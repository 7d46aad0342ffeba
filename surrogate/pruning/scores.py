"""Importance scores for magnitude ranking: plain ``|w|`` or CP-aware (kernel-contribution) magnitude.

A CP layer (:mod:`surrogate.layers`) stores each rank-one term ``u_1 (x) u_2 (x) ... (x) u_K`` of
its kernel as separate factor vectors. The term is unchanged when one factor is multiplied by ``s``
and another by ``1/s``, so the plain magnitude of a factor entry is arbitrary: a global or layer
ranking of raw factors compares numbers whose scale training never fixed.

**CP-aware magnitude** (``magnitude="cp-aware"``). The score of entry ``i`` of factor ``k`` of term
``r`` is::

    s(u_k[r, i]) = |u_k[r, i]| * prod_{j != k} ||u_j[r]||_2        (norms over alive entries)

which is exactly the Frobenius norm of the change of the layer's effective (dense) kernel when that
one entry is pruned: zeroing ``u_k[r, i]`` removes ``u_k[r, i] e_i (x) (other factors)`` from term
``r`` and nothing else. It is invariant under any rescaling of the factors of a term that leaves the
term unchanged, and for an ordinary weight ``w`` the same definition gives ``|w|``; so the scores of
CP factors and of dense tensors (the 1 x 1 projection, say) are in the same units (kernel entries)
and a global ranking over all of them is meaningful. This was preferred to normalising each factor
per term before ranking: normalised factors are scale-free but still incomparable across factors
(channel vs. spatial vectors of different lengths) and against dense tensors, and they lose the
term's weight in the kernel. A term whose factor is entirely pruned contributes nothing: all its
other entries score 0 and go first.

SAP computes its PQ Index from the same scores when this option is on (``sap_unstructured`` takes
the index and the ranking from ``importance_scores``), so its counts are invariant too.
"""

from __future__ import annotations

import torch
from torch import nn

from .pqi import masked_weight, prunable_parameters

__all__ = ["MAGNITUDES", "check_magnitude", "cp_aware_scores", "cp_factor_layout", "importance_scores"]

MAGNITUDES = ("plain", "cp-aware")


def check_magnitude(magnitude: str) -> str:
    """Return ``magnitude`` after checking it is one of :data:`MAGNITUDES`."""
    if magnitude not in MAGNITUDES:
        raise ValueError(f"magnitude must be one of {MAGNITUDES}, got {magnitude!r}")
    return magnitude


def cp_factor_layout(module: nn.Module) -> dict[str, bool] | None:
    """The CP factors of ``module`` and whether each is stored transposed, or None for a non-CP module.

    Returns
    -------
    dict of str to bool, or None
        ``{parameter name: transposed}``. Factor ``name`` reshaped to 2-d is ``(terms, n)``
        (``transposed`` False) or ``(n, terms)`` (True: the output factor of a layer-level CP).
    """
    from surrogate.layers import CPConv1d, CPConv2d, LayerCPConv2d

    if isinstance(module, CPConv2d):
        return {"channel": False, "vertical": False, "horizontal": False}
    if isinstance(module, LayerCPConv2d):
        return {"channel": False, "vertical": False, "horizontal": False, "output": True}
    if isinstance(module, CPConv1d):
        return {"channel": False, "taps": False}
    return None


def _cp_module_scores(module: nn.Module, layout: dict[str, bool]) -> dict[str, torch.Tensor]:
    """Kernel-contribution scores of every factor of one CP module, float64, in the factors' shapes."""
    rows = {}
    for name, transposed in layout.items():
        w = masked_weight(module, name).to(torch.float64)
        rows[name] = w.reshape(w.shape[0], -1).T if transposed else w.reshape(w.shape[0], -1)
    norms = {name: torch.linalg.vector_norm(u, dim=1) for name, u in rows.items()}
    out = {}
    for name, u in rows.items():
        others = torch.ones_like(norms[name])
        for other, norm in norms.items():
            if other != name:
                others = others * norm
        score = u.abs() * others[:, None]
        shape = getattr(module, name + "_orig", getattr(module, name)).shape
        out[name] = (score.T if layout[name] else score).reshape(shape)
    return out


def cp_aware_scores(model: nn.Module) -> dict[str, torch.Tensor]:
    """CP-aware magnitude of every prunable tensor of ``model`` (see the module docstring).

    Returns
    -------
    dict of str to torch.Tensor
        ``{qualified name: scores}``, float64, each of its tensor's shape; non-CP tensors get
        ``|w|`` of their masked weights (pruned entries score 0 either way).
    """
    by_module: dict[int, dict[str, torch.Tensor]] = {}
    out = {}
    for qn, module, name in prunable_parameters(model):
        layout = cp_factor_layout(module)
        if layout is None or name not in layout:
            out[qn] = masked_weight(module, name).to(torch.float64).abs()
            continue
        if id(module) not in by_module:
            by_module[id(module)] = _cp_module_scores(module, layout)
        out[qn] = by_module[id(module)][name]
    return out


def importance_scores(model: nn.Module, magnitude: str = "plain") -> dict[str, torch.Tensor]:
    """Scores of every prunable tensor: the masked weights (``plain``) or :func:`cp_aware_scores`.

    The ``plain`` scores are clones of the weights (magnitude is taken by the pruning methods), so
    they can be kept as one-shot's fixed ranking while the model trains on.
    """
    if check_magnitude(magnitude) == "plain":
        return {qn: masked_weight(m, n).clone() for qn, m, n in prunable_parameters(model)}
    return cp_aware_scores(model)
