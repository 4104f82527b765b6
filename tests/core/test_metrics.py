"""Metrics on small hand-made arrays with known answers."""

import math

import numpy as np
import pytest

from napari_resunet.core.metrics import (
    dice_per_class,
    evaluate,
    hd95,
    iou_matrix,
    iou_per_class,
    match_instances,
    metrics_table,
    segmentation_scores,
)


def test_dice_and_iou_per_class():
    pred = np.array([[0, 1, 1, 2]])
    true = np.array([[0, 1, 2, 2]])
    d = dice_per_class(pred, true, 3)
    np.testing.assert_allclose(d, [1.0, 2 * 1 / 3, 2 * 1 / 3])
    np.testing.assert_allclose(iou_per_class(pred, true, 3), [1.0, 0.5, 0.5])
    # absent from both: 1, from one only: 0
    np.testing.assert_allclose(
        dice_per_class(np.zeros((2, 2), int), np.zeros((2, 2), int), 2), [1, 1]
    )
    assert dice_per_class(np.ones((2, 2), int), np.zeros((2, 2), int), 2)[1] == 0


def test_iou_matrix_known_values():
    true = np.zeros((4, 8), int)
    true[:, 0:4] = 1
    true[:, 4:8] = 2
    pred = np.zeros((4, 8), int)
    pred[:, 0:2] = 5  # half of object 1
    pred[:, 2:8] = 9  # rest of 1 and all of 2
    iou, pids, tids = iou_matrix(pred, true)
    assert list(pids) == [5, 9] and list(tids) == [1, 2]
    np.testing.assert_allclose(iou, [[0.5, 0.0], [8 / 32, 16 / 24]])


def test_matching_counts_and_scores():
    true = np.zeros((10, 30), int)
    true[1:9, 1:9] = 1
    true[1:9, 11:19] = 2
    true[1:9, 21:29] = 3
    pred = np.zeros_like(true)
    pred[1:9, 1:9] = 4  # perfect
    pred[1:9, 11:15] = 5  # half of object 2 (IoU 0.5)
    pred[0, 0] = 6  # a false positive
    rows = match_instances(pred, true, thresholds=(0.5, 0.75))
    r50, r75 = rows
    assert (r50["tp"], r50["fp"], r50["fn"]) == (2, 1, 1)
    assert r50["precision"] == pytest.approx(2 / 3) and r50["recall"] == pytest.approx(
        2 / 3
    )
    assert r50["f1"] == pytest.approx(2 / 3) and r50["ap"] == pytest.approx(0.5)
    assert (r75["tp"], r75["fp"], r75["fn"]) == (1, 2, 2)
    assert r75["ap"] == pytest.approx(1 / 5)


def test_matching_is_one_to_one_and_optimal():
    true = np.zeros((1, 10), int)
    true[0, :5] = 1
    true[0, 5:] = 2
    pred = np.zeros_like(true)
    pred[0, :] = 1  # one object covering both: IoU 0.5 with each, may match only one
    (r,) = match_instances(pred, true, thresholds=(0.5,))
    assert (r["tp"], r["fp"], r["fn"]) == (1, 0, 1)


def test_matching_empty_cases_are_defined():
    empty = np.zeros((5, 5), int)
    some = empty.copy()
    some[1:3, 1:3] = 1
    assert match_instances(empty, empty, (0.5,))[0]["f1"] == 1.0
    r = match_instances(empty, some, (0.5,))[0]
    assert (r["f1"], r["recall"], r["precision"], r["fn"]) == (0.0, 0.0, 0.0, 1)
    r = match_instances(some, empty, (0.5,))[0]
    assert (r["f1"], r["fp"]) == (0.0, 1)


def test_hd95_known_distance_and_voxel_size():
    a = np.zeros((20, 20), bool)
    b = np.zeros((20, 20), bool)
    a[5:10, 5:10] = True
    b[5:10, 8:13] = True  # shifted by 3 along x
    assert hd95(a, b) == pytest.approx(3.0)
    assert hd95(a, b, voxel_size=(1.0, 0.5)) == pytest.approx(1.5)
    assert hd95(a, a) == 0.0
    assert hd95(np.zeros_like(a), np.zeros_like(a)) == 0.0
    assert math.isinf(hd95(a, np.zeros_like(a)))


def test_rand_error_and_vi():
    true = np.zeros((2, 4, 4), int)
    true[:, :, :2] = 1
    true[:, :, 2:] = 2
    perfect = segmentation_scores(true, true)
    assert perfect["adapted_rand_error"] == pytest.approx(0.0)
    assert perfect["vi"] == pytest.approx(0.0, abs=1e-9)
    merged = segmentation_scores(np.ones_like(true), true)
    assert merged["adapted_rand_error"] > 0.3
    assert merged["vi_merge"] == pytest.approx(
        1.0
    )  # one bit lost (two equal halves merged)
    assert merged["vi_split"] == pytest.approx(0.0, abs=1e-9)
    split = segmentation_scores(np.arange(true.size).reshape(true.shape) + 1, true)
    assert split["vi_split"] > 2 and split["vi_merge"] == pytest.approx(0.0, abs=1e-9)


def test_evaluate_modes_and_table():
    true = np.zeros((10, 30), np.uint16)
    true[1:9, 1:9] = 1
    true[1:9, 11:19] = 2
    true[1:9, 21:29] = 3
    res = evaluate(true, true)
    assert res["mode"] == "instance"
    assert res["summary"]["f1@0.5"] == 1.0 and res["summary"]["mean_ap"] == 1.0
    rows = dict(metrics_table(res))
    assert rows["f1@0.50"] == "1.0000" and rows["n_true"] == "3"
    sem = evaluate((true > 0).astype(np.uint8), (true > 0).astype(np.uint8))
    assert sem["mode"] == "semantic" and sem["summary"]["mean_fg_dice"] == 1.0
    vol = np.stack([true, true])
    assert "adapted_rand_error" in evaluate(vol, vol)["summary"]


@pytest.mark.parametrize(
    ("pred", "true", "match"),
    [
        (np.zeros((3, 3), int), np.zeros((4, 4), int), "shape"),
        (np.zeros((3, 3), float), np.zeros((3, 3), int), "integer"),
        (-np.ones((3, 3), int), np.zeros((3, 3), int), "negative"),
    ],
)
def test_bad_input(pred, true, match):
    with pytest.raises(ValueError, match=match):
        evaluate(pred, true)
