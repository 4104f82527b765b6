"""Deterministic synthetic images with labels, for tests and demos.

Blobs (nuclei-like ellipses/ellipsoids) on a smooth, noisy background. Everything
is drawn from ``numpy.random.default_rng(seed)``, so a seed always gives the same data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage


def make_blobs(
    shape: Sequence[int] = (128, 128),
    n_objects: int = 12,
    radius: float | Sequence[float] = 8.0,
    noise: float = 0.08,
    seed: int = 0,
) -> tuple[NDArray[np.uint16], NDArray[np.uint16]]:
    """Return ``(image, instance_labels)`` of bright blobs on a dark background.

    Args:
        shape: ``(Y, X)`` or ``(Z, Y, X)``.
        n_objects: number of blobs to place (overlaps keep the later blob).
        radius: mean blob radius in voxels, one value or one per axis.
        noise: standard deviation of Gaussian noise relative to blob contrast.
        seed: random seed.

    Returns:
        A uint16 image (values about 100-1100) and uint16 instance labels
        ``0..n`` (0 = background).
    """
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in shape)
    radii = np.broadcast_to(np.asarray(radius, float), (len(shape),))
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    labels = np.zeros(shape, np.uint16)
    for i in range(1, n_objects + 1):
        centre = [
            rng.uniform(r, s - r) if s > 2 * r else s / 2 for s, r in zip(shape, radii)
        ]
        axes = radii * rng.uniform(0.7, 1.3, len(shape))
        dist = sum(((g - c) / a) ** 2 for g, c, a in zip(grid, centre, axes))
        labels[dist <= 1.0] = i
    # renumber 1..n without gaps (later blobs may have covered earlier ones)
    ids = np.unique(labels)
    lut = np.zeros(int(ids.max()) + 1, np.uint16)
    lut[ids] = np.arange(ids.size, dtype=np.uint16)
    labels = lut[labels]
    fg = ndimage.gaussian_filter((labels > 0).astype(np.float32), 1.0)
    background = ndimage.gaussian_filter(rng.normal(0, 1, shape), max(shape) / 8)
    background = 0.15 * background / (np.abs(background).max() + 1e-9)
    img = fg + background + rng.normal(0, noise, shape)
    img = 100 + 1000 * (img - img.min()) / (img.max() - img.min())
    return img.astype(np.uint16), labels
