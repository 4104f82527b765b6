"""What a Fine-tune round learns from, read off the layers and checked: a
snapshot of the image, a copy of its corrected labels, how their ids become
targets, and which voxels count."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_resunet.core.checks import check_image
from napari_resunet.core.training.finetune import finetune_label_mode
from napari_resunet.ui._layers import guess_channel_axis, snapshot_image

# the Fine-tune widget's "learn from" choices and the store's scope names
SCOPES = {
    "only what I edited": "edited",
    "edited slices/patches": "edited_slices",
    "the whole layer": "all",
}


class NoRound(Exception):
    """Why a round cannot start, in the user's words; ``error``: the input is
    wrong (shown as an error), else something is missing (a warning)."""

    def __init__(self, message: str, error: bool = False) -> None:
        super().__init__(message)
        self.error = error


@dataclass
class RoundInputs:
    """A round's data, as they were when Fine-tune was clicked."""

    snap: Any  # the image's snapshot (_layers.snapshot_image)
    labels: np.ndarray
    label_mode: str
    mask: np.ndarray | None  # None: every voxel counts
    scope: str


def read_round_inputs(
    store: Any, image_layer: Any, labels_layer: Any, scope_choice: str
) -> RoundInputs:
    """The round's inputs from the chosen layers and the store's model.

    Raises:
        NoRound: no layer or model, an image or labels the model cannot learn
            from, or no corrections in the chosen scope.
    """
    model = store.model
    if image_layer is None or labels_layer is None:
        raise NoRound("Choose an image and its corrected labels layer.")
    if model is None:
        raise NoRound("There is no model to fine-tune: segment the image first.")
    snap = snapshot_image(
        image_layer, guess_channel_axis(image_layer, model.config.in_channels)
    )
    labels = np.array(labels_layer.data, copy=True)
    try:
        check_image(snap.data, model.config, snap.channel_axis)
        if labels.shape != snap.spatial_shape:
            raise ValueError(
                f"the labels layer's shape {labels.shape} differs from the image's "
                f"{snap.spatial_shape}"
            )
        label_mode = finetune_label_mode(labels, model.config)
    except ValueError as err:
        raise NoRound(f"Cannot fine-tune: {err}", error=True) from err
    scope = SCOPES[scope_choice]
    mask = store.learning_mask(labels_layer, labels, scope, model.spatial_dims)
    if mask is not None and not mask.any():
        raise NoRound(
            "No corrections yet: paint or erase on the labels layer first, or "
            "learn from 'the whole layer'."
        )
    return RoundInputs(snap, labels, label_mode, mask, scope)
