"""The Model versions dock widget: every fine-tuning round kept, scored, reversible.

Each successful round of the viewer's session model is saved as an immutable
checkpoint in an annotation session folder (default: the platform's user data
folder), with its number of corrections, steps and the foreground Dice on held-back
reviewed patches before and after the round. A round that lowers that score is
flagged. Any version can be restored, two can be compared side by side, and the
session (versions, corrections, reviewed patches) saved and reopened.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, PushButton, create_widget
from napari.utils.notifications import show_error, show_info, show_warning

from napari_resunet.core.checks import check_image
from napari_resunet.core.session import AnnotationSession, SessionError
from napari_resunet.ui._compare_view import SideBySide, start_comparison
from napari_resunet.ui._held_back import HeldBackScorer
from napari_resunet.ui._layers import guess_channel_axis, snapshot_image
from napari_resunet.ui._model_store import get_store
from napari_resunet.ui._predict_job import start_prediction
from napari_resunet.ui._session_sync import read_session, write_session
from napari_resunet.ui._status import status_label
from napari_resunet.ui._tooltips import tipped
from napari_resunet.ui._versions_table import VersionsTable, fmt_score
from napari_resunet.ui._workers import JobSlot

if TYPE_CHECKING:
    import napari


class VersionsWidget(Container):
    """List, score, restore and compare the session model's versions."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=False)
        self._viewer = viewer
        self._store = get_store(viewer)
        self._session: AnnotationSession | None = None
        self._recorded: Any = None  # the model last saved as a version
        self._previous: Any = self._store.model
        self._side_by_side = SideBySide(viewer)
        self._image_combo = create_widget(
            annotation="napari.layers.Image", label="image"
        )
        self._labels_combo = create_widget(
            annotation="napari.layers.Labels", label="corrected labels"
        )
        self._folder = FileEdit(label="session folder", mode="d")
        self._open_button = PushButton(text="Open session")
        self._save_button = PushButton(text="Save session")
        self._table = VersionsTable()
        self._version_combo = ComboBox(label="version", choices=self._version_choices)
        self._other_combo = ComboBox(
            label="compare with", choices=self._version_choices
        )
        self._rollback_button = PushButton(text="Restore this version")
        self._compare_button = PushButton(text="Compare side by side")
        self._cancel_button = PushButton(text="Cancel", enabled=False)
        self._job = JobSlot(on_idle=self._on_idle)
        self._scorer = HeldBackScorer(self._store, self._on_scored)
        self._status = status_label("Versions are saved after each fine-tuning round.")
        # the table sits between two labelled forms, not in one: a form gives it
        # only the field column, which hid the score columns in a docked widget
        above = Container(
            labels=True,
            widgets=tipped(
                (self._image_combo, "ver_image"),
                (self._labels_combo, "ver_labels"),
                (self._folder, "ver_folder"),
                (self._open_button, "ver_open"),
                (self._save_button, "ver_save"),
            ),
        )
        below = Container(
            labels=True,
            widgets=tipped(
                (self._version_combo, "ver_version"),
                (self._other_combo, "ver_other"),
                (self._rollback_button, "ver_restore"),
                (self._compare_button, "ver_compare"),
                (self._cancel_button, "ver_cancel"),
                self._status,
            ),
        )
        for form in (above, below):
            form.margins = (0, 0, 0, 0)
        self.extend(tipped(above, (self._table, "ver_table"), below))
        self._open_button.changed.connect(self._on_open_clicked)
        self._save_button.changed.connect(self._on_save_clicked)
        self._rollback_button.changed.connect(self._on_restore_clicked)
        self._compare_button.changed.connect(self._on_compare_clicked)
        self._cancel_button.changed.connect(lambda *_: self._job.cancel())
        self._store.changed.connect(self._on_model_changed)

    # ---- session --------------------------------------------------------------
    @property
    def session(self) -> AnnotationSession:
        """The current session, created on first use (chosen folder or default)."""
        if self._session is None:
            folder = self._folder.value
            use = folder if folder and str(folder) not in ("", ".") else None
            if use is not None and (Path(use) / "session.json").exists():
                self._session = AnnotationSession.open(use)
            else:
                image = self._image_combo.value
                self._session = AnnotationSession.create(
                    use, image.name if image else ""
                )
            self._folder.value = self._session.folder
        return self._session

    def _version_choices(self, *_: Any) -> list[tuple[str, int]]:
        s = getattr(self, "_session", None)
        if s is None:
            return []
        return [(f"v{v.number} ({v.created[11:16]})", v.number) for v in s.versions]

    def _refresh(self) -> None:
        self._table.show_versions(self.session.versions)
        self._version_combo.reset_choices()
        self._other_combo.reset_choices()

    def _arrays(self) -> tuple[np.ndarray, np.ndarray] | None:
        image, labels = self._image_combo.value, self._labels_combo.value
        if image is None or labels is None:
            return None
        data = np.asarray(snapshot_image(image).data)
        lab = np.asarray(labels.data)
        return (data, lab) if data.shape == lab.shape else None

    # ---- recording rounds -------------------------------------------------------
    def _on_model_changed(self) -> None:
        model = self._store.model
        if (
            model is None
            or self._store.source != "fine-tuned"
            or model is self._recorded
        ):
            self._previous = model
            return
        info = self._store.last_round
        try:
            v = self.session.add_version(
                model, info.get("n_corrections", 0), info.get("steps", 0)
            )
        except (OSError, SessionError) as err:
            show_error(f"Could not save the model version: {err}")
            return
        arrays = self._arrays()
        if arrays is not None and self._store.held_back:
            self._scorer.add(
                v.number, self._previous, model, *arrays, self._store.held_back
            )
        self._recorded, self._previous = model, model
        self._refresh()
        self._version_combo.value = v.number
        self._status.value = f"Saved version v{v.number} in {self.session.folder}."
        self._scorer.next()

    # ---- held-back scores ---------------------------------------------------------
    def _on_scored(self, number: int, has_before: bool, scores: list) -> None:
        before = scores[0] if has_before else None
        try:
            v = self.session.set_scores(number, before, scores[-1])
        except (OSError, SessionError) as err:
            show_error(f"Could not record the scores of v{number}: {err}")
            return
        self._refresh()
        msg = (
            f"v{v.number} on held-back patches: "
            f"{fmt_score(v.score_before) or '–'} → {fmt_score(v.score_after)}."
        )
        if v.is_worse:
            # v1's predecessor is the model the session started from, not a version
            back = (
                f"restoring v{v.number - 1}"
                if v.number > 1
                else "going back to the model before it (Undo last fine-tune)"
            )
            msg = (
                f"Version v{v.number} scores lower on held-back patches "
                f"({v.score_before:.3f} → {v.score_after:.3f}); consider {back}."
            )
            show_warning(msg)
        self._status.value = msg

    def _on_restore_clicked(self, *_: Any) -> None:
        number = self._version_combo.value
        if number is None:
            show_warning("There is no saved version yet.")
            return
        model = self.session.load_version(int(number))
        self._recorded = model
        image = self._image_combo.value
        snap = None
        if image is not None:
            snap = snapshot_image(
                image, guess_channel_axis(image, model.config.in_channels)
            )
            try:
                check_image(snap.data, model.config, snap.channel_axis)
            except ValueError:
                snap = None  # another image than the versions were made on
        if snap is not None:  # segmenting with it follows: the queue waits
            self._store.begin_settling(self)
        self._store.set_model(model, f"version v{number}", undoable=True)
        self._status.value = f"Restored version v{number}."
        if snap is None:
            return
        # the labels show what the restored version segments, as after a round or
        # its undo; the user's edits are kept (Ctrl+Z undoes the update)
        self._status.value = f"Restored version v{number}; segmenting {snap.name}…"
        self._set_running(True)
        self._job.start(
            lambda finished: start_prediction(
                self._viewer,
                self._store,
                model,
                snap,
                self._store.resegment_config(),
                on_done=lambda layer, _: setattr(
                    self._status,
                    "value",
                    f"Restored version v{number}; updated '{layer.name}'.",
                ),
                on_aborted=lambda: setattr(
                    self._status,
                    "value",
                    f"Restored version v{number}; segmentation cancelled.",
                ),
                on_errored=lambda err: show_error(f"Segmentation failed: {err}"),
                on_finished=finished,
            )
        )

    def _on_idle(self) -> None:
        self._set_running(False)
        self._store.end_settling(self)  # a restore's segmentation is over

    def _set_running(self, running: bool) -> None:
        self._rollback_button.enabled = not running
        self._compare_button.enabled = not running
        self._cancel_button.enabled = running

    def _on_compare_clicked(self, *_: Any) -> None:
        a, b = self._version_combo.value, self._other_combo.value
        image = self._image_combo.value
        if a is None or b is None or image is None:
            show_warning("Choose an image and two versions to compare.")
            return
        if a == b:
            show_warning("Choose two different versions to compare.")
            return
        models = [(int(n), self.session.load_version(int(n))) for n in (a, b)]
        in_channels = models[0][1].config.in_channels
        snap = snapshot_image(image, guess_channel_axis(image, in_channels))
        self._set_running(True)
        self._status.value = f"Segmenting with v{a} and v{b}…"
        self._job.start(
            lambda finished: start_comparison(
                self._viewer,
                self._store,
                self._side_by_side,
                image,
                snap,
                models,
                lambda message: setattr(self._status, "value", message),
                finished,
            )
        )

    # ---- save and reopen ---------------------------------------------------------
    def _on_save_clicked(self, *_: Any) -> None:
        s = self.session
        write_session(self._store, s, self._labels_combo.value)
        show_info(f"Saved the session in {s.folder}.")
        self._status.value = f"Session saved in {s.folder}."

    def _on_open_clicked(self, *_: Any) -> None:
        folder = self._folder.value
        try:
            self._session = AnnotationSession.open(folder)
        except SessionError as err:
            show_error(f"Cannot open the session: {err}")
            return
        s = self._session
        layer, beside, model = read_session(self._viewer, self._store, s)
        if model is not None:
            self._recorded = self._previous = model
        if layer is not None:
            self._labels_combo.value = layer
            if beside:
                show_info(
                    f"'{beside}' is open already: the saved corrections are in "
                    f"'{layer.name}'. Choose that layer as the corrected labels to "
                    "go on learning from them."
                )
        self._refresh()
        self._status.value = f"Opened {s.folder}: {len(s.versions)} version(s)."
