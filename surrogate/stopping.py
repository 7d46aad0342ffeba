"""Early stopping on a validation metric (lower is better), with patience and a relative threshold.

``EarlyStopping(patience=5, min_delta=0.0, min_epochs=0)``; call :meth:`EarlyStopping.update` once per
epoch with the metric. An epoch improves when ``metric < best * (1 - min_delta)``; training should stop
once ``patience`` consecutive epochs did not improve and at least ``min_epochs`` epochs ran
(:attr:`EarlyStopping.stop`): an autoregressive model's rollout error can rise for a few epochs early
in training before it falls, and stopping there would stop a model that has not started to converge.
A non-finite metric never improves. The state is plain numbers (:meth:`state` / :meth:`from_state`)
for checkpoints.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass
class EarlyStopping:
    """Patience counter on a metric to minimise.

    Attributes
    ----------
    patience : int
        Epochs without improvement before :attr:`stop` turns true (>= 1).
    min_delta : float
        Relative improvement an epoch must bring, in [0, 1).
    best : float
        Best metric so far (inf before the first update).
    best_epoch : int or None
        Epoch of ``best``.
    bad_epochs : int
        Consecutive epochs without improvement.
    min_epochs : int
        Epochs that run before :attr:`stop` may turn true (>= 0).
    seen : int
        Epochs recorded so far.
    """

    patience: int = 5
    min_delta: float = 0.0
    best: float = math.inf
    best_epoch: int | None = None
    bad_epochs: int = 0
    min_epochs: int = 0
    seen: int = 0

    def __post_init__(self):
        if int(self.patience) != self.patience or self.patience < 1:
            raise ValueError(f"patience must be an integer >= 1, got {self.patience}")
        if not 0 <= self.min_delta < 1:
            raise ValueError(f"min_delta must be in [0, 1), got {self.min_delta}")
        if int(self.min_epochs) != self.min_epochs or self.min_epochs < 0:
            raise ValueError(f"min_epochs must be an integer >= 0, got {self.min_epochs}")

    def update(self, epoch: int, metric: float) -> bool:
        """Record ``metric`` of ``epoch``; return True when it is a new best."""
        self.seen += 1
        improved = math.isfinite(metric) and (
            self.best_epoch is None or metric < self.best * (1.0 - self.min_delta))
        if improved:
            self.best, self.best_epoch, self.bad_epochs = float(metric), int(epoch), 0
        else:
            self.bad_epochs += 1
        return improved

    @property
    def stop(self) -> bool:
        """True once ``patience`` consecutive epochs brought no improvement (after ``min_epochs``)."""
        return self.bad_epochs >= self.patience and self.seen >= self.min_epochs

    def state(self) -> dict:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict) -> EarlyStopping:
        return cls(**state)
