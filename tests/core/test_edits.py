import numpy as np
import pytest

from napari_resunet.core.edits import (
    corrections_mask,
    merge_prediction,
    one_sided_note,
    update_edited,
)


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


def test_cells_cut_by_a_kept_box_continue_with_the_kept_id():
    # a reviewed box at the top left keeps cell 7, which crosses its right face
    # (less than half of it inside: the box rule, not join_remainders, joins it),
    # and cell 8, which lies inside it and touches cell 9 outside across the face
    # (the layer shows cell 7 inside the box only: the prediction that extends it
    # outside is new, so no shown cell gives it its id)
    current = np.zeros((8, 8), np.uint16)
    current[1:3, 1:4] = 7
    current[4:6, 1:4] = 8
    current[4:6, 4:7] = 9
    edited = np.zeros(current.shape, bool)
    box = (slice(0, 6), slice(0, 4))
    edited[box] = True
    prediction = np.zeros(current.shape, np.uint16)
    prediction[1:3, 1:8] = 1  # the same cell, predicted across the face
    prediction[4:6, 1:4] = 2
    prediction[4:6, 4:7] = 3  # the neighbour: touches 8, does not cross the face
    prediction[7:8, 0:2] = 4  # a cell below the box, on background
    # new ids above the layer's 9, in predicted order: 1 -> 10, 2 -> 11, 4 -> 12;
    # 3 continues the shown cell 9
    plain = merge_prediction(current, prediction, edited, instances=True)
    assert set(np.unique(plain[1:3, 4:8])) == {10}  # split: a new id outside
    merged = merge_prediction(current, prediction, edited, instances=True, boxes=[box])
    np.testing.assert_array_equal(merged[1:3, 1:8], 7)  # one cell again
    assert (merged[edited] == current[edited]).all()  # kept voxels untouched
    assert set(np.unique(merged[4:6, 4:7])) == {9}  # a neighbour stays apart
    assert set(np.unique(merged[7:8, 0:2])) == {12}
    # boxes at the image border or of another dimensionality change nothing
    for boxes in ([(slice(0, 8), slice(0, 8))], [(slice(0, 2),)]):
        np.testing.assert_array_equal(
            merge_prediction(current, prediction, edited, instances=True, boxes=boxes),
            plain,
        )
    # class labels are never joined
    np.testing.assert_array_equal(
        merge_prediction(current, prediction, edited, boxes=[box]),
        merge_prediction(current, prediction, edited),
    )


def test_a_predicted_cell_crossing_two_kept_cells_takes_the_one_it_shares_most():
    current = np.zeros((4, 8), np.uint16)
    current[0:3, 0:4] = 5  # three rows of the face
    current[3:4, 0:4] = 6  # one row
    edited = np.zeros(current.shape, bool)
    box = (slice(0, 4), slice(0, 4))
    edited[box] = True
    prediction = np.zeros(current.shape, np.uint16)
    prediction[:, 2:8] = 1  # one predicted cell across the whole face
    merged = merge_prediction(current, prediction, edited, instances=True, boxes=[box])
    np.testing.assert_array_equal(merged[:, 4:8], 5)


def test_joining_across_boxes_handles_large_label_ids():
    # EM body ids can be ~1e9: the remapping must not allocate per possible id
    big = 3_000_000_000
    current = np.zeros((8, 8), np.uint64)
    current[1:3, 1:4] = big  # kept inside the box; predicted anew across its face
    edited = np.zeros(current.shape, bool)
    box = (slice(0, 6), slice(0, 4))
    edited[box] = True
    prediction = np.zeros(current.shape, np.uint16)
    prediction[1:3, 1:6] = 1
    prediction[6:8, 5:8] = 2
    merged = merge_prediction(current, prediction, edited, instances=True, boxes=[box])
    np.testing.assert_array_equal(merged[1:3, 1:6], big)
    assert set(np.unique(merged[6:8, 5:8])) == {big + 2}


