"""Model files: weights, architecture, normalisation, masks and histories in one torch file.

``save(model, path, *, overwrite=False, extra=None)`` writes (atomically) a dict

- ``format``: ``"jamwave.surrogate/1"``;
- ``config``: the model's constructor arguments (``conv`` names the network,
  :func:`~surrogate.models.model_from_config`);
- ``state_dict``: weights and buffers, including the normalisation buffers and, for a model pruned
  with ``torch.nn.utils.prune``, the ``X_orig`` parameters and ``X_mask`` buffers;
- ``normalisation``: the training split's scales (also in the buffers), for readers without torch models;
- ``history``: ``model.history`` (the training history of :func:`surrogate.train.fit`);
- ``extra``: any JSON-like dict (e.g. the pruning history).

``load(path) -> Stepper`` rebuilds the model, re-applies the saved masks with
``torch.nn.utils.prune.custom_from_mask`` and loads the state; ``model.history`` and ``model.extra``
are set. The file is read with ``torch.load(weights_only=True)``: it holds only tensors and plain data.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.nn.utils import prune

from jamcommon.files import atomic_path
from surrogate.models import Stepper, model_from_config

FORMAT = "jamwave.surrogate/1"


def save(model: Stepper, path: str | os.PathLike, *, overwrite: bool = False,
         extra: dict | None = None) -> Path:
    """Save ``model`` to ``path`` (see the module docstring); returns the path."""
    if not isinstance(model, Stepper):
        raise ValueError(f"model must be a surrogate.models.Stepper (WaveSurrogate, UNetSurrogate, "
                         f"FNOSurrogate), got {type(model).__name__}")
    norm = model.normalisation
    payload = {
        "format": FORMAT,
        "config": dict(model.config),
        "state_dict": model.state_dict(),
        "normalisation": None if norm is None else norm.to_dict(),
        "history": model.history,
        "extra": dict(extra or getattr(model, "extra", None) or {}),
    }
    with atomic_path(path, overwrite=overwrite) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load(path: str | os.PathLike) -> Stepper:
    """Load a model saved by :func:`save`, masks included."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model file {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not our file"
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"model file {str(path)!r} is not a readable jamwave model ({reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"model file {str(path)!r} is not a {FORMAT!r} file")
    try:
        return _rebuild(payload)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        reason = f"lacks {exc}" if isinstance(exc, KeyError) else str(exc).strip().splitlines()[0]
        raise ValueError(f"model file {str(path)!r} is damaged: {reason}") from None


def _rebuild(payload: dict) -> Stepper:
    """The model described by a loaded payload (masks re-applied, state loaded)."""
    if not isinstance(payload["config"], dict) or not isinstance(payload["state_dict"], dict):
        raise ValueError("config and state_dict must be dicts")
    model = model_from_config(payload["config"])
    state = payload["state_dict"]
    modules = dict(model.named_modules())
    for key, mask in state.items():
        if not key.endswith("_mask"):
            continue
        module_name, _, param_name = key[: -len("_mask")].rpartition(".")
        module = modules.get(module_name)
        if module is None or f"{key[:-5]}_orig" not in state:
            continue
        prune.custom_from_mask(module, param_name, mask)
    model.load_state_dict(state)
    model.history = payload.get("history")
    model.extra = payload.get("extra") or {}
    model.eval()
    return model


def read_checkpoint(path: str | os.PathLike, keys=(), *, what: str = "checkpoint") -> dict:
    """A resume file written with ``torch.save`` (read with ``weights_only=True``), checked.

    Parameters
    ----------
    path : path-like
        The file.
    keys : iterable of str
        Entries the dict must hold.
    what : str
        Its name in the error message.

    Raises
    ------
    ValueError
        If the file cannot be read by torch or is not a dict holding ``keys``; the message names
        the file and says to delete it to start again.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not our file"
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"{what} {str(path)!r} is not readable ({reason}); delete it to start "
                         f"again") from None
    missing = [k for k in keys if not isinstance(state, dict) or k not in state]
    if not isinstance(state, dict) or missing:
        raise ValueError(f"{what} {str(path)!r} is damaged (missing {', '.join(missing) or 'its dict'}); "
                         f"delete it to start again")
    return state
