"""The Segment widget in a real viewer."""

import copy

import numpy as np
import pytest
from tests.ui.conftest import dock, paint, segment_with_new_network, wait_idle

from napari_resunet.ui._model_store import get_store
from napari_resunet.ui.predict_widget import (
    CHECKPOINT,
    NEW_2D,
    NEW_3D,
    SESSION,
)


def _segment(qtbot, widget):
    widget._run_button.clicked()
    wait_idle(qtbot, widget)


def test_labels_are_built_in_the_worker_not_the_main_thread(
    make_napari_viewer, qtbot, nuclei2d, monkeypatch
):
    """A cell model's watershed runs with the prediction, off the main thread."""
    import threading

    import napari_resunet.ui._predict_job as pj
    from napari_resunet.ui.predict_widget import MODE_INSTANCE

    on_main = []
    real = pj.labels_from_probabilities

    def spy(*args, **kwargs):
        on_main.append(threading.current_thread() is threading.main_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(pj, "labels_from_probabilities", spy)
    viewer = make_napari_viewer()
    viewer.add_image(nuclei2d[0], name="nuclei")
    segment_with_new_network(viewer, qtbot, "nuclei", NEW_2D, MODE_INSTANCE)
    assert on_main == [False]
    assert viewer.layers["nuclei [resunet]"].data.shape == nuclei2d[0].shape
    # a new 2D cell network has batch norm (new_network_config)
    assert get_store(viewer).model.config.norm == "batch"


def test_segment_2d_end_to_end(make_napari_viewer, qtbot, nuclei2d):
    viewer = make_napari_viewer()
    img = viewer.add_image(
        nuclei2d[0], name="nuclei", scale=(0.65, 0.65), translate=(5, 7)
    )
    widget = dock(viewer, "Segment")
    assert widget._image_combo.value is img
    widget._model_combo.value = NEW_2D
    _segment(qtbot, widget)
    out = viewer.layers["nuclei [resunet]"]
    assert out.data.shape == img.data.shape
    assert np.issubdtype(out.data.dtype, np.integer)
    assert tuple(out.scale) == (0.65, 0.65) and tuple(out.translate) == (5, 7)
    assert (
        widget._model_combo.value == SESSION
    )  # the new network became the session model
    assert get_store(viewer).model.spatial_dims == 2
    # the default mode is cells: a new 2D cell network has batch norm
    assert get_store(viewer).model.config.norm == "batch"
    # says what to do next; the first segmentation of a new cell network is empty,
    # so erasing is no way to show it background
    assert "learnt nothing yet" in widget._status.value
    if not viewer.layers["nuclei [resunet]"].data.any():
        assert "edited slices/patches" in widget._status.value
    else:
        assert "erase some wrong ones" in widget._status.value
    assert widget._run_button.enabled and not widget._cancel_button.enabled


def test_segment_3d_sample_with_probabilities(make_napari_viewer, qtbot, nuclei3d):
    image, _ = nuclei3d
    viewer = make_napari_viewer()
    viewer.add_image(image.data, name="embryo", scale=image.voxel_size)
    widget = dock(viewer, "Segment")
    widget._model_combo.value = NEW_3D
    widget._prob_check.value = True
    _segment(qtbot, widget)
    out = viewer.layers["embryo [resunet]"]
    assert out.data.shape == image.data.shape
    assert tuple(out.scale) == pytest.approx(image.voxel_size)
    probs = viewer.layers["embryo [resunet probabilities]"]
    assert probs.data.shape == image.data.shape and probs.data.dtype == np.float32


def test_segment_settings_start_at_the_core_defaults_and_read_back(qtbot):
    from napari_resunet.core import InferenceConfig
    from napari_resunet.core.config import InstanceConfig
    from napari_resunet.ui._segment_settings import SegmentSettings

    form = SegmentSettings()
    # untouched, the form asks for the core's defaults (never a compile warm-up)
    assert form.inference_config() == InferenceConfig(use_compile="never")
    assert form.instance_config() == InstanceConfig()
    form.tile_edit.value = "64x128x128"
    form.flips_spin.value = 4
    cfg = form.inference_config()
    assert cfg.tile_shape == (64, 128, 128) and cfg.test_time_flips == 4
    # a tuned model's own cell settings: shown, and kept beneath the form's three
    tuned = InstanceConfig(min_size=40, seeds="distance", seed_threshold=0.8)
    form.show_cell_settings(tuned)
    base = tuned.replace(seed_min_distance=tuned.seed_min_distance + 3)
    assert form.instance_config(base) == base
    form.seed_threshold_spin.value = 0.6
    assert form.instance_config(base) == base.replace(seed_threshold=0.6)


def test_a_mistyped_tile_shape_is_named_and_nothing_runs(
    make_napari_viewer, qtbot, nuclei2d, monkeypatch
):
    import napari_resunet.ui.predict_widget as pw

    image, _ = nuclei2d
    viewer = make_napari_viewer()
    viewer.add_image(image, name="nuclei")
    widget = dock(viewer, "Segment")
    widget._model_combo.value = NEW_2D
    widget._advanced_check.value = True
    errors = []
    monkeypatch.setattr(pw, "show_error", errors.append)
    widget._advanced.tile_edit.value = "256 by 256"
    widget._run_button.clicked()
    assert len(errors) == 1, errors
    assert "tile shape '256 by 256' is not understood" in errors[0]
    assert [layer.name for layer in viewer.layers] == ["nuclei"]
    assert get_store(viewer).model is None and not widget._job.busy
    # written as the hint says, it runs
    widget._advanced.tile_edit.value = "256x256"
    _segment(qtbot, widget)
    assert "nuclei [resunet]" in viewer.layers and len(errors) == 1


def test_cancel_changes_nothing(make_napari_viewer, qtbot, nuclei3d):
    image, _ = nuclei3d
    viewer = make_napari_viewer()
    viewer.add_image(image.data, name="embryo")
    widget = dock(viewer, "Segment")
    widget._model_combo.value = NEW_3D
    widget._advanced_check.value = True
    widget._advanced.tile_edit.value = "16,32,32"  # many tiles
    n_layers = len(viewer.layers)
    state = {"aborted": False}

    def first_yield(*_):
        widget._cancel_button.clicked()

    original_start = widget._job.start

    def start(factory):
        def wrapped(finished):
            worker = factory(finished)
            worker.yielded.connect(first_yield)
            worker.aborted.connect(lambda: state.update(aborted=True))
            return worker

        original_start(wrapped)

    widget._job.start = start
    assert widget._cancel_button.enabled is False
    widget._run_button.clicked()
    wait_idle(qtbot, widget)
    assert state["aborted"]
    assert len(viewer.layers) == n_layers
    assert widget._run_button.enabled and not widget._cancel_button.enabled
    assert "Cancelled" in widget._status.value


def test_cancel_while_merging_writes_nothing(
    make_napari_viewer, qtbot, nuclei2d, monkeypatch
):
    """Real threads: Cancel clicked after the tiles, while the labels are merged
    with the edits, still leaves the layer as it was."""
    import threading

    import napari_resunet.ui._predict_job as pj

    viewer = make_napari_viewer()
    viewer.add_image(nuclei2d[0], name="nuclei")
    seg = segment_with_new_network(viewer, qtbot, "nuclei", NEW_2D)
    assert get_store(viewer).model.config.norm == "group"  # a class network's
    out = viewer.layers["nuclei [resunet]"]
    paint(out, (slice(0, 20), slice(0, 20)), 1)
    seg._replace_check.value = True  # the merge would undo the painting
    seg._prob_check.value = True  # and a probabilities layer would be added
    before = np.array(out.data, copy=True)
    merging, go = threading.Event(), threading.Event()
    real = pj.merge_pending

    def held(pending):
        result = real(pending)
        merging.set()
        go.wait(30)
        return result

    monkeypatch.setattr(pj, "merge_pending", held)
    seg._run_button.clicked()
    qtbot.waitUntil(merging.is_set, timeout=60_000)
    seg._cancel_button.clicked()
    go.set()
    wait_idle(qtbot, seg)
    np.testing.assert_array_equal(out.data, before)
    assert "nuclei [resunet probabilities]" not in viewer.layers
    assert "Cancelled" in seg._status.value
    assert seg._run_button.enabled and not seg._cancel_button.enabled


def _force(model, cls):
    """Make the network predict class ``cls`` everywhere."""
    import torch

    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([5.0, -5.0] if cls == 0 else [-5.0, 5.0]))


