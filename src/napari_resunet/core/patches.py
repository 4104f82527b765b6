"""The annotation queue's patches: their size, their ranking by uncertainty and
how much variety the ranking keeps (numpy only).

:func:`rank_patches` turns a per-voxel uncertainty map (from
:mod:`napari_resunet.core.uncertainty`) into a ranked list of patches,
:func:`diversify` keeps near-identical patches from crowding its top,
:func:`blind_order` stands in for the ranking while the network knows nothing,
and :func:`queue_order` puts the three together as the Annotation queue does.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class RankedPatch:
    """One entry of the annotation queue.

    Attributes:
        score: mean uncertainty in the patch.
        slices: where the patch is, in the image's spatial axes.
        composition: mean predicted probability of each class in the patch (empty
            when no probabilities were given); what :func:`diversify` compares.
    """

    score: float
    slices: tuple[slice, ...]
    composition: tuple[float, ...] = ()

    @property
    def start(self) -> tuple[int, ...]:
        return tuple(s.start for s in self.slices)

    @property
    def centre(self) -> tuple[float, ...]:
        return tuple((s.start + s.stop - 1) / 2 for s in self.slices)


def suggest_patch_side(
    spatial_shape: Sequence[int], labels: NDArray | None = None, cube: bool = False
) -> tuple[int, str]:
    """A patch side suited to the image: a few cells with their neighbours.

    With cell labels (one id per object, at least 3 objects) the side is three
    times the cells' median equivalent diameter, so a patch shows whole cells and
    the edges between them; without, 64 pixels (32 for 3D cubes). It is rounded up
    to a multiple of 8 and kept between 16 and 128 (64 for cubes, which hold the
    cube of that many voxels to annotate) and to at most half the image's
    smallest in-plane side, so there are patches to choose from.

    Args:
        spatial_shape: the image's spatial shape (Y, X) or (Z, Y, X).
        labels: instance labels of that shape, or None.
        cube: the patches are 3D cubes (a 3D network) rather than planes.

    Returns:
        ``(side, reason)``: the side in pixels and a few words on why.
    """
    side, reason = (32 if cube else 64), "default"
    if labels is not None and np.shape(labels) == tuple(spatial_shape):
        lab = np.asarray(labels)
        volumetric = lab.ndim == 3 and cube
        if lab.ndim == 3 and not cube:  # plane patches: cell areas in a few planes
            planes = np.unique(np.linspace(0, lab.shape[0] - 1, 8).astype(int))
            sizes = np.concatenate([_object_sizes(lab[z]) for z in planes])
        else:
            sizes = _object_sizes(lab)
        if sizes.size >= 3:
            size = float(np.median(sizes))
            if volumetric:  # the diameter of a ball of that volume
                d = (6.0 * size / math.pi) ** (1.0 / 3.0)
            else:  # of a disc of that area
                d = 2.0 * math.sqrt(size / math.pi)
            side = 3.0 * d
            reason = f"3 x the cells' median diameter, {d:.0f} px"
    upper = min(64 if cube else 128, max(16, 8 * (min(spatial_shape[-2:]) // 16)))
    side_px = int(min(max(8 * math.ceil(side / 8), 16), upper))
    return side_px, reason


def queue_patch_shape(
    spatial_shape: Sequence[int],
    model_dims: int,
    side: int = 0,
    labels: NDArray | None = None,
) -> tuple[tuple[int, ...], str]:
    """The queue's patch shape for an image seen by a ``model_dims`` network.

    Squares in 2D; for a stack, one-slice squares with a 2D network (it reviews
    slice by slice) and cubes with a 3D one (Z clipped to the stack).

    Args:
        spatial_shape: the image's spatial shape.
        model_dims: the network's spatial dimensions (2 or 3).
        side: the patch side in pixels; 0 chooses one with
            :func:`suggest_patch_side` (from cell ``labels`` when given).
        labels: instance labels of the image, or None.

    Returns:
        ``(shape, reason)``: the patch shape and, for an automatic side, why that
        side ("" otherwise).
    """
    reason = ""
    cube = len(spatial_shape) == 3 and model_dims == 3
    if side == 0:
        side, reason = suggest_patch_side(spatial_shape, labels, cube)
    if len(spatial_shape) == 2:
        return (side, side), reason
    z = 1 if model_dims == 2 else min(side, int(spatial_shape[0]))
    return (z, side, side), reason


def _object_sizes(labels: NDArray) -> NDArray[np.int64]:
    """Voxel count of each nonzero id. ``np.unique`` rather than ``bincount``:
    ids can be large (EM body ids reach 10^9) and a count per possible id would
    not fit in memory."""
    ids, counts = np.unique(labels, return_counts=True)
    return counts[ids != 0].astype(np.int64)


def rank_patches(
    uncertainty: NDArray,
    patch_shape: Sequence[int],
    exclude: NDArray | None = None,
    top_k: int | None = None,
    probabilities: NDArray | None = None,
    variety: float = 0.0,
    edge_margin: int = 0,
) -> list[RankedPatch]:
    """Non-overlapping patches ranked by mean uncertainty, most uncertain first.

    Args:
        uncertainty: per-voxel map (any non-negative score).
        patch_shape: patch size per axis (clipped to the image). Every patch has
            this size; the last one along an axis overlaps its neighbour.
        exclude: boolean map of voxels already reviewed; a patch that is more than
            half reviewed is left out.
        top_k: keep only the best ``top_k``.
        probabilities: ``(C, *spatial)`` class probabilities; each patch then
            records its :attr:`RankedPatch.composition`.
        variety: with probabilities, reorder by :func:`diversify` with this
            strength (0 = pure uncertainty order).
        edge_margin: voxels closer than this to the image's edge (along the axes
            a patch spans more than one voxel of) do not count toward a patch's
            score; a patch at the edge is scored by its inner part.
    """
    u = np.asarray(uncertainty, np.float32)
    if len(patch_shape) != u.ndim:
        raise ValueError(
            f"patch_shape {tuple(patch_shape)} does not match a {u.ndim}D map."
        )
    patch = [min(int(p), s) for p, s in zip(patch_shape, u.shape)]
    # full-size patches only: the last one per axis sits flush with the image end
    # (overlapping its neighbour) rather than being a thin sliver, whose mean
    # uncertainty would be noisy and whose annotation would buy little
    ranges = [
        sorted({*range(0, s - p + 1, max(1, p)), s - p}) for s, p in zip(u.shape, patch)
    ]
    probs = None if probabilities is None else np.asarray(probabilities)
    if probs is not None and probs.shape[1:] != u.shape:
        raise ValueError(
            f"probabilities {probs.shape} do not match the {u.shape} uncertainty map."
        )
    inner = None
    if edge_margin > 0:
        inner = np.ones(u.shape, bool)
        for axis, (s, p) in enumerate(zip(u.shape, patch)):
            m = min(int(edge_margin), (s - 1) // 2) if p > 1 else 0
            if m:
                edge = [slice(None)] * u.ndim
                edge[axis] = np.r_[0:m, s - m : s]
                inner[tuple(edge)] = False
    out = []
    for start in itertools.product(*ranges):
        sl = tuple(slice(a, a + p) for a, p in zip(start, patch))
        if exclude is not None and np.asarray(exclude[sl], bool).mean() > 0.5:
            continue
        values = u[sl]
        keep = None if inner is None else inner[sl]
        if keep is not None and keep.any():
            values = values[keep]
        comp: tuple[float, ...] = ()
        if probs is not None:
            comp = tuple(
                float(v)
                for v in probs[(slice(None), *sl)].reshape(len(probs), -1).mean(1)
            )
        out.append(RankedPatch(float(values.mean()), sl, comp))
    out.sort(key=lambda r: (-r.score, r.start))
    if variety > 0 and probs is not None:
        out = [out[i] for i in diversify(out, variety)]
    return out[:top_k] if top_k else out


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
        patch_shape: the patches' shape (:func:`queue_patch_shape`).
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
