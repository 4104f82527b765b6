"""The annotation queue's patches: sizes and ranking (core.patches), their order:
variety, blind order, typicality (core.ordering)."""

import numpy as np
import pytest

from napari_resunet.core.ordering import (
    AUTO_VARIETY_BACKGROUND,
    auto_variety,
    blind_order,
    diversify,
    queue_order,
    sees_background,
    variety_for,
)
from napari_resunet.core.patches import (
    RankedPatch,
    patch_starts,
    queue_patch_shape,
    rank_patches,
    suggest_patch_side,
)


def test_rank_patches_orders_and_excludes():
    u = np.zeros((8, 8), np.float32)
    u[4:8, 0:4] = 1.0
    u[0:4, 4:8] = 0.5
    ranked = rank_patches(u, (4, 4))
    assert [r.start for r in ranked[:2]] == [(4, 0), (0, 4)]
    assert ranked[0].score == 1.0 and ranked[0].centre == (5.5, 1.5)
    reviewed = np.zeros((8, 8), bool)
    reviewed[4:8, 0:4] = True
    assert rank_patches(u, (4, 4), exclude=reviewed, top_k=1)[0].start == (0, 4)
    edge = rank_patches(np.ones((5, 5)), (4, 4))
    assert len(edge) == 4 and edge[-1].slices == (slice(1, 5), slice(1, 5))  # full size
    assert all(s.stop - s.start == 4 for e in edge for s in e.slices)
    with pytest.raises(ValueError):
        rank_patches(u, (4,))


