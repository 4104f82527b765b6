"""The Annotation queue in a real viewer: rank, navigate, review, fine-tune."""

import numpy as np
from tests.ui.conftest import dock, segment_with_new_network, wait_idle

from napari_resunet.core import InferenceConfig
from napari_resunet.core.ordering import blind_order, diversify
from napari_resunet.core.progress import run_generator
from napari_resunet.core.uncertainty import iter_uncertainty
from napari_resunet.ui._layers import camera_of
from napari_resunet.ui._model_store import get_store
from napari_resunet.ui._patch_view import HIGHLIGHT
from napari_resunet.ui.predict_widget import NEW_2D, NEW_3D


def _viewer_with_model(make_napari_viewer, qtbot, image, new, scale=None):
    viewer = make_napari_viewer()
    viewer.add_image(image, name="img", scale=scale)
    segment_with_new_network(viewer, qtbot, "img", new)
    q = dock(viewer, "Annotation queue")
    q._image_combo.value = viewer.layers["img"]
    q._labels_combo.value = viewer.layers["img [resunet]"]
    return viewer, q


def test_queue_ranks_navigates_and_reviews(
    make_napari_viewer, qtbot, nuclei2d, sync_jobs
):
    viewer, q = _viewer_with_model(make_napari_viewer, qtbot, nuclei2d[0], NEW_2D)
    q._patch_spin.value = 64
    # variety is automatic at first: the spin box shows the plugin's choice
    assert q._variety_auto.value and not q._variety_spin.enabled
    q._refresh_button.clicked()
    chosen, auto_order = q._variety_spin.value, list(q._entries)
    # a new network: left to the plugin, its patches come in a blind order
    assert not get_store(viewer).trained
    assert "random order until its first fine-tuning round" in q._status.value
    # a random order needs no mirrored passes: the layer is one pass's, however
    # many the spin box asks for
    assert q._flips_spin.value == 3
    _assert_all_passes_ranking(viewer, get_store(viewer).model, flips=1)
    q._variety_auto.value = False
    assert q._variety_spin.enabled
    q._variety_spin.value = 0.0
    q._refresh_button.clicked()
    scores = [e.score for e in q._entries]
    assert len(scores) == 3 * 4  # 192x256 in 64-pixel patches
    assert scores == sorted(scores, reverse=True)
    assert "Variety" not in q._status.value
    # with variety, the same patches in diversify's order of that ranking
    plain = list(q._entries)
    n_classes = get_store(viewer).model.config.out_channels
    assert all(len(e.composition) == n_classes for e in plain)
    q._variety_spin.value = 1.0
    q._refresh_button.clicked()
    assert q._entries == [plain[i] for i in diversify(plain, 1.0)]
    # the status says why the scores in the list may rise
    assert "Variety 1.0: a patch much like one above it moves down" in q._status.value
    # the automatic variety was one of the two; the order was the blind one
    assert chosen in (0.0, 1.0)
    # (the same places; the scores were one pass's)
    order = [e.slices for e in auto_order]
    assert order == [plain[i].slices for i in blind_order(plain)]
    assert order != [e.slices for e in plain]
    # the list shows the new order (entries that kept their text included)
    shown = [q._queue_list.native.item(i).text() for i in range(12)]
    assert shown == [q._queue_list.describe(i) for i in range(len(q._entries))]
    assert "img [resunet uncertainty]" in viewer.layers
    # the first entry is shown: camera on its centre, outlined
    first = q._entries[0]
    np.testing.assert_allclose(camera_of(viewer).center[-2:], first.centre, atol=1e-6)
    rect = viewer.layers[HIGHLIGHT].data[0]
    assert rect.min(0).tolist() == [first.slices[0].start, first.slices[1].start]
    assert q._queue_list.value == [0] and q._queue_list.native.count() == 12
    assert q._queue_list.native.item(0).text().startswith("1. uncertainty ")
    q._next_button.clicked()
    assert q._queue_list.value == [1]
    np.testing.assert_allclose(
        camera_of(viewer).center[-2:], q._entries[1].centre, atol=1e-6
    )
    # mark reviewed: leaves the queue, and its voxels count as corrections
    reviewed = q._entries[1]
    q._review_button.clicked()
    assert reviewed not in q._entries and len(q._entries) == 11
    track = get_store(viewer).track(viewer.layers["img [resunet]"])
    assert track.edited[reviewed.slices].all() and track.edited.sum() == 64 * 64
    # ranking again leaves the reviewed patch out
    q._refresh_button.clicked()
    assert reviewed.slices not in [e.slices for e in q._entries]
    # a click on an entry of the list (one at a time) shows that patch
    q._queue_list.native.setCurrentRow(3)
    assert q._queue_list.value == [3]
    np.testing.assert_allclose(
        camera_of(viewer).center[-2:], q._entries[3].centre, atol=1e-6
    )
    third = viewer.layers[HIGHLIGHT].data[0]
    assert third.min(0).tolist() == [s.start for s in q._entries[3].slices]