def test_painted_voxels_survive_resegmenting(
    make_napari_viewer, qtbot, nuclei2d, sync_jobs
):
    viewer = make_napari_viewer()
    viewer.add_image(nuclei2d[0], name="nuclei")
    widget = segment_with_new_network(viewer, qtbot, "nuclei", NEW_2D)
    model = get_store(viewer).model
    _force(model, 0)
    _segment(qtbot, widget)
    out = viewer.layers["nuclei [resunet]"]
    assert (out.data == 0).all()
    painted = (slice(10, 40), slice(20, 60))
    paint(out, painted, 7)  # a label value the network never predicts
    _force(model, 1)
    _segment(qtbot, widget)
    assert (out.data[painted] == 7).all()
    assert (out.data[60:90, 150:200] == 1).all()  # elsewhere the new prediction shows
    erased = (slice(100, 120), slice(100, 130))
    paint(out, erased, 0)
    _segment(qtbot, widget)
    assert (out.data[erased] == 0).all() and (out.data[painted] == 7).all()
    assert "Kept" in widget._status.value
    # "replace" overwrites the edits, and napari's undo brings them back
    widget._replace_check.value = True
    _segment(qtbot, widget)
    assert (out.data[painted] == 1).all() and (out.data[erased] == 1).all()
    out.undo()
    assert (out.data[painted] == 7).all() and (out.data[erased] == 0).all()


