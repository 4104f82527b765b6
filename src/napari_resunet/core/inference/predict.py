"""Tiled prediction: the ``iter_predict`` generator and the eager ``predict``.

Inputs arrive in napari axis order (``(Y, X)`` or ``(Z, Y, X)``, optionally with a
channel axis); this is the only module that converts to torch's ``(N, C, ...)``.

Speed on CPU comes from: one inference copy of the network per weight version
(eval mode, BatchNorm folded into convs, channels-last memory format, cached),
batched tiles under ``torch.inference_mode``, optional test-time mirroring of the
image (``InferenceConfig.test_time_flips``), bfloat16 convolutions on CPUs that
compute bfloat16 natively (``InferenceConfig.precision``), blending in float32 on
the CPU and, when the job is long, ``torch.compile``. Whether to compile is
decided from the measured time of the first batch: compiling costs 5-30 s of
warm-up on a laptop CPU, so it only pays off for jobs that would run for a minute
or more eagerly.
"""

from __future__ import annotations

import copy
import itertools
import logging
import time
import weakref
from collections.abc import Generator, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from napari_resunet.core.checks import check_image, check_not_constant
from napari_resunet.core.config import InferenceConfig
from napari_resunet.core.device import (
    autocast,
    release_memory,
    resolve_device,
    resolve_precision,
)
from napari_resunet.core.inference.postprocess import logits_to_probabilities
from napari_resunet.core.inference.tiling import (
    TilePlan,
    auto_tile_shape,
    blending_weights,
    pad_to,
    plan_tiles,
)
from napari_resunet.core.models.resunet import ResUNet, fold_batch_norm
from napari_resunet.core.normalize import normalize_image
from napari_resunet.core.progress import Progress, run_generator

logger = logging.getLogger(__name__)

# model -> (cache key, prepared copy). Weak keys: the copy dies with the model.
_PREPARED: weakref.WeakKeyDictionary[nn.Module, tuple[Any, nn.Module]] = (
    weakref.WeakKeyDictionary()
)


def _weights_fingerprint(model: nn.Module) -> tuple:
    """Changes whenever any parameter or buffer is modified in place or replaced."""
    return tuple((id(t), t._version) for t in model.state_dict(keep_vars=True).values())


def _memory_format(spatial_dims: int) -> torch.memory_format:
    return torch.channels_last if spatial_dims == 2 else torch.channels_last_3d


def prepare_for_inference(
    model: ResUNet, device: torch.device, channels_last: bool = True
) -> nn.Module:
    """Return a cached eval-mode copy of ``model`` optimised for inference.

    The copy has BatchNorm folded into the convolutions and, optionally, the
    channels-last memory format. It is rebuilt when ``model``'s weights change
    (e.g. after a fine-tuning step), and ``model`` itself is never modified.
    """
    key = (str(device), channels_last, _weights_fingerprint(model))
    cached = _PREPARED.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    prepared = copy.deepcopy(model).to(device).eval()
    for p in prepared.parameters():
        p.requires_grad_(False)
    fold_batch_norm(prepared)
    if channels_last:
        prepared = prepared.to(memory_format=_memory_format(model.spatial_dims))
    _PREPARED[model] = (key, prepared)
    return prepared


# model -> (cache key, compiled module); compiled graphs are reused across calls
_COMPILED: weakref.WeakKeyDictionary[nn.Module, nn.Module] = weakref.WeakKeyDictionary()


def _compiled(prepared: nn.Module) -> nn.Module:
    compiled = _COMPILED.get(prepared)
    if compiled is None:
        compiled = torch.compile(prepared, dynamic=False)
        _COMPILED[prepared] = compiled
    return compiled


def flip_sets(
    ndim: int, n: int, axes: Sequence[int] | None = None
) -> list[tuple[int, ...]]:
    """The first ``n`` sets of axes to mirror: none, then single axes, pairs and
    the triple, the last axis (X) first, since Z is often the coarser one.

    Args:
        ndim: number of spatial axes.
        n: how many sets (at most ``2 ** len(axes)`` are returned).
        axes: the axes that may be mirrored (default: all ``ndim``).
    """
    axes = list(range(ndim))[::-1] if axes is None else list(axes)
    sets: list[tuple[int, ...]] = [()]
    for k in range(1, len(axes) + 1):
        sets += [tuple(sorted(c)) for c in itertools.combinations(axes, k)]
    return sets[: max(1, n)]


