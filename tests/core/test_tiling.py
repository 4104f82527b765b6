import numpy as np
import pytest

from napari_resunet.core.inference.tiling import (
    auto_tile_shape,
    blending_weights,
    pad_to,
    plan_tiles,
)


@pytest.mark.parametrize(
    ("shape", "tile", "overlap", "mult"),
    [
        ((100, 130), (64, 64), 0.25, 8),
        ((7, 5), (64, 64), 0.5, 8),  # smaller than one tile
        ((64, 64), (64, 64), 0.25, 8),  # exactly one tile
        ((33, 97, 61), (16, 32, 32), 0.25, 8),
        ((5, 200, 190), (1, 128, 128), 0.1, (1, 16, 16)),  # 2D model on a stack
        ((50, 51), (20, 20), 0.0, 4),
        ((300,), (64,), 0.9, 1),
    ],
)
def test_plan_covers_every_voxel(shape, tile, overlap, mult):
    plan = plan_tiles(shape, tile, overlap, mult)
    mults = (mult,) * len(shape) if isinstance(mult, int) else mult
    assert all(t % m == 0 for t, m in zip(plan.tile_shape, mults))
    assert all(p >= s for p, s in zip(plan.padded_shape, shape))
    covered = np.zeros(plan.padded_shape, np.int32)
    for i in range(plan.n_tiles):
        sl = plan.tile_slices(i)
        assert all(s.stop <= p for s, p in zip(sl, plan.padded_shape))
        covered[sl] += 1
    assert covered[tuple(slice(0, s) for s in shape)].min() >= 1
    # neighbours overlap by at most the requested fraction (+ the last, shifted tile)
    if overlap == 0.0 and all(
        s % t == 0 for s, t in zip(plan.padded_shape, plan.tile_shape)
    ):
        assert covered.max() == 1


def test_small_image_gets_small_tile():
    plan = plan_tiles((20, 30), (256, 256), 0.25, 8)
    assert plan.tile_shape == (24, 32)
    assert plan.n_tiles == 1
    assert plan.n_batches(4) == 1


def test_plan_errors():
    with pytest.raises(ValueError, match="differ in length"):
        plan_tiles((10, 10), (4, 4, 4))
    with pytest.raises(ValueError, match="overlap"):
        plan_tiles((10, 10), (4, 4), overlap=1.0)
    with pytest.raises(ValueError, match="empty axis"):
        plan_tiles((0, 10), (4, 4))


def test_blending_weights():
    g = blending_weights((16, 32), "gaussian")
    assert g.dtype == np.float32 and g.shape == (16, 32)
    assert g.max() == pytest.approx(1.0) and g.min() >= 1e-3
    assert g[8, 16] > g[0, 0]
    np.testing.assert_allclose(g, g[::-1, ::-1], rtol=1e-6)
    assert (blending_weights((4, 4), "constant") == 1).all()
    assert blending_weights((1, 8, 8)).shape == (1, 8, 8)
    with pytest.raises(ValueError):
        blending_weights((4, 4), "bogus")


def test_pad_to_reflects_and_handles_singletons():
    a = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    p = pad_to(a, (5, 6))
    assert p.shape == (1, 5, 6)
    np.testing.assert_array_equal(p[:, :3, :4], a)
    assert p[0, 3, 0] == a[0, 1, 0]  # reflection
    single = pad_to(np.ones((1, 1, 4), np.float32), (3, 4))
    assert single.shape == (1, 3, 4)


def _work(shape, tile, mult=8):
    plan = plan_tiles(shape, tile, 0.25, mult)
    return plan.n_tiles * np.prod(plan.tile_shape)


def test_auto_tile_shape_small_images_take_one_tile():
    assert auto_tile_shape((520, 696), 2) == (520, 696)
    assert auto_tile_shape((30, 512, 512), 2) == (1, 512, 512)  # 2D net on a stack
    assert auto_tile_shape((7, 5), 2) == (8, 8)


@pytest.mark.parametrize(
    ("shape", "dims", "voxel_size"),
    [
        ((2048, 2048), 2, None),
        ((5000, 3000), 2, None),
        ((128, 256, 256), 3, None),
        ((512, 512, 512), 3, None),
        ((20, 1000, 1000), 3, None),
    ],
)
def test_auto_tile_shape_is_bounded_compact_and_not_wasteful(shape, dims, voxel_size):
    tile = auto_tile_shape(shape, dims, voxel_size)
    budget = 1024**2 if dims == 2 else 128**3
    assert np.prod(tile) <= budget
    assert all(t % 8 == 0 for t in tile)
    split = [t for t, s in zip(tile, shape) if t < s]
    assert max(tile) <= 3 * min(split)
    # never more recomputed overlap than the classic fixed tiles (512² / 64³)
    classic = (512, 512) if dims == 2 else (64, 64, 64)
    assert _work(shape, tile) <= _work(shape, classic) * 1.05


def test_auto_tile_shape_follows_anisotropy():
    z, y, x = auto_tile_shape((400, 1000, 1000), 3, voxel_size=(2.5, 0.5, 0.5))
    assert y == x and 3 * z <= y <= 9 * z  # similar physical extent: 5x fewer z voxels
    assert auto_tile_shape((400, 1000, 1000), 3, device_type="cuda") != (z, y, x)


def test_auto_tile_shape_on_gpu_minimises_overlap():
    tile = auto_tile_shape((256, 256, 256), 3, device_type="cuda")
    assert _work((256, 256, 256), tile) <= _work((256, 256, 256), (128, 128, 128))
