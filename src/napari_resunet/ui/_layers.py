"""Layer <-> array: snapshots of inputs and undo-able writes of results.

Workers never touch layers: widgets take a :class:`ImageSnapshot` on the main
thread, hand plain arrays to the core, and write results back here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_resunet.core.edits import merge_prediction
from napari_resunet.ui._model_store import unwrap

if TYPE_CHECKING:
    import napari

    from napari_resunet.ui._model_store import ModelStore

OUTPUT_SUFFIX = " [resunet]"


@dataclass(frozen=True)
class ImageSnapshot:
    """A copy of an Image layer's pixels with its geometry.

    Attributes:
        data: contiguous numpy copy (level 0 of a multiscale image).
        channel_axis: the channel axis (RGB layers: -1), or ``None``.
        scale, translate: the layer's, for the spatial axes only.
        name: the layer name.
    """

    data: np.ndarray
    channel_axis: int | None
    scale: tuple[float, ...]
    translate: tuple[float, ...]
    name: str

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        if self.channel_axis is None:
            return self.data.shape
        return tuple(np.delete(self.data.shape, self.channel_axis))


def snapshot_image(layer: Any, channel_axis: int | None = None) -> ImageSnapshot:
    """Copy ``layer``'s data; ``channel_axis`` names a channel axis of a grey layer."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    data = np.ascontiguousarray(np.asarray(data))
    if getattr(layer, "rgb", False):
        channel_axis = -1
    ndim = data.ndim
    spatial = [
        i for i in range(ndim) if channel_axis is None or i != channel_axis % ndim
    ]
    scale = tuple(float(layer.scale[i]) for i in spatial if i < len(layer.scale))
    translate = tuple(
        float(layer.translate[i]) for i in spatial if i < len(layer.translate)
    )
    return ImageSnapshot(data, channel_axis, scale, translate, layer.name)


def guess_channel_axis(layer: Any, in_channels: int) -> int | None:
    """The channel axis of a grey layer for a model reading ``in_channels`` channels.

    RGB layers and one-channel models need none; otherwise the first (or else the
    last) axis whose length equals ``in_channels``.
    """
    if in_channels == 1 or getattr(layer, "rgb", False):
        return None
    shape = np.shape(
        layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    )
    for axis in (0, len(shape) - 1, *range(1, len(shape) - 1)):
        if shape[axis] == in_channels:
            return axis
    return None


def camera_of(viewer: Any) -> Any:
    """The viewer's camera: ``viewer.scene.camera`` from napari 0.9 (where
    ``viewer.camera`` is deprecated), ``viewer.camera`` before."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def grid_of(viewer: Any) -> Any:
    """The viewer's grid settings: ``viewer.canvas.grid`` from napari 0.9 (where
    ``viewer.grid`` is deprecated), ``viewer.grid`` before."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None else viewer.grid


def output_name(image_name: str) -> str:
    return f"{image_name}{OUTPUT_SUFFIX}"


def show_layer(
    viewer: napari.viewer.Viewer,
    kind: str,
    data: np.ndarray,
    name: str,
    snap: ImageSnapshot,
    **style: Any,
) -> Any:
    """Put ``data`` in the layer called ``name``, adding it (an ``"image"`` or
    ``"labels"`` layer with the snapshot's scale and translate) if it is missing."""
    if name in viewer.layers:
        layer = viewer.layers[name]
        layer.data = data
        return layer
    add = viewer.add_image if kind == "image" else viewer.add_labels
    return add(data, name=name, scale=snap.scale, translate=snap.translate, **style)


def find_output_layer(
    viewer: napari.viewer.Viewer, name: str, shape: tuple[int, ...]
) -> Any:
    """The Labels layer called ``name`` with ``shape``, if the viewer has one."""
    from napari.layers import Labels

    for layer in viewer.layers:
        if (
            isinstance(layer, Labels)
            and layer.name == name
            and layer.data.shape == shape
        ):
            return layer
    return None


