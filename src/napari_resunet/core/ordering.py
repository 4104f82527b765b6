"""The order in which the Annotation queue lists an image's patches (numpy only).

:func:`~napari_resunet.core.patches.rank_patches` ranks the patches by
uncertainty; here :func:`diversify` keeps near-identical patches from crowding
its top, :func:`blind_order` stands in for the ranking while the network knows
nothing, :func:`patch_typicality` weighs a patch by how typical it is of the
image, and :func:`queue_order` puts them together as the Annotation queue does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from napari_resunet.core.patches import RankedPatch, rank_patches

# the share of an image a network must see as background (class 0) for the
# queue's automatic variety to be on
AUTO_VARIETY_BACKGROUND = 0.2


def auto_variety(probabilities: NDArray | Sequence[NDArray]) -> float:
    """The queue's variety when left to the plugin: 1.0 where the network sees at
    least :data:`AUTO_VARIETY_BACKGROUND` of the image as background, else 0.0.

    Much background means many blank patches that look alike to the network,
    and a young network is unsure of all of them in the same way: on BBBC039
    nuclei the plain queue spent all its picks of three rounds on one field's
    empty background, and with variety 1.0 the simulated user learnt faster
    than in plain order, on two pools of fields. Where there is no background (EM
    neuropil: every voxel is a cell's interior or a membrane) the patches'
    class mixes differ little, variety would reorder them by those small
    differences instead of by uncertainty, and on FlyEM it lowered the first
    round (docs/benchmarks.md).

    Args:
        probabilities: ``(C, *spatial)`` probabilities, or several such arrays
            (the images ranked together), weighted by their sizes.
    """
    return variety_for(sees_background(probabilities))


def variety_for(background: bool) -> float:
    """:func:`auto_variety` from :func:`sees_background`'s answer, for a caller
    that has it already."""
    return 1.0 if background else 0.0


def sees_background(probabilities: NDArray | Sequence[NDArray]) -> bool:
    """Whether the network sees at least :data:`AUTO_VARIETY_BACKGROUND` of the
    image as background (class 0): cells in a background, as nuclei, rather than
    tissue where every voxel is a cell, as EM neuropil. The line the queue's
    automatic choices draw.

    Args:
        probabilities: ``(C, *spatial)`` probabilities, or several such arrays
            (the images ranked together), weighted by their sizes.
    """
    arrays = [probabilities] if isinstance(probabilities, np.ndarray) else probabilities
    backgrounds = [np.asarray(p)[0] for p in arrays]
    size = sum(b.size for b in backgrounds)
    total = sum(float(b.sum()) for b in backgrounds)
    return bool(size) and total / size >= AUTO_VARIETY_BACKGROUND


def diversify(
    entries: Sequence[RankedPatch],
    strength: float = 1.0,
    radius: float = 0.25,
    limit: int = 256,
) -> list[int]:
    """Order patches so that near-identical ones do not crowd the top.

    Pure uncertainty order puts look-alikes side by side: a young network is
    unsure of all empty background in the same way, and its top four patches can
    all be blank corners of one field, three of which teach nothing the first did
    not. Each next entry is chosen greedily (maximal marginal relevance) by its
    score times ``1 - strength * similarity``, where similarity to the entries
    already chosen is ``1 - TV / radius`` (clipped to [0, 1]) and TV is the total
    variation distance between predicted class compositions: patches whose class
    mix differs by ``radius`` or more do not hold each other back.

    Args:
        entries: patches sorted by score, most uncertain first, with
            compositions (from :func:`rank_patches` with ``probabilities``); they
            may come from several images.
        strength: 0 keeps the score order, 1 lets an identical patch drop to the
            back.
        radius: total variation distance at which patches count as different.
        limit: only the first ``limit`` entries are reordered (the cost is
            quadratic); the rest keep their order.

    Returns:
        Indices into ``entries`` in the new order.
    """
    n = len(entries)
    head = min(n, limit)
    if head < 2 or strength <= 0 or not all(e.composition for e in entries[:head]):
        return list(range(n))
    scores = np.array([e.score for e in entries[:head]], np.float64)
    comps = np.array([e.composition for e in entries[:head]], np.float64)
    similarity = np.zeros(head)
    free = np.ones(head, bool)
    order: list[int] = []
    for _ in range(head):
        gain = np.where(free, scores * (1.0 - strength * similarity), -np.inf)
        j = int(np.argmax(gain))  # ties: the earlier (higher-scored) entry
        order.append(j)
        free[j] = False
        tv = 0.5 * np.abs(comps - comps[j]).sum(axis=1)
        similarity = np.maximum(similarity, np.clip(1.0 - tv / radius, 0.0, 1.0))
    return order + list(range(head, n))


def blind_order(
    entries: Sequence[RankedPatch],
    seed: int = 0,
    groups: Sequence[int] | None = None,
) -> list[int]:
    """A random order of the patches: the queue's order for a network that has
    learnt nothing yet.

    A new network's uncertainty is not noise without a pattern but a bias: on
    BBBC039 nuclei its first four patches held a quarter to a third of nucleus
    pixels (random patches 14-25%), were almost never blank, and on one pool the
    same crowded corner was among them in 8 of 10 seeds, where the first round
    then scored 0.04 F1 below a blind one (docs/benchmarks.md). A first round
    cannot be weighted to the image's class mix, so the network learnt from
    crowded patches alone. On FlyEM from an untrained network (three seeds)
    one ranked first round left a network that never drew a boundary in five
    rounds; blind, all three recovered. Once it has learnt something its
    uncertainty leads.

    Each patch draws its place from its position (and group) alone, so the order
    of the patches left is the same however many have been reviewed, and the
    same every time the queue is refreshed.

    Args:
        entries: the patches, in any order.
        seed: seeds the draw.
        groups: one id per entry (e.g. the image it lies in, when several are
            ranked together), so that patches at the same place in different
            images draw different places in the order.

    Returns:
        Indices into ``entries`` in the new order.
    """
    ids = [0] * len(entries) if groups is None else [int(g) for g in groups]
    if len(ids) != len(entries):
        raise ValueError(f"{len(ids)} groups for {len(entries)} patches.")
    keys = [
        float(np.random.default_rng([int(seed), g, *e.start]).random())
        for g, e in zip(ids, entries)
    ]
    return sorted(
        range(len(entries)), key=lambda i: (keys[i], ids[i], entries[i].start)
    )


def queue_order(
    scores: NDArray,
    patch_shape: Sequence[int],
    exclude: NDArray | None = None,
    probabilities: NDArray | None = None,
    variety: float = 0.0,
    blind: bool = False,
    typicality: Mapping[tuple[int, ...], float] | None = None,
) -> list[RankedPatch]:
    """The Annotation queue's patches of one image, in the order it lists them.

    Ranked by :func:`rank_patches` (mean score, reviewed patches left out), each
    score times the patch's ``typicality`` when given, then reordered by
    :func:`diversify` with ``variety``; or with ``blind`` (a network that has
    learnt nothing, whose uncertainty leans towards crowded patches) in
    :func:`blind_order`'s random order, with no variety.

    Args:
        scores: the per-voxel queue score (``uncertainty.queue_scores``).
        patch_shape: the patches' shape
            (:func:`~napari_resunet.core.patches.queue_patch_shape`).
        exclude: voxels already reviewed.
        probabilities: ``(C, *spatial)`` class probabilities, for the variety.
        variety: :func:`diversify`'s strength.
        blind: list the patches in a random order instead.
        typicality: :func:`patch_typicality` of these patches, by start; the
            listed scores are then the weighted ones.
    """
    entries = rank_patches(
        scores, patch_shape, exclude=exclude, probabilities=probabilities
    )
    if blind:
        return [entries[i] for i in blind_order(entries)]
    if typicality is not None:
        entries = [
            replace(e, score=e.score * typicality.get(e.start, 1.0)) for e in entries
        ]
        entries.sort(key=lambda e: (-e.score, e.start))
    if variety > 0 and probabilities is not None:
        entries = [entries[i] for i in diversify(entries, variety)]
    return entries


# reference patches a patch's typicality is measured against, at most (a
# seeded sample beyond): the pairwise distances cost patches x references
TYPICALITY_REFERENCES = 2000


def patch_descriptions(
    features: NDArray, slices: Sequence[tuple[slice, ...]]
) -> NDArray:
    """``(patches, 2F)``: the mean and standard deviation of each pixel feature
    of ``features`` (``(*spatial, F)``) in each patch, one row per patch."""
    axes = tuple(range(features.ndim - 1))  # the spatial ones; features are last
    return np.array(
        [
            np.concatenate([features[sl].mean(axes), features[sl].std(axes)])
            for sl in slices
        ]
    )


def patch_typicality(
    features: NDArray, patch_shape: Sequence[int], seed: int = 0
) -> dict[tuple[int, ...], float]:
    """How typical each patch of an image is of the image's patches (information
    density, Settles & Craven 2008), by the patch's start.

    A patch is described by the mean and standard deviation of each pixel
    feature in it (standardised over the patches); its typicality is the mean
    over the image's patches (at most :data:`TYPICALITY_REFERENCES` of them) of
    ``exp(-d^2 / h)``, with ``d`` the distance between the two descriptions and
    ``h`` the median of ``d^2``. A patch unlike most of the image (debris, an odd
    field of a stack) scores low. The patches are :func:`rank_patches`' grid.

    Args:
        features: ``(*spatial, F)`` pixel features (``committee.pixel_features``).
        patch_shape: the patches' shape.
        seed: seeds the sample of reference patches.
    """
    grid = rank_patches(np.zeros(features.shape[:-1], np.float32), patch_shape)
    x = patch_descriptions(features, [e.slices for e in grid]).astype(np.float64)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    ref = x
    if len(x) > TYPICALITY_REFERENCES:
        pick = np.random.default_rng(seed).choice(
            len(x), TYPICALITY_REFERENCES, replace=False
        )
        ref = x[np.sort(pick)]
    sq = (x**2).sum(1)
    d2 = np.maximum(sq[:, None] + (ref**2).sum(1)[None] - 2.0 * x @ ref.T, 0.0)
    h = float(np.median(d2)) or 1.0
    density = np.exp(-d2 / h).mean(1)
    return {e.start: float(w) for e, w in zip(grid, density)}
