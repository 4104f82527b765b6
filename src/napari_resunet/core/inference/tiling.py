"""Tile planning, padding and blending weights (numpy only, cheap to call).

A widget can call :func:`plan_tiles` on the main thread to learn how many steps a
prediction will take before starting it.
"""

from __future__ import annotations

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


def _axis_starts(size: int, tile: int, overlap: float) -> list[int]:
    if size <= tile:
        return [0]
    step = max(1, int(tile * (1.0 - overlap)))
    starts = list(range(0, size - tile, step))
    starts.append(size - tile)
    return sorted(set(starts))


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
    tile are padded at the end.

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
    tiles = tuple(
        min(_round_up(int(t), m), _round_up(s, m))
        for t, s, m in zip(tile_shape, image_shape, multiples)
    )
    padded = tuple(max(s, t) for s, t in zip(image_shape, tiles))
    per_axis = [_axis_starts(p, t, overlap) for p, t in zip(padded, tiles)]
    starts = tuple(tuple(int(v) for v in c) for c in np.stack(
        np.meshgrid(*per_axis, indexing="ij"), axis=-1
    ).reshape(-1, len(tiles)))
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
    pads += [(0, int(t) - s) for s, t in zip(array.shape[-len(spatial_shape):], spatial_shape)]
    if all(p == (0, 0) for p in pads):
        return array
    # numpy's reflect mode cannot extend a size-1 axis; use edge there.
    if any(s == 1 and p[1] > 0 for s, p in zip(array.shape, pads)):
        return np.pad(array, pads, mode="edge")
    return np.pad(array, pads, mode="reflect")


def auto_tile_shape(
    image_shape: Sequence[int],
    spatial_dims: int,
    voxel_size: Sequence[float] | None = None,
    voxels_2d: int = 1024 * 1024,
    voxels_3d: int = 128 ** 3,
) -> tuple[int, ...]:
    """Pick a tile shape for an image of ``image_shape`` (spatial axes).

    Fewer, larger tiles are faster (less overlap recomputed), so the budget is
    large: about 1024² pixels for 2D networks, 128³ voxels for 3D ones. For a 3D
    network the tile spans roughly equal physical extents along each axis given
    ``voxel_size`` (anisotropic stacks get thin, wide tiles). A 2D network on a 3D
    stack gets (1, Y, X) tiles: it runs slice by slice.
    """
    image_shape = tuple(int(s) for s in image_shape)
    if spatial_dims == 2:
        side = int(math.sqrt(voxels_2d))
        yx = tuple(min(side, s) for s in image_shape[-2:])
        return (1, *yx) if len(image_shape) == 3 else yx
    vs = np.ones(3) if voxel_size is None else np.asarray(voxel_size, float)[-3:]
    if vs.shape != (3,) or np.any(vs <= 0):
        raise ValueError(f"voxel_size must hold three positive numbers, got {voxel_size}.")
    rel = vs.max() / vs  # voxels per unit physical length, relative
    base = (voxels_3d / np.prod(rel)) ** (1.0 / 3.0)
    tile = np.maximum(8, np.round(base * rel)).astype(int)
    # Axes the image cannot fill give their budget to the others.
    tile = np.minimum(tile, image_shape)
    for _ in range(3):
        free = tile < np.asarray(image_shape)
        if not free.any() or np.prod(tile) >= voxels_3d:
            break
        grow = (voxels_3d / np.prod(tile)) ** (1.0 / free.sum())
        tile = np.where(free, np.minimum(np.round(tile * grow), image_shape), tile).astype(int)
    return tuple(int(t) for t in tile)
