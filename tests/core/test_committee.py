"""The queue's second opinion (core.committee): features, a forest on the
corrections, its cells, and where they and the network's disagree."""

import numpy as np
import pytest

from napari_resunet.core import ModelConfig, NormalizationConfig
from napari_resunet.core.committee import (
    committee_applies,
    disputed_cells,
    fit_forest,
    forest_cells,
    iter_committee,
    pixel_features,
)
from napari_resunet.core.config import CommitteeConfig
from napari_resunet.core.metrics import match_instances
from napari_resunet.core.progress import run_generator
from napari_resunet.core.synthetic import make_blobs

NORM = NormalizationConfig()


@pytest.fixture(scope="module")
def field():
    """Well-separated blobs: a forest learns them from half the field."""
    return make_blobs((128, 192), n_objects=14, radius=7.0, noise=0.05, seed=3)


def _left_half(shape):
    mask = np.zeros(shape, bool)
    mask[:, : shape[1] // 2] = True
    return mask


def test_features_plane_by_plane_and_with_channels(field):
    image = field[0]
    f = pixel_features(image, NORM)
    assert f.dtype == np.float32 and f.shape[:2] == image.shape
    n = f.shape[-1]
    assert n == 20  # 5 scales x (intensity, edges, two Hessian eigenvalues)
    stack = np.stack([image, image[::-1]])
    fs = pixel_features(stack, NORM)
    assert fs.shape == (2, *image.shape, n)
    # the stack is scaled as one (the network's scaling of a stack), so its
    # planes' features match the single image's up to that scaling
    assert np.corrcoef(fs[0].ravel(), f.ravel())[0, 1] > 0.999
    # two channels (axis 0, as napari holds them): each gets its own features
    two = pixel_features(np.stack([image, image]), NORM, channel_axis=0)
    assert two.shape == (*image.shape, 2 * n)
    with pytest.raises(ValueError, match="2D image or a stack"):
        pixel_features(image[0], NORM)


def test_forest_learns_cells_from_half_the_field(field):
    image, truth = field
    f = pixel_features(image, NORM)
    mask = _left_half(image.shape)
    forest = fit_forest(f, truth, mask)
    cells = forest_cells(forest, f)
    assert cells.dtype == np.uint32 and cells.shape == image.shape
    right = (slice(None), slice(image.shape[1] // 2 + 10, None))  # unseen part
    assert match_instances(cells[right], truth[right], [0.5])[0]["f1"] > 0.8
    # trees grown from bootstrap samples of 2000 of the corrected pixels each
    # (the fit's time bound) still find the cells
    small = fit_forest(f, truth, mask, CommitteeConfig(tree_samples=2000))
    assert small.max_samples == 2000
    cells = forest_cells(small, f)
    assert match_instances(cells[right], truth[right], [0.5])[0]["f1"] > 0.8


def test_no_forest_from_one_class(field):
    image, truth = field
    f = pixel_features(image, NORM)
    only_background = truth == 0
    assert fit_forest(f, truth, only_background) is None
    few_cells = only_background.copy()
    few_cells[tuple(np.argwhere(truth > 0)[:10].T)] = True
    assert fit_forest(f, truth, few_cells) is None
    assert fit_forest(f, truth, few_cells, CommitteeConfig(min_class_pixels=5))
    with pytest.raises(ValueError, match="do not match"):
        fit_forest(f, truth[:-1], only_background[:-1])


def test_disputed_cells_marks_unmatched_cells_of_both_sides():
    a = np.zeros((40, 60), np.uint16)
    a[5:15, 5:15] = 1
    a[20:30, 5:15] = 2
    a[5:15, 30:40] = 3
    np.testing.assert_array_equal(disputed_cells(a, a), 0)
    b = a.copy()
    b[b == 3] = 0  # the other side misses a cell
    b[20:30, 40:50] = 7  # and has one the first has not
    b[5:30, 5:15] = 1  # and merges two (IoU 0.4 with either)
    out = disputed_cells(a, b)
    expected = np.isin(a, [1, 2, 3]) | (b == 7) | (b == 1)
    np.testing.assert_array_equal(out, expected.astype(np.float32))
    # a stack is compared plane by plane: ids need not agree across planes
    stack_a, stack_b = np.stack([a, a]), np.stack([b, a + (a > 0) * 10])
    out3 = disputed_cells(stack_a, stack_b)
    np.testing.assert_array_equal(out3[0], out)
    np.testing.assert_array_equal(out3[1], 0)
    with pytest.raises(ValueError, match="differ in shape"):
        disputed_cells(a, b[:-1])


def test_committee_points_at_the_cells_the_network_gets_wrong(field):
    image, truth = field
    mask = _left_half(image.shape)
    # a "network" that missed two cells in the unseen half and found the rest
    right_ids = np.unique(truth[:, image.shape[1] // 2 + 20 :])
    missed = right_ids[right_ids > 0][:2]
    network = np.where(np.isin(truth, missed), 0, truth)
    steps, res = [], None
    gen = iter_committee(image, network, truth, mask, NORM)
    try:
        while True:
            steps.append(next(gen).step)
    except StopIteration as stop:
        res = stop.value
    assert steps == [1, 2, 3] and res.reason == ""
    assert res.score.shape == image.shape and res.score.dtype == np.float32
    on_missed = res.score[np.isin(truth, missed)].mean()
    elsewhere = res.score[~np.isin(truth, missed)].mean()
    assert on_missed > 0.8 and elsewhere < 0.1
    # the features come back for the next ranking, and give the same answer
    again = run_generator(
        iter_committee(image, network, truth, mask, NORM, features=res.features),
        False,
        "c",
    )
    assert again.features is res.features
    np.testing.assert_array_equal(again.score, res.score)


def test_committee_says_why_it_has_no_opinion(field):
    image, truth = field
    none = np.zeros(image.shape, bool)
    res = run_generator(iter_committee(image, truth, truth, none, NORM), False, "c")
    assert res.score is None and res.features is not None
    assert "fewer than 50 corrected pixels" in res.reason
    small = CommitteeConfig(max_pixels=1000)
    res = run_generator(
        iter_committee(image, truth, truth, none, NORM, cfg=small), False, "c"
    )
    assert res.score is None and res.features is None
    assert "more than the forest's 1000" in res.reason
    with pytest.raises(ValueError, match="must match"):
        run_generator(iter_committee(image, truth, truth[:-1], none, NORM), False, "c")


def test_committee_applies_to_2d_cell_networks_only():
    assert committee_applies(
        ModelConfig(spatial_dims=2, out_channels=3, task="instance")
    )
    assert not committee_applies(
        ModelConfig(spatial_dims=3, out_channels=3, task="instance")
    )
    assert not committee_applies(ModelConfig(spatial_dims=2))


def test_committee_config_validates():
    with pytest.raises(ValueError, match="sigma"):
        CommitteeConfig(sigma_min=4, sigma_max=2)
    with pytest.raises(ValueError, match=">= 1"):
        CommitteeConfig(n_trees=0)
    with pytest.raises(ValueError, match="tree_samples"):
        CommitteeConfig(tree_samples=-1)
    assert CommitteeConfig.from_dict(CommitteeConfig().to_dict()) == CommitteeConfig()
