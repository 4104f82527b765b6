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

from typing import Any

from napari.layers import Layer

from napari_resunet.ui._layers import grid_of

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