def _assert_all_passes_ranking(viewer, model, flips=3):
    """The uncertainty layer is what ``flips`` fresh mirrored passes give."""
    full = run_generator(
        iter_uncertainty(
            model,
            np.asarray(viewer.layers["img"].data),
            InferenceConfig(use_compile="never"),
            flips,
        ),
        False,
        "u",
    )
    np.testing.assert_array_equal(
        viewer.layers["img [resunet uncertainty]"].data, full.uncertainty
    )


def test_fine_tune_now_and_automatic_refresh(
    make_napari_viewer, qtbot, nuclei2d, sync_jobs, notes
):
    viewer, q = _viewer_with_model(make_napari_viewer, qtbot, nuclei2d[0], NEW_2D)
    q._refresh_button.clicked()
    q._review_button.clicked()
    import napari_resunet.ui._queue_job as job
    import napari_resunet.ui.queue_widget as qw

    warnings = []
    qw.show_warning = warnings.append
    q._finetune_button.clicked()
    assert warnings and "Fine-tune widget" in warnings[-1]
    ft = dock(viewer, "Fine-tune")
    ft._image_combo.value = viewer.layers["img"]
    ft._labels_combo.value = viewer.layers["img [resunet]"]
    ft._steps_spin.value = 3
    before = list(q._entries)
    # the queue ranks again once, after the round has segmented the image again,
    # not side by side with that segmentation
    store = get_store(viewer)
    layer = viewer.layers["img [resunet]"]
    seen = []
    refresh = q._on_refresh_clicked

    def spy(*args):
        seen.append((store.settling, np.array(layer.data)))
        refresh(*args)

    q._on_refresh_clicked = spy
    reused = []
    real = job.iter_uncertainty

    def counting(*args, first_pass=None, **kwargs):
        reused.append(first_pass is not None)
        return (yield from real(*args, first_pass=first_pass, **kwargs))

    job.iter_uncertainty = counting
    try:
        q._finetune_button.clicked()
    finally:
        job.iter_uncertainty = real
    assert store.rounds == 1
    assert len(ft._plot.losses) == 3
    assert q._entries and q._entries != before  # ranked again with the new model
    # the round's segmentation gave the queue its unmirrored pass, and the
    # ranking is the one all passes give
    assert reused == [True] and store.first_pass is None
    _assert_all_passes_ranking(viewer, store.model)
    assert len(seen) == 1 and not seen[0][0]
    np.testing.assert_array_equal(seen[0][1], layer.data)  # labels already updated
    # undo segments again too: the queue waits for that as well
    seen.clear()
    ft._undo_button.clicked()
    assert store.rounds == 0 and len(seen) == 1 and not seen[0][0]
    assert not store.settling
    # a Fine-tune job that ends (a cancelled round, say) while another widget
    # segments does not release the queue early
    other = object()
    store.begin_settling(other)
    ft._job.start(lambda finished: finished())
    assert store.settling
    store.end_settling(other)
    assert not store.settling
    # with the Segment widget's test-time flips the round's segmentation is a
    # mean of mirrored passes: not the unmirrored pass the queue could reuse
    store.inference_cfg = InferenceConfig(use_compile="never", test_time_flips=4)
    reused.clear()
    job.iter_uncertainty = counting
    try:
        q._finetune_button.clicked()
    finally:
        job.iter_uncertainty = real
    assert store.rounds == 1 and reused == [False]
    _assert_all_passes_ranking(viewer, store.model)


