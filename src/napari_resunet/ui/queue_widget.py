"""The Annotation queue dock widget: where the model is least sure, patch by patch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    Container,
    FloatSpinBox,
    PushButton,
    SpinBox,
    create_widget,
)
from napari.utils.notifications import show_error, show_warning

from napari_resunet.core.checks import check_image
from napari_resunet.core.ordering import queue_order, variety_for
from napari_resunet.core.patches import RankedPatch, queue_patch_shape
from napari_resunet.core.uncertainty import queue_scores
from napari_resunet.ui._layers import (
    guess_channel_axis,
    show_layer,
    snapshot_image,
)
from napari_resunet.ui._model_store import get_store
from napari_resunet.ui._patch_view import show_patch
from napari_resunet.ui._predict_job import voxel_size_of
from napari_resunet.ui._queue_job import (
    Ranking,
    committee_inputs,
    iter_queue_uncertainty,
    order_note,
)
from napari_resunet.ui._queue_list import QueueList
from napari_resunet.ui._status import status_label
from napari_resunet.ui._tooltips import tipped
from napari_resunet.ui._workers import JobSlot, start_job

if TYPE_CHECKING:
    import napari

UNCERTAINTY_SUFFIX = " [resunet uncertainty]"


class QueueWidget(Container):
    """Rank patches by model uncertainty and walk the user through them."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self._store = get_store(viewer)
        self._job = JobSlot(on_idle=lambda: self._set_running(False))
        self._snap: Any = None
        self._scored = (True, True)  # (cell network, trained) of the last ranking
        self._blind = False  # the last ranking lists its patches in a random order
        self._shape: Any = None  # the last ranking's (patch shape, why that side)
        # the last ranked image and its forest features (core.committee), the
        # same from round to round: computed once per image
        self._features: tuple[np.ndarray, np.ndarray] | None = None
        self._image_combo = create_widget(
            annotation="napari.layers.Image", label="image"
        )
        self._labels_combo = create_widget(
            annotation="napari.layers.Labels", label="corrected labels"
        )
        # 0 = auto: a side suited to the image (suggest_patch_side). Said in the
        # label: magicgui's spin box (superqt) shows no special text for 0.
        self._patch_spin = SpinBox(
            label="patch size (0: auto)", value=0, min=0, max=4096, step=8
        )
        self._flips_spin = SpinBox(label="flip passes", value=3, min=1, max=7)
        self._variety_spin = FloatSpinBox(
            label="variety", value=0.0, min=0.0, max=1.0, step=0.1, enabled=False
        )
        # on: chosen per ranking (auto_variety) and shown in the spin box
        self._variety_auto = CheckBox(text="automatic variety", value=True)
        self._variety_auto.changed.connect(
            lambda auto: setattr(self._variety_spin, "enabled", not auto)
        )
        # on: a trained 2D cell network with corrections is ranked by where it and
        # a forest trained on them disagree (core.committee)
        self._committee_box = CheckBox(
            text="second opinion from a forest on my corrections", value=True
        )
        self._refresh_button = PushButton(text="Find uncertain patches")
        self._cancel_button = PushButton(text="Cancel", enabled=False)
        self._queue_list = QueueList()
        self._next_button = PushButton(text="Next")
        self._review_button = PushButton(text="Mark reviewed (correct as shown)")
        self._finetune_button = PushButton(text="Fine-tune now")
        self._status = status_label()
        self.extend(
            tipped(
                (self._image_combo, "queue_image"),
                (self._labels_combo, "queue_labels"),
                (self._patch_spin, "queue_patch"),
                (self._flips_spin, "queue_flips"),
                (self._variety_spin, "queue_variety"),
                (self._variety_auto, "queue_variety_auto"),
                (self._committee_box, "queue_committee"),
                (self._refresh_button, "queue_refresh"),
                (self._cancel_button, "queue_cancel"),
                (self._queue_list, "queue_list"),
                (self._next_button, "queue_next"),
                (self._review_button, "queue_review"),
                (self._finetune_button, "queue_finetune"),
                self._status,
            )
        )
        self._refresh_button.changed.connect(self._on_refresh_clicked)
        self._cancel_button.changed.connect(lambda *_: self._job.cancel())
        self._queue_list.changed.connect(self._on_selection_changed)
        self._next_button.changed.connect(self._on_next_clicked)
        self._review_button.changed.connect(self._on_review_clicked)
        self._finetune_button.changed.connect(self._on_finetune_clicked)
        self._store.changed.connect(self._on_model_changed)
        self._store.settled.connect(self._on_model_changed)

    # ---- state ----------------------------------------------------------------
    @property
    def _entries(self) -> list[RankedPatch]:
        """The queue's patches, in queue order."""
        return self._queue_list.entries

    def _select(self, index: int) -> None:
        """Select entry ``index`` in the list and show it (once)."""
        self._queue_list.pick(index)
        self._on_entry_selected(index)

    def _on_selection_changed(self, value: list[int]) -> None:
        if value:  # a click or the arrow keys in the list
            self._on_entry_selected(value[0])

    def _set_running(self, running: bool) -> None:
        self._refresh_button.enabled = not running
        self._cancel_button.enabled = running

    # ---- computing the queue ----------------------------------------------------
    def _on_refresh_clicked(self, *_: Any) -> None:
        layer, model = self._image_combo.value, self._store.model
        if layer is None:
            show_warning("Choose the image to review.")
            return
        if model is None:
            show_warning("There is no model yet: segment the image first.")
            return
        snap = snapshot_image(
            layer, guess_channel_axis(layer, model.config.in_channels)
        )
        try:
            check_image(snap.data, model.config, snap.channel_axis)
        except ValueError as err:
            show_error(f"Cannot rank patches: {err}")
            return
        self._snap = snap
        # what the queue ranks by depends on the network measured (queue_scores)
        self._scored = (model.config.task == "instance", self._store.trained)
        # left to the plugin, a network that has learnt nothing is not ranked by
        # its uncertainty, which leans towards crowded patches (blind_order):
        # its patches come in a random order, so one pass (after a segmentation,
        # the one it kept: no prediction at all) serves the uncertainty layer
        # and the variety, and the mirrored passes would cost time for nothing
        self._blind = self._variety_auto.value and not self._store.trained
        self._set_running(True)
        self._status.value = "Measuring uncertainty…"
        # the Segment widget's tiles and device; the queue mirrors on its own
        cfg = self._store.resegment_config().replace(test_time_flips=1)
        vs = voxel_size_of(snap)
        # from now on segmentations keep their probabilities for the next ranking
        self._store.keep_first_pass = True
        kept = self._store.take_first_pass(model, snap.channel_axis, cfg, vs)
        self._shape = self._patch_shape(snap.spatial_shape, model)
        committee = (
            committee_inputs(
                self._store,
                self._labels_combo.value,
                snap.spatial_shape,
                self._features,
            )
            if self._committee_box.value
            else None
        )
        self._job.start(
            lambda finished: start_job(
                iter_queue_uncertainty,
                model,
                snap.data,
                cfg,
                1 if self._blind else int(self._flips_spin.value),
                snap.channel_axis,
                vs,
                # Monte-Carlo dropout samples
                4 if model.config.dropout > 0 and not self._blind else 0,
                kept,
                committee,
                self._shape[0],
                desc="Uncertainty",
                on_returned=self._on_uncertainty,
                on_errored=lambda err: show_error(f"Uncertainty failed: {err}"),
                on_finished=finished,
            )
        )

    def _on_uncertainty(self, ranking: Ranking) -> None:
        snap, result, opinion = self._snap, ranking.result, ranking.committee
        if opinion is not None and opinion.features is not None:
            self._features = (snap.data, opinion.features)
        committee = opinion.score if opinion is not None else None
        # with the forest's opinion: disputed share x typicality (short: the
        # list is narrow; its tooltip says what it is)
        score_name = "uncertainty" if committee is None else "weighted"
        u = queue_scores(
            result, *self._scored, background=ranking.background, committee=committee
        )
        show_layer(
            self._viewer,
            "image",
            u,
            f"{snap.name}{UNCERTAINTY_SUFFIX}",
            snap,
            colormap="inferno",
            opacity=0.5,
            blending="additive",
            contrast_limits=(0.0, max(float(u.max()), 1e-3)),
            visible=False,
        )
        shape, why = self._shape
        variety = self._variety(ranking.background)
        entries = queue_order(
            u,
            shape,
            exclude=self._store.reviewed_mask(u.shape),
            probabilities=result.probabilities,
            variety=variety,
            blind=self._blind,
            typicality=ranking.typicality,
        )
        self._queue_list.show_entries(entries, score_name)
        if self._entries:
            self._select(0)
        # after showing the first entry (which is also highlighted in the list), so
        # this summary is what the status line keeps
        note = f" Patches of {shape[-1]} px ({why})." if why else ""
        self._status.value = (
            f"{len(self._entries)} patches ranked; mean {score_name} "
            f"{float(u.mean()):.3f}.{note}{order_note(self._blind, variety, opinion)}"
        )

    def _patch_shape(self, spatial_shape: tuple[int, ...], model: Any) -> Any:
        """The queue's patch shape and, for an automatic side, why that side
        (``queue_patch_shape``; a cell network's labels size the patches)."""
        layer = self._labels_combo.value
        cells = (
            layer.data
            if layer is not None
            and not getattr(layer, "multiscale", False)
            and model.config.task == "instance"
            else None  # labels of another shape: queue_patch_shape ignores them
        )
        return queue_patch_shape(
            spatial_shape, model.spatial_dims, int(self._patch_spin.value), cells
        )

    def _variety(self, background: bool) -> float:
        """The spin box's variety, or with "automatic variety" the plugin's choice
        (:func:`auto_variety`) for probabilities that do or do not show
        ``background`` (shown in the spin box)."""
        if self._variety_auto.value:
            self._variety_spin.value = variety_for(background)
        return float(self._variety_spin.value)

    # ---- walking the queue ------------------------------------------------------
    def _on_entry_selected(self, index: Any) -> None:
        if index is None or not 0 <= int(index) < len(self._entries):
            return
        show_patch(self._viewer, self._snap, self._entries[int(index)].slices)
        self._status.value = self._queue_list.describe(int(index))

    def _on_next_clicked(self, *_: Any) -> None:
        if not self._entries:
            show_warning("The queue is empty: find uncertain patches first.")
            return
        current = self._queue_list.selected()
        self._select(0 if current is None else (current + 1) % len(self._entries))

    def _on_review_clicked(self, *_: Any) -> None:
        index = self._queue_list.selected()
        if index is None or not self._entries:
            show_warning("Select a patch in the queue first.")
            return
        entry = self._queue_list.pop(int(index))
        layer = self._labels_combo.value
        if layer is not None and layer.data.shape != self._snap.spatial_shape:
            layer = None  # not this image's labels: nothing there to keep
        held_back = self._store.mark_reviewed(entry.slices, layer)
        if self._entries:
            self._select(min(index, len(self._entries) - 1))
        self._status.value = (
            f"Reviewed{' (held back for scoring)' if held_back else ''}; "
            f"{len(self._store.reviewed)} patch(es) reviewed, {len(self._entries)} left."
        )

    def _on_finetune_clicked(self, *_: Any) -> None:
        hook = self._store.finetune_hook() if self._store.finetune_hook else None
        if hook is None:
            show_warning("Open the Fine-tune widget (Plugins › ResUNet) to fine-tune.")
            return
        hook()

    def _on_model_changed(self) -> None:
        """A new model (fine-tuned, rolled back): rank the patches again.

        After a fine-tuning round this waits until the round has segmented the
        image again (``settled``): run side by side on the same cores, the two jobs
        would delay the new labels the user is waiting for.
        """
        if (
            not self._store.settling
            and self._snap is not None
            and not self._job.busy
            and self._store.model is not None
        ):
            self._on_refresh_clicked()
