"""The Evaluate widget in a real viewer."""

import numpy as np
import pytest
from tests.ui.conftest import dock, wait_idle


def _layers(viewer, nuclei2d):
    truth = nuclei2d[1]
    pred = truth.copy()
    pred[pred == 3] = 0  # one nucleus missed
    viewer.add_labels(truth, name="truth")
    viewer.add_labels(pred, name="pred")
    return truth, pred


def test_evaluate_table_and_csv(make_napari_viewer, qtbot, nuclei2d, tmp_path):
    viewer = make_napari_viewer()
    truth, _ = _layers(viewer, nuclei2d)
    w = dock(viewer, "Evaluate")
    w._pred_combo.value = viewer.layers["pred"]
    w._truth_combo.value = viewer.layers["truth"]
    w._run_button.clicked()
    wait_idle(qtbot, w)
    rows = dict(w._table.data.to_list())
    n = len(np.unique(truth)) - 1
    assert rows["n_true"] == str(n) and rows["n_pred"] == str(n - 1)
    assert float(rows["recall@0.50"]) == pytest.approx((n - 1) / n, abs=1e-4)
    assert float(rows["precision@0.50"]) == 1.0
    assert "F1@0.5" in w._status.value
    w._csv_path.value = tmp_path / "m.csv"
    w._export_button.clicked()
    text = (tmp_path / "m.csv").read_text()
    assert text.startswith("metric,value") and "f1@0.50" in text
    w._copy_button.clicked()
    from qtpy.QtWidgets import QApplication

    assert QApplication.clipboard().text() == text


def test_evaluate_slice_range_and_bad_input(
    make_napari_viewer, qtbot, notes, sync_jobs
):
    import napari_resunet.ui.evaluate_widget as ew

    for kind in ("error", "warning"):
        setattr(ew, f"show_{kind}", lambda msg, k=kind: notes[k].append(msg))
    viewer = make_napari_viewer()
    truth = np.zeros((4, 20, 20), np.uint16)
    truth[:, 5:10, 5:10] = 1
    pred = truth.copy()
    pred[3] = 0  # wrong only in the last slice
    viewer.add_labels(truth, name="truth")
    viewer.add_labels(pred, name="pred")
    w = dock(viewer, "Evaluate")
    w._pred_combo.value = viewer.layers["pred"]
    w._truth_combo.value = viewer.layers["truth"]
    w._mode_combo.value = "semantic"
    w._restrict_check.value = True
    w._start_spin.value, w._stop_spin.value = 0, 3
    w._run_button.clicked()
    assert dict(w._table.data.to_list())["mean_fg_dice"] == "1.0000"
    w._stop_spin.value = 9
    w._run_button.clicked()
    assert "does not fit" in notes["error"][-1]
    viewer.add_labels(np.zeros((5, 5), np.uint8), name="small")
    w._restrict_check.value = False
    w._pred_combo.value = viewer.layers["small"]
    w._run_button.clicked()
    assert "differs" in notes["error"][-1]
    w._pred_combo.value = viewer.layers["truth"]
    w._run_button.clicked()
    assert "same layer" in notes["warning"][-1]
    # empty prediction: defined scores, no crash
    viewer.add_labels(np.zeros_like(truth), name="empty")
    w._pred_combo.value = viewer.layers["empty"]
    w._mode_combo.value = "instance"
    w._run_button.clicked()
    rows = dict(w._table.data.to_list())
    assert rows["f1@0.50"] == "0.0000" and rows["hd95"] == "inf"
