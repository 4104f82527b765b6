"""Tile planning, padding and blending weights (numpy only, cheap to call).

A widget can call :func:`plan_tiles` on the main thread to learn how many steps a
prediction will take before starting it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


def _round_up(value: int, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple)


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles of one image lie.

    Attributes:
        image_shape: spatial shape of the image.
        tile_shape: spatial shape of every tile (as fed to the network).
        padded_shape: image shape after end-padding so that every axis holds a tile.
        starts: the start corner of each tile in padded coordinates.
    """

    image_shape: tuple[int, ...]
    tile_shape: tuple[int, ...]
    padded_shape: tuple[int, ...]
    starts: tuple[tuple[int, ...], ...]

    @property
    def n_tiles(self) -> int:
        return len(self.starts)

    def tile_slices(self, index: int) -> tuple[slice, ...]:
        """Slices of tile ``index`` in padded coordinates."""
        return tuple(
            slice(s, s + t) for s, t in zip(self.starts[index], self.tile_shape)
        )

    def n_batches(self, batch_size: int) -> int:
        return int(math.ceil(self.n_tiles / batch_size))


def _axis_plan(
    size: int, tile: int, overlap: float, multiple: int
) -> tuple[int, list[int]]:
    """Tile size and evenly spread starts along one axis.

    Uses the fewest tiles that keep at least ``overlap * tile`` voxels of overlap,
    then shrinks the tile to the smallest multiple of ``multiple`` that still
    covers the axis with that overlap. Spreading tiles evenly (instead of a fixed
    stride plus one tile pushed against the end) avoids recomputing a large
    overlap at the image border: on 256 voxels with 64-voxel tiles at 25% overlap
    both need 5 tiles, but on 128 voxels this plan uses three 56-voxel tiles
    where a fixed stride uses three 64-voxel ones.
    """
    if size <= tile:
        return tile, [0]
    margin = int(overlap * tile)
    n = int(math.ceil((size - margin) / (tile - margin)))
    t = min(tile, _round_up(int(math.ceil((size + (n - 1) * margin) / n)), multiple))
    starts = np.round(np.linspace(0, size - t, n)).astype(int)
    return t, sorted({int(v) for v in starts})


def plan_tiles(
    image_shape: Sequence[int],
    tile_shape: Sequence[int],
    overlap: float = 0.25,
    size_multiple: int | Sequence[int] = 1,
) -> TilePlan:
    """Plan overlapping tiles that cover every voxel of ``image_shape``.

    Each tile size is rounded up to a multiple of ``size_multiple`` (per axis, or
    one value for all) and shrunk to the (rounded-up) image size on axes where the
    image is smaller, so small images cost one small tile. Axes shorter than the
    tile are padded at the end. Along longer axes the fewest tiles that keep the
    requested overlap are spread evenly, each shrunk as far as that allows, so no
    work is wasted on excess overlap.

    Args:
        image_shape: spatial shape, e.g. (Z, Y, X).
        tile_shape: wanted tile shape, same length.
        overlap: fraction in [0, 1) of a tile shared with its neighbour.
        size_multiple: the network's size rule (``2 ** poolings``).

    Returns:
        A :class:`TilePlan`.
    """
    image_shape = tuple(int(s) for s in image_shape)
    if len(tile_shape) != len(image_shape):
        raise ValueError(
            f"tile_shape {tuple(tile_shape)} and image shape {image_shape} differ in "
            f"length."
        )
    if any(s < 1 for s in image_shape):
        raise ValueError(f"Image shape {image_shape} has an empty axis.")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}.")
    if isinstance(size_multiple, int):
        multiples = (size_multiple,) * len(image_shape)
    else:
        multiples = tuple(int(m) for m in size_multiple)
    tiles, per_axis = [], []
    for t, s, m in zip(tile_shape, image_shape, multiples):
        t = min(_round_up(int(t), m), _round_up(s, m))
        size, starts = _axis_plan(s, t, overlap, m)
        tiles.append(size)
        per_axis.append(starts)
    tiles = tuple(tiles)
    padded = tuple(max(s, t) for s, t in zip(image_shape, tiles))
    starts = tuple(
        tuple(int(v) for v in c)
        for c in np.stack(np.meshgrid(*per_axis, indexing="ij"), axis=-1).reshape(
            -1, len(tiles)
        )
    )
    return TilePlan(image_shape, tiles, padded, starts)


def blending_weights(tile_shape: Sequence[int], mode: str = "gaussian") -> NDArray:
    """Per-voxel weights used to blend overlapping tiles, float32, max 1.

    ``"gaussian"``: a separable Gaussian with sigma = tile/8 per axis (tile centres
    count more than edges, where the network sees less context); floored at 1e-3
    so that voxels covered only by a tile's edge still get a defined value.
    ``"constant"``: all ones (plain averaging).
    """
    if mode == "constant":
        return np.ones(tuple(tile_shape), np.float32)
    if mode != "gaussian":
        raise ValueError(f"Unknown blend mode {mode!r}; use gaussian or constant.")
    w = np.ones((), np.float64)
    for t in tile_shape:
        if t == 1:
            axis = np.ones(1)
        else:
            x = np.arange(t) - (t - 1) / 2.0
            axis = np.exp(-0.5 * (x / (t / 8.0)) ** 2)
        w = np.multiply.outer(w, axis)
    w /= w.max()
    return np.maximum(w, 1e-3).astype(np.float32)


