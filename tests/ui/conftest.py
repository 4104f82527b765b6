"""Fixtures for widget tests: a real napari viewer (under Xvfb) with sample layers."""

from __future__ import annotations

import numpy as np
import pytest

from napari_resunet.core.io import load_sample


@pytest.fixture(autouse=True)
def _rounds_run_every_step(monkeypatch):
    """A round's steps in a test do not depend on how busy the machine is: the
    Fine-tune widget's time limits are set beyond reach (the test of the limit
    sets its own)."""
    import napari_resunet.core.training.finetune as tf

    for dims in list(tf.ROUND_TRAIN_SECONDS):
        monkeypatch.setitem(tf.ROUND_TRAIN_SECONDS, dims, 1e9)


@pytest.fixture
def sync_jobs(monkeypatch):
    """Run widget jobs inline (same code path, no thread) for deterministic tests."""
    monkeypatch.setenv("NAPARI_RESUNET_NO_THREADS", "1")


@pytest.fixture
def notes(monkeypatch):
    """Collect the widgets' napari notifications instead of showing them."""
    seen: dict[str, list[str]] = {"error": [], "warning": [], "info": []}
    import napari_resunet.ui.finetune_widget as fw
    import napari_resunet.ui.predict_widget as pw

    for mod in (pw, fw):
        for kind in seen:
            monkeypatch.setattr(
                mod, f"show_{kind}", lambda msg, k=kind: seen[k].append(msg)
            )
    return seen


@pytest.fixture
def nuclei2d():
    image, labels = load_sample("nuclei2d")
    return image.data[:192, :256].copy(), labels.data[:192, :256].copy()


@pytest.fixture
def nuclei3d():
    image, labels = load_sample("nuclei3d")
    return image, labels


def dock(viewer, name: str):
    """Dock a widget the way napari's Plugins menu does."""
    _, widget = viewer.window.add_plugin_dock_widget("napari-resunet", name)
    return widget


def wait_idle(qtbot, widget, timeout=120_000):
    qtbot.waitUntil(lambda: not widget._job.busy, timeout=timeout)


def paint(layer, region, value):
    """Change labels through the layer's undo-able API, as painting does."""
    idx = np.nonzero(np.ones(layer.data[region].shape, bool))
    full = tuple(i + (s.start or 0) for i, s in zip(idx, region))
    layer.data_setitem(full, value)


def segment_with_new_network(
    viewer, qtbot, image_name: str, choice: str, mode: str | None = None
):
    """Segment ``image_name`` with a new network chosen as ``choice`` in the Segment
    widget, a class (semantic) one unless ``mode`` says otherwise; return the widget
    once its job is done."""
    from napari_resunet.ui.predict_widget import MODE_SEMANTIC

    seg = dock(viewer, "Segment")
    seg._image_combo.value = viewer.layers[image_name]
    seg._model_combo.value = choice
    seg._mode_combo.value = mode or MODE_SEMANTIC
    seg._run_button.clicked()
    wait_idle(qtbot, seg)
    return seg
