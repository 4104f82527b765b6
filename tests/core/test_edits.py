import numpy as np
import pytest

from napari_resunet.core.edits import corrections_mask, merge_prediction, update_edited


def test_update_edited_accumulates_changes():
    pred = np.zeros((4, 4), np.uint8)
    cur = pred.copy()
    cur[0, 0] = 1
    edited = update_edited(cur, pred, None)
    assert edited.sum() == 1 and edited[0, 0]
    # after a new prediction the earlier edit stays edited, new changes join
    new_pred = np.ones((4, 4), np.uint8)
    cur2 = new_pred.copy()
    cur2[3, 3] = 0
    edited2 = update_edited(cur2, new_pred, edited)
    assert edited2[0, 0] and edited2[3, 3] and edited2.sum() == 2


def test_update_edited_without_prediction_counts_nonzero():
    cur = np.zeros((3, 3), np.uint8)
    cur[1, 1] = 2
    assert update_edited(cur, None, None).sum() == 1


def test_merge_keeps_edits_unless_replaced():
    cur = np.array([[7, 0], [0, 0]], np.uint8)
    edited = np.array([[True, True], [False, False]])
    pred = np.ones((2, 2), np.uint8)
    np.testing.assert_array_equal(merge_prediction(cur, pred, edited), [[7, 0], [1, 1]])
    np.testing.assert_array_equal(
        merge_prediction(cur, pred, edited, replace=True), pred
    )
    with pytest.raises(ValueError, match="shape"):
        merge_prediction(cur, np.ones((3, 3), np.uint8), edited)


def test_corrections_mask_scopes():
    edited = np.zeros((3, 20, 20), bool)
    edited[1, 10, 10] = True
    grown = corrections_mask(edited, "edited", margin=2, spatial_dims=3)
    assert grown[1, 10, 12] and grown[0, 10, 10] and not grown[1, 10, 13]
    slicewise = corrections_mask(edited, "edited", margin=2, spatial_dims=2)
    assert slicewise[1, 10, 12] and not slicewise[0, 10, 10]  # no leak across slices
    slices = corrections_mask(edited, "edited_slices")
    assert slices[1].all() and not slices[0].any() and not slices[2].any()
    assert corrections_mask(edited, "all").all()
    flat = np.zeros((100, 100), bool)
    flat[70, 5] = True
    patches = corrections_mask(flat, "edited_slices", patch=64)
    assert patches[64:100, 0:64].all() and patches.sum() == 36 * 64
    assert not corrections_mask(np.zeros((4, 4), bool), "edited").any()
    with pytest.raises(ValueError):
        corrections_mask(flat, "bogus")