def test_a_repainted_cell_takes_back_the_rim_of_its_prediction():
    yy, xx = np.mgrid[:40, :40]
    current = np.zeros((40, 40), np.uint16)
    painted = (yy - 12) ** 2 + (xx - 12) ** 2 <= 8**2
    current[painted] = 5  # the user painted this cell whole
    current[30:36, 30:36] = 6  # and a small missed cell here
    current[2:6, 30:38] = 0  # and erased a false positive there
    edited = painted.copy()
    edited[30:36, 30:36] = True
    edited[2:6, 30:38] = True
    prediction = np.zeros((40, 40), np.uint16)
    prediction[(yy - 12) ** 2 + (xx - 12) ** 2 <= 9**2] = 1  # a little larger
    prediction[26:40, 22:34] = 2  # a big cell that overlaps the small painted one
    prediction[2:6, 28:38] = 3  # the false positive again, a bit wider
    merged = merge_prediction(current, prediction, edited, instances=True)
    rim = (prediction == 1) & ~painted
    assert rim.any() and (merged[rim] == 5).all()  # no ring of another id
    assert (merged[edited] == current[edited]).all()  # the user's voxels stay
    # 24 of the big cell's 168 px lie on the small one: it keeps its own id
    assert set(np.unique(merged[(prediction == 2) & ~edited])) == {2 + 6}
    # what was erased is no cell: the rest of the false positive stays itself
    assert set(np.unique(merged[(prediction == 3) & ~edited])) == {3 + 6}
    # at least half on the painted cell is the rule: 40% is not enough
    part = np.zeros((40, 40), np.uint16)
    part[0:10, 0:10] = 1
    cur = np.zeros((40, 40), np.uint16)
    cur[0:10, 0:4] = 9
    out = merge_prediction(cur, part, cur > 0, instances=True)
    assert set(np.unique(out[0:10, 4:10])) == {1 + 9}


def test_isin_ids_matches_numpy():
    from napari_resunet.core.cell_ids import _isin_ids

    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, size=(20, 30)).astype(np.uint32)
    for keys in ([3, 7, 49], [0], [], [48, 60], [5, 2**30]):
        k = np.asarray(keys, np.uint32)
        np.testing.assert_array_equal(_isin_ids(ids, k), np.isin(ids, k))
    signed = rng.integers(-5, 50, size=(20, 30))
    for keys in ([1, 4], [0, 3]):
        np.testing.assert_array_equal(_isin_ids(signed, keys), np.isin(signed, keys))


def test_a_merged_prediction_split_by_the_user_gives_each_part_its_rim():
    # the user split a merged pair into cells 5 (left) and 6 (right); the new
    # prediction still has one object around both, a little larger
    current = np.zeros((20, 40), np.uint16)
    current[5:15, 5:19] = 5
    current[5:15, 19:33] = 6
    edited = current > 0
    prediction = np.zeros(current.shape, np.uint16)
    prediction[4:16, 4:34] = 1
    merged = merge_prediction(current, prediction, edited, instances=True)
    rim = (prediction == 1) & ~edited
    assert set(np.unique(merged[rim])) == {5, 6}  # no third id
    assert (merged[rim & (np.arange(40) < 12)] == 5).all()  # left end: cell 5
    assert (merged[rim & (np.arange(40) > 26)] == 6).all()  # right end: cell 6
    assert (merged[edited] == current[edited]).all()


def _blobs(shape, centres, radius, ids):
    grid = np.indices(shape)
    out = np.zeros(shape, np.uint32)
    for c, i in zip(centres, ids):
        d2 = sum((g - x) ** 2 for g, x in zip(grid, c))
        out[d2 <= radius**2] = i
    return out


