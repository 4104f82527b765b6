"""The Fine-tune dock widget: learn from the user's corrections, then segment again."""

from __future__ import annotations

import functools
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    PushButton,
    SpinBox,
    create_widget,
)
from napari.utils.notifications import show_error, show_info, show_warning

from napari_resunet.core import TrainData, iter_train, save_checkpoint
from napari_resunet.core.edits import one_sided_note
from napari_resunet.core.training.finetune import (
    FIRST_ROUND_LR,
    auto_class_mix,
    finetune_config,
)
from napari_resunet.ui._loss_plot import LossPlot
from napari_resunet.ui._model_store import get_store, unwrap
from napari_resunet.ui._predict_job import start_prediction
from napari_resunet.ui._round_inputs import SCOPES, NoRound, read_round_inputs
from napari_resunet.ui._status import status_label
from napari_resunet.ui._tooltips import tipped
from napari_resunet.ui._workers import JobSlot, start_job

if TYPE_CHECKING:
    import napari


# what to do about corrections that only paint or only erase (core.edits.one_sided_note)
_ONE_SIDED_ADVICE = (
    "Erase some wrong labels, mark a patch reviewed in the Annotation queue, or "
    "learn from 'edited slices/patches' (what is shown around your edits, empty "
    "background included, counts too)."
)
# how the status line tells a round weighted to the labels layer's class mix
_WEIGHTED = "weighted to the layer's class mix"


