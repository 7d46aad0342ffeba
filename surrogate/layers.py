"""A priori compressed convolutions: CP-factorised kernels trained directly from initialisation.

``CPConv2d`` (per-filter CP)
    Each output filter's kernel ``W_f`` (C x k_h x k_w) is a sum of ``rank`` rank-one terms
    ``c_{f,r} (x) a_{f,r} (x) b_{f,r}``: a channel vector, a vertical and a horizontal one-way filter.
    Parameters: ``F R (C + k_h + k_w) + F`` against ``F C k_h k_w + F`` for ``nn.Conv2d``. Computed as
    a 1x1 convolution ``C -> F R``, a depthwise ``k_h x 1``, a depthwise ``1 x k_w`` and a sum over
    ``r``. Its factors are ``channel`` (F R, C, 1, 1), ``vertical`` (F R, 1, k_h, 1) and
    ``horizontal`` (F R, 1, 1, k_w); rank-one term ``r`` of filter ``f`` is row ``f R + r``.
    Two equal ways to compute it (``compute``): ``"factored"`` (the three convolutions above, the
    fewest multiply-adds) and ``"kernel"`` (assemble ``dense_weight()``, one ``F.conv2d``). The
    default ``"auto"`` takes ``"kernel"`` in training mode and ``"factored"`` in eval mode: on the CPU,
    the backward pass of depthwise convolutions on F R channels is 2-3x slower than that of the dense
    convolution, so training through the assembled kernel is faster, while inference keeps the
    factored cost. The parameters, their gradients and the function are the same either way.
``LayerCPConv2d`` (layer-level CP, as TensorLy-Torch's CP convolution)
    The whole 4-way kernel is one CP of rank ``R``: ``W = sum_r o_r (x) c_r (x) a_r (x) b_r``, with
    ``R (F + C + k_h + k_w) + F`` parameters; computed as 1x1 ``C -> R``, two depthwise one-way
    filters, 1x1 ``R -> F``.
``CPConv1d``
    The 2-way case: ``W_f`` (C x k) is a sum of ``rank`` terms ``c_{f,r} (x) a_{f,r}``.

All are drop-in for ``nn.Conv2d`` / ``nn.Conv1d`` with ``padding="same"`` (or ``"valid"``), stride 1,
zero padding. ``dense_weight()`` returns the equivalent dense kernel, so
``F.conv2d(x, layer.dense_weight(), layer.bias, padding=layer.padding)`` equals ``layer(x)``.

Initialisation: every factor is uniform and zero-mean; their variances multiply to the weight
variance of PyTorch's default dense initialisation, ``1 / (3 C k_h k_w)``, so the output variance of
a freshly built compressed layer matches that of a fresh ``nn.Conv2d`` of the same shape. The
one-way filters get variance ``1/k`` (unit gain) and the channel vectors carry the rest.

The factors are ordinary parameters accessed by attribute in ``forward``, so
``torch.nn.utils.prune`` works on them (``channel_orig`` + ``channel_mask`` and so on).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _pair(kernel_size) -> tuple[int, int]:
    if isinstance(kernel_size, int):
        kernel_size = (kernel_size, kernel_size)
    kh, kw = (int(k) for k in kernel_size)
    if kh < 1 or kw < 1:
        raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
    return kh, kw


def _check(in_channels: int, out_channels: int, rank: int, padding) -> None:
    if in_channels < 1:
        raise ValueError(f"in_channels must be >= 1, got {in_channels}")
    if out_channels < 1:
        raise ValueError(f"out_channels must be >= 1, got {out_channels}")
    if int(rank) != rank or rank < 1:
        raise ValueError(f"rank must be an integer >= 1, got {rank}")
    if padding not in ("same", "valid"):
        raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")


def _uniform_(tensor: torch.Tensor, variance: float) -> None:
    bound = math.sqrt(3.0 * variance)
    with torch.no_grad():
        tensor.uniform_(-bound, bound)


CP_COMPUTE = ("auto", "factored", "kernel")


def _init_bias(bias: torch.Tensor | None, fan_in: int) -> None:
    if bias is not None:
        bound = 1.0 / math.sqrt(fan_in)
        with torch.no_grad():
            bias.uniform_(-bound, bound)


class CPConv2d(nn.Module):
    """2D convolution whose every output filter is a rank-``rank`` CP tensor (see module docstring).

    Parameters
    ----------
    in_channels, out_channels : int
        C and F.
    kernel_size : int or (int, int)
        (k_h, k_w).
    rank : int
        R, rank-one terms per output filter.
    bias : bool
    padding : {"same", "valid"}
    compute : {"auto", "factored", "kernel"}
        How ``forward`` computes the convolution (see the module docstring); ``"auto"``: ``"kernel"``
        in training mode, ``"factored"`` in eval mode. Not part of the state_dict.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, rank: int, bias: bool = True,
                 padding: str = "same", compute: str = "auto"):
        super().__init__()
        _check(in_channels, out_channels, rank, padding)
        if compute not in CP_COMPUTE:
            raise ValueError(f"compute must be one of {CP_COMPUTE}, got {compute!r}")
        self.in_channels, self.out_channels, self.rank = int(in_channels), int(out_channels), int(rank)
        self.kernel_size = _pair(kernel_size)
        self.padding = padding
        self.compute = compute
        fr = self.out_channels * self.rank
        kh, kw = self.kernel_size
        self.channel = nn.Parameter(torch.empty(fr, self.in_channels, 1, 1))
        self.vertical = nn.Parameter(torch.empty(fr, 1, kh, 1))
        self.horizontal = nn.Parameter(torch.empty(fr, 1, 1, kw))
        self.bias = nn.Parameter(torch.empty(self.out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        kh, kw = self.kernel_size
        fan_in = self.in_channels * kh * kw
        dense_var = 1.0 / (3.0 * fan_in)
        _uniform_(self.vertical, 1.0 / kh)
        _uniform_(self.horizontal, 1.0 / kw)
        _uniform_(self.channel, dense_var * kh * kw / self.rank)
        _init_bias(self.bias, fan_in)

    def dense_weight(self) -> torch.Tensor:
        """The equivalent kernel, shape (F, C, k_h, k_w)."""
        f, r, c = self.out_channels, self.rank, self.in_channels
        kh, kw = self.kernel_size
        ch = self.channel.reshape(f, r, c)
        a = self.vertical.reshape(f, r, kh)
        b = self.horizontal.reshape(f, r, kw)
        return torch.einsum("frc,fri,frj->fcij", ch, a, b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.compute == "kernel" or (self.compute == "auto" and self.training):
            return F.conv2d(x, self.dense_weight(), self.bias, padding=self.padding)
        fr = self.out_channels * self.rank
        y = F.conv2d(x, self.channel)
        y = F.conv2d(y, self.vertical, padding=self.padding, groups=fr)
        y = F.conv2d(y, self.horizontal, padding=self.padding, groups=fr)
        n, _, h, w = y.shape
        y = y.reshape(n, self.out_channels, self.rank, h, w).sum(dim=2)
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, 1, 1)
        return y

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"rank={self.rank}, padding={self.padding!r}, bias={self.bias is not None}, "
                f"compute={self.compute!r}")


class LayerCPConv2d(nn.Module):
    """2D convolution whose whole kernel is one CP tensor of rank ``rank`` (see module docstring).

    Factors: ``channel`` (R, C, 1, 1), ``vertical`` (R, 1, k_h, 1), ``horizontal`` (R, 1, 1, k_w),
    ``output`` (F, R, 1, 1).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, rank: int, bias: bool = True,
                 padding: str = "same"):
        super().__init__()
        _check(in_channels, out_channels, rank, padding)
        self.in_channels, self.out_channels, self.rank = int(in_channels), int(out_channels), int(rank)
        self.kernel_size = _pair(kernel_size)
        self.padding = padding
        kh, kw = self.kernel_size
        self.channel = nn.Parameter(torch.empty(self.rank, self.in_channels, 1, 1))
        self.vertical = nn.Parameter(torch.empty(self.rank, 1, kh, 1))
        self.horizontal = nn.Parameter(torch.empty(self.rank, 1, 1, kw))
        self.output = nn.Parameter(torch.empty(self.out_channels, self.rank, 1, 1))
        self.bias = nn.Parameter(torch.empty(self.out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        kh, kw = self.kernel_size
        fan_in = self.in_channels * kh * kw
        dense_var = 1.0 / (3.0 * fan_in)
        _uniform_(self.vertical, 1.0 / kh)
        _uniform_(self.horizontal, 1.0 / kw)
        _uniform_(self.channel, 1.0 / self.in_channels)
        _uniform_(self.output, dense_var * fan_in / self.rank)
        _init_bias(self.bias, fan_in)

    def dense_weight(self) -> torch.Tensor:
        """The equivalent kernel, shape (F, C, k_h, k_w)."""
        kh, kw = self.kernel_size
        o = self.output.reshape(self.out_channels, self.rank)
        ch = self.channel.reshape(self.rank, self.in_channels)
        a = self.vertical.reshape(self.rank, kh)
        b = self.horizontal.reshape(self.rank, kw)
        return torch.einsum("fr,rc,ri,rj->fcij", o, ch, a, b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.channel)
        y = F.conv2d(y, self.vertical, padding=self.padding, groups=self.rank)
        y = F.conv2d(y, self.horizontal, padding=self.padding, groups=self.rank)
        return F.conv2d(y, self.output, self.bias)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"rank={self.rank}, padding={self.padding!r}, bias={self.bias is not None}")


class CPConv1d(nn.Module):
    """1D convolution whose every output filter ``W_f`` (C x k) is a sum of ``rank`` outer products.

    Factors: ``channel`` (F R, C, 1) and ``taps`` (F R, 1, k); ``F R (C + k) + F`` parameters.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, rank: int, bias: bool = True,
                 padding: str = "same"):
        super().__init__()
        _check(in_channels, out_channels, rank, padding)
        if int(kernel_size) < 1:
            raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
        self.in_channels, self.out_channels, self.rank = int(in_channels), int(out_channels), int(rank)
        self.kernel_size = int(kernel_size)
        self.padding = padding
        fr = self.out_channels * self.rank
        self.channel = nn.Parameter(torch.empty(fr, self.in_channels, 1))
        self.taps = nn.Parameter(torch.empty(fr, 1, self.kernel_size))
        self.bias = nn.Parameter(torch.empty(self.out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan_in = self.in_channels * self.kernel_size
        _uniform_(self.taps, 1.0 / self.kernel_size)
        _uniform_(self.channel, 1.0 / (3.0 * fan_in) * self.kernel_size / self.rank)
        _init_bias(self.bias, fan_in)

    def dense_weight(self) -> torch.Tensor:
        """The equivalent kernel, shape (F, C, k)."""
        f, r = self.out_channels, self.rank
        ch = self.channel.reshape(f, r, self.in_channels)
        a = self.taps.reshape(f, r, self.kernel_size)
        return torch.einsum("frc,fri->fci", ch, a)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fr = self.out_channels * self.rank
        y = F.conv1d(x, self.channel)
        y = F.conv1d(y, self.taps, padding=self.padding, groups=fr)
        n, _, length = y.shape
        y = y.reshape(n, self.out_channels, self.rank, length).sum(dim=2)
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, 1)
        return y

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"rank={self.rank}, padding={self.padding!r}, bias={self.bias is not None}")


CONV_TYPES = ("dense", "cp", "cp-layer")


def make_conv2d(conv: str, in_channels: int, out_channels: int, kernel_size, rank: int | None = None,
                bias: bool = True) -> nn.Module:
    """Build a 'same'-padded 2D convolution of type ``conv`` (one of :data:`CONV_TYPES`).

    ``rank`` is required for the CP types and ignored for ``"dense"``.
    """
    if conv == "dense":
        return nn.Conv2d(in_channels, out_channels, kernel_size, padding="same", bias=bias)
    if conv not in CONV_TYPES:
        raise ValueError(f"conv must be one of {CONV_TYPES}, got {conv!r}")
    if rank is None:
        raise ValueError(f"rank is required for conv={conv!r}")
    cls = CPConv2d if conv == "cp" else LayerCPConv2d
    return cls(in_channels, out_channels, kernel_size, rank, bias=bias, padding="same")