def pad_to(array: NDArray, spatial_shape: Sequence[int]) -> NDArray:
    """Reflect-pad the trailing spatial axes of ``array`` at their end to a shape.

    ``array`` is ``(C, *spatial)``. Reflection (rather than zeros) keeps the
    padded border statistically like the image; axes of size 1 are edge-padded.
    """
    pads = [(0, 0)] * (array.ndim - len(spatial_shape))
    pads += [
        (0, int(t) - s)
        for s, t in zip(array.shape[-len(spatial_shape) :], spatial_shape)
    ]
    if all(p == (0, 0) for p in pads):
        return array
    # numpy's reflect mode cannot extend a size-1 axis; use edge there.
    if any(s == 1 and p[1] > 0 for s, p in zip(array.shape, pads)):
        return np.pad(array, pads, mode="edge")
    return np.pad(array, pads, mode="reflect")


# Network throughput (million voxels/s) of the default ResUNet, eager, channels-last,
# 2 CPU threads, against tile volume: medians of repeated runs (each +-20%), made
# with benchmarks/bench_tiles.py. Small tiles lose time to per-layer overhead,
# large ones spill out of the CPU caches: in 3D, 72-80^3 tiles run about 1.35x
# faster per voxel than 128^3 ones; in 2D, 256-512^2 tiles 1.8x faster than 1024^2.
# Only the shape of these curves matters (tiles are ranked by relative cost). On
# GPUs throughput keeps rising with tile size, so there only overlap counts.
_CPU_THROUGHPUT = {
    2: (
        (4096, 1.3),
        (16384, 1.75),
        (65536, 2.25),
        (262144, 2.25),
        (589824, 2.0),
        (1048576, 1.25),
        (2359296, 0.95),
    ),
    3: (
        (13824, 0.24),
        (64000, 0.87),
        (175616, 1.5),
        (373248, 1.8),
        (512000, 1.85),
        (884736, 1.55),
        (2097152, 1.37),
    ),
}


def _relative_cost(volume: NDArray, ndim: int, device_type: str) -> NDArray:
    """Estimated seconds per voxel (arbitrary units) for tiles of ``volume`` voxels."""
    if device_type != "cpu":
        return np.ones_like(volume, dtype=float)
    table = np.array(_CPU_THROUGHPUT[ndim], float)
    rate = np.interp(np.log2(volume), np.log2(table[:, 0]), table[:, 1])
    return 1.0 / rate


def auto_tile_shape(
    image_shape: Sequence[int],
    spatial_dims: int,
    voxel_size: Sequence[float] | None = None,
    overlap: float = 0.25,
    size_multiple: int = 8,
    max_voxels: int | None = None,
    device_type: str = "cpu",
) -> tuple[int, ...]:
    """Pick the tile shape that should predict this image fastest.

    Tiles recompute their overlap, and the network's speed per voxel depends on the
    tile size (see ``_CPU_THROUGHPUT``). For every combination of tile counts per
    axis this computes the smallest tile that covers the image with the requested
    overlap, discards tiles above ``max_voxels`` (default 1024² pixels for 2D
    networks, 128³ voxels for 3D ones, to bound memory) and keeps the one with the
    least estimated time. No tile side may span more than 3x the physical extent
    (``voxel_size``) of the narrowest split axis, so tiles stay compact and
    anisotropic stacks get thin, wide tiles. A 2D network on a 3D stack gets
    (1, Y, X) tiles: it runs slice by slice.
    """
    image_shape = tuple(int(s) for s in image_shape)
    if spatial_dims == 2 and len(image_shape) == 3:
        yx = auto_tile_shape(
            image_shape[1:], 2, None, overlap, size_multiple, max_voxels, device_type
        )
        return (1, *yx)
    ndim = len(image_shape)
    budget = max_voxels or (1024 * 1024 if ndim == 2 else 128**3)
    vs = np.ones(ndim) if voxel_size is None else np.asarray(voxel_size, float)[-ndim:]
    if vs.shape != (ndim,) or np.any(vs <= 0):
        raise ValueError(
            f"voxel_size must hold {ndim} positive numbers, got {voxel_size}."
        )
    m = size_multiple
    options = []
    for s in image_shape:
        axis = {1: _round_up(s, m)}
        # At most 24 tiles per axis are considered: a few thousand combinations.
        for n in range(2, 25):
            t = _round_up(int(math.ceil(s / (n - (n - 1) * overlap))), m)
            if t < 2 * m:
                break
            axis.setdefault(n, t)
        options.append(sorted(axis.items()))
    combos = np.array(list(itertools.product(*options)), dtype=np.int64)  # (K, ndim, 2)
    counts, tiles = combos[..., 0], combos[..., 1]
    volume = tiles.prod(axis=1)
    extent = tiles * vs
    split = counts > 1
    narrowest = np.where(split, extent, np.inf).min(axis=1)
    # Keep tiles compact: no side longer than 3x the narrowest split side (thin,
    # slab-like tiles recompute more border and see less context).
    compact = ~split.any(axis=1) | (extent.max(axis=1) <= 3 * narrowest)
    ok = (volume <= budget) & compact
    if not ok.any():  # budget below the smallest tile: fall back to minimal tiles
        return tuple(min(_round_up(s, m), 2 * m) for s in image_shape)
    cost = (counts * tiles).prod(axis=1) * _relative_cost(volume, ndim, device_type)
    cost = np.where(ok, cost, np.inf)
    best = int(np.lexsort((volume, cost))[0])
    return tuple(int(t) for t in tiles[best])
