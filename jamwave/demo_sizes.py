"""The demo's problem sizes: one frozen preset per ``jamwave demo --size``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoSize:
    """Problem sizes of one demo preset.

    Attributes
    ----------
    delta : float
        Size ratio r_S / r_L of the packings.
    x_small : tuple of float
        Small-particle volume fractions X_S, one packing (granular material) each.
    n_particles : int
        Particles per packing.
    excess_phi : float
        The modulus is measured at phi_J + excess_phi.
    grid, n_frames, save_every : int
        Wave dataset: cells per side, stored frames, time steps between frames.
    samples : tuple of int
        Samples in the train, val and test splits.
    width, depth, rank : int
        Surrogate channels, residual blocks, CP rank.
    epochs : int
        Training epochs of the dense and CP surrogates.
    lr, noise : float
        Adam learning rate and the relative input noise of training (stabilises rollouts).
    prune_iterations, prune_epochs : int
        Pruning steps and training epochs per pruning iteration.
    horizon : int
        Rollout frames scored on the test split.
    """

    delta: float
    x_small: tuple
    n_particles: int
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
    prune_epochs: int
    horizon: int


SIZES = {
    # "tiny" is the smoke-test size of the end-to-end test (about a minute); its numbers are not
    # meant to be read.
    "tiny": DemoSize(delta=0.5, x_small=(0.3, 0.7), n_particles=96, excess_phi=1e-2,
                     grid=16, n_frames=12, save_every=2, samples=(6, 2, 2), width=6, depth=1,
                     rank=1, epochs=2, lr=2e-3, noise=0.02, prune_iterations=1, prune_epochs=1,
                     horizon=8),
    "small": DemoSize(delta=0.5, x_small=(0.2, 0.5, 0.8), n_particles=400, excess_phi=1e-2,
                      grid=32, n_frames=16, save_every=2, samples=(32, 6, 6), width=12, depth=2,
                      rank=2, epochs=16, lr=2e-3, noise=0.02, prune_iterations=2, prune_epochs=8,
                      horizon=10),
    "medium": DemoSize(delta=0.3, x_small=(0.1, 0.3, 0.6), n_particles=2000, excess_phi=1e-2,
                       grid=64, n_frames=40, save_every=2, samples=(200, 25, 25), width=24, depth=3,
                       rank=4, epochs=25, lr=2e-3, noise=0.02, prune_iterations=5, prune_epochs=10,
                       horizon=20),
    "large": DemoSize(delta=0.15, x_small=(0.1, 0.21, 0.4), n_particles=20000, excess_phi=1e-2,
                      grid=128, n_frames=100, save_every=2, samples=(1000, 100, 100), width=32,
                      depth=4, rank=4, epochs=60, lr=1e-3, noise=0.02, prune_iterations=10,
                      prune_epochs=30, horizon=40),
}
