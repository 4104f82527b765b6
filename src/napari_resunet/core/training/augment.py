"""Joint image + label augmentation with an explicit random generator.

Every transform takes the image patch ``(C, *spatial)`` and the target patch
``(*spatial)`` in one call, so the two can never drift apart, and draws all its
randomness from the ``numpy.random.Generator`` it is given (no global state).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from napari_resunet.core.config import TrainConfig


def random_flip(
    image: NDArray, target: NDArray, rng: np.random.Generator
) -> tuple[NDArray, NDArray]:
    """Flip each spatial axis with probability 1/2."""
    for ax in range(target.ndim):
        if target.shape[ax] > 1 and rng.random() < 0.5:
            image = np.flip(image, axis=ax + 1)
            target = np.flip(target, axis=ax)
    return image, target


def random_rot90(
    image: NDArray, target: NDArray, rng: np.random.Generator
) -> tuple[NDArray, NDArray]:
    """Rotate by a random multiple of 90 degrees in the (Y, X) plane.

    Only in-plane: Z is often sampled more coarsely than Y and X. Skipped when Y and
    X differ in size, since the rotation would change the patch shape.
    """
    if target.shape[-1] != target.shape[-2]:
        return image, target
    k = int(rng.integers(4))
    return np.rot90(image, k, axes=(-2, -1)), np.rot90(target, k, axes=(-2, -1))


def random_intensity(
    image: NDArray, target: NDArray, rng: np.random.Generator, contrast: float = 0.29
) -> tuple[NDArray, NDArray]:
    """Random contrast (a factor log-uniform in exp(±contrast): x0.75-1.34 by
    default), brightness (+-0.1), gamma and mild noise."""
    out = image.astype(np.float32, copy=True)
    for c in range(out.shape[0]):
        ch = out[c]
        if rng.random() < 0.3:
            lo, hi = float(ch.min()), float(ch.max())
            if hi > lo:
                gamma = float(np.exp(rng.uniform(-0.3, 0.3)))
                ch[...] = lo + (hi - lo) * ((ch - lo) / (hi - lo)) ** gamma
        ch *= np.float32(np.exp(rng.uniform(-contrast, contrast)))
        ch += np.float32(rng.uniform(-0.1, 0.1))
        if rng.random() < 0.3:
            ch += rng.normal(0.0, rng.uniform(0.0, 0.05), ch.shape).astype(np.float32)
    return out, target


def random_elastic(
    image: NDArray,
    target: NDArray,
    rng: np.random.Generator,
    alpha: float = 8.0,
    sigma: float = 6.0,
) -> tuple[NDArray, NDArray]:
    """Smooth random elastic deformation (linear for the image, nearest for labels).

    The displacement field is drawn on a coarse grid (spacing ``sigma``) and
    interpolated cubically, which gives the same smooth field as Gaussian-filtered
    noise at a fraction of the cost. ``alpha`` is the typical displacement in
    voxels. Axes of size 1 (a single slice) are not displaced.
    """
    shape = target.shape
    coarse = tuple(max(2, int(np.ceil(s / sigma)) + 1) for s in shape)
    coords = list(
        np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij")
    )
    for ax, s in enumerate(shape):
        if s == 1:
            continue
        field = rng.normal(0.0, alpha, coarse).astype(np.float32)
        up = ndimage.zoom(field, np.divide(shape, coarse), order=3)
        # zoom rounds the output size; trim or edge-pad to the exact patch shape
        up = up[tuple(slice(0, n) for n in shape)]
        up = np.pad(up, [(0, n - u) for n, u in zip(shape, up.shape)], mode="edge")
        coords[ax] = coords[ax] + up
    warped = np.stack(
        [ndimage.map_coordinates(c, coords, order=1, mode="reflect") for c in image]
    )
    warped_target = ndimage.map_coordinates(target, coords, order=0, mode="reflect")
    return warped.astype(np.float32), warped_target.astype(target.dtype)


def augment_pair(
    image: NDArray, target: NDArray, cfg: TrainConfig, rng: np.random.Generator
) -> tuple[NDArray, NDArray]:
    """Apply the augmentations enabled in ``cfg`` to one (image, target) patch."""
    if cfg.augment_elastic:
        image, target = random_elastic(
            image, target, rng, cfg.elastic_alpha, cfg.elastic_sigma
        )
    if cfg.augment_flip:
        image, target = random_flip(image, target, rng)
    if cfg.augment_rot90:
        image, target = random_rot90(image, target, rng)
    if cfg.augment_intensity:
        image, target = random_intensity(image, target, rng, cfg.intensity_contrast)
    return np.ascontiguousarray(image, np.float32), np.ascontiguousarray(target)