def test_patch_starts_share_the_overlap_out():
    # a multiple of the patch: the patches abut
    assert patch_starts(512, 64) == list(range(0, 512, 64))
    # BBBC039's 520 rows: nine patches, none overlapping its neighbour by more
    # than 7 rows (a last patch flush with the end overlapped by 56)
    starts = patch_starts(520, 64)
    assert starts[0] == 0 and starts[-1] == 520 - 64 and len(starts) == 9
    assert max(a + 64 - b for a, b in zip(starts, starts[1:])) <= 7
    for size, p in [(696, 64), (250, 24), (75, 32), (5, 4), (3, 1), (130, 64)]:
        s = patch_starts(size, p)
        covered = np.zeros(size, bool)
        for a in s:
            covered[a : a + p] = True
        assert covered.all() and len(s) == -(-size // p)  # covered, no spare patch
        overlaps = [a + p - b for a, b in zip(s, s[1:])]
        assert max(overlaps, default=0) - min(overlaps, default=0) <= 1  # even
    assert patch_starts(64, 64) == [0]
    with pytest.raises(ValueError):
        patch_starts(10, 11)
    # the ranking's grid is these starts on every axis
    ranked = rank_patches(np.zeros((520, 200), np.float32), (64, 64))
    assert sorted({r.start for r in ranked}) == [
        (y, x) for y in starts for x in patch_starts(200, 64)
    ]


def _patch(score, comp, x=0):
    return RankedPatch(score, (slice(0, 4), slice(x, x + 4)), comp)


def test_edge_margin_scores_edge_patches_by_their_inner_part():
    # a bright band along the image's top edge and a dimmer spot inside
    u = np.zeros((16, 16), np.float32)
    u[0:2, :] = 1.0
    u[9, 9] = 1.0
    plain = rank_patches(u, (4, 4))
    assert plain[0].start[0] == 0  # the top row wins on its edge band alone
    ranked = rank_patches(u, (4, 4), edge_margin=2)
    assert ranked[0].start == (8, 8) and ranked[0].score == pytest.approx(1 / 16)
    top = [r for r in ranked if r.start[0] == 0]
    assert all(r.score == 0 for r in top)  # their inner rows are blank
    # a corner patch inside the margin on both axes keeps its inner quarter only
    corner = np.zeros((16, 16), np.float32)
    corner[3, 3] = 1.0
    assert rank_patches(corner, (4, 4), edge_margin=2)[0].score == pytest.approx(1 / 4)
    # an axis the patches span one voxel of (a 2D network's planes) keeps its
    # edge planes: the first and last planes are scored like the others
    stack = np.zeros((3, 16, 16), np.float32)
    stack[0, 8:12, 8:12] = 1.0
    first = rank_patches(stack, (1, 4, 4), edge_margin=2)[0]
    assert first.start == (0, 8, 8) and first.score == 1.0
    # a margin wider than a small image leaves its middle voxel
    assert rank_patches(np.ones((3, 3)), (3, 3), edge_margin=5)[0].score == 1.0


def test_diversify_lets_a_different_patch_past_look_alikes():
    blank = (0.95, 0.05)
    entries = [
        _patch(0.50, blank, 0),
        _patch(0.49, (0.94, 0.06), 4),  # all but the same as the first
        _patch(0.48, blank, 8),
        _patch(0.40, (0.50, 0.50), 12),  # half foreground: something new
        _patch(0.10, (0.10, 0.90), 16),
    ]
    order = diversify(entries, strength=1.0)
    assert sorted(order) == list(range(5))
    assert order[:3] == [0, 3, 4]  # both distinct patches before the look-alikes
    assert diversify(entries, strength=0.0) == [0, 1, 2, 3, 4]
    # a mild strength only demotes near-duplicates past clearly lower scores
    assert diversify(entries, strength=0.2)[:2] == [0, 3]
    assert diversify(entries, strength=0.05) == [0, 1, 2, 3, 4]
    # only the first `limit` entries are reordered
    assert diversify(entries, limit=4) == [0, 3, 1, 2, 4]
    # without compositions there is nothing to compare
    bare = [RankedPatch(e.score, e.slices) for e in entries]
    assert diversify(bare) == [0, 1, 2, 3, 4]


def test_rank_patches_records_composition_and_varies_the_order():
    u = np.zeros((8, 12), np.float32)
    u[:, 0:8] = 1.0  # two equally unsure blank patches
    u[:, 8:12] = 0.8  # a less unsure patch with cells
    probs = np.zeros((2, 8, 12), np.float32)
    probs[0] = 1.0
    probs[:, 4:8, 8:12] = 0.5
    plain = rank_patches(u, (4, 4), probabilities=probs)
    assert plain[0].composition == (1.0, 0.0)
    assert [e.start for e in plain[:5]] == [(0, 0), (0, 4), (4, 0), (4, 4), (0, 8)]
    varied = queue_order(u, (4, 4), probabilities=probs, variety=1.0)
    assert [e.start for e in varied[:2]] == [(0, 0), (4, 8)]
    assert varied[1].composition == pytest.approx((0.5, 0.5))
    assert sorted(e.start for e in varied) == sorted(e.start for e in plain)
    with pytest.raises(ValueError, match="do not match"):
        rank_patches(u, (4, 4), probabilities=probs[:, :4])


def _balls(shape, radius, spacing):
    """Labels with one ball (disc in 2D) of ``radius`` every ``spacing`` pixels."""
    grid = np.indices(shape)
    lab = np.zeros(shape, np.int32)
    centres = np.stack(
        np.meshgrid(*[np.arange(spacing // 2, s, spacing) for s in shape]), -1
    ).reshape(-1, len(shape))
    for i, c in enumerate(centres, 1):
        d2 = sum((g - ci) ** 2 for g, ci in zip(grid, c))
        lab[d2 <= radius**2] = i
    return lab


def test_patch_side_follows_the_cells():
    # discs of radius 10: diameter ~20, three of them across a patch -> 64
    discs = _balls((512, 512), 10, 60)
    side, why = suggest_patch_side(discs.shape, discs)
    assert side == 64 and "median diameter, 20 px" in why
    # bigger cells, bigger patches; capped at 128 and at half the image
    big = _balls((512, 512), 17, 100)
    assert suggest_patch_side(big.shape, big)[0] == 104  # 3 x 34 = 102, up to 8s
    huge = _balls((512, 512), 40, 150)
    assert suggest_patch_side(huge.shape, huge)[0] == 128
    assert suggest_patch_side((100, 512), _balls((100, 512), 20, 100))[0] == 48
    # no cells, too few, or labels of another shape: the default
    assert suggest_patch_side((512, 512)) == (64, "default")
    assert suggest_patch_side((512, 512), np.zeros((512, 512), int))[0] == 64
    assert suggest_patch_side((256, 256), discs)[0] == 64
    # 3D: balls of radius 5 as cubes (diameter ~10 -> 32); discs per plane as planes
    balls = _balls((48, 96, 96), 5, 24)
    side, why = suggest_patch_side(balls.shape, balls, cube=True)
    assert side == 32 and "10 px" in why
    assert suggest_patch_side((32, 256, 256), None, cube=True) == (32, "default")
    stack = np.stack([discs[:256, :256] + 100 * z for z in range(6)])
    stack[discs[:256, :256][None].repeat(6, 0) == 0] = 0
    assert suggest_patch_side(stack.shape, stack)[0] == 64
    # EM-style body ids near 10^9 are counted per object, not per possible id
    bodies = np.where(discs > 0, discs.astype(np.uint64) + 2_000_000_000, 0)
    assert suggest_patch_side(bodies.shape, bodies) == suggest_patch_side(
        discs.shape, discs
    )


def test_queue_patch_shape_per_network_and_image():
    discs = _balls((512, 512), 10, 60)
    # a given side: squares in 2D, one-slice squares for a 2D network on a
    # stack, cubes clipped to the stack's depth for a 3D one
    assert queue_patch_shape((512, 512), 2, 48) == ((48, 48), "")
    assert queue_patch_shape((20, 512, 512), 2, 48) == ((1, 48, 48), "")
    assert queue_patch_shape((20, 512, 512), 3, 48) == ((20, 48, 48), "")
    assert queue_patch_shape((64, 512, 512), 3, 48) == ((48, 48, 48), "")
    # side 0: suggested from the cells, with the reason
    shape, why = queue_patch_shape((512, 512), 2, 0, discs)
    assert shape == (64, 64) and "median diameter" in why
    assert queue_patch_shape((32, 256, 256), 3, 0) == ((32, 32, 32), "default")


def test_auto_variety_is_on_where_the_network_sees_background():
    def probs(background: float) -> np.ndarray:
        p = np.empty((3, 8, 8), np.float32)
        p[0] = background
        p[1] = p[2] = (1 - background) / 2
        return p

    assert auto_variety(probs(0.8)) == 1.0  # cells in empty background
    assert auto_variety(probs(AUTO_VARIETY_BACKGROUND)) == 1.0
    assert auto_variety(probs(0.0)) == 0.0  # EM neuropil: no background class
    assert auto_variety(probs(0.1)) == 0.0
    # several images together, weighted by size: 64 px at 0.5, 192 at 0.0
    big = np.zeros((3, 8, 24), np.float32)
    assert auto_variety([probs(0.5), big]) == 0.0  # 0.125 of all pixels
    assert auto_variety([probs(0.5), big[:, :, :8]]) == 1.0  # 0.25
    # the same rule from sees_background's answer, for a caller that has it
    for p in (probs(0.8), probs(0.1), [probs(0.5), big]):
        assert variety_for(sees_background(p)) == auto_variety(p)


def test_blind_order_is_a_fixed_draw_by_place_not_by_score():
    rng = np.random.default_rng(0)
    ranked = rank_patches(rng.random((256, 320), dtype=np.float32), (64, 64))
    order = blind_order(ranked)
    assert sorted(order) == list(range(20))
    assert order != list(range(20))  # not the score order
    # the same draw every time, whatever order the patches come in
    starts = [ranked[i].start for i in order]
    backwards = ranked[::-1]
    assert [backwards[i].start for i in blind_order(backwards)] == starts
    # another uncertainty map over the same patches: the same order
    other = rank_patches(rng.random((256, 320), dtype=np.float32), (64, 64))
    assert [other[i].start for i in blind_order(other)] == starts
    # reviewed patches leave the queue; the rest keep their order
    left = [e for e in ranked if e.start not in starts[:3]]
    assert [left[i].start for i in blind_order(left)] == starts[3:]
    # another seed, another draw; groups tell images apart
    assert [ranked[i].start for i in blind_order(ranked, seed=1)] != starts
    two = list(ranked) + list(ranked)
    mixed = blind_order(two, groups=[0] * 20 + [1] * 20)
    assert sorted(mixed) == list(range(40))
    assert [i for i in mixed if i < 20] == order  # image 0 is ordered as alone
    assert [i - 20 for i in mixed if i >= 20] != order  # image 1 draws anew
    with pytest.raises(ValueError, match="groups"):
        blind_order(ranked, groups=[0])


def test_queue_order_ranks_or_draws_blind_and_leaves_out_reviewed_patches():
    rng = np.random.default_rng(3)
    u = rng.random((128, 192), dtype=np.float32)
    probs = rng.random((3, 128, 192), dtype=np.float32)
    reviewed = np.zeros(u.shape, bool)
    reviewed[:64, :64] = True
    ranked = queue_order(u, (64, 64), exclude=reviewed)
    assert ranked == rank_patches(u, (64, 64), exclude=reviewed)
    assert len(ranked) == 5 and (0, 0) not in [e.start for e in ranked]
    varied = queue_order(u, (64, 64), probabilities=probs, variety=1.0)
    plain = rank_patches(u, (64, 64), probabilities=probs)
    assert varied == [plain[i] for i in diversify(plain, 1.0)] != plain
    # a new network: the fixed random draw, whatever the variety asks
    plain = rank_patches(u, (64, 64), exclude=reviewed, probabilities=probs)
    blind = queue_order(
        u, (64, 64), exclude=reviewed, probabilities=probs, variety=1.0, blind=True
    )
    assert blind == [plain[i] for i in blind_order(plain)]
    assert [e.start for e in blind] != [e.start for e in ranked]


def test_patch_typicality_demotes_the_odd_patch_out(monkeypatch):
    import napari_resunet.core.ordering as ordering
    from napari_resunet.core.ordering import patch_typicality

    rng = np.random.default_rng(0)
    features = rng.normal(0.0, 1.0, (128, 192, 3)).astype(np.float32)
    features[64:128, 128:192] += 6.0  # one patch unlike the rest
    typical = patch_typicality(features, (64, 64))
    assert set(typical) == {(y, x) for y in (0, 64) for x in (0, 64, 128)}
    assert min(typical, key=typical.get) == (64, 128)
    assert all(0.0 < w <= 1.0 for w in typical.values())
    # what it means: mean over all patches of exp(-d^2 / median d^2), in full
    grid = sorted(typical)
    x = np.array(
        [
            np.concatenate(
                [
                    features[y : y + 64, s : s + 64].mean((0, 1)),
                    features[y : y + 64, s : s + 64].std((0, 1)),
                ]
            )
            for y, s in grid
        ],
        np.float64,
    )
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    expected = np.exp(-d2 / np.median(d2)).mean(1)
    np.testing.assert_allclose([typical[g] for g in grid], expected, rtol=1e-9)
    # many patches: measured against a seeded sample of them, the same each time
    monkeypatch.setattr(ordering, "TYPICALITY_REFERENCES", 4)
    sampled = patch_typicality(features, (64, 64))
    assert sampled == patch_typicality(features, (64, 64))
    assert min(sampled, key=sampled.get) == (64, 128)
