"""The Fine-tune widget in a real viewer: learn from painted corrections."""

import numpy as np
import pytest
import torch
from tests.ui.conftest import dock, paint, segment_with_new_network, wait_idle

from napari_resunet.core import InferenceConfig, predict
from napari_resunet.core.training.finetune import FIRST_ROUND_LR
from napari_resunet.ui._model_store import get_store
from napari_resunet.ui.predict_widget import NEW_2D


def _segmented_viewer(make_napari_viewer, qtbot, image):
    viewer = make_napari_viewer()
    viewer.add_image(image, name="nuclei")
    seg = segment_with_new_network(viewer, qtbot, "nuclei", NEW_2D)
    ft = dock(viewer, "Fine-tune")
    ft._image_combo.value = viewer.layers["nuclei"]
    ft._labels_combo.value = viewer.layers["nuclei [resunet]"]
    return viewer, seg, ft


def test_finetune_learns_from_corrections_and_undo_restores(
    make_napari_viewer, qtbot, nuclei2d
):
    image, truth = nuclei2d
    viewer, _, ft = _segmented_viewer(make_napari_viewer, qtbot, image)
    out = viewer.layers["nuclei [resunet]"]
    store = get_store(viewer)
    before_model = store.model
    icfg = InferenceConfig(use_compile="never")
    before = predict(before_model, image, icfg).argmax(0)
    # the user corrects a 96x96 corner to the true foreground
    region = (slice(0, 96), slice(0, 96))
    fg = (truth[region] > 0).astype(out.data.dtype)
    changed = out.data[region] != fg  # what the user's strokes actually change
    assert changed.sum() > 500
    for value in (0, 1):
        idx = np.nonzero(fg == value)
        out.data_setitem(idx, value)
    ft._steps_spin.value = 40
    ft._short_check.value = False  # every step, however slow the machine
    assert ft._read_config(2, 2, "auto", out.data).max_seconds is None
    ft._run_button.clicked()
    wait_idle(qtbot, ft)
    losses = ft._plot.losses
    assert len(losses) == 40
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    assert store.model is not before_model and store.rounds == 1
    after = predict(store.model, image, icfg).argmax(0)
    target = truth > 0
    acc_before = (before[region] == target[region]).mean()
    acc_after = (after[region] == target[region]).mean()
    assert acc_after > acc_before + 0.1, (acc_before, acc_after)
    # the wider image improves too (the corner generalises), and edits survived
    assert (after == target).mean() > (before == target).mean()
    assert (out.data[region][changed] == fg[changed]).all()
    # undo: the previous weights come back and reproduce the old output exactly
    assert ft._undo_button.enabled
    ft._undo_button.clicked()
    wait_idle(qtbot, ft)
    assert store.model is before_model
    np.testing.assert_array_equal(predict(store.model, image, icfg).argmax(0), before)


def test_a_round_over_its_time_limit_runs_fewer_steps_and_says_so(
    make_napari_viewer, qtbot, nuclei2d, monkeypatch, sync_jobs
):
    """Where the machine is too slow for the round's time limit, half the steps
    run (here: a limit no step fits in), the status line says so, and the round
    is recorded with the steps it took."""
    import napari_resunet.core.training.finetune as tf

    image, truth = nuclei2d
    viewer, _, ft = _segmented_viewer(make_napari_viewer, qtbot, image)
    out = viewer.layers["nuclei [resunet]"]
    fg = (truth[:64, :64] > 0).astype(out.data.dtype)
    for value in (0, 1):  # the true foreground in a corner: paints and erases
        out.data_setitem(np.nonzero(fg == value), value)
    for pretrained in (False, True):
        monkeypatch.setitem(tf.ROUND_TRAIN_SECONDS, (2, pretrained), 1e-6)
    assert ft._short_check.value  # the default
    ft._steps_spin.value = 12
    ft._run_button.clicked()
    store = get_store(viewer)
    assert store.rounds == 1 and len(ft._plot.losses) == 6
    assert "6 of 12 steps in its 1e-06 s limit" in ft._status.value
    assert store.last_round["steps"] == 6


