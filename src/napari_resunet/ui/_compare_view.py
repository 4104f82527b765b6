"""Two label layers side by side, each over the image (napari's grid).

napari's grid gives every visible layer its own cell, so the image would sit
alone and the label layers without it. :class:`SideBySide` hides the other
layers for the comparison and adds a second view of the image (the same data,
no copy) just below the left layer, both label layers on top: in a (1, 2) grid
the visible layers fill the cells in turn, bottom layer first, so the image and
the left layer share the left cell, the backdrop and the right layer the right
one. Turning the grid off shows the hidden layers again and removes the backdrop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from napari.layers import Layer
from napari.utils.notifications import show_error

from napari_resunet.core.versions import iter_compare
from napari_resunet.ui._layers import ImageSnapshot, grid_of, show_layer
from napari_resunet.ui._predict_job import voxel_size_of
from napari_resunet.ui._workers import start_job

BACKDROP = " [compare backdrop]"


class SideBySide:
    """Lays out comparisons in one viewer and undoes them when the grid goes off."""

    def __init__(self, viewer: Any) -> None:
        self._viewer = viewer
        # names of the layers a comparison hid, shown again when the grid is off
        self._hidden: list[str] = []
        self._hooked = False

    def show(self, image: Any, left: Any, right: Any) -> None:
        """Show ``left`` and ``right`` in a two-cell grid, each over ``image``."""
        viewer = self._viewer
        layers = viewer.layers
        name = f"{image.name}{BACKDROP}"
        if name in layers:
            layers.remove(name)
        active = layers.selection.active
        active_name = None if active is None else active.name
        data, meta, kind = image.as_layer_data_tuple()
        meta = {**meta, "name": name}
        meta.pop("metadata", None)
        backdrop = viewer.add_layer(Layer.create(data, meta, kind))
        if active_name in layers:  # adding selected the backdrop: select back
            layers.selection.active = layers[active_name]
        for layer in (left, right):  # above the image, wherever it is
            layers.move(layers.index(layer), len(layers))
        layers.move(layers.index(backdrop), layers.index(left))
        # by name (unique in a layer list): the viewer a plugin is given hands out
        # a new proxy object for a layer on every access, so identity fails
        keep = {image.name, backdrop.name, left.name, right.name}
        for layer in layers:
            if layer.name in keep:
                layer.visible = True
            elif layer.visible:
                layer.visible = False
                self._hidden.append(layer.name)
        grid = grid_of(viewer)
        grid.shape = (1, 2)
        grid.stride = 1
        if not self._hooked:  # also when the grid was on already
            grid.events.enabled.connect(self._on_grid_toggled)
            self._hooked = True
        grid.enabled = True

    def _on_grid_toggled(self, event: Any = None) -> None:
        grid = grid_of(self._viewer)
        if grid.enabled:
            return
        grid.events.enabled.disconnect(self._on_grid_toggled)
        self._hooked = False
        grid.shape = (-1, -1)
        layers = self._viewer.layers
        for name in self._hidden:
            if name in layers:
                layers[name].visible = True
        self._hidden = []
        for layer in list(layers):
            if layer.name.endswith(BACKDROP):
                layers.remove(layer)


def start_comparison(
    viewer: Any,
    store: Any,
    side_by_side: SideBySide,
    image: Any,
    snap: ImageSnapshot,
    models: list[tuple[int, Any]],
    say: Callable[[str], None],
    on_finished: Callable[[], None],
) -> Any:
    """Segment ``snap`` (of the ``image`` layer) with two ``(number, model)``
    versions in the background (the working labels' cell settings and the Segment
    widget's prediction settings), then show the two results side by side over
    the image; ``say`` gets the status messages. Returns the worker."""
    (a, _), (b, _) = models

    def shown(result: list[tuple[int, np.ndarray]]) -> None:
        layers = [
            show_layer(viewer, "labels", labels, f"{snap.name} [v{number}]", snap)
            for number, labels in result
        ]
        side_by_side.show(image, *layers)
        say(
            f"Comparing v{a} (left) and v{b} (right) over the image; turn the "
            "grid off to go back to the layers as they were."
        )

    return start_job(
        iter_compare,
        models,
        snap.data,
        snap.channel_axis,
        voxel_size_of(snap),
        store.instance_cfg,  # as the working labels were made
        store.resegment_config(),
        desc="Compare versions",
        on_returned=shown,
        on_aborted=lambda: say("Comparison cancelled."),
        on_errored=lambda err: show_error(f"Comparison failed: {err}"),
        on_finished=on_finished,
    )
