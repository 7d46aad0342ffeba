"""The demo's problem sizes: one frozen preset per ``jamwave demo --size``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sweep:
    """One small jamming-diagram sweep: a packing per X_S at one size ratio, one seed each.

    Attributes
    ----------
    delta : float
        Size ratio r_S / r_L in (0, 1].
    x_small : tuple of float
        Volume fractions of small particles X_S, in [0, 1).
    n, n_large : int or None
        Particles per packing, or large particles per packing (exactly one is set): at strong size
        asymmetry a fixed ``n_large`` keeps the box size (and the skeleton) the same across X_S.
    """

    delta: float
    x_small: tuple
    n: int | None = None
    n_large: int | None = None

    def __post_init__(self):
        if (self.n is None) == (self.n_large is None):
            raise ValueError("Sweep: give exactly one of n and n_large")

    @property
    def size_text(self) -> str:
        """``N = 400`` or ``N_L = 16``."""
        return f"N = {self.n}" if self.n is not None else f"N_L = {self.n_large}"

    @property
    def size_option(self) -> str:
        """The matching ``jamwave granular diagram`` option, e.g. ``--n 400``."""
        return f"--n {self.n}" if self.n is not None else f"--n-large {self.n_large}"


def equal_numbers_x_small(delta: float) -> float:
    """X_S of a mixture with as many small as large particles: delta^3 / (1 + delta^3)."""
    return delta**3 / (1.0 + delta**3)


# O'Hern et al. (2003): 50:50 by number, diameter ratio 1.4, phi_J ~ 0.648 in 3D.
OHERN_DELTA = 1.0 / 1.4
OHERN_X_SMALL = round(equal_numbers_x_small(OHERN_DELTA), 6)


@dataclass(frozen=True)
class DemoSize:
    """Problem sizes of one demo preset.

    Attributes
    ----------
    media : Sweep
        The packings that become the granular layers of the wave datasets (moderate size ratio).
    asymmetric : Sweep
        Strong size asymmetry (delta 0.15 from ``small`` up) at X_S on both sides of X*_S: first and
        second transitions and the bulk modulus on each.
    reference : Sweep or None
        O'Hern et al.'s mixture (50:50 by number, diameter ratio 1.4), whose phi_J is published.
    excess_phi : float
        The modulus is measured at phi_J + excess_phi.
    follow_step, follow_range : float
        Each point is followed from phi_J in steps of ``follow_step`` up to phi_J + ``follow_range``
        (stopping once the second transition is crossed).
    jamming_method : str
        :func:`granular.jamming.find_jamming` method of every sweep (the fastest one available).
    grid, n_frames, save_every : int
        Wave dataset: cells per side, stored frames, time steps between frames (the stride: one
        surrogate step replaces ``save_every`` solver steps).
    source : str
        Wave sources: ``"pulse"`` (Gaussian initial pulses) or ``"ricker"`` (Ricker point sources;
        the datasets then hold the frame forcing and the surrogates take it as an input channel).
    start : int
        Rollouts start from the true frames ``start`` and ``start + 1`` (Ricker sources start from
        rest: the first frames are near zero); ``n_frames >= start + 2 + horizon``.
    samples : tuple of int
        Samples in the train, val and test splits.
    width, depth, rank : int
        Surrogate channels, residual blocks, CP rank.
    epochs : int
        Most training epochs of the dense and CP surrogates (also of each pruning iteration: pruning
        continues from the CP surrogate with the same training).
    patience, min_epochs : int
        Early stopping on the validation rollout error: stop after ``patience`` epochs without
        improvement, never before ``min_epochs``.
    body, boundary, reversible : str, str, bool
        Surrogate network and wrapper (:func:`surrogate.models.build_model`): ``"gated"`` (linear in
        the fields, gated by the wave speed) or ``"gelu"``; ``"dirichlet"`` (fields continued oddly
        across the walls) or ``"zero"`` padding; the reversible (leapfrog) form. The surrogate
        study (benchmarks/RESULTS.md, issue 18) found gated, Dirichlet, reversible stable at strides
        of 4-8 solver steps where the GELU network's rollouts diverge.
    schedule : str
        Learning-rate schedule of training (``"plateau"`` or ``"cosine"``, :func:`surrogate.train.fit`).
    lr, noise : float
        Adam learning rate and the relative input noise of training (stabilises rollouts).
    prune_magnitude : str
        Ranking of the pruning steps (and SAP's PQ Index): ``"plain"`` weights or ``"cp-aware"``
        kernel-contribution magnitudes (:mod:`surrogate.pruning.scores`; the same as plain for
        dense tensors, and the meaningful one for a global ranking across CP factors, whose scale
        is arbitrary).
    prune_models : tuple of str
        The stage-4 surrogates to prune (``"dense"``, ``"cp"``).
    prune_scope : str
        Scope of the PQ Index and of the pruning steps (``global``, ``layer`` or ``neuron``).
    prune_iterations : int
        Most pruning steps per method; pruning stops earlier once the validation error passes
        ``prune_tolerance`` x the unpruned model's.
    prune_tolerance : float
        The accuracy limit, relative to the unpruned model's validation nRMSE (the pruning study's
        1.1).
    prune_patience : int
        Pruning stops after this many iterations in a row past the accuracy limit (a retrained
        model's error scatters: one bad retraining does not end the run).
    horizon : int
        Rollout frames scored on the validation and test splits.
    """

    media: Sweep
    asymmetric: Sweep
    reference: Sweep | None
    excess_phi: float
    grid: int
    n_frames: int
    save_every: int
    samples: tuple
    width: int
    depth: int
    rank: int
    epochs: int
    lr: float
    noise: float
    prune_iterations: int
    prune_tolerance: float
    horizon: int
    prune_scope: str = "global"
    prune_models: tuple = ("cp",)
    prune_magnitude: str = "cp-aware"
    prune_patience: int = 2
    jamming_method: str = "bisection"
    follow_step: float = 0.02
    follow_range: float = 0.25
    source: str = "pulse"
    start: int = 0
    patience: int = 5
    min_epochs: int = 0
    body: str = "gelu"
    boundary: str = "zero"
    reversible: bool = False
    schedule: str = "plateau"

    def __post_init__(self):
        if self.n_frames < self.start + 2 + self.horizon:
            raise ValueError(f"n_frames must be >= start + 2 + horizon = {self.start + 2 + self.horizon}, "
                             f"got {self.n_frames}")

    @property
    def fit_options(self) -> dict:
        """Keyword arguments of :func:`surrogate.train.fit`: the training of stage 4, which pruning
        repeats after each pruning step."""
        return {"epochs": self.epochs, "lr": self.lr, "noise": self.noise, "patience": self.patience,
                "min_epochs": self.min_epochs, "val_start": self.start, "schedule": self.schedule}

    @property
    def model_options(self) -> dict:
        """Keyword arguments of :func:`surrogate.models.build_model` beyond the sizes."""
        return {"body": self.body, "boundary": self.boundary, "reversible": self.reversible}


SIZES = {
    # "tiny", "medium" and "large" use the surrogate study's stable configuration (gated, Dirichlet,
    # reversible, cosine schedule, Ricker sources, strides 4-8); "small" keeps the Gaussian pulses at
    # a stride of 2 with the GELU network until its pruning stage fits the 10-minute budget with the
    # longer training the stable configuration needs (benchmarks/RESULTS.md, issue 18: 90 epochs).
    # "tiny" is the smoke-test size of the end-to-end test (about a minute); its numbers are not
    # meant to be read.
    "tiny": DemoSize(media=Sweep(0.5, (0.3, 0.7), n=96), asymmetric=Sweep(0.3, (0.1, 0.4), n_large=20),
                     reference=Sweep(OHERN_DELTA, (OHERN_X_SMALL,), n=96), excess_phi=1e-2, grid=16,
                     n_frames=12, save_every=4, samples=(6, 2, 2), width=6, depth=1, rank=1, epochs=2,
                     lr=2e-3, noise=0.05, prune_iterations=2, prune_tolerance=1.1, horizon=8,
                     source="ricker", start=2, body="gated", boundary="dirichlet", reversible=True,
                     schedule="cosine"),
    "small": DemoSize(media=Sweep(0.5, (0.2, 0.5, 0.8), n=400),
                      asymmetric=Sweep(0.15, (0.1, 0.2, 0.3), n_large=16),
                      reference=Sweep(OHERN_DELTA, (OHERN_X_SMALL,), n=400), excess_phi=1e-2,
                      grid=32, n_frames=16, save_every=2, samples=(32, 6, 6), width=12, depth=2,
                      rank=2, epochs=16, lr=2e-3, noise=0.02, prune_iterations=20,
                      prune_tolerance=1.1, horizon=10),
    "medium": DemoSize(media=Sweep(0.5, (0.2, 0.5, 0.8), n=2000),
                       asymmetric=Sweep(0.15, (0.1, 0.15, 0.2, 0.25, 0.3), n_large=40),
                       reference=Sweep(OHERN_DELTA, (OHERN_X_SMALL,), n=2000), excess_phi=1e-2,
                       grid=64, n_frames=32, save_every=8, samples=(200, 25, 25), width=24, depth=3,
                       rank=4, epochs=40, lr=2e-3, noise=0.05, prune_iterations=30,
                       prune_tolerance=1.1, horizon=22, source="ricker", start=8, patience=6,
                       min_epochs=12, body="gated", boundary="dirichlet", reversible=True, schedule="cosine"),
    "large": DemoSize(media=Sweep(0.5, (0.2, 0.5, 0.8), n=8000),
                      asymmetric=Sweep(0.15, (0.05, 0.1, 0.15, 0.18, 0.21, 0.24, 0.3, 0.4), n_large=200),
                      reference=Sweep(OHERN_DELTA, (OHERN_X_SMALL,), n=8000), excess_phi=1e-2,
                      grid=128, n_frames=42, save_every=8, samples=(1000, 100, 100), width=32,
                      depth=4, rank=4, epochs=200, lr=1e-3, noise=0.05, prune_iterations=30,
                      prune_tolerance=1.1, horizon=32, source="ricker", start=8, patience=15,
                      min_epochs=30, body="gated", boundary="dirichlet", reversible=True, schedule="cosine"),
}
