"""Next-frame surrogates: one physical wrapper, several networks (ours and peers) inside it.

``build_model(conv="dense" | "cp" | "cp-layer" | "unet" | "fno", rank=R, width=32, depth=3,
kernel_size=5, forcing=False, modes=16, body="gelu", boundary="zero", reversible=False, halo=None)``
returns a :class:`Stepper`. Every model shares the wrapper (``wrapper=2``, the current form)::

    z = (u^{n-1}/u_s, u^n/u_s, (c - c_mean)/c_s[, f^n/du_s])    u^{n-1} left out when ``reversible``
    u^{n+1} = 2 u^n - u^{n-1} + du_s * net(z)

so the network learns the correction to the frame-level leapfrog extrapolation. Options of the wrapper:

- ``forcing``: the frame forcing ``f^n`` (the sources' share of the frame's second difference,
  ``/fields/f`` of the dataset) is an input channel, scaled linearly (the response is linear in it).
  It is not added to the extrapolation: at a stride of several solver steps the point load has
  spread through the stiffness before the frame ends, so ``f^n`` at the source nodes is many times
  the true second difference there (``benchmarks/RESULTS.md``, issue 18).
- ``reversible``: the network sees ``u^n`` (and ``c``, ``f^n``) but not ``u^{n-1}``, the form of the
  exact frame map of the leapfrog scheme, ``u^{n+1} + u^{n-1} = P_k(A) u^n + sources``.
- ``boundary="dirichlet"``: the inputs are extended by ``halo`` cells beyond each side (the fields
  odd about the boundary nodes, the speed even) before the network, the output is cropped back and
  its boundary nodes are set to zero. On Dirichlet data this makes the frame map the same at the
  walls as inside; ``"zero"`` (default) is plain zero padding by the network's own convolutions.

Old model files (``wrapper=1``, no ``wrapper`` key) read as they were written: the forcing entered
as ``asinh(f^n/du_s)`` and was added to the extrapolation; no other option.

Networks:

- :class:`WaveSurrogate` (``conv`` dense / cp / cp-layer): a 'same'-resolution residual stack whose
  k x k convolution type is the argument (the final 1 x 1 projection is dense in all variants).
  ``body="gelu"``::

      h = lift(z)                                        k x k conv, in -> width
      h = h + conv_b(gelu(conv_a(gelu(h))))              ``depth`` residual blocks
      net(z) = proj(gelu(h))                             1 x 1 conv, width -> 1

  ``body="gated"``: linear in the fields, the medium gates every layer (no biases on the fields'
  path; ``g(c) = 1 + W_2 gelu(W_1 c + b_1) + b_2``, 1 x 1 convolutions of the speed channel, one per
  layer, hidden size :data:`GATE_HIDDEN`)::

      h = lift(fields) * g_0(c)
      h = h + conv_b(conv_a(h) * g_a(c)) * g_b(c)         ``depth`` residual blocks
      net(z) = proj(h)

  The exact frame map of the linear wave equation is linear in ``u`` with coefficients that are
  products of powers of ``c`` and difference operators; the gates give those products directly.
- :class:`UNetSurrogate` (``"unet"``): a small U-Net, ``depth`` levels below the top one, two 3 x 3
  convolutions per level, average-pool down (ceil), nearest up to the skip's size, channels
  ``width * 2^level``.
- :class:`FNOSurrogate` (``"fno"``): ``neuralop.models.FNO`` (the ``neuraloperator`` package, extra
  ``bench``) with ``modes`` Fourier modes per axis, ``width`` hidden channels, ``depth`` layers and
  domain padding (the data are not periodic).

The scales ``u_s, c_mean, c_s, du_s`` (:class:`surrogate.data.Normalisation`) are buffers, set from
the training split by :func:`surrogate.train.fit` (or :meth:`Stepper.set_normalisation`) and saved.
``forward`` takes and returns physical units: ``x`` (N, in_channels, ny, nx) with
``in_channels = 3 [+ 1 forcing]`` -> ``u^{n+1}`` (N, 1, ny, nx).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from surrogate.data import Normalisation
from surrogate.layers import CONV_TYPES, make_conv2d

WRAPPERS = (1, 2)
BOUNDARIES = ("zero", "dirichlet")
GATE_HIDDEN = 4


def odd_extension(z: torch.Tensor, halo: int) -> torch.Tensor:
    """Extend (N, C, ny, nx) by ``halo`` cells per side, odd about the edge nodes of each axis
    (``z[-i] = 2 z[0] - z[i]``; ``-z[i]`` where the edge is zero, as on Dirichlet nodes)."""
    for pads in ((halo, halo, 0, 0), (0, 0, halo, halo)):
        z = 2.0 * F.pad(z, pads, mode="replicate") - F.pad(z, pads, mode="reflect")
    return z


class ResidualBlock(nn.Module):
    """``h + conv_b(gelu(conv_a(gelu(h))))`` with two k x k convolutions of the chosen type."""

    def __init__(self, conv: str, width: int, kernel_size: int, rank: int | None):
        super().__init__()
        self.conv_a = make_conv2d(conv, width, width, kernel_size, rank)
        self.conv_b = make_conv2d(conv, width, width, kernel_size, rank)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.conv_b(F.gelu(self.conv_a(F.gelu(h))))


class Gate(nn.Module):
    """``1 + W_2 gelu(W_1 c + b_1) + b_2``: a per-channel factor from the speed channel (1 x 1 convs;
    starts at 1, as the second layer starts at zero). (N, 1, ny, nx) -> (N, width, ny, nx)."""

    def __init__(self, width: int, hidden: int = GATE_HIDDEN):
        super().__init__()
        self.hidden = nn.Conv2d(1, hidden, 1)
        self.out = nn.Conv2d(hidden, width, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        return 1.0 + self.out(F.gelu(self.hidden(c)))


class Stepper(nn.Module):
    """The physical wrapper of every surrogate (module docstring); subclasses define :meth:`net`.

    Attributes
    ----------
    config : dict
        The constructor arguments (``conv`` names the network), saved in model files.
    forcing, reversible : bool
        The model takes the frame forcing as a fourth input channel; its network does not see
        ``u^{n-1}``.
    boundary : str
        ``"zero"`` or ``"dirichlet"`` (module docstring).
    halo : int
        Cells added beyond each side for ``boundary="dirichlet"`` (0 otherwise).
    wrapper : int
        1 for the old form (files written before it changed), 2 otherwise.
    history : dict or None
        The training history of the last :func:`surrogate.train.fit` (set by fit and by load).
    extra : dict
        Free-form JSON-like data saved with the model (e.g. a pruning history).
    """

    def _init_wrapper(self, config: dict, forcing: bool, *, boundary: str = "zero", reversible: bool = False,
                      halo: int = 0, wrapper: int = 2) -> None:
        if wrapper not in WRAPPERS:
            raise ValueError(f"wrapper must be one of {WRAPPERS}, got {wrapper!r}")
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
        if int(halo) != halo or halo < 0:
            raise ValueError(f"halo must be an integer >= 0, got {halo!r}")
        if wrapper == 1 and (boundary != "zero" or reversible):
            raise ValueError("wrapper=1 (old model files) has neither boundary='dirichlet' nor "
                             "reversible=True")
        self.forcing, self.reversible, self.boundary = bool(forcing), bool(reversible), boundary
        self.halo = int(halo) if boundary == "dirichlet" else 0
        self.wrapper = int(wrapper)
        self.config = {**config, "forcing": self.forcing, "boundary": boundary, "reversible": self.reversible,
                       "halo": self.halo, "wrapper": self.wrapper}
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
    def net_channels(self) -> int:
        """Input channels of :meth:`net`: ``in_channels``, one fewer when ``reversible``."""
        return self.in_channels - (1 if self.reversible else 0)

    @property
    def medium_channel(self) -> int:
        """Index of the speed channel in the input of :meth:`net`."""
        return 1 if self.reversible else 2

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
        fields = x[:, 1:2] if self.reversible else x[:, :2]
        parts = [fields / self.u_scale, (x[:, 2:3] - self.c_mean) / self.c_scale]
        if self.forcing and self.wrapper == 1:  # old files: a spike of many du_scale, compressed by asinh
            parts.append(torch.asinh(x[:, 3:4] / self.du_scale))
        elif self.forcing:
            parts.append(x[:, 3:4] / self.du_scale)
        z = torch.cat(parts, dim=1)
        halo = min(self.halo, x.shape[-2] - 1, x.shape[-1] - 1)
        if halo == 0:
            return self.net(z)
        m = self.medium_channel
        parts = [odd_extension(z[:, :m], halo), F.pad(z[:, m:m + 1], (halo,) * 4, mode="reflect")]
        if self.forcing:
            parts.append(odd_extension(z[:, m + 1:], halo))
        z = torch.cat(parts, dim=1)
        return self.net(z)[..., halo:-halo, halo:-halo]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict ``u^{n+1}`` (N, 1, ny, nx) from ``x = (u^{n-1}, u^n, c[, f^n])``, physical units."""
        base = 2.0 * x[:, 1:2] - x[:, 0:1]
        if self.forcing and self.wrapper == 1:
            base = base + x[:, 3:4]
        out = base + self.du_scale * self.correction(x)
        if self.boundary == "dirichlet":
            out = F.pad(out[..., 1:-1, 1:-1], (1, 1, 1, 1))
        return out

    def step(self, u_prev: torch.Tensor, u: torch.Tensor, c: torch.Tensor,
             f: torch.Tensor | None = None) -> torch.Tensor:
        """One step on (N, ny, nx) fields (``f``: the frame forcing, for forcing models)."""
        if self.forcing and f is None:
            raise ValueError("this model takes the frame forcing: pass f (N, ny, nx)")
        fields = [u_prev, u, c] + ([f] if self.forcing else [])
        return self.forward(torch.stack(fields, dim=1))[:, 0]