def test_cancel_keeps_the_previous_model(make_napari_viewer, qtbot, nuclei2d):
    viewer, _, ft = _segmented_viewer(make_napari_viewer, qtbot, nuclei2d[0])
    out = viewer.layers["nuclei [resunet]"]
    paint(out, (slice(0, 30), slice(0, 30)), 1)
    store = get_store(viewer)
    model = store.model
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    ft._steps_spin.value = 500
    ft._run_button.clicked()  # only painted: named first, the next click runs
    assert "again" in ft._status.value and not ft._job.busy
    original_start = ft._job.start

    def start(factory):
        def wrapped(finished):
            worker = factory(finished)
            worker.yielded.connect(lambda *_: ft._cancel_button.clicked())
            return worker

        original_start(wrapped)

    ft._job.start = start
    ft._run_button.clicked()
    wait_idle(qtbot, ft)
    assert store.model is model
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert "cancelled" in ft._status.value
    assert ft._run_button.enabled and not ft._cancel_button.enabled
    assert len(ft._plot.losses) < 500


def test_bad_input_and_empty_corrections(
    make_napari_viewer, qtbot, nuclei2d, notes, sync_jobs
):
    viewer, _, ft = _segmented_viewer(make_napari_viewer, qtbot, nuclei2d[0])
    model = get_store(viewer).model
    # nothing painted yet
    ft._run_button.clicked()
    assert "No corrections" in notes["warning"][-1]
    # a labels layer of another shape
    other = viewer.add_labels(np.ones((10, 10), np.uint8), name="other")
    ft._labels_combo.value = other
    ft._run_button.clicked()
    assert "differs" in notes["error"][-1]
    # RGB image for a one-channel model
    viewer.add_image(np.zeros((192, 256, 3), np.uint8), name="rgb", rgb=True)
    ft._image_combo.value = viewer.layers["rgb"]
    ft._labels_combo.value = viewer.layers["nuclei [resunet]"]
    ft._run_button.clicked()
    assert "RGB" in notes["error"][-1]
    assert get_store(viewer).model is model and get_store(viewer).rounds == 0
    assert ft._plot.losses == []


def test_two_viewers_have_their_own_models(
    make_napari_viewer, qtbot, nuclei2d, sync_jobs
):
    v1, _, _ = _segmented_viewer(make_napari_viewer, qtbot, nuclei2d[0])
    v2 = make_napari_viewer()
    v2.add_image(nuclei2d[0], name="nuclei")
    ft2 = dock(v2, "Fine-tune")
    assert get_store(v2).model is None
    assert get_store(v1).model is not None
    assert "Segment an image first" in ft2._status.value


def test_save_model(make_napari_viewer, qtbot, nuclei2d, sync_jobs, tmp_path):
    from napari_resunet.core import load_checkpoint

    viewer, _, ft = _segmented_viewer(make_napari_viewer, qtbot, nuclei2d[0])
    ft._save_path.value = tmp_path / "session.pt"
    ft._save_button.clicked()
    model, ckpt = load_checkpoint(tmp_path / "session.pt")
    for k, v in get_store(viewer).model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)
    assert ckpt.training["source"] == "new 2D network"


def test_cell_model_finetunes_on_painted_cells(
    make_napari_viewer, qtbot, nuclei2d, sync_jobs
):
    """A cell (instance) model learns from cells painted with their own ids, and
    re-segmenting keeps each painted cell and never reuses its id elsewhere."""
    from napari_resunet.ui.predict_widget import MODE_INSTANCE

    image, truth = nuclei2d
    viewer = make_napari_viewer()
    viewer.add_image(image, name="nuclei")
    seg = dock(viewer, "Segment")
    seg._model_combo.value = NEW_2D
    seg._mode_combo.value = MODE_INSTANCE
    seg._run_button.clicked()
    out = viewer.layers["nuclei [resunet]"]
    assert out.data.dtype == np.uint32
    assert get_store(viewer).model.config.task == "instance"
    # paint three true nuclei with fresh ids, as the 'new label' button gives
    region = (slice(0, 96), slice(0, 128))
    ids = [i for i in np.unique(truth[region]) if i][:3]
    painted_ids = []
    for k, cell in enumerate(ids):
        new_id = int(out.data.max()) + 1 + k
        out.data_setitem(np.nonzero(truth == cell), new_id)
        painted_ids.append((cell, new_id))
    ft = dock(viewer, "Fine-tune")
    ft._image_combo.value = viewer.layers["nuclei"]
    ft._labels_combo.value = out
    ft._steps_spin.value = 10
    ft._run_button.clicked()  # only painted cells: named first, then run
    assert get_store(viewer).rounds == 0
    ft._run_button.clicked()
    assert len(ft._plot.losses) == 10 and np.isfinite(ft._plot.losses).all()
    assert get_store(viewer).rounds == 1
    for cell, new_id in painted_ids:
        mask = truth == cell
        assert (out.data[mask] == new_id).all()
        assert not (out.data[~mask] == new_id).any()  # no predicted cell took the id