def test_only_the_widget_that_began_settling_ends_it():
    from napari_resunet.ui._model_store import ModelStore

    store = ModelStore()
    seen = []
    store.settled.connect(lambda: seen.append(True))
    first, second = object(), object()
    store.begin_settling(first)
    store.end_settling(second)
    assert store.settling and not seen
    store.end_settling(first)
    assert not store.settling and seen == [True]
    store.end_settling(first)
    assert seen == [True]


def test_with_threads_the_queue_ranks_after_the_round(
    make_napari_viewer, qtbot, nuclei2d
):
    """Real worker threads: the queue's uncertainty starts only once the round has
    segmented the image again, never beside it."""
    viewer, q = _viewer_with_model(make_napari_viewer, qtbot, nuclei2d[0], NEW_2D)
    q._refresh_button.clicked()
    wait_idle(qtbot, q)
    q._review_button.clicked()
    ft = dock(viewer, "Fine-tune")
    ft._image_combo.value = viewer.layers["img"]
    ft._labels_combo.value = viewer.layers["img [resunet]"]
    ft._steps_spin.value = 2
    seen = []
    refresh = q._on_refresh_clicked

    def spy(*args):
        seen.append((ft._job.busy, get_store(viewer).settling))
        refresh(*args)

    q._on_refresh_clicked = spy
    q._finetune_button.clicked()
    wait_idle(qtbot, ft)
    qtbot.waitUntil(lambda: seen and not q._job.busy, timeout=60_000)
    assert get_store(viewer).rounds == 1
    assert seen == [(False, False)]
    assert q._entries


def test_queue_in_3d_moves_the_z_slider(make_napari_viewer, qtbot, nuclei3d, sync_jobs):
    image, _ = nuclei3d
    viewer, q = _viewer_with_model(
        make_napari_viewer, qtbot, image.data, NEW_3D, scale=image.voxel_size
    )
    q._patch_spin.value = 32
    q._flips_spin.value = 2
    q._refresh_button.clicked()
    first = q._entries[0]
    assert len(first.slices) == 3 and first.slices[0].stop - first.slices[0].start <= 32
    z_world = viewer.dims.point[0]
    assert abs(z_world - image.voxel_size[0] * first.centre[0]) <= image.voxel_size[0]


def test_held_back_patch_is_kept_and_never_trained_on(
    make_napari_viewer, qtbot, nuclei2d, sync_jobs, monkeypatch
):
    """Every third reviewed patch is held back for scoring: segmenting again must
    not overwrite it, and no scope of fine-tuning may learn from it."""
    import napari_resunet.ui.finetune_widget as fw

    viewer, q = _viewer_with_model(make_napari_viewer, qtbot, nuclei2d[0], NEW_2D)
    q._patch_spin.value = 64
    q._refresh_button.clicked()
    for _ in range(3):
        q._review_button.clicked()
    store = get_store(viewer)
    (held,) = store.held_back
    layer = viewer.layers["img [resunet]"]
    reviewed_truth = np.array(layer.data[held])
    masks = []
    real = fw.TrainData

    def spy(image, labels, mask=None, *args, **kwargs):
        masks.append(None if mask is None else mask.copy())
        return real(image, labels, mask, *args, **kwargs)

    monkeypatch.setattr(fw, "TrainData", spy)
    ft = dock(viewer, "Fine-tune")
    ft._image_combo.value = viewer.layers["img"]
    ft._labels_combo.value = layer
    ft._steps_spin.value = 2
    for scope in ("only what I edited", "the whole layer"):
        ft._scope_combo.value = scope
        q._finetune_button.clicked()
        assert not masks[-1][held].any()  # never learnt from
        assert masks[-1].sum() >= (2 * 64 * 64 if scope != "the whole layer" else 1)
        np.testing.assert_array_equal(layer.data[held], reviewed_truth)  # kept
    assert store.rounds == 2


