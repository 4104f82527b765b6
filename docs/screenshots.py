"""Make the documentation screenshots: real napari windows with the widgets in use.

Trains small models on the shipped samples first (so the results are real), then
drives the Segment and Fine-tune widgets exactly as a user would and grabs the
whole window. Run headless with:

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


def _train(sample: str, dims: int, steps: int, patch, ckpt: Path) -> None:
    from napari_resunet.core import (
        ModelConfig,
        TrainConfig,
        TrainData,
        build_model,
        save_checkpoint,
        train,
    )
    from napari_resunet.core.io import load_sample

    image, labels = load_sample(sample)
    model = build_model(ModelConfig(spatial_dims=dims))
    cfg = TrainConfig(
        steps=steps,
        patch_shape=patch,
        batch_size=4 if dims == 2 else 2,
        label_mode="foreground",
    )
    res = train(model, TrainData(image.data, labels.data), cfg, show_progress=True)
    save_checkpoint(ckpt, res.model, res.metadata())


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

    from napari_resunet.core.io import load_sample
    from napari_resunet.ui.predict_widget import CHECKPOINT

    tmp = Path(tempfile.mkdtemp())
    ckpt2d, ckpt3d = tmp / "nuclei2d.pt", tmp / "nuclei3d.pt"
    _train("nuclei2d", 2, 150, (128, 128), ckpt2d)
    _train("nuclei3d", 3, 120, (32, 64, 64), ckpt3d)

    # 1. 2D nuclei segmented, then corrected and fine-tuned
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1500, 950)
    viewer.open_sample("napari-resunet", "nuclei2d")
    viewer.layers["nuclei 2D ground truth"].visible = False
    _, seg = viewer.window.add_plugin_dock_widget("napari-resunet", "Segment")
    _, ft = viewer.window.add_plugin_dock_widget("napari-resunet", "Fine-tune")
    seg._image_combo.value = viewer.layers["nuclei 2D"]
    seg._model_combo.value = CHECKPOINT
    seg._checkpoint_file.value = ckpt2d
    seg._run_button.clicked()
    _settle(viewer)
    viewer.screenshot(str(out / "segment_2d.png"), canvas_only=False)

    out_layer = viewer.layers["nuclei 2D [resunet]"]
    truth = viewer.layers["nuclei 2D ground truth"].data > 0
    region = (slice(0, 200), slice(0, 260))
    fg = truth[region].astype(out_layer.data.dtype)
    wrong = np.nonzero(out_layer.data[region] != fg)
    out_layer.data_setitem(tuple(w + s.start for w, s in zip(wrong, region)), fg[wrong])
    ft._image_combo.value = viewer.layers["nuclei 2D"]
    ft._labels_combo.value = out_layer
    ft._steps_spin.value = 40
    ft._run_button.clicked()
    _settle(viewer)
    viewer.screenshot(str(out / "finetune_2d.png"), canvas_only=False)
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
    seg._model_combo.value = CHECKPOINT
    seg._checkpoint_file.value = ckpt3d
    seg._advanced_check.value = True
    seg._run_button.clicked()
    _settle(viewer)
    viewer.dims.ndisplay = 3
    viewer.reset_view()
    viewer.camera.angles = (0, 25, 55)
    viewer.camera.zoom *= 0.8
    _settle(viewer)
    viewer.screenshot(str(out / "segment_3d.png"), canvas_only=False)
    viewer.close()
    print(f"screenshots written to {out}")


if __name__ == "__main__":
    main()