def test_a_new_network_is_warned_of_corrections_that_only_paint(
    make_napari_viewer, qtbot, nuclei2d, notes, sync_jobs
):
    """A new network learns background only from what the user erased or
    reviewed: painting cells alone is named before its first round, which runs
    on a second click on the same corrections; a network that has learnt
    something is not warned."""
    from napari_resunet.ui.predict_widget import MODE_INSTANCE

    image, truth = nuclei2d
    viewer = make_napari_viewer()
    viewer.add_image(image, name="nuclei")
    segment_with_new_network(viewer, qtbot, "nuclei", NEW_2D, MODE_INSTANCE)
    out = viewer.layers["nuclei [resunet]"]
    first, second = [i for i in np.unique(truth) if i][:2]
    out.data_setitem(np.nonzero(truth == first), int(out.data.max()) + 1)
    ft = dock(viewer, "Fine-tune")
    ft._image_combo.value = viewer.layers["nuclei"]
    ft._labels_combo.value = out
    ft._steps_spin.value = 2
    ft._run_button.clicked()
    assert "only paint" in notes["warning"][-1]
    assert "again" in ft._status.value
    assert get_store(viewer).rounds == 0 and ft._plot.losses == []
    ft._run_button.clicked()  # the user means it
    assert get_store(viewer).rounds == 1 and len(ft._plot.losses) == 2
    warned = len(notes["warning"])
    assert warned == 1
    out.data_setitem(np.nonzero(truth == second), int(out.data.max()) + 1)
    ft._run_button.clicked()
    assert get_store(viewer).rounds == 2
    assert len(notes["warning"]) == warned  # no longer a new network


def test_starter_model_is_finetuned_gently(
    make_napari_viewer, qtbot, nuclei2d, sync_jobs, monkeypatch
):
    """A starter model is fine-tuned at the pretrained rate, keeps that lineage
    through rounds and undo, and a round on a few painted cells does not undo its
    training (a new network gets the fast rate). The round segments again with
    the cell settings the Segment widget used."""
    import napari_resunet.ui._predict_job as pj
    from napari_resunet.core.metrics import match_instances
    from napari_resunet.ui.predict_widget import STARTER_PREFIX

    image, truth = nuclei2d
    viewer = make_napari_viewer()
    viewer.add_image(image, name="nuclei")
    seg = dock(viewer, "Segment")
    seg._model_combo.value = f"{STARTER_PREFIX}nuclei2d"
    seg._run_button.clicked()
    out = viewer.layers["nuclei [resunet]"]
    f1_before = match_instances(out.data, truth, (0.5,))[0]["f1"]
    store = get_store(viewer)
    assert store.pretrained
    ft = dock(viewer, "Fine-tune")
    ft._image_combo.value = viewer.layers["nuclei"]
    ft._labels_combo.value = out
    assert ft._read_config(2, 2, "auto", out.data).lr == pytest.approx(1e-4)
    assert "pretrained" in ft._status.value
    # the user repaints three nuclei exactly as the truth has them
    region = (slice(0, 96), slice(0, 128))
    for k, cell in enumerate([i for i in np.unique(truth[region]) if i][:3]):
        out.data_setitem(np.nonzero(truth == cell), int(out.data.max()) + 1 + k)
    ft._steps_spin.value = 40
    used = []
    real = pj.labels_from_probabilities

    def spy(probs, config, instance_cfg=None, *rest):
        used.append(instance_cfg)
        return real(probs, config, instance_cfg, *rest)

    monkeypatch.setattr(pj, "labels_from_probabilities", spy)
    ft._run_button.clicked()
    assert store.rounds == 1 and store.pretrained
    # the starter's own settings, as the Segment widget showed and used them
    # (the round used the defaults: seed threshold 0.5)
    assert used == [seg._read_instance_config()]
    assert used[0].seed_threshold == pytest.approx(0.9)
    # settings the user changes stay through the next rounds and are used there
    seg._advanced.seed_threshold_spin.value = 0.7
    seg._run_button.clicked()
    ft._steps_spin.value = 2
    ft._run_button.clicked()
    assert store.rounds == 2
    assert seg._advanced.seed_threshold_spin.value == pytest.approx(0.7)
    assert used[-1].seed_threshold == pytest.approx(0.7)
    ft._undo_button.clicked()
    f1_after = match_instances(out.data, truth, (0.5,))[0]["f1"]
    assert f1_after > f1_before - 0.05, (f1_before, f1_after)
    ft._undo_button.clicked()
    assert store.pretrained and store.rounds == 0
    assert seg._advanced.seed_threshold_spin.value == pytest.approx(0.7)
    # a new network is not pretrained: the fast rate, faster still for its first
    # round, which has nothing to lose
    seg._model_combo.value = NEW_2D
    seg._run_button.clicked()
    assert not store.pretrained and "pretrained" not in ft._status.value
    assert "fast first round" in ft._status.value
    assert ft._read_config(2, 2, "auto", out.data).lr == pytest.approx(FIRST_ROUND_LR)
    ft._run_button.clicked()  # the painted cells alone: named first, then run
    assert store.rounds == 0
    ft._run_button.clicked()
    assert store.rounds == 1 and "fast first round" not in ft._status.value
    assert ft._read_config(2, 2, "auto", out.data).lr == pytest.approx(1e-3)