def test_reviewed_patch_does_not_split_the_cells_on_its_faces(
    make_napari_viewer, qtbot, nuclei2d, sync_jobs
):
    """Cell labels: segmenting again with the same model after "Mark reviewed"
    gives the same cells, not cells cut in two along the patch's faces."""
    from napari_resunet.ui.predict_widget import MODE_INSTANCE

    viewer = make_napari_viewer()
    viewer.add_image(nuclei2d[0], name="img")
    seg = segment_with_new_network(viewer, qtbot, "img", NEW_2D, MODE_INSTANCE)
    layer = viewer.layers["img [resunet]"]
    q = dock(viewer, "Annotation queue")
    q._image_combo.value = viewer.layers["img"]
    q._labels_combo.value = layer
    q._patch_spin.value = 64
    q._refresh_button.clicked()
    box = q._entries[0].slices
    q._review_button.clicked()
    before = np.array(layer.data)
    seg._run_button.clicked()
    wait_idle(qtbot, seg)
    after = np.array(layer.data)
    np.testing.assert_array_equal(after[box], before[box])
    # the same partition into cells: ids map one to one
    pairs = np.unique(np.stack([before.ravel(), after.ravel()]), axis=1)
    n_before, n_after = len(np.unique(before)), len(np.unique(after))
    assert pairs.shape[1] == n_before == n_after


def test_auto_patch_size_follows_the_cell_labels(
    make_napari_viewer, qtbot, nuclei2d, sync_jobs
):
    from napari_resunet.core.patches import suggest_patch_side

    image, truth = nuclei2d
    viewer, q = _viewer_with_model(make_napari_viewer, qtbot, image, NEW_2D)
    assert q._patch_spin.value == 0  # "auto" by default
    q._refresh_button.clicked()  # a class model: the default side
    assert {e.slices[0].stop - e.slices[0].start for e in q._entries} == {64}
    # a cell model reads the cells' size from the labels layer
    from napari_resunet.ui.predict_widget import MODE_INSTANCE

    segment_with_new_network(viewer, qtbot, "img", NEW_2D, MODE_INSTANCE)
    assert get_store(viewer).model.config.task == "instance"
    cells = viewer.add_labels(truth, name="cells")
    q._labels_combo.value = cells
    q._refresh_button.clicked()
    side, why = suggest_patch_side(truth.shape, truth)
    assert "median diameter" in why and side != 64
    assert {e.slices[1].stop - e.slices[1].start for e in q._entries} == {side}
    assert f"Patches of {side} px" in q._status.value
    q._patch_spin.value = 32  # a size typed in wins
    q._refresh_button.clicked()
    assert {e.slices[1].stop - e.slices[1].start for e in q._entries} == {32}


