"""Training data: validation of (image, labels[, mask]) and random patch sampling.

Labels follow napari's convention (0 = background). A mask, when given, says which
voxels the user has annotated; everything else becomes ``IGNORE_INDEX`` in the
target and is left out of the loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from napari_resunet.core.checks import check_image, check_not_constant
from napari_resunet.core.config import ModelConfig, NormalizationConfig, TrainConfig
from napari_resunet.core.inference.tiling import pad_to
from napari_resunet.core.normalize import normalize_image
from napari_resunet.core.training.augment import augment_pair
from napari_resunet.core.training.losses import IGNORE_INDEX

# Sampling centres are drawn from at most this many stored voxel indices per set.
_MAX_INDEX = 1_000_000


@dataclass
class TrainSample:
    """One image prepared for patch sampling.

    Attributes:
        image: ``(C, *spatial)`` normalised float32.
        target: ``(*spatial)`` int16 class ids, ``IGNORE_INDEX`` where unannotated.
        foreground: flat indices of annotated non-background voxels (subsampled).
        annotated: flat indices of annotated voxels, or ``None`` if all are.
        n_annotated: number of annotated voxels.
        label_mix: fraction of each class in the labels over all voxels, the
            unannotated ones included (see :func:`class_mix`).
    """

    image: NDArray[np.float32]
    target: NDArray[np.int16]
    foreground: NDArray[np.int64]
    annotated: NDArray[np.int64] | None
    n_annotated: int
    label_mix: NDArray[np.float64]

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return self.target.shape


def _subsample_index(index: NDArray, rng: np.random.Generator) -> NDArray:
    if index.size <= _MAX_INDEX:
        return index
    return np.sort(rng.choice(index, _MAX_INDEX, replace=False))


def labels_to_target(
    labels: NDArray,
    n_classes: int,
    label_mode: str,
    mask: NDArray | None = None,
) -> NDArray[np.int16]:
    """Turn user labels (and an optional annotation mask) into a training target.

    Raises:
        ValueError: float or negative labels, class ids the model cannot predict,
            or a mask of another shape.
    """
    labels = np.asarray(labels)
    if labels.dtype.kind not in "uib":
        raise ValueError(
            f"Labels must hold integers (0 = background), got dtype {labels.dtype}. "
            f"Convert them, e.g. labels.astype(int), if the values are whole numbers."
        )
    if labels.dtype.kind == "i" and labels.size and labels.min() < 0:
        raise ValueError("Labels must not be negative (0 is background).")
    if label_mode == "foreground":
        target = (labels > 0).astype(np.int16)
    elif label_mode == "instances":
        if n_classes != 3:
            raise ValueError(
                "Instance targets need a model with 3 classes (background, interior, "
                f"boundary); this one has {n_classes}."
            )
        target = instance_targets(labels)
    else:
        top = int(labels.max()) if labels.size else 0
        if top >= n_classes:
            raise ValueError(
                f"The labels hold class ids up to {top} but the model predicts "
                f"{n_classes} classes (0..{n_classes - 1}). If these are instance "
                f"labels (one id per object), train with label_mode='foreground' "
                f"(CLI: --labels-are instances) or an instance model; otherwise build "
                f"the model with out_channels={top + 1}."
            )
        target = labels.astype(np.int16)
    return target if mask is None else _apply_mask(target, mask)


def _apply_mask(target: NDArray[np.int16], mask: NDArray) -> NDArray[np.int16]:
    """Mark the voxels outside ``mask`` as ``IGNORE_INDEX`` (in place)."""
    mask = np.asarray(mask)
    if mask.shape != target.shape:
        raise ValueError(
            f"The mask's shape {mask.shape} differs from the labels' {target.shape}."
        )
    target[~mask.astype(bool)] = IGNORE_INDEX
    return target


def instance_targets(labels: NDArray) -> NDArray[np.int16]:
    """Background (0) / interior (1) / boundary (2) classes from instance labels.

    A voxel is boundary where its id differs from one of its face neighbours
    (the object's own outer layer, so touching cells get a separating line of
    boundary on both sides). Works for 2D and 3D and for dense labels without
    background.
    """
    labels = np.asarray(labels)
    target = (labels > 0).astype(np.int16)
    boundary = np.zeros(labels.shape, bool)
    for ax in range(labels.ndim):
        if labels.shape[ax] < 2:
            continue
        lo = [slice(None)] * labels.ndim
        hi = [slice(None)] * labels.ndim
        lo[ax], hi[ax] = slice(0, -1), slice(1, None)
        diff = labels[tuple(lo)] != labels[tuple(hi)]
        boundary[tuple(lo)] |= diff
        boundary[tuple(hi)] |= diff
    target[boundary & (labels > 0)] = 2
    return target


def class_mix(labels: NDArray, n_classes: int, label_mode: str) -> NDArray[np.float64]:
    """Fraction of each training class in ``labels`` (all voxels, no mask).

    For a labels layer (a segmentation plus corrections) this is the image's class
    mix as the user now sees it: :class:`TrainData`'s ``class_mix``. ``label_mode``
    must be resolved (not ``"auto"``).
    """
    return _mix(labels_to_target(labels, n_classes, label_mode), n_classes)


def _mix(target: NDArray, n_classes: int) -> NDArray[np.float64]:
    counts = np.bincount(target[target >= 0].ravel(), minlength=n_classes)
    return counts[:n_classes] / max(1, counts.sum())


def resolve_label_mode(label_mode: str, model_cfg: ModelConfig) -> str:
    """``"auto"`` -> ``"instances"`` for instance models, ``"classes"`` otherwise."""
    if label_mode == "auto":
        return "instances" if model_cfg.task == "instance" else "classes"
    return label_mode


def prepare_sample(
    image: NDArray,
    labels: NDArray,
    mask: NDArray | None,
    model_cfg: ModelConfig,
    normalization: NormalizationConfig,
    label_mode: str = "auto",
    channel_axis: int | None = None,
    rng: np.random.Generator | None = None,
) -> TrainSample:
    """Validate and normalise one training image with its labels and mask."""
    image = np.asarray(image)
    spatial_shape = check_image(image, model_cfg, channel_axis)
    if np.asarray(labels).shape != spatial_shape:
        raise ValueError(
            f"The labels' shape {np.asarray(labels).shape} differs from the image's "
            f"spatial shape {spatial_shape}."
        )
    check_not_constant(image)
    label_mode = resolve_label_mode(label_mode, model_cfg)
    target = labels_to_target(labels, model_cfg.out_channels, label_mode)
    label_mix = _mix(target, model_cfg.out_channels)
    if mask is not None:
        target = _apply_mask(target, mask)
    x = normalize_image(image, normalization, channel_axis)
    x = x[None] if channel_axis is None else np.moveaxis(x, channel_axis, 0)
    rng = rng or np.random.default_rng(0)
    valid = target.reshape(-1) != IGNORE_INDEX
    n_annotated = int(valid.sum())
    if n_annotated == 0:
        raise ValueError(
            "Nothing is annotated: the mask leaves no labelled voxel to learn from."
        )
    fg = _subsample_index(np.flatnonzero(target.reshape(-1) > 0), rng)
    annotated = (
        None
        if n_annotated == target.size
        else _subsample_index(np.flatnonzero(valid), rng)
    )
    return TrainSample(
        np.ascontiguousarray(x, np.float32),
        target,
        fg,
        annotated,
        n_annotated,
        label_mix,
    )


def default_patch_shape(
    spatial_shape: Sequence[int], spatial_dims: int, size_multiple: int
) -> tuple[int, ...]:
    """256² for 2D networks, 64³ for 3D ones, shrunk to small images."""
    if spatial_dims == 2:
        yx = tuple(
            min(256, int(math.ceil(s / size_multiple) * size_multiple))
            for s in spatial_shape[-2:]
        )
        return (1, *yx) if len(spatial_shape) == 3 else yx
    return tuple(
        min(64, int(math.ceil(s / size_multiple) * size_multiple))
        for s in spatial_shape
    )


class PatchSampler:
    """Draws augmented training patches from prepared samples.

    Images are chosen in proportion to their annotated voxel count, times their
    ``draw_weights`` when given. A fraction
    ``cfg.foreground_fraction`` of patches is centred on an annotated foreground
    voxel; the others on a random annotated voxel (sparse masks) or anywhere (dense
    labels), so every patch contributes to the loss. A 2D network on 3D data gets
    single-slice patches.
    """

    def __init__(
        self,
        samples: Sequence[TrainSample],
        model_cfg: ModelConfig,
        cfg: TrainConfig,
        rng: np.random.Generator,
        draw_weights: Sequence[float] | None = None,
    ) -> None:
        if not samples:
            raise ValueError("No training samples were given.")
        self.samples = list(samples)
        self.cfg = cfg
        self.rng = rng
        m = model_cfg.size_multiple
        ndim = len(self.samples[0].spatial_shape)
        if any(len(s.spatial_shape) != ndim for s in self.samples):
            raise ValueError("All training images must have the same number of axes.")
        self.slice_mode = model_cfg.spatial_dims == 2 and ndim == 3
        patch = cfg.patch_shape or default_patch_shape(
            np.max([s.spatial_shape for s in self.samples], axis=0),
            model_cfg.spatial_dims,
            m,
        )
        if self.slice_mode and len(patch) == 2:
            patch = (1, *patch)
        if len(patch) != ndim:
            raise ValueError(
                f"patch_shape {patch} does not match the {ndim}D training images."
            )
        checked = patch[1:] if self.slice_mode else patch
        if any(int(p) % m for p in checked):
            raise ValueError(
                f"patch_shape {tuple(patch)} must be made of multiples of {m} (the "
                f"network's size rule)."
            )
        if self.slice_mode and patch[0] != 1:
            raise ValueError("A 2D model on 3D data needs patch_shape (1, Y, X).")
        self.patch_shape = tuple(int(p) for p in patch)
        counts = np.array([s.n_annotated for s in self.samples], np.float64)
        if draw_weights is not None:
            w = np.asarray(draw_weights, np.float64)
            if w.shape != counts.shape or not np.all(np.isfinite(w)) or w.min() < 0:
                raise ValueError(
                    f"draw_weights needs one finite, non-negative weight per image "
                    f"({len(counts)}), got {list(draw_weights)}."
                )
            counts = counts * w
        if counts.sum() <= 0:
            raise ValueError("Every image has draw weight 0: nothing to draw from.")
        self._weights = counts / counts.sum()

    def _pick_corner(self, sample: TrainSample) -> tuple[int, ...]:
        shape = sample.spatial_shape
        use_fg = (
            sample.foreground.size and self.rng.random() < self.cfg.foreground_fraction
        )
        pool = sample.foreground if use_fg else sample.annotated
        if pool is None:
            return tuple(
                int(self.rng.integers(max(1, s - p + 1)))
                for s, p in zip(shape, self.patch_shape)
            )
        centre = np.unravel_index(int(pool[self.rng.integers(pool.size)]), shape)
        corner = []
        for c, s, p in zip(centre, shape, self.patch_shape):
            lo = int(c) - p // 2 + int(self.rng.integers(-(p // 4), p // 4 + 1))
            corner.append(int(np.clip(lo, 0, max(0, s - p))))
        return tuple(corner)

    def _cut(
        self, sample: TrainSample, corner: tuple[int, ...]
    ) -> tuple[NDArray, NDArray]:
        sl = tuple(slice(c, c + p) for c, p in zip(corner, self.patch_shape))
        img = sample.image[(slice(None), *sl)]
        tgt = sample.target[sl]
        if tgt.shape != self.patch_shape:  # image smaller than the patch
            img = pad_to(img, self.patch_shape)
            pads = [(0, p - s) for s, p in zip(tgt.shape, self.patch_shape)]
            tgt = np.pad(tgt, pads, constant_values=IGNORE_INDEX)
        return img, tgt

    def sample_batch(self, batch_size: int) -> tuple[NDArray, NDArray]:
        """Return ``(images (B, C, *patch), targets (B, *patch))``, augmented.

        In slice mode the singleton Z axis is dropped: ``(B, C, Y, X)``.
        """
        images, targets = [], []
        for _ in range(batch_size):
            sample = self.samples[
                int(self.rng.choice(len(self.samples), p=self._weights))
            ]
            img, tgt = self._cut(sample, self._pick_corner(sample))
            if self.slice_mode:
                img, tgt = img[:, 0], tgt[0]
            img, tgt = augment_pair(img, tgt, self.cfg, self.rng)
            images.append(img)
            targets.append(tgt)
        return np.stack(images), np.stack(targets).astype(np.int64)
