"""One prediction job: image snapshot in, undo-able Labels update out.

Shared by the Segment widget and by Fine-tune (which segments again after a
successful round), so both write results the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_resunet.core import InferenceConfig, iter_predict
from napari_resunet.core.config import InstanceConfig
from napari_resunet.core.inference.postprocess import labels_from_probabilities
from napari_resunet.core.inference.predict import prediction_steps
from napari_resunet.core.progress import Progress
from napari_resunet.ui._layers import (
    ImageSnapshot,
    PendingWrite,
    add_output_layer,
    begin_write,
    finish_write,
    merge_pending,
    show_layer,
)
from napari_resunet.ui._workers import start_job

if TYPE_CHECKING:
    import napari

    from napari_resunet.core.models.resunet import ResUNet
    from napari_resunet.ui._model_store import ModelStore


def voxel_size_of(snap: ImageSnapshot) -> tuple[float, ...] | None:
    """The layer scale as a voxel size, when it has one per spatial axis."""
    return snap.scale if len(snap.scale) == len(snap.spatial_shape) else None


def iter_segment(
    model: ResUNet,
    image: np.ndarray,
    cfg: InferenceConfig,
    channel_axis: int | None,
    voxel_size: tuple[float, ...] | None,
    instance_cfg: InstanceConfig | None,
) -> Generator[Progress, None, tuple[np.ndarray, np.ndarray]]:
    """Predict, then turn probabilities into labels, all in the worker.

    Post-processing (a seeded watershed for cell models) takes about 0.5 s per 6
    million voxels here; on the main thread it froze the viewer for that long.

    Returns:
        ``(probabilities, labels)``.
    """
    probs = yield from iter_predict(model, image, cfg, channel_axis, voxel_size)
    yield Progress(0, 0, "building labels", "postprocess")
    labels = labels_from_probabilities(probs, model.config, instance_cfg, voxel_size)
    return probs, labels


def _iter_merge(
    pending: PendingWrite,
) -> Generator[Progress, None, tuple[np.ndarray, tuple[np.ndarray, ...]]]:
    """Merge a prediction into the labels as they were snapshotted (a worker).

    Yields before and after the merge, so a Cancel clicked meanwhile stops the
    job before anything is written.
    """
    yield Progress(0, 1, "merging with your edits", "merge")
    merged = merge_pending(pending)
    yield Progress(1, 1, "writing", "merge")
    return merged


class _Stages:
    """What a widget holds for a prediction job: Cancel stops whichever stage
    runs, the tiles or the merge that follows them."""

    def __init__(self) -> None:
        self.current: Any = None

    def quit(self) -> None:
        if self.current is not None:
            self.current.quit()

    def __getattr__(self, name: str) -> Any:
        # the running stage's signals and state (``yielded``, ``is_running``...)
        return getattr(self.__dict__["current"], name)


def start_prediction(
    viewer: napari.viewer.Viewer,
    store: ModelStore,
    model: ResUNet,
    snap: ImageSnapshot,
    cfg: InferenceConfig,
    *,
    replace: bool = False,
    show_probabilities: bool = False,
    instance_cfg: InstanceConfig | None = None,
    on_done: Callable[[Any, int], None] | None = None,
    on_finished: Callable[[], None] | None = None,
    on_aborted: Callable[[], None] | None = None,
    on_errored: Callable[[BaseException], None] | None = None,
) -> Any:
    """Start tiled prediction of ``snap`` and write the labels when it returns.

    ``on_done(layer, kept)`` receives the output Labels layer and the number of
    user-edited voxels that were kept. Returns the job (``quit()`` cancels it,
    up to the moment the labels are written).

    Cell models use ``instance_cfg``, else the settings the Segment widget last
    used (``store.instance_cfg``), else the model's own tuned ones. A fine-tuning
    round's re-segmentation used the defaults before, so a starter model's cells
    changed with its first round for reasons that were not the training's
    (nuclei2d: seed threshold 0.5 instead of its 0.9).
    """
    if instance_cfg is None:
        instance_cfg = store.instance_cfg or getattr(model, "instance_config", None)
    vs = voxel_size_of(snap)
    steps = prediction_steps(model, snap.spatial_shape, cfg, vs)

    is_instance = model.config.task == "instance"
    merging = False  # the job goes on as a merge: that job finishes it
    stages = _Stages()

    def _returned(result: tuple[np.ndarray, np.ndarray]) -> None:
        nonlocal merging
        probs, labels = result
        # the queue's uncertainty after this need not predict the image again
        store.remember_first_pass(model, snap.data, snap.channel_axis, cfg, vs, probs)
        pending = begin_write(
            viewer, store, snap, labels, replace=replace, instances=is_instance
        )
        if pending is None:  # a new layer: nothing to merge
            layer = add_output_layer(viewer, store, snap, labels)
            if show_probabilities:  # above the labels
                _show_probabilities(probs)
            _done(layer, 0)
            return
        # the merge (about 1 s for a 128x512x512 cell volume, more for larger
        # ones) runs in a worker too; only the snapshot and the write stay here
        merging = True

        def _merged(result: tuple[np.ndarray, tuple[np.ndarray, ...]]) -> None:
            written = finish_write(viewer, store, snap, pending, *result)
            if show_probabilities:  # with the labels: a Cancel changes neither
                _show_probabilities(probs)
            _done(*written)

        stages.current = start_job(
            _iter_merge,
            pending,
            desc="Updating labels",
            on_returned=_merged,
            on_aborted=on_aborted,
            on_errored=on_errored,
            on_finished=on_finished,
        )

    def _finished() -> None:
        if not merging and on_finished is not None:
            on_finished()

    def _show_probabilities(probs: np.ndarray) -> None:
        name = f"{snap.name} [resunet probabilities]"
        # instance models: show the cell interior; semantic: all foreground
        fg = probs[1] if is_instance else probs[1:].sum(axis=0)
        show_layer(
            viewer,
            "image",
            fg,
            name,
            snap,
            colormap="magma",
            opacity=0.6,
            blending="additive",
            contrast_limits=(0.0, 1.0),
        )

    def _done(layer: Any, kept: int) -> None:
        if on_done is not None:
            on_done(layer, kept)

    worker = start_job(
        iter_segment,
        model,
        snap.data,
        cfg,
        snap.channel_axis,
        vs,
        instance_cfg,
        total=steps,
        desc="Segmenting",
        on_returned=_returned,
        on_aborted=on_aborted,
        on_errored=on_errored,
        on_finished=_finished,
    )
    if stages.current is None:  # (inline jobs have run the merge already)
        stages.current = worker
    return stages
