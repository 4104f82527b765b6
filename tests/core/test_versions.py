"""Scoring and comparing a session's model versions (core, no viewer)."""

import numpy as np
import pytest
from tests.conftest import drain, tiny_model

from napari_resunet.core import InferenceConfig, predict
from napari_resunet.core.inference.postprocess import labels_from_probabilities
from napari_resunet.core.io import load_sample
from napari_resunet.core.progress import Progress, relay, run_generator
from napari_resunet.core.versions import iter_compare, iter_held_back_scores


@pytest.fixture
def nuclei2d():
    image, labels = load_sample("nuclei2d")
    return image.data[:192, :256].copy(), labels.data[:192, :256].copy()


def test_iter_compare_reports_progress_and_segments_with_each_model(nuclei2d):
    image = nuclei2d[0]
    models = [(1, tiny_model(2, seed=0)), (2, tiny_model(2, seed=1))]
    cfg = InferenceConfig(use_compile="never")
    records, result = drain(iter_compare(models, image))
    steps = [(rec.step, rec.total, rec.message) for rec in records]
    assert len(steps) >= 2 and steps[-1][0] == steps[-1][1]
    assert [s for s, _, _ in steps] == sorted(s for s, _, _ in steps)
    assert steps[0][2].startswith("v1") and steps[-1][2].startswith("v2")
    assert [n for n, _ in result] == [1, 2]
    for (_, labels), (_, model) in zip(result, models):
        expected = labels_from_probabilities(
            predict(model, image, cfg),
            model.config,
            model.instance_config,
        )
        np.testing.assert_array_equal(labels, expected)
    assert run_generator(iter_compare([], image), False, "c") == []
    # cell models: the given cell settings, else each model's own
    from napari_resunet.core.config import InstanceConfig

    cells = tiny_model(2, seed=0, task="instance", out_channels=3)
    cells.instance_config = InstanceConfig(min_size=5)
    probs = predict(cells, image, cfg)
    for given, expected in (
        (None, cells.instance_config),
        (InstanceConfig(min_size=200), None),
    ):
        expected = expected or given
        ((_, labels),) = run_generator(
            iter_compare([(1, cells)], image, instance_cfg=given), False, "c"
        )
        np.testing.assert_array_equal(
            labels, labels_from_probabilities(probs, cells.config, expected)
        )


def test_compared_cell_models_show_a_cell_with_the_same_id(nuclei2d, monkeypatch):
    import napari_resunet.core.versions as cv

    image = nuclei2d[0]
    models = [
        (n, tiny_model(2, seed=n, task="instance", out_channels=3)) for n in (1, 2)
    ]
    # the same cells from both, numbered differently (as two watersheds may)
    cells = np.zeros(image.shape, np.uint32)
    cells[10:40, 10:40], cells[50:90, 60:100], cells[100:120, 5:30] = 1, 2, 3
    relabel = iter([cells, np.array([0, 3, 1, 2], np.uint32)[cells]])
    monkeypatch.setattr(cv, "labels_from_probabilities", lambda *a: next(relabel))
    (_, first), (_, second) = run_generator(iter_compare(models, image), False, "c")
    np.testing.assert_array_equal(first, cells)
    np.testing.assert_array_equal(second, cells)


def test_held_back_scores_per_model(nuclei2d):
    image, truth = nuclei2d
    crops = [(image[:64, :64], truth[:64, :64]), (image[64:, 64:], truth[64:, 64:])]
    models = [tiny_model(2, seed=0), tiny_model(2, seed=1)]
    records, scores = drain(iter_held_back_scores(models, crops))
    assert [(r.step, r.total) for r in records] == [(k, 4) for k in (1, 2, 3, 4)]
    assert len(scores) == 2 and all(0 <= s <= 1 for s in scores)
    assert run_generator(iter_held_back_scores(models, []), False, "s") == [None, None]


def test_relay_offsets_steps_and_returns_the_result():
    def inner():
        yield Progress(1, 2, "a")
        yield Progress(2, 2, "b")
        return "done"

    out, result = drain(relay(inner(), 10, 14, "stage 2: ", "p"))
    assert result == "done"
    assert out == [
        Progress(11, 14, "stage 2: a", "p"),
        Progress(12, 14, "stage 2: b", "p"),
    ]
