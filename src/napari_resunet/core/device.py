"""Device selection: ``"auto"`` resolves to cuda, then mps, then cpu."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import sys

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Return the torch device for ``device``.

    Args:
        device: ``"auto"`` or any torch device string (``"cpu"``, ``"cuda:1"``, ...).

    Raises:
        ValueError: the device string is malformed or names hardware that is absent.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(
            f"Unknown device {device!r}; use auto, cpu, cuda or mps."
        ) from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but no CUDA GPU is available.")
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError("device='mps' was asked for but MPS is not available.")
    return dev


def native_bfloat16_cpu() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX tiles).

    Elsewhere oneDNN emulates bfloat16 and a network runs slower than in float32.
    Asks torch's CPU feature probes, which older torch versions lack (then False).
    """
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    for name in probes:
        probe = getattr(torch.cpu, name, None)
        try:
            if probe is not None and probe():
                return True
        except RuntimeError:  # a probe that cannot run here answers no
            continue
    return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``, or None for float32.

    ``"auto"`` is bfloat16 on a CPU with native bfloat16 only: elsewhere it is
    slower (emulated CPUs) or not measured (GPUs). An explicit ``"bfloat16"`` is
    honoured on CPUs and CUDA GPUs.

    Raises:
        ValueError: ``"bfloat16"`` on a device without bfloat16 autocast (MPS).
    """
    if precision == "float32":
        return None
    if precision == "auto":
        native = device.type == "cpu" and native_bfloat16_cpu()
        return torch.bfloat16 if native else None
    if precision == "bfloat16":
        if device.type not in ("cpu", "cuda"):
            raise ValueError(
                f"precision='bfloat16' is not available on {device.type}; "
                "use float32 or auto."
            )
        return torch.bfloat16
    raise ValueError(f"Unknown precision {precision!r}; use auto, float32 or bfloat16.")


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast to ``dtype`` on ``device``; a no-op for float32 (``None``), so
    devices without autocast support are never asked for it."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or ``None`` (other platforms or C libraries)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # musl and others have no malloc_trim
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_memory(device: torch.device) -> None:
    """Give memory freed by a finished job back to the system.

    Accelerators: the caching allocator's unused blocks. Host (Linux/glibc): the
    free pages of every malloc arena. Jobs run in worker threads and glibc gives
    each thread its own arena, which otherwise keeps the megabytes of a job's
    freed activations (about half of the RSS a viewer once gained per
    fine-tuning round; ``benchmarks/bench_finetune.py --rounds 20``).
    """
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()
    trim_host_memory()


def trim_host_memory() -> bool:
    """Return the free pages of all glibc malloc arenas to the system.

    Returns False where there is nothing to call (not Linux/glibc).
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
