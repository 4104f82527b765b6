"""Make the documentation screenshots: real napari windows with the widgets in use.

Uses the shipped starter models on the shipped samples and drives the Segment,
Fine-tune, Annotation queue, Model versions and Evaluate widgets exactly as a
user would, then grabs the whole window. Run headless with:

    xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb \\
        python docs/screenshots.py [--out docs/images]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("NAPARI_RESUNET_NO_THREADS", "1")  # deterministic, in order


def _settle(viewer, ms: int = 400) -> None:
    from qtpy.QtWidgets import QApplication

    for _ in range(max(1, ms // 20)):
        QApplication.processEvents()
        import time

        time.sleep(0.02)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(Path(__file__).parent / "images"))
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import napari
    from qtpy.QtCore import Qt

    from napari_resunet.core.io import load_sample
    from napari_resunet.ui._layers import camera_of, grid_of
    from napari_resunet.ui.predict_widget import STARTER_PREFIX

    # the Model versions widget saves a version per round: here, not in the
    # user's data folder
    session_dir = Path(tempfile.mkdtemp(prefix="resunet-screenshots-"))

    # 1. 2D nuclei segmented, then corrected and fine-tuned
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1500, 1000)
    viewer.open_sample("napari-resunet", "nuclei2d")
    viewer.layers["nuclei 2D ground truth"].visible = False
    seg_dock, seg = viewer.window.add_plugin_dock_widget("napari-resunet", "Segment")
    ft_dock, ft = viewer.window.add_plugin_dock_widget("napari-resunet", "Fine-tune")
    seg._image_combo.value = viewer.layers["nuclei 2D"]
    seg._model_combo.value = f"{STARTER_PREFIX}nuclei2d"
    seg._run_button.clicked()
    _settle(viewer)
    viewer.screenshot(str(out / "segment_2d.png"), canvas_only=False)

    # the user repaints the nuclei of a corner from the ground truth (one id per
    # nucleus, whole nuclei as a user paints them), then fine-tunes on them
    out_layer = viewer.layers["nuclei 2D [resunet]"]
    truth = np.asarray(viewer.layers["nuclei 2D ground truth"].data)
    current = np.asarray(out_layer.data)
    corner = np.zeros(truth.shape, bool)
    corner[:200, :260] = True
    touched = np.isin(truth, np.unique(truth[corner])[1:]) | np.isin(
        current, np.unique(current[corner])[1:]
    )
    paint = corner | touched
    fixed = np.where(truth > 0, truth.astype(np.int64) + int(current.max()), 0)
    wrong = np.nonzero(paint & (current != fixed))
    out_layer.data_setitem(wrong, fixed[wrong].astype(out_layer.data.dtype))
    ft._image_combo.value = viewer.layers["nuclei 2D"]
    ft._labels_combo.value = out_layer
    ft._steps_spin.value = 40
    ft._run_button.clicked()
    _settle(viewer)
    # as a user would drag the splitter: Segment as tall as its controls, the
    # rest for the widget below it (Qt splits the height evenly)
    viewer.window._qt_window.resizeDocks(
        [seg_dock, ft_dock], [280, 720], Qt.Orientation.Vertical
    )
    _settle(viewer)
    viewer.screenshot(str(out / "finetune_2d.png"), canvas_only=False)

    # the queue and the versions, tabbed beside the others: walk the queue, mark
    # three patches reviewed (the third is held back for scoring), fine-tune
    versions_dock, versions = viewer.window.add_plugin_dock_widget(
        "napari-resunet", "Model versions", tabify=True
    )
    versions._folder.value = str(session_dir)
    versions._image_combo.value = viewer.layers["nuclei 2D"]
    versions._labels_combo.value = out_layer
    _, queue = viewer.window.add_plugin_dock_widget(
        "napari-resunet", "Annotation queue", tabify=True
    )
    queue._image_combo.value = viewer.layers["nuclei 2D"]
    queue._labels_combo.value = out_layer
    queue._refresh_button.clicked()
    for _ in range(3):
        queue._review_button.clicked()
    queue._finetune_button.clicked()  # version 1
    _settle(viewer)
    queue._review_button.clicked()
    queue._finetune_button.clicked()  # version 2
    _settle(viewer)
    queue._next_button.clicked()
    viewer.layers["nuclei 2D [resunet uncertainty]"].visible = True
    _settle(viewer)
    viewer.screenshot(str(out / "queue_2d.png"), canvas_only=False)
    viewer.layers["nuclei 2D [resunet uncertainty]"].visible = False
    viewer.layers.remove("[resunet] queue patch")

    versions._version_combo.value = 1
    versions._other_combo.value = 2
    versions._compare_button.clicked()
    versions_dock.raise_()
    viewer.reset_view()  # both whole fields, side by side
    _settle(viewer)
    viewer.screenshot(str(out / "versions_2d.png"), canvas_only=False)
    grid_of(viewer).enabled = False
    for name in ("nuclei 2D [v1]", "nuclei 2D [v2]"):
        viewer.layers.remove(name)
    viewer.layers.selection.active = out_layer  # its controls, not an empty panel
    viewer.window.remove_dock_widget(queue.native)
    viewer.window.remove_dock_widget(versions.native)
    viewer.reset_view()

    _, ev = viewer.window.add_plugin_dock_widget("napari-resunet", "Evaluate")
    ev._pred_combo.value = out_layer
    ev._truth_combo.value = viewer.layers["nuclei 2D ground truth"]
    ev._run_button.clicked()
    _settle(viewer)
    viewer.window._qt_window.resize(1500, 1100)
    _settle(viewer)
    viewer.screenshot(str(out / "evaluate_2d.png"), canvas_only=False)
    viewer.close()

    # 2. 3D embryo nuclei, rendered in 3D
    image, _ = load_sample("nuclei3d")
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1500, 950)
    lo, hi = np.percentile(image.data, [1, 99.8])
    viewer.add_image(
        image.data,
        name="embryo",
        scale=image.voxel_size,
        colormap="gray",
        contrast_limits=(float(lo), float(hi)),
    )
    _, seg = viewer.window.add_plugin_dock_widget("napari-resunet", "Segment")
    seg._model_combo.value = f"{STARTER_PREFIX}nuclei3d"
    seg._advanced_check.value = True
    seg._advanced.flips_spin.value = 8  # test-time augmentation: all 8 mirrorings
    seg._run_button.clicked()
    _settle(viewer)
    viewer.dims.ndisplay = 3
    viewer.reset_view()
    camera = camera_of(viewer)
    camera.angles = (0, 25, 55)
    camera.zoom *= 0.8
    _settle(viewer)
    viewer.screenshot(str(out / "segment_3d.png"), canvas_only=False)
    viewer.close()
    print(f"screenshots written to {out}")


if __name__ == "__main__":
    main()