class FinetuneWidget(Container):
    """Fine-tune the session model on a corrected Labels layer."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self._store = get_store(viewer)
        self._job = JobSlot(on_idle=self._on_idle)
        self._last_image: Any = None  # snapshot of the image of the last round
        # (layer, corrected voxels) of the one-sided corrections last warned of
        self._warned_of: tuple[int, int] | None = None
        self._image_combo = create_widget(
            annotation="napari.layers.Image", label="image"
        )
        self._labels_combo = create_widget(
            annotation="napari.layers.Labels", label="corrected labels"
        )
        self._scope_combo = ComboBox(
            label="learn from", choices=list(SCOPES), value="only what I edited"
        )
        self._steps_spin = SpinBox(
            label="steps", value=finetune_config(2).steps, min=1, max=5000
        )
        self._short_check = CheckBox(label="keep rounds short", value=True)
        self._mix_auto = CheckBox(label="automatic class mix", value=True)
        self._mix_check = CheckBox(
            label="keep the image's class mix", value=False, enabled=False
        )
        self._run_button = PushButton(text="Fine-tune")
        self._cancel_button = PushButton(text="Cancel", enabled=False)
        self._undo_button = PushButton(text="Undo last fine-tune", enabled=False)
        self._save_path = FileEdit(label="save to", mode="w", filter="*.pt")
        self._save_button = PushButton(text="Save model…")
        self._status = status_label()
        self.extend(
            tipped(
                (self._image_combo, "image"),
                (self._labels_combo, "labels"),
                (self._scope_combo, "scope"),
                (self._steps_spin, "steps"),
                (self._short_check, "short_rounds"),
                (self._mix_auto, "class_mix_auto"),
                (self._mix_check, "class_mix"),
                (self._run_button, "finetune"),
                (self._cancel_button, "cancel"),
                (self._undo_button, "undo"),
                (self._save_path, "save_path"),
                (self._save_button, "save"),
                self._status,
            )
        )
        self._plot = LossPlot()
        self.native.layout().addWidget(self._plot)
        self._run_button.changed.connect(self._on_run_clicked)
        self._cancel_button.changed.connect(self._on_cancel_clicked)
        self._undo_button.changed.connect(self._on_undo_clicked)
        self._save_button.changed.connect(self._on_save_clicked)
        self._mix_auto.changed.connect(self._on_mix_auto_changed)
        self._store.changed.connect(self._on_store_changed)
        self._on_store_changed()
        self._store.finetune_hook = weakref.WeakMethod(self._on_run_clicked)

    def _on_store_changed(self) -> None:
        self._undo_button.enabled = self._store.can_undo and not self._job.busy
        m = self._store.model
        self._status.value = (
            "Segment an image first (or load a model there)."
            if m is None
            else f"Session model: {m.spatial_dims}D, {self._store.source}"
            + (f", {self._store.rounds} round(s)" if self._store.rounds else "")
            + (", pretrained: gentle rate" if self._store.pretrained else "")
            + (", fast first round" if self._fast_first_round(m) else "")
        )

    def _fast_first_round(self, model) -> bool:
        """The next round is a new network's first, at the faster rate."""
        lr = finetune_config(model.spatial_dims, untrained=not self._store.trained).lr
        return lr == FIRST_ROUND_LR

    def _on_idle(self) -> None:
        self._set_running(False)
        self._store.end_settling(self)  # the round, re-segmentation included

    def _set_running(self, running: bool) -> None:
        self._run_button.enabled = not running
        self._cancel_button.enabled = running
        self._undo_button.enabled = not running and self._store.can_undo
        self._save_button.enabled = not running

    def _on_mix_auto_changed(self, *_: Any) -> None:
        self._mix_check.enabled = not self._mix_auto.value

    def _keep_class_mix(self, labels: np.ndarray) -> bool:
        """The round's class-mix weighting: the plugin's choice for this labels
        layer and model (:func:`auto_class_mix`), or the user's."""
        if self._mix_auto.value:
            return auto_class_mix(labels, self._store.trained)
        return bool(self._mix_check.value)

    def _read_config(
        self, spatial_dims: int, image_ndim: int, label_mode: str, labels: np.ndarray
    ):
        return finetune_config(
            spatial_dims,
            image_ndim,
            pretrained=self._store.pretrained,
            untrained=not self._store.trained,
            steps=int(self._steps_spin.value),
            label_mode=label_mode,
            match_class_mix=self._keep_class_mix(labels),
            **({} if self._short_check.value else {"max_seconds": None}),
        )

    def _on_run_clicked(self, *_: Any) -> None:
        labels_layer = self._labels_combo.value
        try:
            inputs = read_round_inputs(
                self._store,
                self._image_combo.value,
                labels_layer,
                self._scope_combo.value,
            )
        except NoRound as why:
            (show_error if why.error else show_warning)(str(why))
            return
        model = self._store.model
        snap, labels, mask = inputs.snap, inputs.labels, inputs.mask
        if inputs.scope == "edited" and not self._store.trained:
            # a new network learns only what the corrections show it: one-sided
            # corrections are named and the round waits for a second click on
            # the same corrections (the user may mean it)
            # (learning_mask has just refreshed the edits; this scope's mask is
            # an array, without the held-back patches)
            learnt = self._store.track(labels_layer).edited & mask
            note = one_sided_note(labels, learnt)
            key = (id(unwrap(labels_layer)), int(learnt.sum()))
            if note and self._warned_of != key:
                self._warned_of = key
                self._status.value = f"{note} Add to them, or click Fine-tune again."
                show_warning(f"{note} {_ONE_SIDED_ADVICE}")
                return
        self._warned_of = None
        cfg = self._read_config(
            model.spatial_dims, len(snap.spatial_shape), inputs.label_mode, labels
        )
        data = TrainData(snap.data, labels, mask, snap.channel_axis)
        self._plot.reset(cfg.steps)
        self._set_running(True)
        n_corr = int(mask.sum()) if mask is not None else labels.size
        weighted = cfg.match_class_mix
        how = f", {_WEIGHTED}" if weighted else ""
        self._status.value = f"Fine-tuning on {n_corr} voxels{how}…"
        self._last_image = snap
        self._round = {"n_corrections": n_corr, "steps": cfg.steps}
        self._job.start(
            lambda finished: start_job(
                iter_train,
                model,
                data,
                cfg,
                total=cfg.steps,
                desc="Fine-tuning",
                on_yielded=self._on_yielded,
                # what the round did leads the status line once it is over
                on_returned=functools.partial(
                    self._on_returned,
                    note=f"Fine-tuned ({_WEIGHTED})" if weighted else "Fine-tuned",
                ),
                on_aborted=self._on_train_aborted,
                on_errored=self._on_errored,
                on_finished=finished,
            )
        )

    def _on_yielded(self, record: Any) -> None:
        if "loss" in record.metrics:
            self._plot.add(record.step, record.metrics["loss"])

    def _on_returned(self, result: Any, note: str = "") -> None:
        losses = result.history["loss"]
        done, cfg = result.steps_done, result.config
        if done < cfg.steps:  # the time limit planned fewer (TrainConfig.max_seconds)
            note += f", {done} of {cfg.steps} steps in its {cfg.max_seconds:g} s limit"
        self._round["steps"] = done
        self._store.last_round = dict(self._round)
        self._store.begin_settling(self)  # until the image is segmented again
        self._store.set_model(result.model, "fine-tuned", undoable=True)
        self._status.value = (
            f"Fine-tuned: loss {losses[0]:.3f} → {losses[-1]:.3f}. Segmenting again…"
        )
        self._repredict(self._last_image, note)

    def _repredict(self, snap: Any, what: str = "") -> None:
        """Segment the image with the current model so the change shows at once;
        ``what`` (e.g. how the round trained) leads the status line after it."""
        self._set_running(True)
        self._job.start(
            lambda finished: start_prediction(
                self._viewer,
                self._store,
                self._store.model,
                snap,
                self._store.resegment_config(),
                on_done=functools.partial(self._on_repredicted, what=what),
                on_aborted=self._on_repredict_aborted,
                on_errored=self._on_errored,
                on_finished=finished,
            )
        )

    def _on_repredicted(self, layer: Any, kept: int, what: str = "") -> None:
        self._on_store_changed()
        lead = f"{what}. " if what else ""
        self._status.value = f"{lead}{self._status.value}. Updated '{layer.name}'."

    def _on_train_aborted(self) -> None:
        self._status.value = "Fine-tuning cancelled; the model is unchanged."

    def _on_repredict_aborted(self) -> None:
        self._status.value = "Segmentation cancelled; the fine-tuned model is kept."

    def _on_errored(self, err: BaseException) -> None:
        self._status.value = f"Failed: {err}"
        show_error(f"Fine-tuning failed: {err}")

    def _on_cancel_clicked(self, *_: Any) -> None:
        self._job.cancel()

    def _on_undo_clicked(self, *_: Any) -> None:
        if not self._store.can_undo:
            return
        # segmenting again follows at once: the queue waits for it (settling)
        if self._last_image is not None:
            self._store.begin_settling(self)
        self._store.undo()
        show_info("Restored the model from before the last fine-tune.")
        if self._last_image is not None:
            self._repredict(self._last_image)

    def _on_save_clicked(self, *_: Any) -> None:
        path = self._save_path.value
        if self._store.model is None:
            show_warning("There is no model to save yet.")
            return
        if not path or str(path) in ("", "."):
            show_warning("Choose where to save the model first.")
            return
        try:
            save_checkpoint(
                path,
                self._store.model,
                {"source": self._store.source, "rounds": self._store.rounds},
            )
        except OSError as err:
            show_error(f"Could not save the model: {err}")
            return
        show_info(f"Saved the model to {path}.")