def test_bad_input_notifies_and_changes_nothing(
    make_napari_viewer, qtbot, notes, sync_jobs, tmp_path
):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    viewer.add_image(rng.random((64, 64)), name="grey")
    widget = dock(viewer, "Segment")
    widget._model_combo.value = NEW_2D
    _segment(qtbot, widget)
    model = get_store(viewer).model
    viewer.add_image(
        rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), name="photo", rgb=True
    )
    widget._image_combo.value = viewer.layers["photo"]
    assert widget._model_combo.value == SESSION
    widget._run_button.clicked()
    assert notes["error"] and "RGB" in notes["error"][-1]
    assert [layer.name for layer in viewer.layers] == [
        "grey",
        "grey [resunet]",
        "photo",
    ]
    # a failed run with a new network does not replace the session model
    viewer.add_image(np.ones((2, 4, 8, 8)), name="4d")
    widget._image_combo.value = viewer.layers["4d"]
    widget._model_combo.value = NEW_3D
    widget._run_button.clicked()
    assert "needs a" in notes["error"][-1]
    assert get_store(viewer).model is model
    # constant image
    viewer.add_image(np.zeros((32, 32)), name="blank")
    widget._image_combo.value = viewer.layers["blank"]
    widget._model_combo.value = SESSION
    widget._run_button.clicked()
    assert "constant" in notes["error"][-1]
    assert [la.name for la in viewer.layers][-1] == "blank"  # no result layer added

    # a missing and a bogus checkpoint
    widget._model_combo.value = CHECKPOINT
    widget._checkpoint_file.value = tmp_path / "nothing.pt"
    widget._run_button.clicked()
    assert "checkpoint" in notes["error"][-1]
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a model")
    widget._checkpoint_file.value = bogus
    widget._run_button.clicked()
    assert "not a readable checkpoint" in notes["error"][-1]
    # no image at all
    viewer.layers.clear()
    widget._run_button.clicked()
    assert notes["warning"]
    assert widget._run_button.enabled


def test_checkpoint_model_and_channel_axis(
    make_napari_viewer, qtbot, sync_jobs, tmp_path
):
    from napari_resunet.core import ModelConfig, build_model, save_checkpoint

    path = save_checkpoint(
        tmp_path / "m.pt",
        build_model(ModelConfig(spatial_dims=2, in_channels=2, features=(8, 16))),
    )
    viewer = make_napari_viewer()
    data = np.random.default_rng(1).random((2, 48, 64)).astype(np.float32)
    viewer.add_image(data, name="two channels")
    widget = dock(viewer, "Segment")
    widget._model_combo.value = CHECKPOINT
    widget._checkpoint_file.value = path
    assert widget._channel_combo.choices == ("none", "0", "1", "2")
    widget._channel_combo.value = "0"
    _segment(qtbot, widget)
    assert viewer.layers["two channels [resunet]"].data.shape == (48, 64)
    assert "m.pt" in get_store(viewer).source