def test_predicted_cells_keep_the_ids_they_are_shown_with():
    centres = [(10, 10), (10, 30), (30, 10), (30, 30)]
    current = _blobs((40, 40), centres, 6, [41, 42, 43, 57])
    current[0:3, 0:3] = 60  # a cell the user painted
    edited = current == 60
    # the next prediction numbers the same cells afresh, one a little larger,
    # one gone, and finds a new one
    prediction = _blobs((40, 40), centres[:3], 6, [3, 1, 2])
    prediction[_blobs((40, 40), centres[:1], 7, [1]) > 0] = 3
    prediction[18:22, 18:22] = 4
    merged = merge_prediction(current, prediction, edited, instances=True)
    assert set(np.unique(merged[prediction == 3])) == {41}
    assert set(np.unique(merged[prediction == 1])) == {42}
    assert set(np.unique(merged[prediction == 2])) == {43}
    # the new cell: above every id in the layer, painted ones included
    assert set(np.unique(merged[prediction == 4])) == {61}
    assert (merged[edited] == 60).all()
    # only what changed differs: the grown rim, the lost and the new cell
    changed = merged != current
    assert changed.sum() == (
        ((prediction == 3) & (current != 41)).sum()
        + (current == 57).sum()
        + (prediction == 4).sum()
    )
    # the same prediction again changes nothing
    np.testing.assert_array_equal(
        merge_prediction(merged, prediction, edited, instances=True), merged
    )
    # replacing everything still continues the shown cells' ids
    replaced = merge_prediction(current, prediction, edited, True, instances=True)
    assert set(np.unique(replaced[prediction == 1])) == {42}
    assert (replaced[edited] == 0).all()


def test_split_and_merged_cells_keep_an_id_only_for_the_main_part():
    current = np.zeros((10, 40), np.uint16)
    current[:, 0:20] = 5  # one cell ...
    current[:, 25:31] = 6  # ... and two small ones
    current[:, 32:38] = 7
    prediction = np.zeros(current.shape, np.uint16)
    prediction[:, 0:14] = 1  # 5 split 70/30: the larger part keeps 5
    prediction[:, 14:20] = 2
    prediction[:, 25:38] = 3  # 6 and 7 merged: each is under half of the union
    edited = np.zeros(current.shape, bool)
    merged = merge_prediction(current, prediction, edited, instances=True)
    assert set(np.unique(merged[prediction == 1])) == {5}
    assert set(np.unique(merged[prediction == 2])) == {8}
    assert set(np.unique(merged[prediction == 3])) == {9}


def test_continue_ids_on_a_subsample_and_with_large_ids(monkeypatch):
    import napari_resunet.core.cell_ids as edits

    centres = [(8, 12, 12), (8, 12, 36), (8, 36, 24)]
    big = 2_500_000_000
    current = _blobs((16, 48, 48), centres, 6, [1, 2, 3]).astype(np.uint64) + big
    current[current == big] = 0
    prediction = _blobs((16, 48, 48), centres, 6, [2**30, 7, 2**25])
    prediction[0:2, 0:4, 0:4] = 9  # a new cell of a few voxels
    shown = np.ones(current.shape, bool)
    exact = edits.continue_ids(prediction, current, shown)
    monkeypatch.setattr(edits, "MATCH_SAMPLE", 2_000)  # every 3rd voxel per axis
    sampled = edits.continue_ids(prediction, current, shown)
    for out in (exact, sampled):
        assert out.dtype == np.uint64
        assert set(np.unique(out[prediction == 2**30])) == {big + 1}
        assert set(np.unique(out[prediction == 7])) == {big + 2}
        assert set(np.unique(out[prediction == 2**25])) == {big + 3}
        assert set(np.unique(out[prediction == 9])) == {big + 4}
        assert (out[prediction == 0] == 0).all()
    with pytest.raises(ValueError, match="dtype"):
        edits.continue_ids(prediction, np.full((16, 48, 48), 254, np.uint8), shown)


def test_one_sided_corrections_are_named():
    labels = np.zeros((8, 8), np.uint32)
    labels[:4, :4] = 3
    painted = np.zeros((8, 8), bool)
    painted[:4, :4] = True
    assert "only paint" in one_sided_note(labels, painted)
    erased = np.zeros((8, 8), bool)
    erased[6:, 6:] = True
    assert "only erase" in one_sided_note(labels, erased)
    assert one_sided_note(labels, painted | erased) is None
    assert one_sided_note(labels, np.zeros((8, 8), bool)) is None
