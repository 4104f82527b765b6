"""A second opinion for the annotation queue: query by committee (no Qt).

A network's own uncertainty says where its probabilities are soft, not where its
cells are wrong: a confidently merged pair of nuclei scores low. A committee of
two unlike learners trained on the same labels points at the wrong cells
instead (query by committee, Seung et al. 1992): where they disagree at least one
is wrong. The second learner here is an ilastik-style random forest on
scikit-image's ``multiscale_basic_features``, trained on the user's corrections
(cell against background); its cells come from its foreground by a distance
watershed. Every pixel of a cell that the other learner's cells do not match at
IoU 0.5 scores 1, the rest 0, so a patch's mean is the share of it covered by
disputed cells.

Why: with the simulated user on BBBC039 nuclei the true instance errors, ranked
the same way, beat random patches by 0.04-0.06 F1, and the network's foreground
entropy (the queue's score before) was level with or behind random patches on
two pools of fields of four. Ranked by the committee the queue was ahead of
random patches on three of those pools and level on the fourth, over rounds
3-5 ahead by 0.017 F1 on average against 0.003 (40 runs on fresh seeds); on
eight fields it was level with the score before on one pool and further behind
random patches on the pool where both fall (``docs/benchmarks.md``, "query by
committee").

For 2D cell networks (one image or a stack of 2D fields) that have learnt
something: EM boundaries and 3D volumes were not measured this way, and a forest
on 3D features would not fit a laptop's memory for a real volume.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_resunet.core.config import CommitteeConfig, InstanceConfig, ModelConfig
from napari_resunet.core.inference.postprocess import probabilities_to_instances
from napari_resunet.core.metrics import iou_matrix
from napari_resunet.core.normalize import normalize_image
from napari_resunet.core.progress import Progress


def committee_applies(model_config: ModelConfig) -> bool:
    """Whether the queue can ask a forest's opinion of this network: a 2D cell
    network (the case the committee was measured on)."""
    return model_config.task == "instance" and model_config.spatial_dims == 2


def _planes(spatial_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Index prefixes of the 2D planes of a ``(Y, X)`` image or ``(..., Y, X)``
    stack (``[()]`` for a single image)."""
    return list(np.ndindex(*spatial_shape[:-2]))


def pixel_features(
    image: NDArray,
    normalization: Any,
    channel_axis: int | None = None,
    cfg: CommitteeConfig | None = None,
) -> NDArray[np.float32]:
    """``(*spatial, F)`` float32 features of every pixel, plane by plane.

    The image is first scaled as the network scales it (``normalization``, a
    :class:`~napari_resunet.core.config.NormalizationConfig`), so the features
    of two images of one kind are comparable. Intensity, gradient magnitude and
    Hessian eigenvalues at Gaussian scales from ``sigma_min`` to ``sigma_max``.
    """
    from skimage.feature import multiscale_basic_features

    cfg = cfg or CommitteeConfig()
    x = normalize_image(np.asarray(image), normalization, channel_axis)
    if channel_axis is not None:
        x = np.moveaxis(x, channel_axis, -1)  # (*spatial, C)
    spatial = x.shape[:-1] if channel_axis is not None else x.shape
    if len(spatial) < 2:
        raise ValueError(f"Features need a 2D image or a stack, got {x.shape}.")
    out = None
    for prefix in _planes(spatial):
        f = multiscale_basic_features(
            x[prefix],
            intensity=True,
            edges=True,
            texture=True,
            sigma_min=cfg.sigma_min,
            sigma_max=cfg.sigma_max,
            channel_axis=-1 if channel_axis is not None else None,
        ).astype(np.float32, copy=False)
        if out is None:
            out = np.empty((*spatial, f.shape[-1]), np.float32)
        out[prefix] = f
    assert out is not None
    return out


def fit_forest(
    features: NDArray,
    labels: NDArray,
    mask: NDArray,
    cfg: CommitteeConfig | None = None,
) -> Any:
    """A random forest (scikit-learn) telling cells (``labels > 0``) from
    background (``labels == 0``), trained on the pixels in ``mask`` (the user's
    corrections).

    Returns ``None`` while either class has fewer than ``cfg.min_class_pixels``
    corrected pixels: a forest that has seen one class has no opinion to give.
    """
    from sklearn.ensemble import RandomForestClassifier

    cfg = cfg or CommitteeConfig()
    mask = np.asarray(mask, bool)
    if mask.shape != features.shape[:-1] or labels.shape != mask.shape:
        raise ValueError(
            f"features {features.shape}, labels {labels.shape} and mask "
            f"{mask.shape} do not match."
        )
    y = np.asarray(labels)[mask] > 0
    n_cell = int(y.sum())
    if min(n_cell, y.size - n_cell) < cfg.min_class_pixels:
        return None
    x = features[mask]
    if y.size > cfg.max_train_pixels:
        keep = np.random.default_rng(cfg.seed).choice(
            y.size, cfg.max_train_pixels, replace=False
        )
        x, y = x[keep], y[keep]
    per_tree = cfg.tree_samples if 0 < cfg.tree_samples < y.size else None
    forest = RandomForestClassifier(
        n_estimators=cfg.n_trees,
        max_depth=cfg.max_depth,
        max_samples=per_tree,
        n_jobs=-1,
        random_state=cfg.seed,
    )
    return forest.fit(x, y)