def image_flip_sets(
    model_dims: int, spatial_ndim: int, n: int
) -> list[tuple[int, ...]]:
    """``flip_sets`` for an image of ``spatial_ndim`` axes seen by a network of
    ``model_dims``: a 2D network on a stack is mirrored in-plane only."""
    axes = list(range(spatial_ndim))[::-1]
    if model_dims == 2 and spatial_ndim == 3:
        axes = axes[:2]
    return flip_sets(spatial_ndim, n, axes)


def make_tile_plan(
    model: ResUNet,
    spatial_shape: tuple[int, ...],
    cfg: InferenceConfig,
    voxel_size: tuple[float, ...] | None = None,
) -> TilePlan:
    """The tiles ``iter_predict`` will run for an image of ``spatial_shape``.

    Cheap (numpy only): a widget can call it to learn the number of steps.
    """
    spatial_dims = model.spatial_dims
    m = model.size_multiple
    tile = cfg.tile_shape or auto_tile_shape(
        spatial_shape,
        spatial_dims,
        voxel_size,
        cfg.overlap,
        m,
        device_type=resolve_device(cfg.device).type,
    )
    if spatial_dims == 2 and len(spatial_shape) == 3:
        # 2D network on a stack: slice by slice, one z plane per tile.
        tile = (1, *tile[-2:])
        multiples: tuple[int, ...] = (1, m, m)
    else:
        if len(tile) != len(spatial_shape):
            raise ValueError(
                f"tile_shape {tile} does not match the image's spatial shape "
                f"{spatial_shape}."
            )
        multiples = (m,) * len(spatial_shape)
    return plan_tiles(spatial_shape, tile, cfg.overlap, multiples)


def prediction_steps(
    model: ResUNet,
    spatial_shape: tuple[int, ...],
    cfg: InferenceConfig,
    voxel_size: tuple[float, ...] | None = None,
) -> int:
    """The number of progress steps ``iter_predict`` yields for this image:
    batches of tiles times test-time mirrorings of the image. Cheap (numpy only)."""
    plan = make_tile_plan(model, spatial_shape, cfg, voxel_size)
    flips = image_flip_sets(model.spatial_dims, len(spatial_shape), cfg.test_time_flips)
    return plan.n_batches(cfg.batch_size) * len(flips)