@dataclass
class PendingWrite:
    """A prediction about to be merged into an existing output layer.

    Taken on the main thread; :func:`merge_pending` may then run in a worker
    (it reads only these arrays), and :func:`finish_write` applies the result
    on the main thread again.

    Attributes:
        layer: the output Labels layer.
        current: a copy of its data when the merge began.
        edited: the user's voxels at that moment.
        labels: the new prediction.
        replace, instances: as for :func:`write_prediction`.
        boxes: the reviewed patches at that moment.
        writes: the layer track's write count at that moment.
    """

    layer: Any
    current: np.ndarray
    edited: np.ndarray
    labels: np.ndarray
    replace: bool
    instances: bool
    boxes: list[tuple[slice, ...]]
    writes: int


def begin_write(
    viewer: napari.viewer.Viewer,
    store: ModelStore,
    snap: ImageSnapshot,
    labels: np.ndarray,
    replace: bool = False,
    instances: bool = False,
) -> PendingWrite | None:
    """Snapshot the output layer for a merge, or ``None`` when there is none yet.

    Costs a copy and a comparison of the labels (tens of milliseconds for 33
    million voxels) instead of the whole merge on the viewer's thread.
    """
    layer = find_output_layer(viewer, output_name(snap.name), labels.shape)
    if layer is None:
        return None
    track = store.track(layer)
    if np.can_cast(labels.dtype, layer.data.dtype, "safe") is False:
        # e.g. instance ids (uint32) into an earlier class map (uint8): widen the
        # layer, keeping every value (napari restarts its undo history here)
        layer.data = np.asarray(layer.data).astype(
            np.promote_types(layer.data.dtype, labels.dtype)
        )
    current = np.array(layer.data, copy=True)
    # a copy: the live mask can grow while the merge runs ("Mark reviewed")
    edited = track.refresh(current).copy()
    return PendingWrite(
        layer,
        current,
        edited,
        labels,
        replace,
        instances,
        list(store.reviewed),  # cells crossing a reviewed patch's face continue
        track.writes,
    )


def merge_pending(pending: PendingWrite) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """The merged labels and the indices where they differ from the snapshot.

    Numpy only, safe in a worker: about 1 s for a 128x512x512 cell volume here
    (``benchmarks/bench_merge.py``).
    """
    merged = merge_prediction(
        pending.current,
        pending.labels,
        pending.edited,
        pending.replace,
        pending.instances,
        boxes=pending.boxes,
    )
    return merged, np.nonzero(merged != pending.current)


def finish_write(
    viewer: napari.viewer.Viewer,
    store: ModelStore,
    snap: ImageSnapshot,
    pending: PendingWrite,
    merged: np.ndarray,
    changed: tuple[np.ndarray, ...],
) -> tuple[Any, int]:
    """Write a merge into its layer; returns ``(layer, kept)`` as
    :func:`write_prediction` does.

    Voxels the user painted, or marked reviewed, while the merge ran are left
    as they are (and count as edited from then on). If the layer was reshaped
    or written by another prediction meanwhile, the merge is done again here, on
    the labels as they are now; if it was removed, a new layer takes the labels.
    """
    layer = pending.layer
    track = store.track(layer)
    now = np.asarray(layer.data)
    if (
        not any(unwrap(other) is unwrap(layer) for other in viewer.layers)
        or now.shape != pending.current.shape
        or now.dtype != pending.current.dtype
        or track.writes != pending.writes
    ):
        return write_prediction(
            viewer, store, snap, pending.labels, pending.replace, pending.instances
        )
    # the user's strokes during the merge, and patches marked "correct as
    # shown" meanwhile: both stay as they are now
    moved = now != pending.current
    if track.edited is not None and track.edited.shape == moved.shape:
        moved |= track.edited & ~pending.edited
    if moved.any():
        stay = ~moved[changed]
        changed = tuple(axis[stay] for axis in changed)
    if changed[0].size:
        with layer.block_history():
            layer.data_setitem(changed, merged[changed])
    # what the layer shows now (the strokes made meanwhile differ from it, so
    # the next look counts them as edits). Remembering the prediction as it
    # came from the model instead made every voxel of a cell model differ from
    # it at the next look: the whole layer counted as the user's edits.
    track.last_prediction = merged
    track.writes += 1
    kept = 0 if pending.replace else int(pending.edited.sum())
    if pending.replace:
        track.edited = moved if moved.any() else np.zeros(merged.shape, bool)
    return layer, kept


