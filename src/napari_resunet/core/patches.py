"""The annotation queue's patches: their size and their ranking by uncertainty
(numpy only).

:func:`suggest_patch_side` and :func:`queue_patch_shape` size the patches to the
data; :func:`patch_starts` lays them out; :func:`rank_patches` turns a per-voxel
uncertainty map (from :mod:`napari_resunet.core.uncertainty`) into a ranked list
of them. How the queue then orders that list (variety, a blind first round,
typicality) lives in :mod:`napari_resunet.core.ordering`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

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


def patch_starts(size: int, patch: int) -> list[int]:
    """Where the patches along one axis start: as few full-size patches as cover
    ``size``, spread evenly, so that where the size is not a multiple of the
    patch the overlap is shared out between neighbours.

    Full-size patches rather than a thin sliver at the end, whose mean score
    would be noisy and whose annotation would buy little. Evenly spread rather
    than a last patch flush with the end: on a 520-pixel side with 64-pixel
    patches that one overlapped its neighbour by 56 rows, so the queue listed
    nearly the same place twice with nearly the same score and a round could
    spend two of its picks there (a fifth of one round's annotation on BBBC039,
    docs/benchmarks.md). Spread out, neighbours overlap by 7 rows there. Where
    ``size`` is a multiple of ``patch`` the patches abut.

    Args:
        size: the axis' length.
        patch: the patch's length along it (at most ``size``).

    Returns:
        The starts, ascending; the first is 0 and the last ``size - patch``.
    """
    size, patch = int(size), int(patch)
    if not 0 < patch <= size:
        raise ValueError(f"a patch of {patch} does not fit an axis of {size}.")
    n = math.ceil(size / patch)
    if n == 1:
        return [0]
    return [round(i * (size - patch) / (n - 1)) for i in range(n)]


def rank_patches(
    uncertainty: NDArray,
    patch_shape: Sequence[int],
    exclude: NDArray | None = None,
    top_k: int | None = None,
    probabilities: NDArray | None = None,
    edge_margin: int = 0,
) -> list[RankedPatch]:
    """The image's patches ranked by mean uncertainty, most uncertain first.

    Args:
        uncertainty: per-voxel map (any non-negative score).
        patch_shape: patch size per axis (clipped to the image). Every patch has
            this size; they tile the image as :func:`patch_starts` places them.
        exclude: boolean map of voxels already reviewed; a patch that is more than
            half reviewed is left out.
        top_k: keep only the best ``top_k``.
        probabilities: ``(C, *spatial)`` class probabilities; each patch then
            records its :attr:`RankedPatch.composition`.
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
    ranges = [patch_starts(s, p) for s, p in zip(u.shape, patch)]
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
    return out[:top_k] if top_k else out