def test_rounds_release_old_models(make_napari_viewer, qtbot, nuclei2d):
    """With real worker threads, a model older than the undo history is freed:
    finished jobs must not keep their handlers (and the models they close over)."""
    import gc
    import weakref

    image, truth = nuclei2d
    viewer, _, ft = _segmented_viewer(make_napari_viewer, qtbot, image)
    out = viewer.layers["nuclei [resunet]"]
    store = get_store(viewer)
    ft._steps_spin.value = 2
    refs = []
    for r in range(8):
        region = (slice(24 * r, 24 * r + 24), slice(0, 96))
        fg = (truth[region] > 0).astype(out.data.dtype)
        idx = np.nonzero(out.data[region] != fg)
        if idx[0].size == 0:  # make sure there is something to learn from
            idx = (np.array([0]), np.array([0]))
            fg = fg.copy()
            fg[0, 0] = 1 - out.data[region][0, 0]
        out.data_setitem(tuple(i + s.start for i, s in zip(idx, region)), fg[idx])
        ft._run_button.clicked()
        wait_idle(qtbot, ft)
        assert store.rounds == r + 1
        refs.append(weakref.ref(store.model))
    gc.collect()
    alive = [ref() is not None for ref in refs]
    # the current model and the five undo steps before it live; older ones do not
    assert alive == [False, False, True, True, True, True, True, True], alive
    assert all(p.grad is None for p in store.model.parameters())


