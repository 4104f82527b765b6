"""From network outputs to what users see: probabilities and integer labels."""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray


def logits_to_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the channel axis (axis 1 of ``(N, C, ...)``)."""
    return torch.softmax(logits, dim=1)


def label_dtype(n_classes: int) -> np.dtype:
    """Smallest unsigned integer dtype that holds class ids ``0..n_classes-1``."""
    return np.dtype(np.uint8 if n_classes <= 256 else np.uint16)


def probabilities_to_labels(probabilities: NDArray) -> NDArray:
    """Class id of the most probable class per voxel.

    Args:
        probabilities: ``(C, *spatial)`` float array, as returned by ``predict``.

    Returns:
        ``spatial``-shaped unsigned integer labels (0 = background).
    """
    probs = np.asarray(probabilities)
    if probs.ndim < 2:
        raise ValueError(f"Expected (C, *spatial) probabilities, got shape {probs.shape}.")
    return np.argmax(probs, axis=0).astype(label_dtype(probs.shape[0]))