def test_a_trained_cell_network_ranks_by_where_cells_are_in_doubt(
    make_napari_viewer, qtbot, nuclei2d, sync_jobs
):
    """A new cell network's queue ranks by the full uncertainty; a trained one
    (here the starter), with nuclei in a background, by how unsure it is that a
    pixel is a cell at all (``queue_scores``). The layer shows what is ranked."""
    from napari_resunet.core.ordering import sees_background
    from napari_resunet.core.patches import rank_patches
    from napari_resunet.ui.predict_widget import MODE_INSTANCE, STARTER_PREFIX

    viewer = make_napari_viewer()
    viewer.add_image(nuclei2d[0], name="img")
    seg = segment_with_new_network(viewer, qtbot, "img", NEW_2D, MODE_INSTANCE)
    store = get_store(viewer)
    assert store.model.config.task == "instance" and not store.trained
    q = dock(viewer, "Annotation queue")
    q._image_combo.value = viewer.layers["img"]
    q._labels_combo.value = viewer.layers["img [resunet]"]
    q._patch_spin.value = 64
    q._variety_auto.value = False  # plain score order, to compare the scores
    q._refresh_button.clicked()
    _assert_all_passes_ranking(viewer, store.model)
    seg._model_combo.value = f"{STARTER_PREFIX}nuclei2d"
    seg._run_button.clicked()
    wait_idle(qtbot, seg)
    assert store.trained
    q._refresh_button.clicked()
    full = run_generator(
        iter_uncertainty(
            store.model,
            np.asarray(viewer.layers["img"].data),
            InferenceConfig(use_compile="never"),
            3,
        ),
        False,
        "u",
    )
    assert sees_background(full.probabilities)
    shown = viewer.layers["img [resunet uncertainty]"].data
    np.testing.assert_array_equal(shown, full.foreground_entropy)
    assert not np.array_equal(shown, full.uncertainty)
    expected = rank_patches(full.foreground_entropy, (64, 64))
    assert [e.slices for e in q._entries] == [e.slices for e in expected]
    # left to the plugin, a trained network is ranked (with variety), not blind
    q._variety_auto.value = True
    q._refresh_button.clicked()
    assert "random order" not in q._status.value
    ranked = rank_patches(
        full.foreground_entropy, (64, 64), probabilities=full.probabilities
    )
    chosen = q._variety_spin.value
    assert [e.slices for e in q._entries] == [
        ranked[i].slices for i in diversify(ranked, chosen)
    ]


