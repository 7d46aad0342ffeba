"""Training options shared by ``jamwave surrogate train`` and ``jamwave surrogate prune``."""

from __future__ import annotations

from jamwave.argtypes import bounded_float, bounded_int


def add_fit_arguments(p, *, epochs_help: str = "maximum epochs (default 20)") -> None:
    """Add the options of :func:`surrogate.train.fit` to parser ``p``."""
    p.add_argument("--epochs", type=bounded_int(1, 100000), default=20, help=epochs_help)
    p.add_argument("--lr", type=bounded_float(0, 1, lo_open=True), default=1e-3,
                   help="initial Adam learning rate (default 1e-3)")
    p.add_argument("--batch-size", type=bounded_int(1, 65536), default=16,
                   help="windows per step (default 16)")
    p.add_argument("--patience", type=bounded_int(1, 100000), default=5,
                   help="epochs without validation improvement before stopping (default 5)")
    p.add_argument("--val-horizon", type=bounded_int(1, 100000), default=None,
                   help="frames rolled out for the validation nRMSE (default: all)")
    p.add_argument("--unroll", type=bounded_int(1, 1000), default=1,
                   help="autoregressive steps per training window, backpropagated through (default 1)")
    p.add_argument("--noise", type=bounded_float(0, 10), default=0.0,
                   help="input noise in units of the RMS of u (default 0)")
    p.add_argument("--schedule", choices=("plateau", "cosine"), default="plateau",
                   help="learning-rate schedule: halve on a validation plateau, or cosine decay over "
                        "the epochs (default plateau)")


def fit_options(args) -> dict:
    """The keyword arguments of :func:`surrogate.train.fit` (except ``epochs``) from ``args``."""
    return {"lr": args.lr, "batch_size": args.batch_size, "patience": args.patience,
            "val_horizon": args.val_horizon, "unroll": args.unroll, "noise": args.noise,
            "schedule": args.schedule}