def test_new_network_kind_follows_the_data():
    from napari_resunet.ui._layers import ImageSnapshot
    from napari_resunet.ui.predict_widget import suggest_spatial_dims

    def snap(shape, scale):
        return ImageSnapshot(
            np.zeros(shape, np.uint8), None, scale, (0,) * len(shape), "x"
        )

    assert suggest_spatial_dims(snap((64, 64), (1, 1))) == 2
    assert suggest_spatial_dims(snap((40, 64, 64), (1, 1, 1))) == 3
    assert suggest_spatial_dims(snap((51, 120, 122), (1.75, 0.8, 0.8))) == 3
    assert (
        suggest_spatial_dims(snap((30, 512, 512), (0.05, 0.004, 0.004))) == 2
    )  # ssTEM
    assert suggest_spatial_dims(snap((4, 64, 64), (1, 1, 1))) == 2  # too thin for 3D


def test_demo_command_opens_sample_and_widgets(make_napari_viewer, monkeypatch):
    import napari

    from napari_resunet.cli import main

    viewers = []

    def fake_viewer(**kwargs):
        v = make_napari_viewer()
        viewers.append(v)
        return v

    monkeypatch.setattr(napari, "Viewer", fake_viewer)
    monkeypatch.setattr(napari, "run", lambda: None)
    assert main(["demo", "--sample", "nuclei3d"]) == 0
    (viewer,) = viewers
    assert [layer.name for layer in viewer.layers] == [
        "nuclei 3D",
        "nuclei 3D ground truth",
    ]
    docks = set(viewer.window.dock_widgets)
    assert {"Segment (napari-resunet)", "Fine-tune (napari-resunet)"} <= docks


def test_starter_model_gives_one_label_per_nucleus(
    make_napari_viewer, qtbot, nuclei2d, sync_jobs
):
    from napari_resunet.core.metrics import match_instances
    from napari_resunet.ui.predict_widget import STARTER_PREFIX

    image, truth = nuclei2d
    viewer = make_napari_viewer()
    viewer.add_image(image, name="nuclei")
    widget = dock(viewer, "Segment")
    assert f"{STARTER_PREFIX}nuclei2d" in widget._model_combo.choices
    widget._model_combo.value = f"{STARTER_PREFIX}nuclei2d"
    assert not widget._mode_combo.visible  # the model decides what it predicts
    _segment(qtbot, widget)
    out = viewer.layers["nuclei [resunet]"]
    assert out.data.dtype == np.uint32 and out.data.max() > 10
    # a 192x256 crop with many cut nuclei at its edges; an untrained net scores ~0
    assert match_instances(out.data, truth, (0.5,))[0]["f1"] > 0.6
    # the model's tuned cell settings are shown in the advanced settings
    assert widget._advanced.seed_threshold_spin.value == pytest.approx(0.9)
    assert "cells" in widget._status.value or "Segmented" in widget._status.value


def test_cell_ids_shifted_past_painted_ones_are_not_taken_for_edits(
    make_napari_viewer, qtbot, nuclei2d
):
    """With a cell model, a painted cell shifts the next prediction's ids; only the
    painted voxels count as the user's, however many times the image is segmented
    again, and the layer does not collect fragments."""
    from napari_resunet.core import build_model
    from napari_resunet.core.training.finetune import new_network_config
    from napari_resunet.ui.predict_widget import MODE_INSTANCE

    viewer = make_napari_viewer()
    viewer.add_image(nuclei2d[0], name="nuclei")
    # a new network with group norm, whose untrained output is many small cells;
    # the Segment widget's own new cell network (batch norm) finds no cell in
    # the untrained field, which leaves no ids to shift
    cfg = new_network_config(2, instance=True).replace(norm="group")
    get_store(viewer).set_model(build_model(cfg), "new 2D network", pretrained=False)
    seg = segment_with_new_network(viewer, qtbot, "nuclei", SESSION, MODE_INSTANCE)
    assert np.unique(viewer.layers["nuclei [resunet]"].data).size > 10
    out = viewer.layers["nuclei [resunet]"]
    painted = (slice(10, 30), slice(10, 40))
    new_id = int(out.data.max()) + 5
    idx = np.nonzero(np.ones((20, 30), bool))
    out.data_setitem(
        tuple(i + s.start for i, s in zip(idx, painted)),
        np.full(idx[0].size, new_id, out.data.dtype),
    )
    track = get_store(viewer).track(out)
    shown = np.array(out.data, copy=True)
    for round_ in range(3):
        _segment(qtbot, seg)
        edited = track.refresh(np.asarray(out.data))
        assert edited.sum() == 20 * 30 and edited[painted].all()
        assert (np.asarray(out.data)[painted] == new_id).all()
        # the same model: the same cells, under the ids they are shown with
        # (they were renumbered past the painted id at every prediction); only
        # the rims of cells mostly painted over join the painted cell
        now = np.asarray(out.data)
        np.testing.assert_array_equal(now[now != new_id], shown[now != new_id])
        if round_ == 0:
            after_first = now.copy()
            assert 0 < (now != shown).sum() < 100
        np.testing.assert_array_equal(now, after_first)