def test_corrections_give_the_queue_a_second_opinion(
    make_napari_viewer, qtbot, nuclei2d, sync_jobs
):
    """With corrections on its labels, a trained 2D cell network's queue ranks by
    the cells on which it and a forest trained on those corrections disagree
    (core.committee); the features are computed once per image."""
    from napari_resunet.core.committee import iter_committee
    from napari_resunet.core.edits import corrections_mask
    from napari_resunet.core.inference.postprocess import labels_from_probabilities
    from napari_resunet.core.ordering import patch_typicality, queue_order
    from napari_resunet.core.patches import rank_patches
    from napari_resunet.ui import _queue_job as job
    from napari_resunet.ui.predict_widget import MODE_INSTANCE, STARTER_PREFIX

    image, truth = nuclei2d
    viewer = make_napari_viewer()
    viewer.add_image(image, name="img")
    seg = segment_with_new_network(viewer, qtbot, "img", NEW_2D, MODE_INSTANCE)
    seg._model_combo.value = f"{STARTER_PREFIX}nuclei2d"
    seg._run_button.clicked()
    wait_idle(qtbot, seg)
    store = get_store(viewer)
    assert store.trained
    q = dock(viewer, "Annotation queue")
    q._image_combo.value = viewer.layers["img"]
    layer = viewer.layers["img [resunet]"]
    q._labels_combo.value = layer
    q._patch_spin.value = 64
    q._variety_auto.value = False  # plain score order, to compare the scores
    icfg = InferenceConfig(use_compile="never")
    full = run_generator(iter_uncertainty(store.model, image, icfg, 3), False, "u")
    calls = []
    real = job.iter_committee

    def counting(*args, features=None, **kwargs):
        calls.append(features is not None)
        return (yield from real(*args, features=features, **kwargs))

    job.iter_committee = counting
    try:
        # no corrections yet: the network's own doubt from all its passes, as
        # without a second opinion, and the status says why
        q._refresh_button.clicked()
        assert "No forest to compare with yet" in q._status.value
        np.testing.assert_array_equal(
            viewer.layers["img [resunet uncertainty]"].data, full.foreground_entropy
        )
        # the user pastes the truth into two patches (as if painted)
        data = np.array(layer.data)
        for sl in ((slice(0, 64), slice(0, 64)), (slice(128, 192), slice(192, 256))):
            data[sl] = truth[sl]
        layer.data = data
        q._refresh_button.clicked()
        first = np.array(viewer.layers["img [resunet uncertainty]"].data)
        q._refresh_button.clicked()  # the same image: its features are reused
    finally:
        job.iter_committee = real
    assert calls == [False, True, True]
    assert "a forest trained on your corrections" in q._status.value
    # the list says what its scores are: the share of disputed cells, weighed
    # by how typical the patch is of the image
    assert q._queue_list.native.item(0).text().startswith("1. weighted ")
    assert "how typical each patch is" in q._status.value
    # what is shown and ranked is the committee's opinion, as the core gives it,
    # on the network's cells from one unmirrored pass: the flips are not needed
    one = run_generator(iter_uncertainty(store.model, image, icfg, 1), False, "u")
    edited = store.track(layer).refresh(np.asarray(layer.data))
    mask = corrections_mask(edited, "edited", spatial_dims=2)
    cells = labels_from_probabilities(
        one.probabilities, store.model.config, store.instance_cfg
    )
    opinion = run_generator(
        iter_committee(
            image, cells, np.asarray(layer.data), mask, store.model.normalization
        ),
        False,
        "c",
    )
    shown = viewer.layers["img [resunet uncertainty]"].data
    np.testing.assert_array_equal(shown, opinion.score)
    np.testing.assert_array_equal(first, opinion.score)
    assert set(np.unique(shown)) <= {0.0, 1.0} and shown.any()
    typical = patch_typicality(opinion.features, (64, 64))
    expected = queue_order(opinion.score, (64, 64), typicality=typical)
    assert [(e.slices, e.score) for e in q._entries] == [
        (e.slices, e.score) for e in expected
    ]
    plain = rank_patches(opinion.score, (64, 64))
    assert [e.score * typical[e.start] for e in plain] == [
        next(x.score for x in expected if x.start == e.start) for e in plain
    ]
    # one progress bar: the second opinion's three stages follow the passes'
    from tests.conftest import drain

    records, ranking = drain(
        job.iter_queue_uncertainty(
            store.model,
            image,
            InferenceConfig(use_compile="never"),
            3,
            None,
            None,
            0,
            None,
            job.committee_inputs(store, layer, q._snap.spatial_shape, q._features),
            (64, 64),
        )
    )
    assert ranking.typicality == typical
    steps = [r.step for r in records]
    assert steps == sorted(steps) and records[-1].step == records[-1].total
    assert [r.message for r in records[-3:]] == [
        "second opinion: features",
        "second opinion: forest trained",
        "second opinion: forest's cells",
    ]
    np.testing.assert_array_equal(ranking.committee.score, opinion.score)
    passes = [r.message for r in records[:-3]]
    assert passes and all(m.startswith("pass 1/1, ") for m in passes)
    np.testing.assert_array_equal(ranking.result.probabilities, one.probabilities)
    # where no forest can be trained the rest of the passes follow, and the
    # ranking is the one without a second opinion, bit for bit
    inputs = job.committee_inputs(store, layer, q._snap.spatial_shape, q._features)
    inputs.mask[:] = False
    records, ranking = drain(
        job.iter_queue_uncertainty(
            store.model, image, icfg, 3, None, None, 0, None, inputs, (64, 64)
        )
    )
    assert ranking.typicality is None  # weighed only where the committee ranks
    steps = [r.step for r in records]
    assert steps == sorted(steps) and records[-1].step == records[-1].total
    assert ranking.committee.score is None
    np.testing.assert_array_equal(ranking.result.probabilities, full.probabilities)
    np.testing.assert_array_equal(ranking.result.disagreement, full.disagreement)
    # unticked: the network's own doubt again
    q._committee_box.value = False
    q._refresh_button.clicked()
    shown = viewer.layers["img [resunet uncertainty]"].data
    np.testing.assert_array_equal(shown, full.foreground_entropy)
    assert "forest" not in q._status.value
    assert q._queue_list.native.item(0).text().startswith("1. uncertainty ")