def iter_predict(
    model: ResUNet,
    image: NDArray,
    cfg: InferenceConfig | None = None,
    channel_axis: int | None = None,
    voxel_size: tuple[float, ...] | None = None,
    dropout: bool = False,
) -> Generator[Progress, None, NDArray[np.float32]]:
    """Predict class probabilities for ``image`` tile by tile.

    Args:
        model: the network (left unchanged; an inference copy is used).
        image: ``(Y, X)`` or ``(Z, Y, X)`` array, optionally with a channel axis. A
            2D model on a 3D image predicts slice by slice.
        cfg: tiling/device settings (defaults: ``InferenceConfig()``).
        channel_axis: index of the channel axis in ``image``, if any.
        voxel_size: physical voxel size per spatial axis, used to shape automatic
            tiles for anisotropic data.
        dropout: keep the network's dropout active (Monte-Carlo dropout: each call
            gives a different sample; draws from torch's global generator).

    Yields:
        :class:`Progress` after every batch of tiles of every mirrored pass
        (``total`` = :func:`prediction_steps`).

    Returns:
        ``(C, *spatial)`` float32 probabilities (softmax over the C classes).

    Raises:
        ValueError: the image does not fit the model (wrong ndim or channels, RGB
            for a one-channel model, NaN values, constant image).
    """
    cfg = cfg or InferenceConfig()
    image = np.asarray(image)
    check_image(image, model.config, channel_axis)
    check_not_constant(image)
    x = normalize_image(image, model.normalization, channel_axis)
    x = x[None] if channel_axis is None else np.moveaxis(x, channel_axis, 0)
    spatial_shape = x.shape[1:]
    plan = make_tile_plan(model, spatial_shape, cfg, voxel_size)
    device = resolve_device(cfg.device)
    autocast_dtype = resolve_precision(cfg.precision, device)
    slice_mode = model.spatial_dims == 2 and len(spatial_shape) == 3
    flips = image_flip_sets(model.spatial_dims, len(spatial_shape), cfg.test_time_flips)

    n_out = model.config.out_channels
    weights = blending_weights(plan.tile_shape, cfg.blend)
    fmt = _memory_format(model.spatial_dims)
    net = prepare_for_inference(model, device, cfg.channels_last)
    drops = [m for m in net.modules() if isinstance(m, nn.Dropout)] if dropout else []
    use_compiled = cfg.use_compile == "always"
    logger.info(
        "Predicting %s with %d tiles of %s on %s (%s, %d mirroring%s)",
        spatial_shape,
        plan.n_tiles,
        plan.tile_shape,
        device,
        "bfloat16" if autocast_dtype is not None else "float32",
        len(flips),
        "" if len(flips) == 1 else "s",
    )
    n_batches = plan.n_batches(cfg.batch_size)
    total = n_batches * len(flips)  # a mirrored pass is a pass over all tiles
    crop = tuple(slice(0, s) for s in spatial_shape)
    out: NDArray[np.float32] | None = None
    step = 0
    try:
        for m in drops:
            m.train()
        for k, flip in enumerate(flips):
            # the whole image is mirrored, not each tile: its padding then falls
            # on the other side and the tiles cut it elsewhere, which adds to what
            # the passes average (FlyEM boundary Dice 0.749 against 0.744 for
            # mirrored tiles, docs/benchmarks.md)
            axes = tuple(1 + a for a in flip)  # (C, *spatial)
            xf = np.flip(x, axes) if axes else x
            xf = np.ascontiguousarray(pad_to(xf, plan.padded_shape))
            if k == len(flips) - 1:
                del x  # the last pass: free the unpadded copy (peak memory)
            if k == 0:  # allocated after the copies above: a lower peak
                acc = np.zeros((n_out, *plan.padded_shape), np.float32)
                wsum = np.zeros(plan.padded_shape, np.float32)
            else:  # the blending weights' sum is the same for every pass
                acc.fill(0.0)
            for b in range(n_batches):
                idx = range(
                    b * cfg.batch_size, min((b + 1) * cfg.batch_size, plan.n_tiles)
                )
                slices = [plan.tile_slices(i) for i in idx]
                batch = np.stack([xf[(slice(None), *s)] for s in slices])
                if slice_mode:
                    batch = batch[:, :, 0]  # (B, C, 1, Y, X) -> (B, C, Y, X)
                t0 = time.perf_counter()
                with torch.inference_mode():
                    inp = torch.from_numpy(batch).to(device)
                    if cfg.channels_last:
                        inp = inp.contiguous(memory_format=fmt)
                    with autocast(device, autocast_dtype):
                        logits = _forward(net, inp, use_compiled)
                    # the softmax/sigmoid always in float32, whatever the convs ran in
                    probs = logits_to_probabilities(logits.float()).cpu().numpy()
                if step == 0 and cfg.use_compile == "auto" and total > 1:
                    eager_estimate = (time.perf_counter() - t0) * (total - 1)
                    use_compiled = eager_estimate > cfg.compile_min_seconds
                    if use_compiled:
                        logger.info(
                            "Compiling the network (eager estimate %.0f s)",
                            eager_estimate,
                        )
                if slice_mode:
                    probs = probs[:, :, None]
                for p, s in zip(probs, slices):
                    acc[(slice(None), *s)] += p * weights
                    if not k:
                        wsum[s] += weights
                step += 1
                message = f"tile batch {b + 1}/{n_batches}"
                if len(flips) > 1:
                    message += f", mirroring {k + 1}/{len(flips)}"
                yield Progress(step=step, total=total, message=message, phase="predict")
            res = acc[(slice(None), *crop)]
            res /= wsum[crop]  # (in place: acc is refilled for the next pass)
            if axes:  # mirrored back
                res = np.flip(res, axes)
            if out is None:
                out = np.array(res, copy=True) if len(flips) > 1 else res
            else:
                out += res
    finally:
        for m in drops:  # the cached inference copy is shared: restore it
            m.eval()
        release_memory(device)
    assert out is not None
    if len(flips) > 1:
        out /= np.float32(len(flips))
    return np.ascontiguousarray(out)


def _forward(net: nn.Module, inp: torch.Tensor, use_compiled: bool) -> torch.Tensor:
    if use_compiled:
        try:
            return _compiled(net)(inp)
        except Exception as err:  # noqa: BLE001 - any compiler failure falls back
            logger.warning("torch.compile failed (%s); running eagerly.", err)
            _COMPILED[net] = net  # run eagerly from now on
    return net(inp)


def predict(
    model: ResUNet,
    image: NDArray,
    cfg: InferenceConfig | None = None,
    channel_axis: int | None = None,
    voxel_size: tuple[float, ...] | None = None,
    show_progress: bool = False,
) -> NDArray[np.float32]:
    """Eager form of :func:`iter_predict`: run it to the end and return its result.

    Args:
        show_progress: draw a tqdm progress bar on stderr.
        (others as for :func:`iter_predict`)

    Returns:
        ``(C, *spatial)`` float32 probabilities.
    """
    gen = iter_predict(model, image, cfg, channel_axis, voxel_size)
    return run_generator(gen, show_progress, desc="predict")
