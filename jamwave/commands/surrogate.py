"""``jamwave surrogate ...``: CNN surrogates of wave datasets: training, evaluation, pruning."""

from __future__ import annotations

import json
from pathlib import Path

from jamwave.argtypes import bounded_int
from jamwave.commands import add_group, surrogate_pruning
from jamwave.commands.fit_arguments import add_fit_arguments, fit_options


def register(groups) -> None:
    """Add the ``surrogate`` group and its subcommands to ``groups``."""
    sub = add_group(groups, "surrogate", "CNN surrogates of wave datasets: training, evaluation, pruning.")
    _register_train(sub)
    _register_evaluate(sub)
    surrogate_pruning.register(sub)


def _register_train(sub) -> None:
    p = sub.add_parser(
        "train", help="Train a dense or CP-compressed CNN surrogate on a wave dataset.",
        description="Train a next-frame CNN surrogate (u^{n-1}, u^n, c) -> u^{n+1} with Adam, a plateau "
        "learning-rate schedule and early stopping on the validation rollout nRMSE. Checkpoints after "
        "every epoch to OUT.ckpt; rerunning the same command resumes there.")
    p.add_argument("--data", required=True, help="training split, a jamwave.wave2d/1 HDF5 file")
    p.add_argument("--val", required=True, help="validation split (rollout error for early stopping)")
    p.add_argument("--out", required=True, help="model file to write (.pt)")
    p.add_argument("--conv", choices=("dense", "cp", "cp-layer", "unet", "fno"), default="dense",
                   help="network: residual CNN with dense or CP k x k layers, or the peers unet (ours) and "
                   "fno (neuraloperator, extra 'bench') (default dense)")
    p.add_argument("--modes", type=bounded_int(1, 4096), default=16,
                   help="Fourier modes per axis of --conv fno (default 16)")
    p.add_argument("--forcing", choices=("auto", "yes", "no"), default="auto",
                   help="give the model the frame forcing /fields/f as an input channel; auto: when the "
                   "training file has it (Ricker datasets) (default auto)")
    p.add_argument("--rank", type=bounded_int(1, 4096), default=None,
                   help="CP rank: per output filter for cp, per layer for cp-layer (required for both)")
    p.add_argument("--width", type=bounded_int(1, 4096), default=32, help="hidden channels (default 32)")
    p.add_argument("--depth", type=bounded_int(0, 256), default=3,
                   help="residual blocks of two k x k convolutions (default 3)")
    p.add_argument("--kernel-size", type=bounded_int(1, 31), default=5, help="k, odd (default 5)")
    p.add_argument("--body", choices=("gelu", "gated"), default="gelu",
                   help="network body of dense/CP models: GELU residual blocks, or linear in the fields "
                        "and gated by the wave speed (default gelu)")
    p.add_argument("--boundary", choices=("zero", "dirichlet"), default="zero",
                   help="fields at the walls: zero padding, or continued oddly (Dirichlet walls)")
    p.add_argument("--reversible", action="store_true", help="the reversible (leapfrog) wrapper form")
    add_fit_arguments(p)
    p.add_argument("--seed", type=bounded_int(0, 2**63 - 1), default=0, help="random seed (default 0)")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    p.set_defaults(func=_train)


def _train(args) -> int:
    from surrogate.train import train_model

    model = train_model(args.data, args.val, args.out, conv=args.conv, rank=args.rank, width=args.width,
                        depth=args.depth, kernel_size=args.kernel_size, seed=args.seed,
                        overwrite=args.force, modes=args.modes,
                        forcing={"auto": None, "yes": True, "no": False}[args.forcing],
                        model_options={"body": args.body, "boundary": args.boundary,
                                       "reversible": args.reversible},
                        progress=True, epochs=args.epochs, **fit_options(args))
    history = model.history
    print(f"wrote {args.out}: best validation nRMSE {history['best_val_nrmse']:.4g} at epoch "
          f"{history['best_epoch'] + 1} of {len(history['epoch'])}")
    return 0


def _register_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="Roll a trained surrogate out on a dataset and score it.",
        description="Roll out from the two true first frames of every sample and score the predicted "
        "frames only: per-step relative L2, nRMSE, VRMSE, wavenumber-band errors, max error, energy "
        "drift; plus costs (parameters, bytes, multiply-adds per frame, training activation memory, "
        "median inference seconds per frame). Writes METRICS.json and a PNG.")
    p.add_argument("--model", required=True, help="model file written by `jamwave surrogate train`")
    p.add_argument("--data", required=True, help="test split, a jamwave.wave2d/1 HDF5 file")
    p.add_argument("--out", required=True, help="metrics JSON file to write")
    p.add_argument("--horizon", type=bounded_int(1, 100000), default=None,
                   help="frames to predict (default: all frames after the first two)")
    p.add_argument("--samples", type=bounded_int(1, 10**9), default=None,
                   help="use the first SAMPLES samples (default: all)")
    p.add_argument("--start", type=bounded_int(0, 100000), default=0,
                   help="roll out from the true frames START, START+1 (default 0; datasets with sources "
                   "that start from rest have near-zero first frames)")
    p.add_argument("--png", default=None, help="figure to write (default: OUT with suffix .png)")
    p.add_argument("--repeats", type=bounded_int(1, 10000), default=20,
                   help="timing repeats for the seconds per frame (default 20)")
    p.add_argument("--force", action="store_true", help="overwrite outputs that exist")
    p.set_defaults(func=_evaluate)


def _evaluate(args) -> int:
    from jamcommon.files import atomic_write_text, check_writable
    from surrogate.evaluate import evaluate
    from surrogate.io import load
    from surrogate.plots import plot_rollout

    png = Path(args.png) if args.png else Path(args.out).with_suffix(".png")
    check_writable(args.out, overwrite=args.force)
    check_writable(png, overwrite=args.force)
    model = load(args.model)
    metrics, result = evaluate(model, args.data, args.horizon, samples=args.samples,
                               timing_repeats=args.repeats, start=args.start)
    metrics = {"model": str(args.model), "data": str(args.data), "config": model.config, **metrics}
    atomic_write_text(args.out, json.dumps(metrics, indent=2), overwrite=args.force)
    plot_rollout(result, metrics, png, overwrite=args.force, title=f"{args.model} on {args.data}")
    per_frame = " ".join(f"{e:.3g}" for e in metrics["rel_l2_per_step"])
    print(f"relative L2 error per predicted frame (1..{metrics['horizon']}): {per_frame}")
    print(f"nRMSE {metrics['nrmse']:.4g}  VRMSE {metrics['vrmse']:.4g}  parameters {metrics['parameters']}  "
          f"{metrics['seconds_per_frame'] * 1e3:.3g} ms/frame; wrote {args.out} and {png}")
    return 0
