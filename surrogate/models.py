"""The CNN surrogate: a 'same'-resolution residual stack whose convolution type is an argument.

``build_model(conv="dense" | "cp" | "cp-layer", rank=R, width=32, depth=3, kernel_size=5)`` returns a
:class:`WaveSurrogate`. The architecture is the same for every ``conv``; only the k x k convolutions
change type (the final 1 x 1 projection is dense in all variants):

    x = (u^{n-1}/u_s, u^n/u_s, (c - c_mean)/c_s)          3 channels
    h = lift(x)                                            k x k conv, 3 -> width
    h = h + conv_b(gelu(conv_a(gelu(h))))                  ``depth`` residual blocks, k x k convs
    u^{n+1} = 2 u^n - u^{n-1} + du_s * proj(gelu(h))       1 x 1 conv, width -> 1

so the network learns the correction to the leapfrog extrapolation. The scales ``u_s, c_mean, c_s,
du_s`` (:class:`surrogate.data.Normalisation`) are buffers of the model, set from the training split
by :func:`surrogate.train.fit` (or :meth:`WaveSurrogate.set_normalisation`) and saved with it.
``forward`` takes and returns physical units: ``x`` (N, 3, ny, nx) -> ``u^{n+1}`` (N, 1, ny, nx).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from surrogate.data import Normalisation
from surrogate.layers import CONV_TYPES, make_conv2d


class ResidualBlock(nn.Module):
    """``h + conv_b(gelu(conv_a(gelu(h))))`` with two k x k convolutions of the chosen type."""

    def __init__(self, conv: str, width: int, kernel_size: int, rank: int | None):
        super().__init__()
        self.conv_a = make_conv2d(conv, width, width, kernel_size, rank)
        self.conv_b = make_conv2d(conv, width, width, kernel_size, rank)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.conv_b(F.gelu(self.conv_a(F.gelu(h))))


class WaveSurrogate(nn.Module):
    """Next-frame predictor ``(u^{n-1}, u^n, c) -> u^{n+1}`` (see module docstring).

    Parameters
    ----------
    conv : {"dense", "cp", "cp-layer"}
        Type of every k x k convolution.
    rank : int or None
        CP rank (per filter for ``"cp"``, per layer for ``"cp-layer"``); ignored for ``"dense"``.
    width : int
        Channels of the hidden state.
    depth : int
        Residual blocks (two k x k convolutions each).
    kernel_size : int
        k (odd).

    Attributes
    ----------
    config : dict
        The constructor arguments, saved in model files.
    history : dict or None
        The training history of the last :func:`surrogate.train.fit` (set by fit and by load).
    extra : dict
        Free-form JSON-like data saved with the model (e.g. a pruning history).
    """

    def __init__(self, conv: str = "dense", rank: int | None = None, width: int = 32, depth: int = 3,
                 kernel_size: int = 5):
        super().__init__()
        if conv not in CONV_TYPES:
            raise ValueError(f"conv must be one of {CONV_TYPES}, got {conv!r}")
        if conv != "dense" and (rank is None or int(rank) != rank or rank < 1):
            raise ValueError(f"rank must be an integer >= 1 for conv={conv!r}, got {rank}")
        if int(width) != width or width < 1:
            raise ValueError(f"width must be an integer >= 1, got {width}")
        if int(depth) != depth or depth < 0:
            raise ValueError(f"depth must be an integer >= 0, got {depth}")
        if int(kernel_size) != kernel_size or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be an odd integer >= 1, got {kernel_size}")
        rank = None if conv == "dense" else int(rank)
        self.config = {"conv": conv, "rank": rank, "width": int(width), "depth": int(depth),
                       "kernel_size": int(kernel_size)}
        self.lift = make_conv2d(conv, 3, width, kernel_size, rank)
        self.blocks = nn.ModuleList(ResidualBlock(conv, width, kernel_size, rank) for _ in range(depth))
        self.proj = nn.Conv2d(width, 1, 1)
        # Normalisation: buffers so they travel with state_dict (and with saved files).
        self.register_buffer("u_scale", torch.ones(()))
        self.register_buffer("c_mean", torch.zeros(()))
        self.register_buffer("c_scale", torch.ones(()))
        self.register_buffer("du_scale", torch.ones(()))
        self.register_buffer("normalised", torch.zeros((), dtype=torch.bool))
        self.history = None
        self.extra: dict = {}

    @property
    def normalisation(self) -> Normalisation | None:
        """The stored :class:`Normalisation`, or None before one is set."""
        if not bool(self.normalised):
            return None
        return Normalisation(float(self.u_scale), float(self.c_mean), float(self.c_scale),
                             float(self.du_scale))

    def set_normalisation(self, norm: Normalisation) -> None:
        """Store the training split's scales in the model's buffers."""
        with torch.no_grad():
            self.u_scale.fill_(norm.u_scale)
            self.c_mean.fill_(norm.c_mean)
            self.c_scale.fill_(norm.c_scale)
            self.du_scale.fill_(norm.du_scale)
            self.normalised.fill_(True)

    def correction(self, x: torch.Tensor) -> torch.Tensor:
        """The network's output in units of ``du_scale``: (N, 3, ny, nx) physical -> (N, 1, ny, nx)."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"input must be (N, 3, ny, nx), got {tuple(x.shape)}")
        z = torch.cat([x[:, :2] / self.u_scale, (x[:, 2:] - self.c_mean) / self.c_scale], dim=1)
        h = self.lift(z)
        for block in self.blocks:
            h = block(h)
        return self.proj(F.gelu(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict ``u^{n+1}`` (N, 1, ny, nx) from ``x = (u^{n-1}, u^n, c)`` (N, 3, ny, nx), in physical
        units."""
        base = 2.0 * x[:, 1:2] - x[:, 0:1]
        return base + self.du_scale * self.correction(x)

    def step(self, u_prev: torch.Tensor, u: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """One step on (N, ny, nx) fields; returns ``u^{n+1}`` (N, ny, nx)."""
        return self.forward(torch.stack([u_prev, u, c], dim=1))[:, 0]


def build_model(conv: str = "dense", rank: int | None = None, width: int = 32, depth: int = 3,
                kernel_size: int = 5, seed: int | None = None) -> WaveSurrogate:
    """Build a :class:`WaveSurrogate`; with ``seed`` its initial weights are reproducible."""
    if seed is None:
        return WaveSurrogate(conv, rank, width, depth, kernel_size)
    devices = []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        return WaveSurrogate(conv, rank, width, depth, kernel_size)
