"""surrogate: CNN surrogates of 2D wave datasets with a priori compressed (CP) convolutions.

Reads ``jamwave.wave2d/1`` HDF5 files by schema (never imports ``wavefe`` or ``granular``).

API tour
--------
>>> import surrogate                                                      # doctest: +SKIP
>>> model = surrogate.build_model(conv="cp", rank=2, width=32, depth=3, kernel_size=5, seed=0)
>>> history = surrogate.fit(model, "train.h5", "val.h5", epochs=20, seed=0)
>>> surrogate.save(model, "cp2.pt"); model = surrogate.load("cp2.pt")
>>> metrics, result = surrogate.evaluate(model, "test.h5", horizon=20)   # nrmse, vrmse, bands, costs
>>> surrogate.train_model("train.h5", "val.h5", "dense.pt", conv="dense", epochs=20)  # build, fit, save

Modules: :mod:`surrogate.data` (datasets, normalisation), :mod:`surrogate.layers` (``CPConv2d``,
``LayerCPConv2d``, ``CPConv1d``), :mod:`surrogate.models` (``WaveSurrogate``, the peers
``UNetSurrogate`` and ``FNOSurrogate``, ``build_model``; a dataset with point sources gives the
models its frame forcing as an input),
:mod:`surrogate.stopping` (``EarlyStopping``),
:mod:`surrogate.train` (``fit``, ``train_model``), :mod:`surrogate.evaluate` (``rollout``,
``rollout_metrics``, ``evaluate``), :mod:`surrogate.costs`, :mod:`surrogate.io` (``save``, ``load``),
:mod:`surrogate.plots`, and :mod:`surrogate.pruning` (PQ Index, SAP and baselines; its names
``pq_index``, ``sap_prune_count``, ``prune_iteratively``, the pruning classes and their functional
forms are reachable here too).
"""

from __future__ import annotations

from surrogate.data import (
    Normalisation,
    Trajectories,
    WaveWindows,
    as_trajectories,
    load_trajectories,
    read_info,
)
from surrogate.evaluate import Rollout, evaluate, rollout, rollout_metrics
from surrogate.io import load, save
from surrogate.layers import CPConv1d, CPConv2d, LayerCPConv2d
from surrogate.models import FNOSurrogate, Stepper, UNetSurrogate, WaveSurrogate, build_model
from surrogate.train import fit, train_model

_PRUNING_NAMES = (
    "pq_index", "pq_index_model", "sap_prune_count", "prune_iteratively", "SAPPruning",
    "LotteryTicketPruning", "OneShotPruning", "prune_model", "global_prune", "sap_unstructured",
    "lottery_ticket_unstructured", "one_shot_unstructured", "make_permanent", "remaining_weights",
    "prunable_parameters", "load_history", "summarise_history", "plot_histories",
)

__all__ = [
    "CPConv1d", "CPConv2d", "FNOSurrogate", "LayerCPConv2d", "Normalisation", "Rollout", "Stepper",
    "Trajectories", "UNetSurrogate", "WaveSurrogate", "WaveWindows", "as_trajectories", "build_model",
    "evaluate", "fit", "load", "load_trajectories", "read_info", "rollout", "rollout_metrics", "save",
    "train_model", *_PRUNING_NAMES,
]


def __getattr__(name: str):
    # Pruning lives in its own module (loaded on first use, so importing surrogate stays light).
    if name in _PRUNING_NAMES:
        from surrogate import pruning

        return getattr(pruning, name)
    raise AttributeError(f"module 'surrogate' has no attribute {name!r}")
