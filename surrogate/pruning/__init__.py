"""PQ Index and SAP pruning (Diao et al., ICLR 2023), with lottery-ticket and one-shot baselines.

The reference implementation used by :mod:`surrogate`: :mod:`.pqi` (the index and SAP's count),
:mod:`.methods` (``torch.nn.utils.prune`` methods in the scopes global, layer, neuron),
:mod:`.schedule` (train, measure, prune, rewind, repeat; checkpointed), :mod:`.scores` (plain or
CP-aware magnitude), :mod:`.control` (the same counts on untrained Gaussian weights) and :mod:`.plots`.
"""

from .control import GaussianControl
from .history import (
    HISTORY_FORMAT,
    history_entry,
    load_history,
    pqi_record,
    pqi_trend,
    scope_pqi,
    summarise_history,
)
from .methods import (
    METHODS,
    LotteryTicketPruning,
    OneShotPruning,
    SAPPruning,
    ScopedMagnitudePruning,
    global_prune,
    lottery_ticket_unstructured,
    make_permanent,
    one_shot_unstructured,
    prune_model,
    remaining_weights,
    sap_unstructured,
    smallest_alive,
)
from .plots import plot_histories
from .pqi import (
    SCOPES,
    alive_mask,
    masked_weight,
    pq_index,
    pq_index_model,
    pq_index_rows,
    prunable_parameters,
    robust_floor,
    sap_prune_count,
    sap_prune_counts,
    sap_retained_bound,
)
from .schedule import prune_iteratively, rewind
from .scores import MAGNITUDES, cp_aware_scores, importance_scores

__all__ = [
    "HISTORY_FORMAT",
    "MAGNITUDES",
    "METHODS",
    "SCOPES",
    "LotteryTicketPruning",
    "OneShotPruning",
    "SAPPruning",
    "ScopedMagnitudePruning",
    "GaussianControl",
    "alive_mask",
    "cp_aware_scores",
    "global_prune",
    "history_entry",
    "importance_scores",
    "load_history",
    "lottery_ticket_unstructured",
    "make_permanent",
    "masked_weight",
    "one_shot_unstructured",
    "plot_histories",
    "pq_index",
    "pq_index_model",
    "pq_index_rows",
    "pqi_record",
    "pqi_trend",
    "prunable_parameters",
    "prune_iteratively",
    "prune_model",
    "remaining_weights",
    "rewind",
    "robust_floor",
    "scope_pqi",
    "sap_prune_count",
    "sap_prune_counts",
    "sap_retained_bound",
    "sap_unstructured",
    "smallest_alive",
    "summarise_history",
]
