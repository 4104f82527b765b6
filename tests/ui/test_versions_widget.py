"""Model versions: every round saved and scored, restore, compare, save and reopen."""

import numpy as np
import torch
from qtpy.QtCore import QLocale
from tests.ui.conftest import dock, segment_with_new_network

import napari_resunet.ui.versions_widget as vw
from napari_resunet.core import InferenceConfig, predict
from napari_resunet.ui._layers import grid_of
from napari_resunet.ui._model_store import get_store
from napari_resunet.ui.predict_widget import NEW_2D


def _setup(make_napari_viewer, qtbot, image, truth, folder):
    viewer = make_napari_viewer()
    viewer.add_image(image, name="img")
    segment_with_new_network(viewer, qtbot, "img", NEW_2D)
    out = viewer.layers["img [resunet]"]
    fg = (truth > 0).astype(out.data.dtype)
    region = (slice(0, 96), slice(0, 128))
    idx = np.nonzero(out.data[region] != fg[region])
    out.data_setitem(idx, fg[region][idx])  # corrections in the top-left quarter
    store = get_store(viewer)
    # a reviewed patch the queue held back: its truth is painted but never trained on
    held = (slice(96, 192), slice(128, 256))
    hidx = np.nonzero(out.data[held] != fg[held])
    out.data_setitem(tuple(i + s.start for i, s in zip(hidx, held)), fg[held][hidx])
    store.reviewed.append(held)
    store.held_back.append(held)
    ver = dock(viewer, "Model versions")
    ver._image_combo.value = viewer.layers["img"]
    ver._labels_combo.value = out
    ver._folder.value = folder
    ft = dock(viewer, "Fine-tune")
    ft._image_combo.value = viewer.layers["img"]
    ft._labels_combo.value = out
    ft._steps_spin.value = 15
    return viewer, ver, ft, out


def test_held_back_scores_are_measured_off_the_main_thread_after_the_round(
    make_napari_viewer, qtbot, nuclei2d, tmp_path, monkeypatch
):
    """Real threads: a round's version is saved at once, and its held-back patches
    are scored in a worker, once the round has segmented again."""
    import threading

    import napari_resunet.core.versions as cv
    import napari_resunet.ui.versions_widget as vw

    image, truth = nuclei2d
    viewer, ver, ft, out = _setup(
        make_napari_viewer, qtbot, image, truth, tmp_path / "sess"
    )
    store = get_store(viewer)
    calls = []
    real_predict = cv.predict

    def spy(*args, **kwargs):
        calls.append(
            (threading.current_thread() is threading.main_thread(), store.settling)
        )
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(cv, "predict", spy)
    ft._steps_spin.value = 3
    ft._run_button.clicked()
    qtbot.waitUntil(lambda: len(ver.session.versions) == 1, timeout=60_000)
    qtbot.waitUntil(
        lambda: ver.session.versions[0].score_after is not None, timeout=60_000
    )
    v1 = ver.session.versions[0]
    assert v1.score_before is not None and 0 <= v1.score_after <= 1
    # one crop, scored with the model before and after the round
    assert calls == [(False, False), (False, False)]
    assert f"{v1.score_after:.3f}" == ver._table.data.to_list()[0][4]  # "after"
    # and it is shown so, not re-formatted to 4 decimals
    item = ver._table.native.item(0, 4)
    shown = ver._table.native.itemDelegate().displayText(item.text(), QLocale())
    assert shown == f"{v1.score_after:.3f}"
    # the scores are in the session file too
    assert vw.AnnotationSession.open(tmp_path / "sess").versions[0] == v1


def _cells(grid, layers) -> dict:
    """Layer names per grid cell, bottom first; hidden layers under (-1, -1)."""
    cells: dict = {}
    for i, layer in enumerate(layers):
        cells.setdefault(grid.position(i, layers), []).append(layer.name)
    return cells


