"""Helpers shared by the benchmark scripts (not part of the package)."""

from __future__ import annotations

import resource
import time

import torch
from torch import nn


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (Linux: KiB units)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def sgemm_peak_gflops(n: int = 2048, repeats: int = 10) -> float:
    """Best-of-``repeats`` float32 matrix-multiply rate, GFLOP/s (the CPU's practical peak)."""
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def conv_flops(model: nn.Module, example: torch.Tensor) -> float:
    """Multiply-add FLOPs (2 per MAC) of all (transposed) convolutions for ``example``."""
    total = 0.0
    hooks = []

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, nn.modules.conv._ConvNd):
            k = mod.weight[0].numel()  # in/groups x kernel volume (conv)
            if mod.transposed:
                # each input voxel scatters in_ch x out_ch/groups x kernel MACs
                total += 2.0 * inp[0].numel() * mod.weight[0].numel()
            else:
                total += 2.0 * out.numel() * k

    for m in model.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            hooks.append(m.register_forward_hook(hook))
    with torch.inference_mode():
        model(example)
    for h in hooks:
        h.remove()
    return total


def best_time(fn, repeats: int = 3) -> float:
    """Best wall time of ``fn()`` over ``repeats`` calls, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
