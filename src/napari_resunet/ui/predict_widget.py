"""The Segment dock widget: pick an image and a model, run tiled inference."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    PushButton,
    create_widget,
)
from napari.utils.notifications import show_error, show_info, show_warning

from napari_resunet.core import InferenceConfig, build_model, load_checkpoint
from napari_resunet.core.checks import check_image, check_not_constant
from napari_resunet.core.config import InstanceConfig
from napari_resunet.core.models.checkpoint import CheckpointError
from napari_resunet.core.models.zoo import (
    STARTER_MODELS,
    available_starter_models,
    load_model,
)
from napari_resunet.core.training.finetune import new_network_config
from napari_resunet.ui._layers import snapshot_image
from napari_resunet.ui._model_store import get_store
from napari_resunet.ui._predict_job import start_prediction
from napari_resunet.ui._segment_settings import SegmentSettings
from napari_resunet.ui._status import status_label
from napari_resunet.ui._tooltips import TOOLTIPS, tipped
from napari_resunet.ui._workers import JobSlot

if TYPE_CHECKING:
    import napari

SESSION = "Session model"
NEW_AUTO = "New network (2D or 3D from the image)"
NEW_2D = "New 2D network (untrained)"
NEW_3D = "New 3D network (untrained)"
CHECKPOINT = "Checkpoint file…"
NO_CHANNEL = "none"
STARTER_PREFIX = "Starter: "
MODE_SEMANTIC = "classes (semantic)"
MODE_INSTANCE = "cells (one label each)"


def suggest_spatial_dims(snap: Any) -> int:
    """2 for images and strongly anisotropic stacks, 3 for near-isotropic volumes.

    A stack whose Z spacing is 3x its in-plane spacing or more (typical of
    widefield or serial-section data) is segmented slice by slice with a 2D
    network; the 3D context is then too coarse to help.
    """
    shape = snap.spatial_shape
    if len(shape) == 2:
        return 2
    scale = snap.scale if len(snap.scale) == 3 else (1.0, 1.0, 1.0)
    return 2 if scale[0] >= 3 * max(scale[1], scale[2]) or shape[0] < 8 else 3


class PredictWidget(Container):
    """Segment an Image layer into an editable ``<image> [resunet]`` Labels layer."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self._store = get_store(viewer)
        self._shown_tuned: Any = None  # the tuned cell settings last put in the form
        self._job = JobSlot(on_idle=lambda: self._set_running(False))
        self._image_combo = create_widget(
            annotation="napari.layers.Image", label="image"
        )
        self._channel_combo = ComboBox(
            label="channel axis", choices=self._channel_choices
        )
        starters = [f"{STARTER_PREFIX}{name}" for name in available_starter_models()]
        self._model_combo = ComboBox(
            label="model",
            choices=[SESSION, *starters, NEW_AUTO, NEW_2D, NEW_3D, CHECKPOINT],
            value=NEW_AUTO,
        )
        self._mode_combo = ComboBox(
            label="new network",
            choices=[MODE_INSTANCE, MODE_SEMANTIC],
            value=MODE_INSTANCE,
        )
        self._checkpoint_file = FileEdit(label="checkpoint", mode="r", filter="*.pt")
        self._advanced_check = CheckBox(text="Advanced settings", value=False)
        self._advanced = SegmentSettings()
        self._prob_check = CheckBox(text="Also show probabilities", value=False)
        self._replace_check = CheckBox(
            text="Replace my edits too (Ctrl+Z restores them)"
        )
        self._run_button = PushButton(text="Segment")
        self._cancel_button = PushButton(text="Cancel", enabled=False)
        self._status = status_label()
        self.extend(
            tipped(
                (self._image_combo, "image"),
                (self._channel_combo, "channel_axis"),
                (self._model_combo, "model"),
                (self._mode_combo, "mode"),
                (self._checkpoint_file, "checkpoint"),
                (self._advanced_check, "advanced"),
                self._advanced,  # its controls carry their own help
                (self._prob_check, "probabilities"),
                (self._replace_check, "replace"),
                (self._run_button, "run"),
                (self._cancel_button, "cancel"),
                self._status,
            )
        )
        self._image_combo.changed.connect(self._channel_combo.reset_choices)
        self._model_combo.changed.connect(self._on_model_changed)
        self._advanced_check.changed.connect(self._on_advanced_changed)
        self._run_button.changed.connect(self._on_run_clicked)
        self._cancel_button.changed.connect(self._on_cancel_clicked)
        self._store.changed.connect(self._on_store_changed)
        self._on_model_changed()
        self._on_advanced_changed()
        self._on_store_changed()

    # ---- widget state -------------------------------------------------------
    def _channel_choices(self, *_: Any) -> list[str]:
        layer = self._image_combo.value if hasattr(self, "_image_combo") else None
        if layer is None or getattr(layer, "rgb", False) or layer.ndim < 3:
            return [NO_CHANNEL]
        return [NO_CHANNEL, *(str(i) for i in range(layer.ndim))]

    def _on_model_changed(self, *_: Any) -> None:
        choice = self._model_combo.value
        self._checkpoint_file.visible = choice == CHECKPOINT
        self._mode_combo.visible = choice in (NEW_AUTO, NEW_2D, NEW_3D)
        if choice.startswith(STARTER_PREFIX):
            name = choice[len(STARTER_PREFIX) :]
            self._model_combo.tooltip = f"{STARTER_MODELS[name]}. {TOOLTIPS['model']}"

    def _on_advanced_changed(self, *_: Any) -> None:
        self._advanced.visible = self._advanced_check.value

    def _on_store_changed(self) -> None:
        model = self._store.model
        if model is None:
            self._status.value = "No session model yet."
        else:
            # a model tuned for its data brings its own cell settings; its
            # fine-tuned versions carry the same ones, which must not undo what
            # the user set in the form after every round
            tuned = getattr(model, "instance_config", None)
            if tuned is not None and tuned != self._shown_tuned:
                self._advanced.show_cell_settings(tuned)
                self._shown_tuned = tuned
            kind = "cells" if model.config.task == "instance" else "classes"
            self._status.value = (
                f"Session model: {model.spatial_dims}D {kind}, {self._store.source}"
            )

    def _set_running(self, running: bool) -> None:
        self._run_button.enabled = not running
        self._cancel_button.enabled = running

    def _read_config(self) -> InferenceConfig:
        return self._advanced.inference_config()

    def _read_instance_config(self) -> InstanceConfig:
        return self._advanced.instance_config(
            getattr(self._store.model, "instance_config", None)
        )

    def _channel_axis(self) -> int | None:
        value = self._channel_combo.value
        return None if value in (None, NO_CHANNEL) else int(value)

    def _resolve_model(self, snap: Any) -> tuple[Any, str | None]:
        """The model to run, and a source label if it is new to the session."""
        in_channels = (
            1 if snap.channel_axis is None else snap.data.shape[snap.channel_axis]
        )
        choice = self._model_combo.value
        if choice == SESSION:
            if self._store.model is None:
                raise ValueError(
                    "There is no session model yet: choose a new network or a "
                    "checkpoint file."
                )
            return self._store.model, None
        if choice in (NEW_AUTO, NEW_2D, NEW_3D):
            dims = {NEW_2D: 2, NEW_3D: 3}.get(choice) or suggest_spatial_dims(snap)
            instance = self._mode_combo.value == MODE_INSTANCE
            cfg = new_network_config(dims, in_channels, instance)
            return build_model(cfg), f"new {dims}D network"
        if choice.startswith(STARTER_PREFIX):
            name = choice[len(STARTER_PREFIX) :]
            model, _ = load_model(name)
            return model, f"starter model {name}"
        path = self._checkpoint_file.value
        if not path or not Path(path).is_file():
            raise ValueError("Choose a checkpoint file (.pt) to load.")
        model, _ = load_checkpoint(path)
        return model, f"checkpoint {Path(path).name}"

    # ---- running --------------------------------------------------------------
    def _on_run_clicked(self, *_: Any) -> None:
        layer = self._image_combo.value
        if layer is None:
            show_warning("Choose an image layer to segment.")
            return
        try:
            snap = snapshot_image(layer, self._channel_axis())
            cfg = self._read_config()
            model, source = self._resolve_model(snap)
            check_image(snap.data, model.config, snap.channel_axis)
            check_not_constant(snap.data)
        except (ValueError, CheckpointError) as err:
            show_error(f"Cannot segment '{layer.name}': {err}")
            return
        if source is not None:  # a new or loaded model becomes the session model
            new = self._model_combo.value in (NEW_AUTO, NEW_2D, NEW_3D)
            self._store.set_model(model, source, pretrained=not new)
            self._model_combo.value = SESSION
        self._set_running(True)
        self._status.value = f"Segmenting {layer.name}…"
        instance_cfg = self._read_instance_config()
        self._store.instance_cfg = instance_cfg  # for the re-segmentations after
        self._store.inference_cfg = cfg  # (tiles, test-time flips) as well
        self._job.start(
            lambda finished: start_prediction(
                self._viewer,
                self._store,
                model,
                snap,
                cfg,
                replace=self._replace_check.value,
                show_probabilities=self._prob_check.value,
                instance_cfg=instance_cfg,
                on_done=self._on_prediction_done,
                on_aborted=self._on_aborted,
                on_errored=self._on_errored,
                on_finished=finished,
            )
        )

    def _on_prediction_done(self, layer: Any, kept: int) -> None:
        msg = f"Segmented into '{layer.name}'."
        if kept:
            msg += f" Kept {kept} voxels you edited."
        if not self._store.trained:  # its labels are empty or noise
            msg += " The network is new and has learnt nothing yet: " + (
                "paint some cells (or classes) and erase some wrong ones, then "
                "Fine-tune."
                if np.asarray(layer.data).any()
                else "paint some cells (or classes), then Fine-tune learning from "
                "'edited slices/patches' (the empty background around them then "
                "counts), or mark patches reviewed in the Annotation queue."
            )
        self._status.value = msg
        show_info(msg)

    def _on_aborted(self) -> None:
        self._status.value = "Cancelled; no layer was changed."

    def _on_errored(self, err: BaseException) -> None:
        self._status.value = f"Failed: {err}"
        show_error(f"Segmentation failed: {err}")

    def _on_cancel_clicked(self, *_: Any) -> None:
        self._job.cancel()
