"""Pruning methods for :mod:`torch.nn.utils.prune`: SAP, lottery ticket and one-shot.

Each method is a :class:`~torch.nn.utils.prune.BasePruningMethod` subclass with a functional form,
like torch's own ``L1Unstructured`` / ``l1_unstructured``: the mask lives in the buffer
``<name>_mask``, the trainable tensor in ``<name>_orig``, repeated pruning is combined by torch's
``PruningContainer``, and ``torch.nn.utils.prune.remove`` makes the pruning permanent.

Scopes. ``layer``: one tensor is one unit; ``neuron``: each output row (index 0) of a tensor is a
unit; ``global``: all prunable tensors of a model concatenated are one unit
(:func:`global_prune`, the analogue of ``torch.nn.utils.prune.global_unstructured``). Within a
unit a method decides a count ``c`` and prunes exactly the ``c`` alive entries of smallest
magnitude; ties are broken by flat index (the earlier entry is pruned first), so masks are
deterministic. The classes have ``PRUNING_TYPE = "global"``: torch hands them the whole tensor and
its current mask, which the row structure of the neuron scope needs.

Counts. SAP: ``min(floor(gamma (d - r)), floor(beta d))`` from the PQ Index (:mod:`.pqi`).
Lottery ticket and one-shot: ``floor(amount * d)`` of the ``d`` alive entries, computed in exact
rational arithmetic (``amount`` is read as the decimal it prints as, 0.2 is exactly 1/5), so a unit
of ``5^T k`` weights keeps exactly ``4^T k`` after ``T`` steps of 20 %. One-shot differs from the
lottery ticket only in its ranking: it uses fixed importance scores (the trained dense weights),
and because that ranking never changes, ``T`` steps of it give the same mask as pruning the dense
model once to the compound fraction.
"""

from __future__ import annotations

import functools
from fractions import Fraction

import torch
from torch import nn
from torch.nn.utils import prune

from .pqi import (
    SCOPES,
    alive_mask,
    check_pq,
    check_sap,
    masked_weight,
    pq_index_rows,
    prunable_parameters,
    sap_prune_counts,
)

__all__ = [
    "METHODS",
    "LotteryTicketPruning",
    "OneShotPruning",
    "SAPPruning",
    "ScopedMagnitudePruning",
    "global_prune",
    "lottery_ticket_unstructured",
    "make_permanent",
    "one_shot_unstructured",
    "prune_model",
    "remaining_weights",
    "sap_unstructured",
    "smallest_alive",
]


