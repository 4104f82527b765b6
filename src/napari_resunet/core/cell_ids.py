"""Cell ids across predictions (numpy only).

A cell model's watershed numbers its cells afresh at every prediction, and the
user repaints, splits and reviews cells in between. :func:`continue_ids` keeps
the id each cell is shown with; :func:`join_remainders` and
:func:`join_across_boxes` keep the rims of repainted cells and the parts of
cells cut by a reviewed patch's face with the cell they belong to.
:func:`napari_resunet.core.edits.merge_prediction` calls all three.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

# above this many voxels, cells are matched on a regular subsample (every 2nd
# voxel per axis and so on): 0.6 s instead of 3.3 s for the 128x512x512 volume
# of benchmarks/bench_merge.py, with the same result there; only cells of a few
# voxels can miss their match (they get a new id)
MATCH_SAMPLE = 1 << 22


def continue_ids(
    prediction: NDArray,
    current: NDArray,
    shown: NDArray[np.bool_],
    min_iou: float = 0.5,
) -> NDArray:
    """``prediction`` with each cell under the id of the cell it continues.

    A predicted cell whose overlap with a cell of ``current`` (counted over the
    ``shown`` voxels only) is more than ``min_iou`` of their union takes that
    cell's id. With ``min_iou >= 0.5`` at most one predicted cell can match a
    shown one. Every other predicted cell gets a new id above all ids in
    ``current``, numbered in the order of its predicted id.

    Without this, the labels of a cell model were renumbered at every prediction
    (a watershed numbers its seeds afresh): every cell changed colour after each
    fine-tuning round, which hid what the round had changed, and every
    foreground voxel had to be written to the layer again on the viewer's thread
    (1.7 s for 13 million voxels).

    Args:
        prediction: object ids of a new prediction (0 = background).
        current: the labels shown now, of the dtype to return.
        shown: the voxels whose ids count as shown (the unedited ones).
        min_iou: the overlap a match needs.

    Returns:
        A new array of ``current``'s dtype.

    Raises:
        ValueError: the new ids do not fit ``current``'s dtype.
    """
    prediction = np.asarray(prediction)
    current = np.asarray(current)
    step = 1
    while current.size // step**current.ndim > MATCH_SAMPLE:
        step += 1
    sample = (slice(None, None, step),) * current.ndim
    p, c, u = prediction[sample], current[sample], shown[sample]
    p_ids, p_sizes = np.unique(p[u & (p > 0)], return_counts=True)
    c_ids, c_sizes = np.unique(c[u & (c > 0)], return_counts=True)
    both = u & (p > 0) & (c > 0)
    src = np.zeros(0, prediction.dtype)
    dst = np.zeros(0, current.dtype)
    if both.any():
        pair_p, pair_c, overlap = _pair_counts(p[both], c[both])
        size_p = p_sizes[np.searchsorted(p_ids, pair_p)]
        size_c = c_sizes[np.searchsorted(c_ids, pair_c)]
        iou = overlap / (size_p + size_c - overlap)
        ok = iou > min_iou
        # one to one even for min_iou < 0.5: the best pair first, each id once
        order = np.argsort(-iou[ok], kind="stable")
        pair_p, pair_c = pair_p[ok][order], pair_c[ok][order]
        _, first_p = np.unique(pair_p, return_index=True)
        keep = np.zeros(pair_p.size, bool)
        keep[first_p] = True
        _, first_c = np.unique(pair_c[keep], return_index=True)
        chosen = np.flatnonzero(keep)[first_c]
        src, dst = pair_p[chosen], pair_c[chosen].astype(current.dtype)
    # every predicted id, matched or new; a predicted id space below 2^24 (a
    # watershed's) is relabelled through a table, several times faster than a
    # sort of the whole volume
    small = (
        prediction.dtype.kind in "ui"
        and int(prediction.min(initial=0)) >= 0
        and int(prediction.max(initial=0)) < 2**24
    )
    if small:
        present = np.zeros(int(prediction.max(initial=0)) + 1, bool)
        present[prediction] = True
        all_ids = np.flatnonzero(present)
    else:
        all_ids = np.unique(prediction)
    all_ids = all_ids[all_ids > 0].astype(prediction.dtype)
    new = np.setdiff1d(all_ids, src)
    top = int(current.max(initial=0))
    if new.size and top + new.size > np.iinfo(current.dtype).max:
        raise ValueError("Too many objects for the labels layer's dtype.")
    keys = np.concatenate([src, new]).astype(prediction.dtype)
    values = np.concatenate(
        [dst, np.arange(top + 1, top + 1 + new.size, dtype=np.int64)]
    ).astype(current.dtype)
    if small:
        table = np.zeros(present.size, current.dtype)
        table[keys] = values
        return table[prediction]
    order = np.argsort(keys)
    keys, values = keys[order], values[order]
    out = np.zeros(current.shape, current.dtype)
    fg = prediction > 0
    out[fg] = values[np.searchsorted(keys, prediction[fg])]
    return out


def _pair_counts(a: NDArray, b: NDArray) -> tuple[NDArray, NDArray, NDArray]:
    """Each pair of ids that meet in ``a`` and ``b`` (1-D, same length) and how
    often: ``(a_id, b_id, count)``, sorted by ``a_id`` then ``b_id``. The pairs
    are coded over the ids present, not the id values: ids can be large."""
    # np.unique then searchsorted: the same indices as return_inverse, faster
    a_all, b_all = np.unique(a), np.unique(b)
    a_inv = np.searchsorted(a_all, a).astype(np.int64)
    b_inv = np.searchsorted(b_all, b)
    pair, counts = np.unique(a_inv * b_all.size + b_inv, return_counts=True)
    return a_all[pair // b_all.size], b_all[pair % b_all.size], counts


def _isin_ids(ids: NDArray, keys: NDArray) -> NDArray[np.bool_]:
    """``np.isin`` for label ids: with keys below 2^24 (the usual case) a lookup
    table, several times faster than ``np.isin`` on a large volume (this runs
    after every segmentation); larger ids fall back to it."""
    keys = np.asarray(keys)
    if keys.size == 0:
        return np.zeros(np.shape(ids), bool)
    ids = np.asarray(ids)
    top, low = int(keys.max()), int(keys.min())
    # negative ids are clipped onto 0: exact only when 0 is not a key
    if (
        top >= 2**24
        or low < 0
        or ids.dtype.kind not in "ui"
        or (low == 0 and ids.dtype.kind == "i")
    ):
        return np.isin(ids, keys)
    table = np.zeros(top + 2, bool)  # the last entry: every id above the keys
    table[keys] = True
    return table[np.clip(ids, 0, top + 1)]


def _remap_unedited(
    merged: NDArray, source: NDArray, edited: NDArray, keys: Any, values: Any
) -> None:
    """Where ``source`` holds one of the sorted ``keys`` outside ``edited``, write
    the matching entry of ``values`` into ``merged`` (in place)."""
    keys = np.asarray(keys, dtype=merged.dtype)
    values = np.asarray(values, dtype=merged.dtype)
    change = ~edited & _isin_ids(source, keys)
    merged[change] = values[np.searchsorted(keys, source[change])]


def join_remainders(
    merged: NDArray,
    predicted: NDArray,
    edited: NDArray[np.bool_],
    fraction: float = 0.5,
) -> NDArray:
    """Give a predicted cell's unedited voxels to the painted cells it mostly is.

    The user's voxels are kept as they are, so a predicted cell that overlaps a
    cell the user painted keeps only its voxels outside the painting, under a new
    id: where the user repainted a cell whole and the new prediction is a little
    larger, a thin rim or crescent of another colour appears around it (12 new
    fragments of 1-28 px after repainting 20 nuclei of the 2D sample whole; one
    after this). Here a predicted object with at least ``fraction`` of its voxels
    on painted cells gives its remaining voxels to them: all to one cell when that
    cell holds 90% of the overlap, else each voxel to the nearest painted voxel
    (a merged prediction the user split into two cells). A predicted cell that only
    grazes painted ones (a missed cell painted next to it) keeps its own id, and
    so does one over what the user erased.

    Args:
        merged: object ids, kept voxels included (modified in place).
        predicted: the new prediction in ``merged``'s id space.
        edited: the user's voxels.
        fraction: how much of the predicted object must lie on painted cells.

    Returns:
        ``merged``.
    """
    inside = edited & (predicted > 0) & (merged > 0)
    if not inside.any() or edited.all():
        return merged
    p_ids, k_ids, counts = _pair_counts(predicted[inside], merged[inside])
    # per predicted object (p_ids is sorted): the kept object it overlaps most
    # and its overlap with all of them
    order = np.lexsort((-counts, p_ids))
    first = np.ones(order.size, bool)
    first[1:] = p_ids[order][1:] != p_ids[order][:-1]
    starts = np.flatnonzero(first)
    best = order[starts]
    p_best, k_best = p_ids[best], k_ids[best]
    overlap = np.add.reduceat(counts[order], starts)
    # their sizes, counted only over the voxels of those objects
    candidates = _isin_ids(predicted, p_best)
    ids, sizes = np.unique(predicted[candidates], return_counts=True)
    size = sizes[np.searchsorted(ids, p_best)]
    join = overlap >= fraction * size
    # one kept cell holds (nearly) all of the overlap: its rim is that cell's;
    # a few voxels on a neighbour (edges never match exactly) do not split it
    single = join & (counts[best] >= 0.9 * overlap)
    if single.any():
        # p_best is sorted (np.unique's order); unedited voxels: merged == predicted
        _remap_unedited(merged, predicted, edited, p_best[single], k_best[single])
    several = p_best[join & ~single]
    if several.size:
        _split_remainders(merged, predicted, edited, several)
    return merged


def _split_remainders(
    merged: NDArray, predicted: NDArray, edited: NDArray, objects: NDArray
) -> None:
    """Give each unedited voxel of ``objects`` (predicted ids) the id of the
    nearest painted voxel the object overlaps, one bounding box at a time."""
    coords = np.nonzero(_isin_ids(predicted, objects))
    at = predicted[coords]
    by_id = np.argsort(at, kind="stable")
    bounds = (
        np.searchsorted(at[by_id], objects, side="left"),
        np.searchsorted(at[by_id], objects, side="right"),
    )
    for lo, hi in zip(*bounds):
        mine = by_id[lo:hi]
        box = tuple(slice(int(c[mine].min()), int(c[mine].max()) + 1) for c in coords)
        obj = predicted[box] == at[mine[0]]
        painted = edited[box] & obj & (merged[box] > 0)
        rest = obj & ~edited[box]
        if not painted.any() or not rest.any():
            continue
        _, nearest = ndimage.distance_transform_edt(~painted, return_indices=True)
        crop = merged[box]
        crop[rest] = crop[tuple(ix[rest] for ix in nearest)]


def join_across_boxes(
    merged: NDArray,
    predicted: NDArray,
    edited: NDArray[np.bool_],
    boxes: list[tuple[slice, ...]],
) -> NDArray:
    """Give cells cut by the face of a kept box their kept id outside it too.

    A patch marked "correct as shown" is kept voxel for voxel, so a cell that
    crosses the patch's face is kept inside and predicted anew outside, with a new
    id: one cell shown as two, split along a straight line. Here a predicted object
    that crosses a face of one of ``boxes`` (the prediction has it on both sides)
    where a kept object lies inside takes that object's id outside, the one it
    shares most of the face with where there are two. A predicted cell that only
    touches a kept neighbour across the face keeps its own id. Only unedited
    voxels change.

    Args:
        merged: object ids, kept voxels included (modified in place).
        predicted: the new prediction in ``merged``'s id space (ids as written to
            the unedited voxels).
        edited: the user's voxels (kept boxes included).
        boxes: the kept patches, as slices over ``merged``'s axes.

    Returns:
        ``merged``.
    """
    votes: dict[int, dict[int, int]] = {}  # predicted id -> {kept id: contacts}
    for box in boxes:
        if len(box) != merged.ndim:
            continue
        for axis, sl in enumerate(box):
            start, stop, _ = sl.indices(merged.shape[axis])
            # the box's first / last plane and the plane just outside it
            for face, out in ((start, start - 1), (stop - 1, stop)):
                if not 0 <= out < merged.shape[axis] or stop <= start:
                    continue
                inner = list(box)
                inner[axis] = slice(face, face + 1)
                outer = list(box)
                outer[axis] = slice(out, out + 1)
                kept_ids = merged[tuple(inner)]
                outside = merged[tuple(outer)]
                touch = (
                    edited[tuple(inner)]
                    & ~edited[tuple(outer)]
                    & (kept_ids > 0)
                    & (outside > 0)
                    & (predicted[tuple(inner)] == outside)  # crosses the face
                    & (kept_ids != outside)
                )
                for k, o in zip(kept_ids[touch].tolist(), outside[touch].tolist()):
                    row = votes.setdefault(o, {})
                    row[k] = row.get(k, 0) + 1
    if not votes:
        return merged
    # a sorted key search rather than a look-up table over all ids: label ids
    # can be large (EM body ids reach 10^9), a table that long would not fit
    keys = sorted(votes)
    values = [max(votes[k], key=votes[k].get) for k in keys]
    _remap_unedited(merged, merged, edited, keys, values)
    return merged
