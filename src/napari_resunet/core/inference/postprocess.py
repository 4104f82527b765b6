"""From network outputs to what users see: probabilities and integer labels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import NDArray
from scipy import ndimage

from napari_resunet.core.config import InstanceConfig, ModelConfig


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
        raise ValueError(
            f"Expected (C, *spatial) probabilities, got shape {probs.shape}."
        )
    return np.argmax(probs, axis=0).astype(label_dtype(probs.shape[0]))


def probabilities_to_instances(
    probabilities: NDArray,
    cfg: InstanceConfig | None = None,
    voxel_size: Sequence[float] | None = None,
) -> NDArray[np.uint32]:
    """One integer label per cell from background/interior/boundary probabilities.

    Seeds are the connected interior regions (or maxima of the interior's distance
    transform, see :class:`InstanceConfig`); a watershed on ``1 - p(interior)``
    grows them through the foreground, so boundaries between touching cells fall
    where the network sees them. Works in 2D and 3D; ``voxel_size`` (array axis
    order) makes distances physical for anisotropic data.

    Args:
        probabilities: ``(3, *spatial)`` as returned by ``predict`` for an instance
            model.
        cfg: thresholds and sizes.
        voxel_size: physical voxel size per spatial axis.

    Returns:
        ``spatial``-shaped uint32 labels, 0 = background, cells numbered 1..N.
    """
    from skimage.segmentation import relabel_sequential, watershed

    cfg = cfg or InstanceConfig()
    probs = np.asarray(probabilities, np.float32)
    if probs.ndim < 3 or probs.shape[0] != 3:
        raise ValueError(
            f"Instance post-processing needs (3, *spatial) probabilities, got {probs.shape}."
        )
    spatial = probs.shape[1:]
    sampling = (
        None
        if voxel_size is None
        else tuple(float(v) for v in voxel_size)[-len(spatial) :]
    )
    foreground = (1.0 - probs[0]) > cfg.foreground_threshold
    interior = probs[1]
    structure = ndimage.generate_binary_structure(len(spatial), 1)
    if cfg.seeds == "interior":
        seeds, _ = ndimage.label(
            (interior > cfg.seed_threshold) & foreground, structure
        )
    else:
        seeds = _distance_seeds(interior > cfg.seed_threshold, cfg, sampling)
    if cfg.seeds == "interior" and cfg.min_seed_size > 1 and seeds.max():
        sizes = np.bincount(seeds.ravel())
        small = sizes < cfg.min_seed_size
        small[0] = False
        seeds[small[seeds]] = 0
    if not seeds.max():
        return np.zeros(spatial, np.uint32)
    labels = watershed(1.0 - interior, markers=seeds, mask=foreground, connectivity=1)
    if cfg.min_size > 1:
        sizes = np.bincount(labels.ravel())
        small = sizes < cfg.min_size
        small[0] = False
        labels[small[labels]] = 0
    labels, _, _ = relabel_sequential(labels)
    return labels.astype(np.uint32)


def _distance_seeds(
    inside: NDArray[np.bool_], cfg: InstanceConfig, sampling: tuple[float, ...] | None
) -> NDArray:
    """Seeds at the maxima of the (physical) distance to the interior's edge.

    Maxima closer than ``seed_min_distance`` merge, and a flat ridge of equal
    maxima counts as one seed (it is one connected region).
    """
    # distances in voxels of the finest axis: unit-free, anisotropy kept as ratios
    spacing = np.ones(inside.ndim) if sampling is None else np.asarray(sampling, float)
    spacing = spacing / spacing.min()
    dist = ndimage.distance_transform_edt(inside, sampling=spacing)
    size = tuple(int(2 * max(1, round(cfg.seed_min_distance / s)) + 1) for s in spacing)
    maxima = (dist == ndimage.maximum_filter(dist, size=size)) & (dist > 0)
    full = ndimage.generate_binary_structure(inside.ndim, inside.ndim)
    seeds, _ = ndimage.label(maxima, full)
    return seeds


def labels_from_probabilities(
    probabilities: NDArray,
    model_config: ModelConfig,
    instance_cfg: InstanceConfig | None = None,
    voxel_size: Sequence[float] | None = None,
) -> NDArray:
    """What a model's output means: class ids (semantic) or cell ids (instance).

    ``instance_cfg`` defaults to :class:`InstanceConfig`'s defaults; pass a model's
    own ``instance_config`` (tuned for it) when it has one.
    """
    if model_config.task == "instance":
        return probabilities_to_instances(probabilities, instance_cfg, voxel_size)
    return probabilities_to_labels(probabilities)
