"""Segmentation quality metrics on numpy arrays (no torch needed)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def _check_pair(pred: NDArray, target: NDArray) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f"Prediction shape {pred.shape} differs from ground-truth shape "
            f"{target.shape}."
        )


def dice_per_class(
    pred: NDArray,
    target: NDArray,
    n_classes: int,
    mask: NDArray | None = None,
) -> NDArray[np.float64]:
    """Dice coefficient of each class id ``0..n_classes-1``.

    Args:
        pred, target: integer class maps of equal shape.
        n_classes: number of classes.
        mask: optional boolean array; only voxels where it is True count.

    Returns:
        ``(n_classes,)`` float64. A class absent from both maps scores 1.0 (nothing
        to find and nothing found); absent from one only scores 0.0.
    """
    pred, target = np.asarray(pred), np.asarray(target)
    _check_pair(pred, target)
    if mask is not None:
        m = np.asarray(mask, bool)
        _check_pair(pred, m)
        pred, target = pred[m], target[m]
    pred = pred.ravel().astype(np.int64)
    target = target.ravel().astype(np.int64)
    valid = (pred >= 0) & (pred < n_classes) & (target >= 0) & (target < n_classes)
    conf = np.bincount(
        target[valid] * n_classes + pred[valid], minlength=n_classes * n_classes
    ).reshape(n_classes, n_classes)
    inter = np.diag(conf).astype(np.float64)
    denom = conf.sum(0) + conf.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(denom > 0, 2 * inter / np.maximum(denom, 1), 1.0)
    return dice


def iou_per_class(
    pred: NDArray, target: NDArray, n_classes: int, mask: NDArray | None = None
) -> NDArray[np.float64]:
    """Intersection over union of each class (same conventions as ``dice_per_class``)."""
    d = dice_per_class(pred, target, n_classes, mask)
    return d / (2.0 - d)
