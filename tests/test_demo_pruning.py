"""The demo's pruning stop rule on synthetic histories (no training)."""

from __future__ import annotations

import math

from jamwave.demo_pruning import _finished, _reached_limit


def _history(errors, fractions=None, complete=True):
    fractions = fractions or [0.8**i for i in range(len(errors))]
    return {"complete": complete, "entries": [{"val_nrmse": e, "remaining_fraction": f}
                                              for e, f in zip(errors, fractions)]}


def test_one_retraining_past_the_limit_does_not_end_the_run():
    once = _history([1.0, 1.05, 1.2])
    assert not _finished(once, 30, 1.1, patience=2) and _finished(once, 30, 1.1, patience=1)
    recovered = _history([1.0, 1.2, 1.05])
    assert not _finished(recovered, 30, 1.1, patience=2)
    assert _finished(_history([1.0, 1.05, 1.2, math.nan]), 30, 1.1, patience=2)  # NaN counts as past


def test_the_run_ends_at_the_iteration_cap_when_stalled_or_incomplete_never():
    assert _finished(_history([1.0, 1.0, 1.0]), 2, 1.1, patience=2)
    assert _finished(_history([1.0, 1.0, 1.0], [1.0, 0.9, 0.9]), 30, 1.1, patience=2)
    assert not _finished(_history([1.0, 2.0, 2.0], complete=False), 30, 1.1, patience=2)
    assert not _finished(_history([1.0]), 30, 1.1, patience=2)


def test_limit_reached_only_when_a_model_pruned_further_breaks_it():
    assert _reached_limit(_history([1.0, 1.05, 1.2]), 1.1)
    assert not _reached_limit(_history([1.0, 1.05, 1.08]), 1.1)  # stopped inside the limit
    assert not _reached_limit(_history([1.0, 1.2, 1.05]), 1.1)  # the smallest fraction is inside