def test_class_mix_option_reaches_training(
    make_napari_viewer, qtbot, nuclei2d, sync_jobs
):
    """'keep the image's class mix' changes the round's training (same seed, same
    corrections, different weights); by default the plugin chooses it: not for a
    new network's first round nor for a layer without background, yes once the
    network has learnt something."""
    image, truth = nuclei2d
    viewer, _, ft = _segmented_viewer(make_napari_viewer, qtbot, image)
    out = viewer.layers["nuclei [resunet]"]
    store = get_store(viewer)
    cells = truth.astype(np.int32)  # a layer with background around the cells
    neuropil = cells + 1  # one without any
    assert ft._mix_auto.value and not ft._mix_check.enabled
    # a new network's segmentation says nothing of the image's mix
    assert not ft._read_config(2, 2, "auto", cells).match_class_mix
    region = (slice(0, 64), slice(0, 64))  # a crowded corner, corrected to the truth
    out.data_setitem(np.nonzero(np.ones((64, 64), bool)), 0)
    out.data_setitem(np.nonzero(truth[region] > 0), 1)
    ft._steps_spin.value = 5
    ft._mix_auto.value = False
    assert ft._mix_check.enabled
    models = []
    for keep in (False, True, False):
        ft._mix_check.value = keep
        assert ft._read_config(2, 2, "auto", cells).match_class_mix is keep
        ft._run_button.clicked()
        models.append(list(store.model.parameters()))
        ft._undo_button.clicked()
    assert store.rounds == 0
    # the same round again without the option: the very same weights ...
    for a, b in zip(models[0], models[2]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # ... so the option is what made the other round differ
    assert any(not torch.equal(a, b) for a, b in zip(models[0], models[1]))
    # automatic again: after one round the network has learnt something
    ft._mix_auto.value = True
    assert not ft._mix_check.enabled
    ft._run_button.clicked()
    assert store.rounds == 1
    assert ft._status.value.startswith("Fine-tuned. ")  # not weighted, and says so
    assert ft._read_config(2, 2, "auto", cells).match_class_mix
    assert not ft._read_config(2, 2, "auto", neuropil).match_class_mix
    # and a model from a finished training before any round of its own
    store.set_model(store.model, "a checkpoint", pretrained=True)
    assert store.rounds == 0
    assert ft._read_config(2, 2, "auto", cells).match_class_mix
    # the user corrects the whole layer to the cells: a weighted round, said so
    out.data_setitem(np.nonzero(np.ones(cells.shape, bool)), cells.ravel())
    ft._run_button.clicked()
    assert store.rounds == 1
    assert ft._status.value.startswith(
        "Fine-tuned (weighted to the layer's class mix). "
    ), ft._status.value


def test_test_time_flips_segment_and_the_rounds_after_keep_them(
    make_napari_viewer, qtbot, nuclei2d
):
    """The Segment widget's test-time flips make the labels, and a fine-tuning
    round's re-segmentation keeps segmenting that way."""
    image, truth = nuclei2d
    viewer, seg, ft = _segmented_viewer(make_napari_viewer, qtbot, image)
    store = get_store(viewer)
    out = viewer.layers["nuclei [resunet]"]
    seg._advanced_check.value = True
    seg._advanced.flips_spin.value = 4
    seg._prob_check.value = True
    seg._run_button.clicked()
    wait_idle(qtbot, seg)
    cfg = InferenceConfig(use_compile="never", test_time_flips=4)
    single = InferenceConfig(use_compile="never")
    probs = predict(store.model, image, cfg)
    shown = viewer.layers["nuclei [resunet probabilities]"].data
    np.testing.assert_allclose(shown, probs[1], atol=1e-6)
    assert np.abs(predict(store.model, image, single) - probs).max() > 1e-3
    np.testing.assert_array_equal(out.data, probs.argmax(0))
    # a round on a corrected corner; the rest of the layer is segmented again
    region = (slice(0, 64), slice(0, 64))
    paint(out, region, (truth[region] > 0).astype(out.data.dtype).ravel())
    ft._steps_spin.value = 5
    ft._run_button.clicked()
    wait_idle(qtbot, ft)
    assert store.rounds == 1
    rest = np.ones(image.shape, bool)
    rest[region] = False
    after = predict(store.model, image, cfg).argmax(0)
    np.testing.assert_array_equal(out.data[rest], after[rest])
    plain = predict(store.model, image, single).argmax(0)
    assert (plain[rest] != after[rest]).any()  # the flips do change the labels


def test_a_class_network_painted_with_cell_ids_learns_foreground(
    make_napari_viewer, qtbot, nuclei2d
):
    image, truth = nuclei2d
    viewer, _, ft = _segmented_viewer(make_napari_viewer, qtbot, image)
    store = get_store(viewer)
    assert store.model.config.task == "semantic"
    assert store.model.config.out_channels == 2
    out = viewer.layers["nuclei [resunet]"]
    # a corner pasted from the cell labels: one id per nucleus, more than the
    # two classes the network predicts
    region = (slice(0, 96), slice(0, 96))
    cells = truth[region].astype(out.data.dtype)
    assert cells.max() > 1
    out.data_setitem(np.nonzero(np.ones_like(cells, bool)), cells.ravel())
    ft._scope_combo.value = "edited slices/patches"
    ft._steps_spin.value = 5
    ft._run_button.clicked()
    wait_idle(qtbot, ft)
    assert store.rounds == 1, ft._status.value
    assert ft._status.value.startswith("Fine-tuned")