def _check_int(name: str, value, low: int) -> None:
    if int(value) != value or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value}")



BODIES = ("gelu", "gated")
PEER_HALO = 8  # default halo of the FNO (its receptive field is the whole grid)


def _wrapper_options(boundary, reversible, halo, wrapper, default_halo: int) -> dict:
    """The keyword arguments of :meth:`Stepper._init_wrapper`; ``halo=None`` becomes ``default_halo``."""
    return {"boundary": boundary, "reversible": reversible, "wrapper": wrapper,
            "halo": default_halo if halo is None else halo}


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
    body : {"gelu", "gated"}
        The residual GELU stack or the medium-gated stack, linear in the fields (module docstring).
    boundary, reversible, halo, wrapper
        Options of the wrapper (module docstring); ``halo=None`` is the receptive radius
        ``(kernel_size // 2) (2 depth + 1)``.
    """

    def __init__(self, conv: str = "dense", rank: int | None = None, width: int = 32, depth: int = 3,
                 kernel_size: int = 5, forcing: bool = False, body: str = "gelu", boundary: str = "zero",
                 reversible: bool = False, halo: int | None = None, wrapper: int = 2):
        super().__init__()
        if conv not in CONV_TYPES:
            raise ValueError(f"conv must be one of {CONV_TYPES}, got {conv!r}")
        if conv != "dense" and (rank is None or int(rank) != rank or rank < 1):
            raise ValueError(f"rank must be an integer >= 1 for conv={conv!r}, got {rank}")
        _check_int("width", width, 1)
        _check_int("depth", depth, 0)
        if int(kernel_size) != kernel_size or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be an odd integer >= 1, got {kernel_size}")
        if body not in BODIES:
            raise ValueError(f"body must be one of {BODIES}, got {body!r}")
        rank = None if conv == "dense" else int(rank)
        radius = (int(kernel_size) // 2) * (2 * int(depth) + 1)
        self._init_wrapper({"conv": conv, "rank": rank, "width": int(width), "depth": int(depth),
                            "kernel_size": int(kernel_size), "body": body}, forcing,
                           **_wrapper_options(boundary, reversible, halo, wrapper, radius))
        self.body = body
        gated = body == "gated"
        self.lift = make_conv2d(conv, self.net_channels - gated, width, kernel_size, rank, bias=not gated)
        if gated:
            self.blocks = nn.ModuleList(GatedBlock(conv, width, kernel_size, rank) for _ in range(depth))
            self.gate = Gate(width)
        else:
            self.blocks = nn.ModuleList(ResidualBlock(conv, width, kernel_size, rank) for _ in range(depth))
        self.proj = nn.Conv2d(width, 1, 1, bias=not gated)

    def net(self, z: torch.Tensor) -> torch.Tensor:
        if self.body == "gated":
            m = self.medium_channel
            c = z[:, m:m + 1]
            h = self.lift(torch.cat([z[:, :m], z[:, m + 1:]], dim=1)) * self.gate(c)
            for block in self.blocks:
                h = block(h, c)
            return self.proj(h)
        h = self.lift(z)
        for block in self.blocks:
            h = block(h)
        return self.proj(F.gelu(h))


class GatedBlock(nn.Module):
    """``h + conv_b(conv_a(h) * g_a(c)) * g_b(c)``: linear in ``h``, gated by the speed channel ``c``."""

    def __init__(self, conv: str, width: int, kernel_size: int, rank: int | None):
        super().__init__()
        self.conv_a = make_conv2d(conv, width, width, kernel_size, rank, bias=False)
        self.conv_b = make_conv2d(conv, width, width, kernel_size, rank, bias=False)
        self.gate_a = Gate(width)
        self.gate_b = Gate(width)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return h + self.conv_b(self.conv_a(h) * self.gate_a(c)) * self.gate_b(c)


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
    boundary, reversible, halo, wrapper
        Options of the wrapper (module docstring); ``halo=None`` is ``2^(depth + 1)`` cells.
    """

    def __init__(self, width: int = 16, depth: int = 2, forcing: bool = False, boundary: str = "zero",
                 reversible: bool = False, halo: int | None = None, wrapper: int = 2, **_ignored):
        super().__init__()
        _check_int("width", width, 1)
        _check_int("depth", depth, 1)
        self._init_wrapper({"conv": "unet", "rank": None, "width": int(width), "depth": int(depth),
                            "kernel_size": 3}, forcing,
                           **_wrapper_options(boundary, reversible, halo, wrapper, 2 ** (int(depth) + 1)))
        chans = [int(width) * 2**level for level in range(int(depth) + 1)]
        self.down = nn.ModuleList([_DoubleConv(self.net_channels, chans[0])]
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
    boundary, reversible, halo, wrapper
        Options of the wrapper (module docstring); ``halo=None`` is :data:`PEER_HALO` cells.

    Raises
    ------
    ImportError
        Without the ``neuraloperator`` package (``pip install jamwave[bench]``).
    """

    def __init__(self, width: int = 32, depth: int = 4, modes: int = 16, forcing: bool = False,
                 boundary: str = "zero", reversible: bool = False, halo: int | None = None, wrapper: int = 2,
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
                            "kernel_size": None, "modes": int(modes)}, forcing,
                           **_wrapper_options(boundary, reversible, halo, wrapper, PEER_HALO))
        self.fno = FNO(n_modes=(int(modes), int(modes)), in_channels=self.net_channels, out_channels=1,
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
    """Rebuild a model from its ``config`` (as saved in model files; old files lack ``forcing`` and
    ``wrapper``: they are ``wrapper=1`` models)."""
    config = dict(config)
    config.setdefault("wrapper", 1)
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
                modes: int = 16, body: str = "gelu", boundary: str = "zero", reversible: bool = False,
                halo: int | None = None, wrapper: int = 2) -> Stepper:
    """Build a model; with ``seed`` its initial weights are reproducible.

    ``conv`` in :data:`ARCHITECTURES`: ``dense | cp | cp-layer`` give a :class:`WaveSurrogate` (rank
    for the CP types; ``body``), ``unet`` a :class:`UNetSurrogate` (``kernel_size`` ignored), ``fno`` a
    :class:`FNOSurrogate` (``modes`` per axis; ``rank`` and ``kernel_size`` ignored). ``boundary``,
    ``reversible``, ``halo`` and ``wrapper`` are options of the wrapper every model shares (module
    docstring).
    """
    config = {"conv": conv, "rank": rank, "width": width, "depth": depth, "kernel_size": kernel_size,
              "forcing": forcing, "boundary": boundary, "reversible": reversible, "halo": halo,
              "wrapper": wrapper}
    if conv == "fno":
        config["modes"] = modes
    elif conv in CONV_TYPES:
        config["body"] = body
    if seed is None:
        return model_from_config(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return model_from_config(config)
