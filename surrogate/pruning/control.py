"""The control for PQ Index trajectories: the same pruning counts applied to untrained Gaussian weights.

Pruning the smallest weights lowers the PQ Index of the survivors by itself: a Gaussian tensor cut
by magnitude keeps its tail, whose entries are more alike than the whole. A trajectory measured on
trained weights therefore says something about training only where it departs from the same
schedule applied to weights that were never trained.

:class:`GaussianControl` holds, for every prunable tensor of a model, i.i.d. Gaussian weights of the
same shape (standard deviation: that of the tensor's initial values, so the global scope compares
tensors at their initial relative scales; seeded) and its own alive mask. At each recorded iteration
:meth:`GaussianControl.record` prunes the control to the model's alive counts *per unit of the
run's scope* (all tensors together for ``global``, per tensor for ``layer``, per output row for
``neuron``), removing in each unit the smallest-magnitude alive Gaussian entries (ties by index), and
returns the PQ Index of the control in every scope (:func:`~surrogate.pruning.history.pqi_record`).
Masks only shrink, so the control's masks are nested like the model's. The control's ranking is
always the plain magnitude, whatever the run ranks by.
"""

from __future__ import annotations

import torch
from torch import nn

from .history import pqi_record
from .methods import smallest_alive
from .pqi import SCOPES, alive_mask, check_pq, masked_weight, prunable_parameters

__all__ = ["GaussianControl"]


class GaussianControl:
    """Untrained Gaussian twin of a model's prunable tensors, pruned to the model's counts.

    Parameters
    ----------
    initial : dict of str to torch.Tensor
        ``{qualified name: initial values}`` of every prunable tensor (the rewinding point); only
        shapes and standard deviations are read. :meth:`from_model` builds it from a model.
    scope : {"global", "layer", "neuron"}
        Unit within which counts are matched.
    seed : int
        Seed of the Gaussian draw.
    p, q : float
        PQ Index orders of the recorded values.
    """

    def __init__(self, initial: dict, scope: str, seed: int = 0, p: float = 0.5, q: float = 1.0):
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
        if not initial:
            raise ValueError("initial is empty: the model has no prunable parameters")
        self.scope, self.p, self.q = scope, *check_pq(p, q)
        gen = torch.Generator().manual_seed(int(seed))
        self.weights: dict[str, torch.Tensor] = {}
        self.alive: dict[str, torch.Tensor] = {}
        for qn, value in initial.items():
            w = value.detach().to("cpu", torch.float64)
            std = float(w.std()) if w.numel() > 1 else 0.0
            std = std if std > 0 else 1.0
            self.weights[qn] = torch.randn(w.shape, generator=gen, dtype=torch.float64) * std
            self.alive[qn] = torch.ones(w.shape, dtype=torch.bool)

    @classmethod
    def from_model(cls, model: nn.Module, scope: str, seed: int = 0, p: float = 0.5,
                   q: float = 1.0) -> GaussianControl:
        """The control of ``model`` at its current (initial) values."""
        return cls({qn: masked_weight(m, n) for qn, m, n in prunable_parameters(model)}, scope, seed, p, q)

    def _units(self, alive: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Alive counts per unit of the scope, one int64 tensor per block of :meth:`_blocks`."""
        if self.scope == "global":
            return [sum(a.sum() for a in alive.values()).reshape(1)]
        if self.scope == "layer":
            return [a.sum().reshape(1) for a in alive.values()]
        return [a.reshape(a.shape[0], -1).sum(dim=1) for a in alive.values()]

    def _blocks(self):
        """``(keys, (rows, n) weights, (rows, n) alive)`` per independent block of the scope."""
        if self.scope == "global":
            keys = list(self.weights)
            yield keys, torch.cat([self.weights[k].reshape(-1) for k in keys])[None], \
                torch.cat([self.alive[k].reshape(-1) for k in keys])[None]
            return
        for k, w in self.weights.items():
            rows = w.shape[0] if self.scope == "neuron" else 1
            yield [k], w.reshape(rows, -1), self.alive[k].reshape(rows, -1)

    def match(self, model: nn.Module) -> None:
        """Prune the control so each unit of the scope has as many alive entries as in ``model``."""
        params = prunable_parameters(model)
        target = {qn: alive_mask(m, n).cpu() for qn, m, n in params}
        if set(target) != set(self.weights) or any(target[k].shape != w.shape
                                                   for k, w in self.weights.items()):
            raise ValueError("the model's prunable tensors do not match the control's")
        for (keys, w, alive), want in zip(self._blocks(), self._units(target), strict=True):
            counts = alive.sum(dim=1) - want
            if (counts < 0).any():
                raise ValueError("the model has more alive weights than the control: masks must only shrink")
            drop = smallest_alive(w.abs(), alive, counts)
            new_alive = (alive & ~drop).reshape(-1)
            start = 0
            for k in keys:
                size = self.alive[k].numel()
                self.alive[k] = new_alive[start:start + size].reshape(self.alive[k].shape).clone()
                start += size

    def record(self, model: nn.Module) -> dict:
        """:meth:`match` ``model``, then the control's PQ Index in every scope and its alive total."""
        self.match(model)
        masked = {k: w * self.alive[k] for k, w in self.weights.items()}
        out = pqi_record(masked, self.alive, self.p, self.q)
        out["remaining_total"] = int(sum(int(a.sum()) for a in self.alive.values()))
        return out

    def state_dict(self) -> dict:
        """Everything needed to resume: scope, orders, weights and masks (tensors, for ``torch.save``)."""
        return {"scope": self.scope, "p": self.p, "q": self.q,
                "weights": dict(self.weights), "alive": dict(self.alive)}

    @classmethod
    def from_state(cls, state: dict) -> GaussianControl:
        """Rebuild a control from :meth:`state_dict`."""
        self = cls.__new__(cls)
        self.scope, self.p, self.q = state["scope"], float(state["p"]), float(state["q"])
        self.weights = {k: v.clone() for k, v in state["weights"].items()}
        self.alive = {k: v.clone().to(torch.bool) for k, v in state["alive"].items()}
        return self