def test_the_merge_with_edits_runs_in_a_worker(make_napari_viewer, qtbot, nuclei2d):
    import threading

    import napari_resunet.ui._predict_job as pj
    from napari_resunet.ui.predict_widget import MODE_INSTANCE

    on_main = []
    real = pj.merge_pending

    def spy(pending):
        on_main.append(threading.current_thread() is threading.main_thread())
        return real(pending)

    viewer = make_napari_viewer()
    viewer.add_image(nuclei2d[0], name="nuclei")
    seg = segment_with_new_network(viewer, qtbot, "nuclei", NEW_2D, MODE_INSTANCE)
    assert on_main == []  # the first prediction makes the layer: nothing to merge
    pj.merge_pending = spy
    try:
        _segment(qtbot, seg)
    finally:
        pj.merge_pending = real
    assert on_main == [False]
    assert "Segmented" in seg._status.value


def test_strokes_made_while_the_merge_runs_are_kept(
    make_napari_viewer, qtbot, nuclei2d, sync_jobs, monkeypatch
):
    import napari_resunet.ui._predict_job as pj
    from napari_resunet.ui.predict_widget import MODE_INSTANCE

    viewer = make_napari_viewer()
    viewer.add_image(nuclei2d[0], name="nuclei")
    seg = segment_with_new_network(viewer, qtbot, "nuclei", NEW_2D, MODE_INSTANCE)
    out = viewer.layers["nuclei [resunet]"]
    first = np.array(out.data, copy=True)
    stroke = (slice(40, 50), slice(60, 75))
    new_id = int(first.max()) + 1
    real = pj.merge_pending

    def paint_meanwhile(pending):
        merged = real(pending)
        paint(out, stroke, new_id)  # the user paints before the merge is written
        return merged

    monkeypatch.setattr(pj, "merge_pending", paint_meanwhile)
    _segment(qtbot, seg)
    assert (out.data[stroke] == new_id).all()
    np.testing.assert_array_equal(
        out.data[~_mask(first.shape, stroke)], first[~_mask(first.shape, stroke)]
    )
    # and the stroke counts as the user's from now on
    monkeypatch.setattr(pj, "merge_pending", real)
    _segment(qtbot, seg)
    assert (out.data[stroke] == new_id).all()
    edited = get_store(viewer).track(out).refresh(np.asarray(out.data))
    assert edited[stroke].all() and edited.sum() == edited[stroke].sum()

    # a layer removed while the merge ran: the labels go to a new one
    def remove_meanwhile(pending):
        merged = real(pending)
        viewer.layers.remove(out)
        return merged

    monkeypatch.setattr(pj, "merge_pending", remove_meanwhile)
    _segment(qtbot, seg)
    again = viewer.layers["nuclei [resunet]"]
    assert again is not out
    np.testing.assert_array_equal(
        again.data[~_mask(first.shape, stroke)], first[~_mask(first.shape, stroke)]
    )

    # a patch marked "correct as shown" while the merge ran stays as shown, even
    # where the new prediction differs (another model here)
    import torch

    store = get_store(viewer)
    other = copy.deepcopy(store.model)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(1.5)
    store.set_model(other, "changed", undoable=True)
    patch = (slice(0, 48), slice(100, 160))
    shown = np.array(again.data, copy=True)
    new_labels = []

    def review_meanwhile(pending):
        new_labels.append(pending.labels)
        track = store.track(again)
        edited = track.refresh(np.asarray(again.data))
        edited[patch] = True  # what the queue's "Mark reviewed" does
        return real(pending)

    monkeypatch.setattr(pj, "merge_pending", review_meanwhile)
    _segment(qtbot, seg)
    assert (new_labels[0][patch] != shown[patch]).any()  # it would have changed
    np.testing.assert_array_equal(again.data[patch], shown[patch])
    assert (np.asarray(again.data) != shown).any()  # elsewhere the labels changed


def _mask(shape, region):
    m = np.zeros(shape, bool)
    m[region] = True
    return m