def test_rounds_are_versioned_scored_restored_and_reopened(
    make_napari_viewer, qtbot, nuclei2d, sync_jobs, tmp_path, monkeypatch
):
    image, truth = nuclei2d
    viewer, ver, ft, out = _setup(
        make_napari_viewer, qtbot, image, truth, tmp_path / "sess"
    )
    store = get_store(viewer)
    ft._run_button.clicked()
    after_round_1 = store.model
    labels_round_1 = np.array(out.data, copy=True)
    ft._run_button.clicked()
    assert not np.array_equal(out.data, labels_round_1)
    versions = ver.session.versions
    assert [v.number for v in versions] == [1, 2]
    v1 = versions[0]
    assert v1.n_corrections > 0 and v1.steps == 15
    assert v1.score_before is not None and v1.score_after is not None
    assert ver._table.row_headers == ("v1", "v2")
    assert ver._table.data.to_list()[0][1] == f"{v1.n_corrections:,}"
    assert (tmp_path / "sess" / "models" / "v002.pt").is_file()
    # restore v1: byte-identical predictions to the model of round 1
    ver._version_combo.value = 1
    ver._rollback_button.clicked()
    cfg = InferenceConfig(use_compile="never")
    np.testing.assert_array_equal(
        predict(store.model, image, cfg), predict(after_round_1, image, cfg)
    )
    assert store.source == "version v1" and len(ver.session.versions) == 2
    # and the image is segmented with it: the labels are those of round 1 again
    np.testing.assert_array_equal(out.data, labels_round_1)
    assert "updated 'img [resunet]'" in ver._status.value and not store.settling
    # compare v1 and v2 side by side
    ver._version_combo.value, ver._other_combo.value = 1, 2
    viewer.layers.selection.active = viewer.layers["img [resunet]"]
    other = object()
    store.begin_settling(other)  # as while a fine-tuning round segments again
    ver._compare_button.clicked()
    assert store.settling  # a comparison does not end another widget's settling
    store.end_settling(other)
    # the backdrop is not left as the selected layer
    assert viewer.layers.selection.active.name != "img [compare backdrop]"
    assert "img [v1]" in viewer.layers and "img [v2]" in viewer.layers
    grid, layers = grid_of(viewer), viewer.layers
    assert grid.enabled and grid.actual_shape(layers) == (1, 2)
    # each version in its own cell, over the image (a backdrop shares its data)
    backdrop = layers["img [compare backdrop]"]
    assert backdrop.data is layers["img"].data
    cells = _cells(grid, layers)
    assert cells.pop((-1, -1))  # the other layers are hidden meanwhile
    assert sorted(cells.values()) == [
        ["img", "img [v1]"],
        ["img [compare backdrop]", "img [v2]"],
    ]
    assert cells[(0, 0)] == ["img", "img [v1]"]  # v1 on the left, image below
    hidden = [layer.name for layer in layers if not layer.visible]
    # comparing again does not stack backdrops, and a version layer the user
    # moved below the image is brought back above it
    layers.move(layers.index("img [v1]"), 0)
    ver._compare_button.clicked()
    assert [la.name for la in layers].count("img [compare backdrop]") == 1
    cells = _cells(grid, layers)
    assert cells[(0, 0)] == ["img", "img [v1]"]
    assert cells[(0, 1)] == ["img [compare backdrop]", "img [v2]"]
    # turning the grid off brings the layers back as they were
    grid.enabled = False
    assert "img [compare backdrop]" not in layers
    assert all(layers[name].visible for name in hidden)
    assert grid.shape == (-1, -1)
    # the same version twice is refused
    ver._other_combo.value = 1
    ver._compare_button.clicked()
    assert not grid.enabled
    # with the grid already on, leaving it still restores the layers
    grid.enabled = True
    ver._other_combo.value = 2
    ver._compare_button.clicked()
    assert not layers["img [resunet]"].visible
    grid.enabled = False
    assert layers["img [resunet]"].visible and "img [compare backdrop]" not in layers
    # save, then reopen in a new viewer with the image
    ver._save_button.clicked()
    viewer2 = make_napari_viewer()
    viewer2.add_image(image, name="img", scale=(0.5, 0.5), translate=(3, 4))
    ver2 = dock(viewer2, "Model versions")
    ver2._folder.value = tmp_path / "sess"
    ver2._open_button.clicked()
    store2 = get_store(viewer2)
    assert len(ver2.session.versions) == 2
    assert store2.held_back == [(slice(96, 192), slice(128, 256))]
    # the saved labels are the image's working layer again, over the image
    restored = viewer2.layers["img [resunet]"]
    assert ver2._labels_combo.value is restored
    assert tuple(restored.scale) == (0.5, 0.5)
    assert tuple(restored.translate) == (3, 4)
    np.testing.assert_array_equal(restored.data, out.data)
    for k, v in ver.session.load_version(2).state_dict().items():
        assert torch.equal(store2.model.state_dict()[k], v)
    # so a round goes on from there: it learns from the saved corrections and
    # segments into that layer, keeping them
    saved_edits = store.track(out).refresh(np.asarray(out.data))
    ft2 = dock(viewer2, "Fine-tune")
    ft2._image_combo.value = viewer2.layers["img"]
    ft2._labels_combo.value = restored
    ft2._steps_spin.value = 3
    ft2._run_button.clicked()
    assert store2.rounds == 1
    # (the mask: the edits grown by a margin, without the held-back patch)
    assert ft2._round["n_corrections"] >= int(saved_edits[:96, :128].sum()) > 0
    assert [la.name for la in viewer2.layers] == ["img", "img [resunet]"]
    np.testing.assert_array_equal(
        restored.data[saved_edits], np.asarray(out.data)[saved_edits]
    )
    # a viewer that has the working layer already gets the saved one beside it
    infos: list[str] = []
    monkeypatch.setattr(vw, "show_info", infos.append)
    ver2._open_button.clicked()
    assert viewer2.layers[-1].name == "img [corrections]"
    assert "img [resunet]" in infos[-1] and "img [corrections]" in infos[-1]
    # a round scored lower is flagged in the table and warned about, with where
    # to go back to; a drop below the shown precision is not
    warned: list[str] = []
    monkeypatch.setattr(vw, "show_warning", warned.append)
    ver._on_scored(2, True, [0.9, 0.8995])
    assert not warned and not ver._table.data.to_list()[1][-1]
    ver._on_scored(1, True, [0.9, 0.5])
    assert "going back to the model before it" in warned[-1]
    ver._on_scored(2, True, [0.9, 0.7])
    assert "consider restoring v1" in warned[-1]
    assert ver._table.data.to_list()[1][-1] == "worse on held-back patches"
