"""Device selection: ``"auto"`` resolves to cuda, then mps, then cpu."""

from __future__ import annotations

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


def release_memory(device: torch.device) -> None:
    """Return cached accelerator memory to the driver (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()