def forest_cells(
    forest: Any, features: NDArray, cfg: CommitteeConfig | None = None
) -> NDArray[np.uint32]:
    """The forest's cells, plane by plane: its foreground split by a distance
    watershed (it sees no boundaries between touching cells)."""
    cfg = cfg or CommitteeConfig()
    spatial = features.shape[:-1]
    icfg = InstanceConfig(seeds="distance", seed_min_distance=cfg.seed_min_distance)
    out = np.zeros(spatial, np.uint32)
    for prefix in _planes(spatial):
        f = features[prefix]
        p = forest.predict_proba(f.reshape(-1, f.shape[-1]))[:, 1]
        p = p.reshape(f.shape[:-1]).astype(np.float32)
        probs = np.stack([1.0 - p, p, np.zeros_like(p)])
        out[prefix] = probabilities_to_instances(probs, icfg)
    return out


def disputed_cells(cells_a: NDArray, cells_b: NDArray) -> NDArray[np.float32]:
    """1 on every pixel of a cell of either labelling that the other's cells do
    not match at IoU 0.5, else 0 (per 2D plane for stacks; one plane's cell ids
    are its own)."""
    a, b = np.asarray(cells_a), np.asarray(cells_b)
    if a.shape != b.shape:
        raise ValueError(f"Cell labellings {a.shape} and {b.shape} differ in shape.")
    out = np.zeros(a.shape, np.float32)
    for prefix in _planes(a.shape):
        pa, pb = a[prefix], b[prefix]
        iou, ids_a, ids_b = iou_matrix(pa, pb)
        good = iou >= 0.5  # (n_a, n_b); either side may be empty
        lonely_a = ids_a[~good.any(1)] if ids_a.size else ids_a
        lonely_b = ids_b[~good.any(0)] if ids_b.size else ids_b
        out[prefix] = np.isin(pa, lonely_a) | np.isin(pb, lonely_b)
    return out


@dataclass
class CommitteeResult:
    """What :func:`iter_committee` found.

    Attributes:
        score: per-pixel queue score (:func:`disputed_cells`), or ``None`` when
            no forest could be trained yet (see ``reason``).
        features: the image's features, to pass back for the next ranking of
            the same image (computing them is most of the cost).
        reason: why there is no score, for the user.
    """

    score: NDArray[np.float32] | None
    features: NDArray[np.float32] | None
    reason: str = ""


def iter_committee(
    image: NDArray,
    network_cells: NDArray,
    labels: NDArray,
    mask: NDArray,
    normalization: Any,
    channel_axis: int | None = None,
    cfg: CommitteeConfig | None = None,
    features: NDArray | None = None,
) -> Generator[Progress, None, CommitteeResult]:
    """Where a network's cells and a forest's disagree (module docstring).

    Args:
        image: the image (2D, or a stack of 2D fields), as the network reads it.
        network_cells: the network's cells (one id per cell, per plane), of the
            image's spatial shape.
        labels: the labels layer: cells (> 0) and background (0).
        mask: the pixels of ``labels`` the user corrected or reviewed: what the
            forest learns from (as a fine-tuning round would).
        normalization: the network's intensity scaling, applied before the
            features are computed.
        channel_axis: the image's channel axis, if any.
        cfg: the forest's settings.
        features: :attr:`CommitteeResult.features` from an earlier call on this
            very image (not checked here).

    Yields:
        :class:`Progress` after the features, the fit and the forest's cells.
    """
    cfg = cfg or CommitteeConfig()
    spatial = np.shape(network_cells)
    n_px = int(np.prod(spatial))
    if n_px > cfg.max_pixels:
        return CommitteeResult(
            None,
            None,
            f"the image's {n_px} pixels are more than the forest's {cfg.max_pixels}",
        )
    if np.shape(labels) != spatial or np.shape(mask) != spatial:
        raise ValueError(
            f"labels {np.shape(labels)} and mask {np.shape(mask)} must match the "
            f"cells' shape {spatial}."
        )
    if features is None or features.shape[:-1] != spatial:
        features = pixel_features(image, normalization, channel_axis, cfg)
    yield Progress(1, 3, "features", "committee")
    forest = fit_forest(features, np.asarray(labels), mask, cfg)
    if forest is None:
        return CommitteeResult(
            None,
            features,
            f"fewer than {cfg.min_class_pixels} corrected pixels of cells or of "
            "background",
        )
    yield Progress(2, 3, "forest trained", "committee")
    cells = forest_cells(forest, features, cfg)
    score = disputed_cells(network_cells, cells)
    yield Progress(3, 3, "forest's cells", "committee")
    return CommitteeResult(score, features)
