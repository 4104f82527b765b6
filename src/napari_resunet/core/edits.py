"""Tracking what the user changed in a predicted label image (numpy only).

A prediction is written into an editable labels array; the user then paints and
erases. Before anything writes a new prediction, :func:`update_edited` folds the
differences since the last prediction into a persistent *edited* mask, and
:func:`merge_prediction` keeps every edited voxel as the user left it. The same
mask tells fine-tuning which voxels are corrections (:func:`corrections_mask`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from napari_resunet.core.cell_ids import (
    continue_ids,
    join_across_boxes,
    join_remainders,
)

Scope = Literal["edited", "edited_slices", "all"]


def update_edited(
    current: NDArray, last_prediction: NDArray | None, edited: NDArray | None
) -> NDArray[np.bool_]:
    """Return ``edited`` plus every voxel where ``current`` differs from the prediction.

    With no earlier prediction (a labels layer the user made from scratch) every
    non-zero voxel counts as edited.
    """
    if last_prediction is None or last_prediction.shape != current.shape:
        changed = np.asarray(current) != 0
    else:
        changed = np.asarray(current) != last_prediction
    if edited is None or edited.shape != changed.shape:
        return changed
    return edited | changed


def merge_prediction(
    current: NDArray,
    prediction: NDArray,
    edited: NDArray,
    replace: bool = False,
    instances: bool = False,
    boxes: list[tuple[slice, ...]] | None = None,
) -> NDArray:
    """The labels to show after a new prediction.

    Args:
        current: labels as they are now (with the user's edits).
        prediction: the new prediction, same shape.
        edited: voxels the user changed (see :func:`update_edited`).
        replace: take the prediction everywhere, edits included.
        instances: the labels are object ids: a predicted cell that continues a
            cell shown now takes its id, any other a new id above all ids in
            ``current``, so a new cell never takes a painted cell's id.
        boxes: with ``instances``, patches kept whole ("correct as shown"): a
            predicted cell that crosses a face of one continues the kept cell
            there, with its id (see :func:`~napari_resunet.core.cell_ids.join_across_boxes`).

    With ``instances``, a predicted cell that lies mostly on one painted cell
    gives the rest of its voxels to that cell (see :func:`~napari_resunet.core.cell_ids.join_remainders`):
    a cell the user painted whole does not grow a rim of another id where the
    new prediction is a little larger.

    Predicted cells keep the ids they are shown with (see :func:`~napari_resunet.core.cell_ids.continue_ids`),
    so a cell the round did not change keeps its colour, and only voxels that
    changed need writing to the layer.

    Returns:
        A new array of ``current``'s dtype.
    """
    if current.shape != prediction.shape:
        raise ValueError(
            f"The prediction's shape {prediction.shape} differs from the labels' "
            f"{current.shape}."
        )
    if instances:
        # the cells shown now: the unedited voxels (all of them when replacing)
        shown = np.ones(current.shape, bool) if replace else ~edited
        merged = continue_ids(prediction, current, shown)
    else:
        merged = prediction.astype(current.dtype, copy=True)
    if not replace:
        kept = current[edited]
        predicted = merged.copy() if instances else None
        merged[edited] = kept
        if predicted is not None:
            join_remainders(merged, predicted, edited)
            if boxes:
                join_across_boxes(merged, predicted, edited, boxes)
    return merged


def corrections_mask(
    edited: NDArray[np.bool_],
    scope: Scope = "edited",
    margin: int = 2,
    spatial_dims: int = 2,
    patch: int = 64,
) -> NDArray[np.bool_]:
    """Which voxels fine-tuning should learn from.

    Args:
        edited: voxels the user changed.
        scope: ``"edited"``: the edited voxels grown by ``margin`` voxels, so the
            network also learns where a correction ends; ``"edited_slices"``: for
            stacks, every Z slice that holds an edit (2D images: every
            ``patch``-sized block that holds one), densely; ``"all"``: everything.
        margin: growth of the edited region in voxels (``"edited"`` scope).
        spatial_dims: the network's dimensionality (2 on a stack = slice-wise
            growth, so a margin never leaks into an unreviewed neighbour slice).
        patch: block size for ``"edited_slices"`` on 2D images.

    Returns:
        A boolean mask of ``edited``'s shape.
    """
    edited = np.asarray(edited, bool)
    if scope == "all":
        return np.ones_like(edited)
    if scope == "edited":
        if margin <= 0 or not edited.any():
            return edited.copy()
        structure = ndimage.generate_binary_structure(edited.ndim, 1)
        if spatial_dims == 2 and edited.ndim == 3:
            structure[0] = structure[2] = False  # grow within slices only
        return ndimage.binary_dilation(edited, structure, iterations=margin)
    if scope == "edited_slices":
        if edited.ndim == 3:
            touched = edited.reshape(edited.shape[0], -1).any(axis=1)
            return np.broadcast_to(touched[:, None, None], edited.shape).copy()
        out = np.zeros_like(edited)
        for y in range(0, edited.shape[0], patch):
            for x in range(0, edited.shape[1], patch):
                block = (slice(y, y + patch), slice(x, x + patch))
                if edited[block].any():
                    out[block] = True
        return out
    raise ValueError(f"Unknown scope {scope!r}; use edited, edited_slices or all.")


def one_sided_note(labels: NDArray, learnt: NDArray[np.bool_]) -> str | None:
    """A warning when the voxels a new network will learn from are all background
    or all labelled, else None.

    A new network knows nothing of the image: from corrections that only paint
    cells it sees background at their rims alone, and calls the whole image cells
    after its round (a new 2D cell network, whose first segmentation is empty,
    labelled 89% of a BBBC039 field after a round on the nuclei of one corner
    painted in, where the truth has 20%; with the empty blocks around them
    counted too, 'edited slices/patches', 22%); from corrections that only
    erase, it learns nothing but background.

    Args:
        labels: the labels layer's data.
        learnt: the voxels the round learns from as the user's own (edits and
            reviewed patches, without the margin grown around them).
    """
    values = np.asarray(labels)[np.asarray(learnt, bool)]
    if values.size == 0:
        return None
    background = bool((values == 0).any())
    labelled = bool((values != 0).any())
    if labelled and not background:
        return "Your corrections only paint: a new network may label everything."
    if background and not labelled:
        return "Your corrections only erase: a new network learns only background."
    return None
