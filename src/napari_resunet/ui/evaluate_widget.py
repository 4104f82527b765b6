"""The Evaluate dock widget: metrics of a segmentation against ground truth."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    PushButton,
    SpinBox,
    Table,
    create_widget,
)
from napari.utils.notifications import show_error, show_info, show_warning

from napari_resunet.core.metrics import evaluate, metrics_table
from napari_resunet.ui._model_store import finish_pandas_import, unwrap
from napari_resunet.ui._status import status_label
from napari_resunet.ui._tooltips import tipped
from napari_resunet.ui._workers import JobSlot, start_job

if TYPE_CHECKING:
    import napari


def _iter_evaluate(pred: np.ndarray, truth: np.ndarray, mode: str, voxel_size: Any):
    """Generator form of ``evaluate`` for the worker (one step: metrics are fast)."""
    from napari_resunet.core.progress import Progress

    yield Progress(0, 1, "computing metrics", "evaluate")
    return evaluate(pred, truth, mode, voxel_size)


class EvaluateWidget(Container):
    """Compare a prediction Labels layer with a ground-truth Labels layer."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self._job = JobSlot(on_idle=lambda: setattr(self._run_button, "enabled", True))
        self._result: dict | None = None
        self._pred_combo = create_widget(
            annotation="napari.layers.Labels", label="prediction"
        )
        self._truth_combo = create_widget(
            annotation="napari.layers.Labels", label="ground truth"
        )
        self._mode_combo = ComboBox(
            label="compare as", choices=["auto", "instance", "semantic"]
        )
        self._restrict_check = CheckBox(text="Only slices (first axis) from…to")
        self._start_spin = SpinBox(label="from", value=0, min=0, max=10**6)
        self._stop_spin = SpinBox(label="to (excl.)", value=1, min=1, max=10**6)
        self._run_button = PushButton(text="Evaluate")
        finish_pandas_import()  # the table looks pandas up; not while half made
        self._table = Table(value=[], columns=["metric", "value"])
        self._table.min_height = 260
        self._copy_button = PushButton(text="Copy as CSV")
        self._csv_path = FileEdit(label="CSV file", mode="w", filter="*.csv")
        self._export_button = PushButton(text="Export CSV")
        self._status = status_label()
        self.extend(
            tipped(
                (self._pred_combo, "eval_pred"),
                (self._truth_combo, "eval_truth"),
                (self._mode_combo, "eval_mode"),
                (self._restrict_check, "eval_restrict"),
                (self._start_spin, "eval_start"),
                (self._stop_spin, "eval_stop"),
                (self._run_button, "eval_run"),
                self._status,
                (self._table, "eval_table"),
                (self._copy_button, "eval_copy"),
                (self._csv_path, "eval_csv"),
                (self._export_button, "eval_export"),
            )
        )
        self._restrict_check.changed.connect(self._on_restrict_changed)
        self._run_button.changed.connect(self._on_run_clicked)
        self._copy_button.changed.connect(self._on_copy_clicked)
        self._export_button.changed.connect(self._on_export_clicked)
        self._on_restrict_changed()

    def _on_restrict_changed(self, *_: Any) -> None:
        self._start_spin.visible = self._stop_spin.visible = self._restrict_check.value

    def _read_region(self, shape: tuple[int, ...]) -> tuple[slice, ...]:
        if not self._restrict_check.value:
            return tuple(slice(None) for _ in shape)
        start, stop = int(self._start_spin.value), int(self._stop_spin.value)
        if not 0 <= start < stop <= shape[0]:
            raise ValueError(
                f"The slice range {start}..{stop} does not fit the first axis (0..{shape[0]})."
            )
        return (slice(start, stop),) + tuple(slice(None) for _ in shape[1:])

    def _on_run_clicked(self, *_: Any) -> None:
        pred_layer, truth_layer = self._pred_combo.value, self._truth_combo.value
        if pred_layer is None or truth_layer is None:
            show_warning("Choose a prediction and a ground-truth Labels layer.")
            return
        if unwrap(pred_layer) is unwrap(truth_layer):
            show_warning("The prediction and the ground truth are the same layer.")
            return
        pred, truth = np.asarray(pred_layer.data), np.asarray(truth_layer.data)
        try:
            if pred.shape != truth.shape:
                raise ValueError(
                    f"the prediction's shape {pred.shape} differs from the ground "
                    f"truth's {truth.shape}"
                )
            region = self._read_region(pred.shape)
        except ValueError as err:
            show_error(f"Cannot evaluate: {err}")
            return
        pred, truth = np.array(pred[region]), np.array(truth[region])
        scale = tuple(float(s) for s in truth_layer.scale)[-truth.ndim :]
        self._run_button.enabled = False
        self._status.value = "Computing metrics…"
        self._job.start(
            lambda finished: start_job(
                _iter_evaluate,
                pred,
                truth,
                self._mode_combo.value,
                scale,
                total=1,
                desc="Evaluating",
                on_returned=self._on_returned,
                on_errored=self._on_errored,
                on_finished=finished,
            )
        )

    def _on_returned(self, result: dict) -> None:
        self._result = result
        rows = metrics_table(result)
        data = [list(r) for r in rows]
        self._table.value = {
            "data": data,
            "index": list(range(len(data))),
            "columns": ["metric", "value"],
        }
        s = result["summary"]
        if result["mode"] == "instance":
            self._status.value = (
                f"{s['n_true']} true / {s['n_pred']} predicted objects: "
                f"F1@0.5 {s['f1@0.5']:.3f}, mean AP {s['mean_ap']:.3f}"
            )
        else:
            self._status.value = f"Mean foreground Dice {s['mean_fg_dice']:.3f}"

    def _on_errored(self, err: BaseException) -> None:
        self._status.value = f"Failed: {err}"
        show_error(f"Cannot evaluate: {err}")

    def csv_text(self) -> str:
        """The current table as CSV text ('' before the first evaluation)."""
        if self._result is None:
            return ""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["metric", "value"])
        writer.writerows(metrics_table(self._result))
        return buf.getvalue()

    def _on_copy_clicked(self, *_: Any) -> None:
        if self._result is None:
            show_warning("Evaluate first.")
            return
        from qtpy.QtWidgets import QApplication

        QApplication.clipboard().setText(self.csv_text())
        show_info("Metrics copied to the clipboard as CSV.")

    def _on_export_clicked(self, *_: Any) -> None:
        path = self._csv_path.value
        if self._result is None:
            show_warning("Evaluate first.")
            return
        if not path or str(path) in ("", "."):
            show_warning("Choose a CSV file to write.")
            return
        try:
            with open(path, "w", newline="", encoding="utf-8") as fh:
                fh.write(self.csv_text())
        except OSError as err:
            show_error(f"Could not write {path}: {err}")
            return
        show_info(f"Wrote {path}.")