def write_prediction(
    viewer: napari.viewer.Viewer,
    store: ModelStore,
    snap: ImageSnapshot,
    labels: np.ndarray,
    replace: bool = False,
    instances: bool = False,
) -> tuple[Any, int]:
    """Show ``labels`` in the image's output layer without losing the user's edits.

    Creates ``<image> [resunet]`` on first use. Later predictions update it through
    the layer's undo history: voxels the user painted or erased since the last
    prediction are kept unless ``replace`` is set, and even then napari's undo
    (Ctrl+Z) brings them back. Everything on the calling thread; jobs split this
    into :func:`begin_write`, :func:`merge_pending` (in a worker) and
    :func:`finish_write`.

    With ``instances`` the labels are object ids: predicted cells keep the ids of
    the cells they continue, and new ids are kept clear of every id in the layer.

    Returns:
        ``(layer, kept)``: the Labels layer and how many edited voxels were kept.
    """
    pending = begin_write(viewer, store, snap, labels, replace, instances)
    if pending is None:
        return add_output_layer(viewer, store, snap, labels), 0
    return finish_write(viewer, store, snap, pending, *merge_pending(pending))


def add_output_layer(
    viewer: napari.viewer.Viewer,
    store: ModelStore,
    snap: ImageSnapshot,
    labels: np.ndarray,
) -> Any:
    """A new ``<image> [resunet]`` layer showing ``labels``, nothing edited yet."""
    layer = viewer.add_labels(
        labels.copy(),
        name=output_name(snap.name),
        scale=snap.scale,
        translate=snap.translate,
    )
    track = store.track(layer)
    track.last_prediction = labels.copy()
    track.edited = np.zeros(labels.shape, bool)
    track.writes += 1
    return layer


def add_saved_labels(
    viewer: napari.viewer.Viewer,
    store: ModelStore,
    image_name: str,
    labels: np.ndarray,
    edited: np.ndarray,
) -> tuple[Any, str]:
    """Add a session's saved labels as the image's working layer, so the session
    goes on where it stopped.

    Named as the Segment and Fine-tune widgets name their output
    (``<image> [resunet]``), with the image's scale and translate when the image
    is open: the next segmentation merges into it, keeping the saved
    corrections, and a fine-tuning round replays them with the new ones. Opened
    as ``<image> [corrections]`` before, the saved corrections and everything
    after reopening ended up in two layers, and a round could learn from only
    one of them. If the viewer already has a layer of that name, the saved
    labels open beside it as ``<image> [corrections]``.

    Returns:
        ``(layer, beside)``: the new layer, and the name of the working layer it
        was opened beside (``""`` when it is the working layer).
    """
    from napari.layers import Image

    image = None
    for candidate in (image_name, Path(image_name).stem):
        image = next(
            (
                layer
                for layer in viewer.layers
                if isinstance(layer, Image) and layer.name == candidate
            ),
            None,
        )
        if image is not None:
            break
    base = image.name if image is not None else (Path(image_name).stem or "session")
    name = output_name(base)
    style: dict[str, Any] = {}
    if image is not None and image.ndim >= labels.ndim:
        # the image's geometry on its last axes (napari counts no RGB axis; a
        # leading channel axis is not spatial)
        style["scale"] = tuple(image.scale[-labels.ndim :])
        style["translate"] = tuple(image.translate[-labels.ndim :])
    beside = name if name in viewer.layers else ""
    layer = viewer.add_labels(
        labels, name=f"{base} [corrections]" if beside else name, **style
    )
    track = store.track(layer)
    track.last_prediction = labels.copy()  # nothing changed since saving
    track.edited = edited
    return layer, beside
