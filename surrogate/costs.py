"""What a surrogate costs: parameters, stored bytes, multiply-adds, training memory, time per frame.

All functions take a model mapping (N, C, ny, nx) to (N, 1, ny, nx) (``C = model.in_channels``, 3
by default) and work on pruned models
(``torch.nn.utils.prune`` reparametrisations): :func:`count_parameters` then counts the alive
entries of each mask, while multiply-adds stay those of the dense structure (pruning to unstructured
sparsity does not make PyTorch's convolutions cheaper). A complex parameter (an FNO's spectral
weights) counts as two real ones. Multiply-adds come from ``torch.utils.flop_counter``, which counts
convolutions and matrix products but not FFTs: an FNO's are added as ``2.5 N log2 N`` multiply-adds
per channel and transform (:func:`fft_multiply_adds`).
"""

from __future__ import annotations

import io
import math
import statistics
import time
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: torch.nn.Module, *, alive_only: bool = True) -> int:
    """Trainable parameters; for a pruned tensor (``X_orig`` with buffer ``X_mask``) its alive entries."""
    buffers = dict(model.named_buffers())
    total = 0
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if alive_only and name.endswith("_orig") and f"{name[:-5]}_mask" in buffers:
            total += int(buffers[f"{name[:-5]}_mask"].count_nonzero())
        else:
            total += param.numel() * (2 if param.is_complex() else 1)
    return total


def stored_bytes(model: torch.nn.Module) -> int:
    """Size in bytes of the serialised ``state_dict`` (weights, masks and buffers)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def _example(model: torch.nn.Module, batch: int, ny: int, nx: int) -> torch.Tensor:
    param = next(model.parameters())
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, int(getattr(model, "in_channels", 3)), ny, nx, generator=gen, dtype=param.dtype)
    x[:, 2] = x[:, 2].abs() + 1.0  # a positive wave speed
    return x.to(param.device)


def fft_multiply_adds(model: torch.nn.Module, ny: int, nx: int) -> int:
    """Multiply-adds of the FFTs of one frame, ``2.5 N log2 N`` per channel and transform (a radix-2
    estimate, N the padded grid size), counted by hooking ``torch.fft`` calls; 0 without FFTs."""
    x = _example(model, 1, ny, nx)
    total = 0.0
    names = ("rfft2", "irfft2", "fft2", "ifft2", "rfftn", "irfftn", "fftn", "ifftn")
    saved = {n: getattr(torch.fft, n) for n in names}

    def wrap(name):
        def call(inp, *args, **kwargs):
            nonlocal total
            out = saved[name](inp, *args, **kwargs)
            big = out if name.startswith("i") else inp
            n = float(big.shape[-1] * big.shape[-2])
            total += 2.5 * n * math.log2(max(n, 2.0)) * big[..., 0, 0].numel()
            return out
        return call

    was_training = model.training
    model.eval()
    try:
        for n in names:
            setattr(torch.fft, n, wrap(n))
        with torch.no_grad():
            model(x)
    finally:
        for n, fn in saved.items():
            setattr(torch.fft, n, fn)
        model.train(was_training)
    return int(total)


def multiply_adds(model: torch.nn.Module, ny: int, nx: int) -> int:
    """Multiply-adds of one frame (batch 1, ny x nx grid), counted by ``torch.utils.flop_counter``
    plus :func:`fft_multiply_adds`.

    Counts convolutions and matrix products (flops / 2); elementwise operations are not counted.
    """
    x = _example(model, 1, ny, nx)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops() // 2) + fft_multiply_adds(model, ny, nx)


def train_activation_bytes(model: torch.nn.Module, batch: int, ny: int, nx: int) -> int:
    """Bytes of the tensors autograd keeps for backward in one training forward pass.

    Measured with ``torch.autograd.graph.saved_tensors_hooks`` (each storage counted once,
    parameters and buffers excluded): the peak activation memory of training at this batch size,
    independent of the allocator.
    """
    x = _example(model, batch, ny, nx)
    param_ptrs = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    seen: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in param_ptrs:
            seen[ptr] = storage.nbytes()
        return tensor

    was_training = model.training
    model.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(x)
            loss = out.square().mean()
        del loss, out
    finally:
        model.train(was_training)
    return int(sum(seen.values()))


class _LiveBytes(TorchDispatchMode):
    """Counts the bytes of tensors created under it that are still referenced; keeps the peak."""

    def __init__(self, exclude: set[int]):
        super().__init__()
        self.exclude, self.refs, self.sizes = exclude, {}, {}
        self.live = self.peak = 0

    def _free(self, ptr: int) -> None:
        self.refs[ptr] -= 1
        if self.refs[ptr] == 0:
            self.live -= self.sizes.pop(ptr)
            del self.refs[ptr]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            ptr = t.untyped_storage().data_ptr()
            if ptr in self.exclude or ptr == 0:
                continue
            if ptr not in self.refs:
                self.refs[ptr] = 0
                self.sizes[ptr] = t.untyped_storage().nbytes()
                self.live += self.sizes[ptr]
                self.peak = max(self.peak, self.live)
            self.refs[ptr] += 1
            weakref.finalize(t, self._free, ptr)
        return out


def inference_activation_bytes(model: torch.nn.Module, ny: int, nx: int, batch: int = 1) -> int:
    """Peak bytes of the intermediate tensors alive at once during one inference step.

    Counted with a ``TorchDispatchMode`` that adds every new output storage and subtracts it when its
    last tensor is released (the input, parameters and buffers excluded): the activation memory of
    inference at this batch size, independent of the allocator.
    """
    x = _example(model, batch, ny, nx)
    exclude = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers(), x)}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            mode = _LiveBytes(exclude)
            with mode:
                out = model(x)
            peak = mode.peak
            del out
    finally:
        model.train(was_training)
    return int(peak)


def seconds_per_frame(model: torch.nn.Module, ny: int, nx: int, *, repeats: int = 20, warmup: int = 3,
                      batch: int = 1) -> float:
    """Median wall time of one inference step, divided by ``batch`` (s per frame)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    x = _example(model, batch, ny, nx)
    was_training = model.training
    model.eval()
    times = []
    try:
        with torch.no_grad():
            for i in range(warmup + repeats):
                start = time.perf_counter()
                model(x)
                if x.is_cuda:
                    torch.cuda.synchronize(x.device)
                if i >= warmup:
                    times.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return statistics.median(times) / batch


def model_costs(model: torch.nn.Module, ny: int, nx: int, *, timing_repeats: int = 20,
                memory_batch: int = 8) -> dict:
    """All costs of ``model`` on an ``ny x nx`` grid, as a dict."""
    return {
        "parameters": count_parameters(model),
        "stored_bytes": stored_bytes(model),
        "macs_per_frame": multiply_adds(model, ny, nx),
        "train_activation_bytes": train_activation_bytes(model, memory_batch, ny, nx),
        "train_activation_batch": memory_batch,
        "inference_activation_bytes": inference_activation_bytes(model, ny, nx),
        "seconds_per_frame": seconds_per_frame(model, ny, nx, repeats=timing_repeats),
    }
