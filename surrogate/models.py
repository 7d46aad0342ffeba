"""Next-frame surrogates: one physical wrapper, several networks (ours and peers) inside it.

``build_model(conv="dense" | "cp" | "cp-layer" | "unet" | "fno", rank=R, width=32, depth=3,
kernel_size=5, forcing=False, modes=16)`` returns a :class:`Stepper`. Every model shares the wrapper:

    x = (u^{n-1}/u_s, u^n/u_s, (c - c_mean)/c_s[, asinh(f^n/du_s)])   3 channels, 4 with the forcing
    u^{n+1} = 2 u^n - u^{n-1} [+ f^n] + du_s * net(x)

so the network learns the correction to the leapfrog extrapolation; with ``forcing=True`` the frame
forcing ``f^n`` (the sources' share of the frame's second difference, ``/fields/f`` of the dataset)
is both an input channel and added to the extrapolation (exact where the medium does not couple).
Networks:

- :class:`WaveSurrogate` (``conv`` dense / cp / cp-layer): a 'same'-resolution residual stack whose
  k x k convolution type is the argument (the final 1 x 1 projection is dense in all variants)::

      h = lift(x)                                        k x k conv, in -> width
      h = h + conv_b(gelu(conv_a(gelu(h))))              ``depth`` residual blocks
      net(x) = proj(gelu(h))                             1 x 1 conv, width -> 1

- :class:`UNetSurrogate` (``"unet"``): a small U-Net, ``depth`` levels below the top one, two 3 x 3
  convolutions per level, average-pool down (ceil), nearest up to the skip's size, channels
  ``width * 2^level``.
- :class:`FNOSurrogate` (``"fno"``): ``neuralop.models.FNO`` (the ``neuraloperator`` package, extra
  ``bench``) with ``modes`` Fourier modes per axis, ``width`` hidden channels, ``depth`` layers and
  domain padding (the data are not periodic).

The scales ``u_s, c_mean, c_s, du_s`` (:class:`surrogate.data.Normalisation`) are buffers, set from
the training split by :func:`surrogate.train.fit` (or :meth:`Stepper.set_normalisation`) and saved.
``forward`` takes and returns physical units: ``x`` (N, in_channels, ny, nx) -> ``u^{n+1}``
(N, 1, ny, nx).
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


class Stepper(nn.Module):
    """The physical wrapper of every surrogate (module docstring); subclasses define :meth:`net`.

    Attributes
    ----------
    config : dict
        The constructor arguments (``conv`` names the network), saved in model files.
    forcing : bool
        The model takes the frame forcing as a fourth input channel.
    history : dict or None
        The training history of the last :func:`surrogate.train.fit` (set by fit and by load).
    extra : dict
        Free-form JSON-like data saved with the model (e.g. a pruning history).
    """

    def _init_wrapper(self, config: dict, forcing: bool) -> None:
        self.config = {**config, "forcing": bool(forcing)}
        self.forcing = bool(forcing)
        # Normalisation: buffers so they travel with state_dict (and with saved files).
        self.register_buffer("u_scale", torch.ones(()))
        self.register_buffer("c_mean", torch.zeros(()))
        self.register_buffer("c_scale", torch.ones(()))
        self.register_buffer("du_scale", torch.ones(()))
        self.register_buffer("normalised", torch.zeros((), dtype=torch.bool))
        self.history = None
        self.extra: dict = {}

    @property
    def in_channels(self) -> int:
        """Input channels of :meth:`forward`: 3, or 4 with the forcing."""
        return 4 if self.forcing else 3

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

    def net(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def correction(self, x: torch.Tensor) -> torch.Tensor:
        """The network's output in units of ``du_scale``: (N, in, ny, nx) physical -> (N, 1, ny, nx)."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"input must be (N, {self.in_channels}, ny, nx), got {tuple(x.shape)}")
        parts = [x[:, :2] / self.u_scale, (x[:, 2:3] - self.c_mean) / self.c_scale]
        if self.forcing:  # a point source's forcing is a spike of many du_scale: compressed by asinh
            parts.append(torch.asinh(x[:, 3:4] / self.du_scale))
        return self.net(torch.cat(parts, dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict ``u^{n+1}`` (N, 1, ny, nx) from ``x = (u^{n-1}, u^n, c[, f^n])``, physical units."""
        base = 2.0 * x[:, 1:2] - x[:, 0:1]
        if self.forcing:
            base = base + x[:, 3:4]
        return base + self.du_scale * self.correction(x)

    def step(self, u_prev: torch.Tensor, u: torch.Tensor, c: torch.Tensor,
             f: torch.Tensor | None = None) -> torch.Tensor:
        """One step on (N, ny, nx) fields (``f``: the frame forcing, for forcing models)."""
        if self.forcing and f is None:
            raise ValueError("this model takes the frame forcing: pass f (N, ny, nx)")
        fields = [u_prev, u, c] + ([f] if self.forcing else [])
        return self.forward(torch.stack(fields, dim=1))[:, 0]


class WaveSurrogate(Stepper):
    """Residual CNN with dense or CP k x k convolutions (see module docstring).

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
    forcing : bool
        Take the frame forcing as a fourth input channel.
    """

    def __init__(self, conv: str = "dense", rank: int | None = None, width: int = 32, depth: int = 3,
                 kernel_size: int = 5, forcing: bool = False):
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
        self._init_wrapper({"conv": conv, "rank": rank, "width": int(width), "depth": int(depth),
                            "kernel_size": int(kernel_size)}, forcing)
        self.lift = make_conv2d(conv, self.in_channels, width, kernel_size, rank)
        self.blocks = nn.ModuleList(ResidualBlock(conv, width, kernel_size, rank) for _ in range(depth))
        self.proj = nn.Conv2d(width, 1, 1)

    def net(self, z: torch.Tensor) -> torch.Tensor:
        h = self.lift(z)
        for block in self.blocks:
            h = block(h)
        return self.proj(F.gelu(h))


def _check_int(name: str, value, low: int) -> None:
    if int(value) != value or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value}")


class _DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1), nn.GELU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.GELU())


class UNetSurrogate(Stepper):
    """A small U-Net inside the wrapper (module docstring); any grid size (odd sizes included).

    Parameters
    ----------
    width : int
        Channels of the top level; level ``l`` has ``width * 2^l``.
    depth : int
        Levels below the top one (>= 1); the grid is pooled ``depth`` times.
    forcing : bool
        Take the frame forcing as a fourth input channel.
    """

    def __init__(self, width: int = 16, depth: int = 2, forcing: bool = False, **_ignored):
        super().__init__()
        _check_int("width", width, 1)
        _check_int("depth", depth, 1)
        self._init_wrapper({"conv": "unet", "rank": None, "width": int(width), "depth": int(depth),
                            "kernel_size": 3}, forcing)
        chans = [int(width) * 2**level for level in range(int(depth) + 1)]
        self.down = nn.ModuleList([_DoubleConv(self.in_channels, chans[0])]
                                  + [_DoubleConv(a, b) for a, b in zip(chans[:-1], chans[1:], strict=True)])
        self.up = nn.ModuleList(_DoubleConv(b + a, a) for a, b in zip(chans[:-1], chans[1:], strict=True))
        self.proj = nn.Conv2d(chans[0], 1, 1)

    def net(self, z: torch.Tensor) -> torch.Tensor:
        skips = []
        h = z
        for level, block in enumerate(self.down):
            if level:
                h = F.avg_pool2d(h, 2, ceil_mode=True)
            h = block(h)
            skips.append(h)
        for block, skip in zip(reversed(self.up), reversed(skips[:-1]), strict=True):
            h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = block(torch.cat([skip, h], dim=1))
        return self.proj(h)


class FNOSurrogate(Stepper):
    """``neuralop.models.FNO`` inside the wrapper (module docstring).

    Parameters
    ----------
    width : int
        Hidden channels.
    depth : int
        Fourier layers (>= 1).
    modes : int
        Fourier modes kept per axis (>= 1).
    forcing : bool
        Take the frame forcing as a fourth input channel.

    Raises
    ------
    ImportError
        Without the ``neuraloperator`` package (``pip install jamwave[bench]``).
    """

    def __init__(self, width: int = 32, depth: int = 4, modes: int = 16, forcing: bool = False,
                 **_ignored):
        super().__init__()
        _check_int("width", width, 1)
        _check_int("depth", depth, 1)
        _check_int("modes", modes, 1)
        try:
            from neuralop.models import FNO
        except ImportError as exc:
            raise ImportError("the FNO peer needs the neuraloperator package: pip install "
                              "'jamwave[bench]' (neuraloperator==2.0.0)") from exc
        self._init_wrapper({"conv": "fno", "rank": None, "width": int(width), "depth": int(depth),
                            "kernel_size": None, "modes": int(modes)}, forcing)
        self.fno = FNO(n_modes=(int(modes), int(modes)), in_channels=self.in_channels, out_channels=1,
                       hidden_channels=int(width), n_layers=int(depth), domain_padding=0.125)

    def net(self, z: torch.Tensor) -> torch.Tensor:
        return self.fno(z)

    def state_dict(self, *args, **kwargs):
        """Tensors only: neuralop adds its constructor arguments as ``_metadata``, dropped here (the
        wrapper's ``config`` rebuilds the model)."""
        state = super().state_dict(*args, **kwargs)
        state.pop("_metadata", None)
        return state


ARCHITECTURES = ("dense", "cp", "cp-layer", "unet", "fno")


def model_from_config(config: dict) -> Stepper:
    """Rebuild a model from its ``config`` (as saved in model files; old files lack ``forcing``)."""
    config = dict(config)
    conv = config.pop("conv", "dense")
    if conv == "unet":
        return UNetSurrogate(**config)
    if conv == "fno":
        return FNOSurrogate(**config)
    if conv not in ARCHITECTURES:
        raise ValueError(f"conv must be one of {ARCHITECTURES}, got {conv!r}")
    return WaveSurrogate(conv, **config)


def build_model(conv: str = "dense", rank: int | None = None, width: int = 32, depth: int = 3,
                kernel_size: int = 5, seed: int | None = None, *, forcing: bool = False,
                modes: int = 16) -> Stepper:
    """Build a model; with ``seed`` its initial weights are reproducible.

    ``conv`` in :data:`ARCHITECTURES`: ``dense | cp | cp-layer`` give a :class:`WaveSurrogate` (rank
    for the CP types), ``unet`` a :class:`UNetSurrogate` (``kernel_size`` ignored), ``fno`` a
    :class:`FNOSurrogate` (``modes`` per axis; ``rank`` and ``kernel_size`` ignored).
    """
    config = {"conv": conv, "rank": rank, "width": width, "depth": depth, "kernel_size": kernel_size,
              "forcing": forcing}
    if conv == "fno":
        config["modes"] = modes
    if seed is None:
        return model_from_config(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return model_from_config(config)