def smallest_alive(magnitude: torch.Tensor, alive: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Select, per row, the ``counts[i]`` alive entries of smallest magnitude.

    Parameters
    ----------
    magnitude : torch.Tensor, floating, shape (rows, n)
        Non-negative, finite on alive entries. Any floating dtype: the ranking of float32 values is
        the ranking of their exact float64 images, so no widening copy is made.
    alive : torch.Tensor of bool, shape (rows, n)
    counts : torch.Tensor of int64, shape (rows,)
        How many to select per row; ``0 <= counts[i] <= alive[i].sum()``.

    Returns
    -------
    torch.Tensor of bool, shape (rows, n)
        True on the selected entries. Ties are resolved by column index (a stable sort on
        ``(magnitude, index)``), so the result is deterministic.
    """
    n_alive = alive.sum(dim=1)
    if (counts < 0).any() or (counts > n_alive).any():
        raise ValueError("counts must lie between 0 and the number of alive entries of each row")
    key = torch.where(alive, magnitude, torch.full((), float("inf"), dtype=magnitude.dtype))
    # Dead entries are +inf, so the finite entries are exactly the alive ones unless a score is bad.
    if int(torch.isfinite(key).sum()) != int(n_alive.sum()):
        raise ValueError("importance scores must be finite on alive entries")
    # The counts[i]-th smallest key of each row is the threshold; everything below it goes, and of
    # the entries equal to it the first ones by index fill the count (O(n), no stable sort needed).
    k = counts.clamp(min=1)
    if key.shape[0] == 1:
        threshold = torch.kthvalue(key[0], int(k[0])).values.reshape(1)
    else:
        threshold = torch.sort(key, dim=1).values.gather(1, (k - 1)[:, None])[:, 0]
    below = key < threshold[:, None]
    ties = key == threshold[:, None]
    need = counts - below.sum(dim=1)
    if bool((ties.sum(dim=1) == need).all()):  # no tie to break (the common case)
        drop = below | ties
    else:
        drop = below | (ties & (torch.cumsum(ties, dim=1) <= need[:, None]))
    return drop & (counts > 0)[:, None]


def _exact_fraction(amount) -> Fraction:
    frac = amount if isinstance(amount, Fraction) else Fraction(repr(float(amount)))
    if not (0 <= frac <= 1):
        raise ValueError(f"amount must be a fraction of the alive weights in [0, 1], got {amount}")
    return frac


class ScopedMagnitudePruning(prune.BasePruningMethod):
    """Base class: prune, in each unit of a scope, a method-specific count of the smallest alive entries.

    Subclasses implement :meth:`prune_counts`. ``scope`` is ``"layer"`` (the tensor is one unit)
    or ``"neuron"`` (each row along dimension 0 is a unit); the global scope is
    :func:`global_prune` with a layer-scoped method on the concatenation.
    """

    PRUNING_TYPE = "global"

    def __init__(self, scope: str = "layer") -> None:
        if scope not in ("layer", "neuron"):
            raise ValueError(
                f"scope must be 'layer' or 'neuron' for one tensor (use global_prune for 'global'), "
                f"got {scope!r}"
            )
        self.scope = scope

    def prune_counts(self, x: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
        """Counts to prune per unit; ``x`` floating (units, n), ``alive`` bool, result int64 (units,)."""
        raise NotImplementedError

    def compute_mask(self, t: torch.Tensor, default_mask: torch.Tensor) -> torch.Tensor:
        """Return ``default_mask`` with the selected entries of each unit set to zero.

        Parameters
        ----------
        t : torch.Tensor
            Importance scores (the weights, or e.g. trained dense weights for one-shot).
        default_mask : torch.Tensor, same shape
            Mask of earlier pruning (ones if none); only its nonzero entries are candidates.
        """
        if t.shape != default_mask.shape:
            raise ValueError(
                f"scores and mask differ in shape: {tuple(t.shape)} vs {tuple(default_mask.shape)}")
        if self.scope == "neuron":
            if t.ndim < 2:
                raise ValueError(f"scope 'neuron' needs a tensor of at least 2 dimensions, got {t.ndim}")
            rows = t.shape[0]
        else:
            rows = 1
        x = t.detach().reshape(rows, -1).cpu()
        if not x.is_floating_point():
            x = x.to(torch.float64)
        alive = (default_mask.detach() != 0).reshape(rows, -1).cpu()
        counts = self.prune_counts(x, alive)
        drop = smallest_alive(x.abs(), alive, counts).reshape(default_mask.shape)
        mask = default_mask.clone(memory_format=torch.contiguous_format)
        mask[drop.to(mask.device)] = 0
        return mask


class SAPPruning(ScopedMagnitudePruning):
    """Sparsity-informed adaptive pruning (Diao et al. 2023): per unit, prune
    ``min(floor(gamma (d - r)), floor(beta d))`` alive entries, ``r`` from the PQ Index.

    Parameters
    ----------
    scope : {"layer", "neuron"}
    p, q : float
        PQ Index orders, ``0 < p < q`` (0.5, 1).
    eta_r : float
        ``>= 0`` (0).
    gamma : float
        ``> 0`` (1).
    beta : float
        In ``[0, 1]`` (0.9).
    """

    def __init__(self, scope: str = "layer", p: float = 0.5, q: float = 1.0, eta_r: float = 0.0,
                 gamma: float = 1.0, beta: float = 0.9) -> None:
        super().__init__(scope)
        self.p, self.q = check_pq(p, q)
        self.eta_r, self.gamma, self.beta = float(eta_r), float(gamma), float(beta)
        check_sap(self.eta_r, self.gamma, self.beta)

    def prune_counts(self, x: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
        index = pq_index_rows(x, alive, self.p, self.q)
        return sap_prune_counts(alive.sum(dim=1), index, self.p, self.q, self.eta_r, self.gamma, self.beta)

    @classmethod
    def apply(cls, module, name, scope="layer", p=0.5, q=1.0, eta_r=0.0, gamma=1.0, beta=0.9,
              importance_scores=None):  # type: ignore[override]
        return super().apply(module, name, scope=scope, p=p, q=q, eta_r=eta_r, gamma=gamma, beta=beta,
                             importance_scores=importance_scores)


class LotteryTicketPruning(ScopedMagnitudePruning):
    """Iterative magnitude pruning (Frankle & Carbin 2019): per unit, prune ``floor(amount d)`` of
    the ``d`` alive entries, in exact rational arithmetic.

    Parameters
    ----------
    amount : float or fractions.Fraction
        Fraction of the alive weights pruned per step, in ``[0, 1]`` (0.2).
    scope : {"layer", "neuron"}
    """

    def __init__(self, amount=0.2, scope: str = "layer") -> None:
        super().__init__(scope)
        self.amount = _exact_fraction(amount)

    def prune_counts(self, x: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
        d = alive.sum(dim=1)
        return (d * self.amount.numerator) // self.amount.denominator

    @classmethod
    def apply(cls, module, name, amount=0.2, scope="layer", importance_scores=None):  # type: ignore[override]
        return super().apply(module, name, amount=amount, scope=scope, importance_scores=importance_scores)


class OneShotPruning(LotteryTicketPruning):
    """One-shot magnitude pruning: the lottery-ticket counts, ranked by fixed importance scores.

    Give the trained dense weights as ``importance_scores`` at every step; the masks are nested
    and equal those of pruning the dense model once to the same remaining count.
    """


def _scores_or_weights(module: nn.Module, name: str, importance_scores):
    return masked_weight(module, name) if importance_scores is None else importance_scores


def sap_unstructured(module: nn.Module, name: str, scope: str = "layer", p: float = 0.5, q: float = 1.0,
                     eta_r: float = 0.0, gamma: float = 1.0, beta: float = 0.9, importance_scores=None):
    """Prune ``module.<name>`` with :class:`SAPPruning`; return ``module``.

    The PQ Index and the ranking use ``importance_scores`` if given, else the current
    (masked) weights.
    """
    SAPPruning.apply(module, name, scope=scope, p=p, q=q, eta_r=eta_r, gamma=gamma, beta=beta,
                     importance_scores=_scores_or_weights(module, name, importance_scores))
    return module


def lottery_ticket_unstructured(module: nn.Module, name: str, amount=0.2, scope: str = "layer",
                                importance_scores=None):
    """Prune ``floor(amount d)`` alive entries of ``module.<name>`` by magnitude; return ``module``."""
    LotteryTicketPruning.apply(module, name, amount=amount, scope=scope,
                               importance_scores=_scores_or_weights(module, name, importance_scores))
    return module


def one_shot_unstructured(module: nn.Module, name: str, importance_scores: torch.Tensor, amount=0.2,
                          scope: str = "layer"):
    """Prune ``floor(amount d)`` alive entries of ``module.<name>`` ranked by the fixed
    ``importance_scores`` (the trained dense weights); return ``module``."""
    if importance_scores is None:
        raise ValueError("importance_scores (the trained dense weights) are required for one-shot pruning")
    OneShotPruning.apply(module, name, amount=amount, scope=scope, importance_scores=importance_scores)
    return module


def global_prune(parameters, pruning_method: type[ScopedMagnitudePruning], importance_scores=None,
                 **kwargs) -> None:
    """Prune ``parameters`` together, as one unit, like ``prune.global_unstructured``.

    Parameters
    ----------
    parameters : iterable of (nn.Module, str)
    pruning_method : SAPPruning, LotteryTicketPruning or OneShotPruning
        Applied with scope ``"layer"`` to the concatenation of all the tensors (flattened in the
        given order); the resulting mask is installed on each tensor with
        ``prune.custom_from_mask``.
    importance_scores : dict of (nn.Module, str) to torch.Tensor, optional
        Scores replacing the current weights (required for one-shot).
    **kwargs
        Hyperparameters of ``pruning_method`` (no ``scope``).
    """
    parameters = list(parameters)
    if not parameters:
        raise ValueError("parameters is empty")
    if "scope" in kwargs:
        raise ValueError("global_prune treats all tensors as one unit; do not pass scope")
    importance_scores = importance_scores or {}
    if pruning_method is OneShotPruning and len(importance_scores) != len(parameters):
        raise ValueError("importance_scores (the trained dense weights) are required for one-shot pruning")
    pieces = [importance_scores.get((m, n), masked_weight(m, n)).detach().reshape(-1).cpu()
              for m, n in parameters]
    # One common dtype (float32 for a float32 model: the ranking is exact, no float64 copy is made).
    dtype = functools.reduce(torch.promote_types, (x.dtype for x in pieces))
    dtype = dtype if dtype.is_floating_point else torch.float64
    scores = torch.cat([x.to(dtype) for x in pieces])
    default = torch.cat([alive_mask(m, n).reshape(-1).cpu() for m, n in parameters])
    method = pruning_method(scope="layer", **kwargs)
    mask = method.compute_mask(scores, default)
    start = 0
    for m, n in parameters:
        ref = getattr(m, n + "_orig", None)
        ref = getattr(m, n) if ref is None else ref
        # A bool copy: CustomFromMask keeps its mask, which must not pin the concatenated one.
        piece = (mask[start:start + ref.numel()] != 0).reshape(ref.shape).to(ref.device)
        start += ref.numel()
        prune.custom_from_mask(m, n, piece)


METHODS = {"sap": SAPPruning, "lt": LotteryTicketPruning, "oneshot": OneShotPruning}


def prune_model(model: nn.Module, method: str = "sap", scope: str = "global", *, importance_scores=None,
                **hyper) -> dict[str, int]:
    """Prune every prunable tensor of ``model`` once with ``method`` in ``scope``.

    Parameters
    ----------
    model : nn.Module
    method : {"sap", "lt", "oneshot"}
    scope : {"global", "layer", "neuron"}
    importance_scores : dict of str to torch.Tensor, optional
        Keyed by qualified parameter name (see :func:`~surrogate.pruning.prunable_parameters`);
        required for ``oneshot``.
    **hyper
        ``p, q, eta_r, gamma, beta`` for SAP; ``amount`` for the others.

    Returns
    -------
    dict of str to int
        Entries pruned in this step, per tensor.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}, got {method!r}")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    params = prunable_parameters(model)
    if not params:
        raise ValueError("model has no prunable parameters (weights with more than one dimension)")
    cls = METHODS[method]
    scores = importance_scores or {}
    if method == "oneshot" and set(scores) != {qn for qn, _, _ in params}:
        raise ValueError(
            "oneshot needs importance_scores for every prunable tensor (the trained dense weights)")
    before = {qn: int(alive_mask(m, n).sum()) for qn, m, n in params}
    if scope == "global":
        global_prune([(m, n) for _, m, n in params], cls,
                     importance_scores={(m, n): scores[qn] for qn, m, n in params if qn in scores}, **hyper)
    else:
        for qn, m, n in params:
            cls.apply(m, n, scope=scope, importance_scores=scores.get(qn, masked_weight(m, n)), **hyper)
    return {qn: before[qn] - int(alive_mask(m, n).sum()) for qn, m, n in params}


def remaining_weights(model: nn.Module) -> dict[str, tuple[int, int]]:
    """``{qualified name: (alive, total)}`` for every prunable tensor of ``model``."""
    return {qn: (int(alive_mask(m, n).sum()), getattr(m, n + "_orig", getattr(m, n)).numel())
            for qn, m, n in prunable_parameters(model)}


def make_permanent(model: nn.Module) -> nn.Module:
    """``prune.remove`` on every pruned tensor: masks are folded into plain parameters."""
    for _, m, n in prunable_parameters(model):
        if hasattr(m, n + "_mask"):
            prune.remove(m, n)
    return model
