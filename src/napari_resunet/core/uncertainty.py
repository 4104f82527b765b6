"""Where the model is unsure: per-voxel uncertainty and patch ranking (numpy + core).

Uncertainty combines what one prediction says (entropy of the class
probabilities) with how much the prediction changes under test-time flips (a
model that is sure of a voxel predicts it the same way when the image is
mirrored). :func:`rank_patches` turns a voxel map into a ranked list of patches
for the annotation queue, and :func:`diversify` keeps near-identical patches from
crowding its top.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from napari_resunet.core.config import InferenceConfig
from napari_resunet.core.inference.predict import (
    image_flip_sets,
    iter_predict,
    prediction_steps,
)
from napari_resunet.core.models.resunet import ResUNet
from napari_resunet.core.progress import Progress, relay, run_generator


def entropy_map(probabilities: NDArray) -> NDArray[np.float32]:
    """Normalised entropy of ``(C, *spatial)`` probabilities, in [0, 1]."""
    p = np.clip(np.asarray(probabilities, np.float32), 1e-7, 1.0)
    h = -(p * np.log(p)).sum(axis=0)
    return (h / math.log(p.shape[0])).astype(np.float32)


def margin_map(probabilities: NDArray) -> NDArray[np.float32]:
    """1 - (largest - second largest probability), in [0, 1]."""
    p = np.sort(np.asarray(probabilities, np.float32), axis=0)
    return (1.0 - (p[-1] - p[-2])).astype(np.float32)


@dataclass
class UncertaintyResult:
    """Mean prediction and uncertainty maps (spatial shape of the image).

    Attributes:
        probabilities: ``(C, *spatial)`` mean over the test-time flips.
        entropy: normalised entropy of the mean prediction.
        disagreement: mean absolute deviation of the flipped predictions from their
            mean, summed over classes and scaled to [0, 1].
        uncertainty: ``0.5 * (entropy + disagreement)``, what the queue ranks by.
    """

    probabilities: NDArray[np.float32]
    entropy: NDArray[np.float32]
    disagreement: NDArray[np.float32]

    @property
    def uncertainty(self) -> NDArray[np.float32]:
        return (0.5 * (self.entropy + self.disagreement)).astype(np.float32)


def iter_uncertainty(
    model: ResUNet,
    image: NDArray,
    cfg: InferenceConfig | None = None,
    n_flips: int = 3,
    channel_axis: int | None = None,
    voxel_size: Sequence[float] | None = None,
    mc_samples: int = 0,
    seed: int = 0,
    first_pass: NDArray | None = None,
) -> Generator[Progress, None, UncertaintyResult]:
    """Predict ``image`` under ``n_flips`` mirrorings and measure their disagreement.

    With ``mc_samples`` > 0 and a network that has dropout, that many Monte-Carlo
    dropout samples join the passes (seeded by ``seed``, global torch random
    state restored afterwards).

    ``first_pass``: the probabilities of the unmirrored image from this model
    with these settings, when a segmentation has just computed them (as
    ``iter_predict`` returns them, with ``test_time_flips=1``); that pass is then
    not predicted again. After a fine-tuning round, which segments the image
    anyway, the queue's three passes become two.

    Yields:
        :class:`Progress` after every batch of tiles of every pass.

    Returns:
        :class:`UncertaintyResult`.
    """
    # each pass here is one mirroring: the passes' own test-time flips would hide
    # the disagreement this measures
    cfg = (cfg or InferenceConfig()).replace(test_time_flips=1)
    image = np.asarray(image)
    spatial_axes = [
        a
        for a in range(image.ndim)
        if channel_axis is None or a != channel_axis % image.ndim
    ]
    # the same mirrorings, in the same order, as test-time flips
    flips = image_flip_sets(model.spatial_dims, len(spatial_axes), n_flips)
    spatial_shape = tuple(image.shape[a] for a in spatial_axes)
    per_pass = prediction_steps(model, spatial_shape, cfg, voxel_size)
    n_mc = mc_samples if model.config.dropout > 0 else 0
    passes: list[tuple[tuple[int, ...], bool]] = [(f, False) for f in flips]
    passes += [((), True)] * n_mc
    preds = []
    if first_pass is not None:
        if first_pass.shape[1:] != spatial_shape:
            raise ValueError(
                f"first_pass {first_pass.shape} does not match the image's "
                f"spatial shape {spatial_shape}."
            )
        preds.append(first_pass)  # flips[0] is "no mirroring"
    done = len(preds)  # passes not run here (the same seeds for the rest)
    total = per_pass * (len(passes) - done)
    for k, (flip, stochastic) in enumerate(passes):
        if k < done:
            continue
        img_axes = tuple(spatial_axes[a] for a in flip)
        flipped = np.flip(image, img_axes) if img_axes else image
        if stochastic:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + k)
                probs = run_generator(
                    iter_predict(
                        model,
                        np.ascontiguousarray(flipped),
                        cfg,
                        channel_axis,
                        voxel_size,
                        dropout=True,
                    ),
                    False,
                    "dropout",
                )
            preds.append(probs)
            yield Progress(
                (k + 1 - done) * per_pass,
                total,
                f"dropout sample {k + 1 - len(flips)}/{n_mc}",
                "uncertainty",
            )
            continue
        probs = yield from relay(
            iter_predict(
                model, np.ascontiguousarray(flipped), cfg, channel_axis, voxel_size
            ),
            (k - done) * per_pass,
            total,
            f"pass {k + 1}/{len(passes)}, ",
            "uncertainty",
        )
        out_axes = tuple(a + 1 for a in flip)  # probabilities: (C, *spatial)
        preds.append(np.flip(probs, out_axes) if out_axes else probs)
    # pass by pass rather than over np.stack(preds): no second copy of all the
    # passes (1.2 GB for three passes of a 3-class 128x512x512 volume), and the
    # same sums in the same order, so the same numbers bit for bit
    summed = np.array(preds[0], dtype=np.float32, copy=True)
    for p in preds[1:]:
        summed += p
    mean = summed / np.float32(len(preds))
    spread = np.abs(preds[0] - mean)
    for p in preds[1:]:
        spread += np.abs(p - mean)
    disagreement = (spread / np.float32(len(preds))).sum(axis=0)
    disagreement = np.clip(disagreement, 0.0, 1.0).astype(np.float32)
    return UncertaintyResult(mean.astype(np.float32), entropy_map(mean), disagreement)


@dataclass(frozen=True)
class RankedPatch:
    """One entry of the annotation queue.

    Attributes:
        score: mean uncertainty in the patch.
        slices: where the patch is, in the image's spatial axes.
        composition: mean predicted probability of each class in the patch (empty
            when no probabilities were given); what :func:`diversify` compares.
    """

    score: float
    slices: tuple[slice, ...]
    composition: tuple[float, ...] = ()

    @property
    def start(self) -> tuple[int, ...]:
        return tuple(s.start for s in self.slices)

    @property
    def centre(self) -> tuple[float, ...]:
        return tuple((s.start + s.stop - 1) / 2 for s in self.slices)


def suggest_patch_side(
    spatial_shape: Sequence[int], labels: NDArray | None = None, cube: bool = False
) -> tuple[int, str]:
    """A patch side suited to the image: a few cells with their neighbours.

    With cell labels (one id per object, at least 3 objects) the side is three
    times the cells' median equivalent diameter, so a patch shows whole cells and
    the edges between them; without, 64 pixels (32 for 3D cubes). It is rounded up
    to a multiple of 8 and kept between 16 and 128 (64 for cubes, which hold the
    cube of that many voxels to annotate) and to at most half the image's
    smallest in-plane side, so there are patches to choose from.

    Args:
        spatial_shape: the image's spatial shape (Y, X) or (Z, Y, X).
        labels: instance labels of that shape, or None.
        cube: the patches are 3D cubes (a 3D network) rather than planes.

    Returns:
        ``(side, reason)``: the side in pixels and a few words on why.
    """
    side, reason = (32 if cube else 64), "default"
    if labels is not None and np.shape(labels) == tuple(spatial_shape):
        lab = np.asarray(labels)
        volumetric = lab.ndim == 3 and cube
        if lab.ndim == 3 and not cube:  # plane patches: cell areas in a few planes
            planes = np.unique(np.linspace(0, lab.shape[0] - 1, 8).astype(int))
            sizes = np.concatenate([_object_sizes(lab[z]) for z in planes])
        else:
            sizes = _object_sizes(lab)
        if sizes.size >= 3:
            size = float(np.median(sizes))
            if volumetric:  # the diameter of a ball of that volume
                d = (6.0 * size / math.pi) ** (1.0 / 3.0)
            else:  # of a disc of that area
                d = 2.0 * math.sqrt(size / math.pi)
            side = 3.0 * d
            reason = f"3 x the cells' median diameter, {d:.0f} px"
    upper = min(64 if cube else 128, max(16, 8 * (min(spatial_shape[-2:]) // 16)))
    side_px = int(min(max(8 * math.ceil(side / 8), 16), upper))
    return side_px, reason


def queue_patch_shape(
    spatial_shape: Sequence[int],
    model_dims: int,
    side: int = 0,
    labels: NDArray | None = None,
) -> tuple[tuple[int, ...], str]:
    """The queue's patch shape for an image seen by a ``model_dims`` network.

    Squares in 2D; for a stack, one-slice squares with a 2D network (it reviews
    slice by slice) and cubes with a 3D one (Z clipped to the stack).

    Args:
        spatial_shape: the image's spatial shape.
        model_dims: the network's spatial dimensions (2 or 3).
        side: the patch side in pixels; 0 chooses one with
            :func:`suggest_patch_side` (from cell ``labels`` when given).
        labels: instance labels of the image, or None.

    Returns:
        ``(shape, reason)``: the patch shape and, for an automatic side, why that
        side ("" otherwise).
    """
    reason = ""
    cube = len(spatial_shape) == 3 and model_dims == 3
    if side == 0:
        side, reason = suggest_patch_side(spatial_shape, labels, cube)
    if len(spatial_shape) == 2:
        return (side, side), reason
    z = 1 if model_dims == 2 else min(side, int(spatial_shape[0]))
    return (z, side, side), reason


def _object_sizes(labels: NDArray) -> NDArray[np.int64]:
    """Voxel count of each nonzero id. ``np.unique`` rather than ``bincount``:
    ids can be large (EM body ids reach 10^9) and a count per possible id would
    not fit in memory."""
    ids, counts = np.unique(labels, return_counts=True)
    return counts[ids != 0].astype(np.int64)


def rank_patches(
    uncertainty: NDArray,
    patch_shape: Sequence[int],
    exclude: NDArray | None = None,
    top_k: int | None = None,
    probabilities: NDArray | None = None,
    variety: float = 0.0,
) -> list[RankedPatch]:
    """Non-overlapping patches ranked by mean uncertainty, most uncertain first.

    Args:
        uncertainty: per-voxel map (any non-negative score).
        patch_shape: patch size per axis (clipped to the image). Every patch has
            this size; the last one along an axis overlaps its neighbour.
        exclude: boolean map of voxels already reviewed; a patch that is more than
            half reviewed is left out.
        top_k: keep only the best ``top_k``.
        probabilities: ``(C, *spatial)`` class probabilities; each patch then
            records its :attr:`RankedPatch.composition`.
        variety: with probabilities, reorder by :func:`diversify` with this
            strength (0 = pure uncertainty order).
    """
    u = np.asarray(uncertainty, np.float32)
    if len(patch_shape) != u.ndim:
        raise ValueError(
            f"patch_shape {tuple(patch_shape)} does not match a {u.ndim}D map."
        )
    patch = [min(int(p), s) for p, s in zip(patch_shape, u.shape)]
    # full-size patches only: the last one per axis sits flush with the image end
    # (overlapping its neighbour) rather than being a thin sliver, whose mean
    # uncertainty would be noisy and whose annotation would buy little
    ranges = [
        sorted({*range(0, s - p + 1, max(1, p)), s - p}) for s, p in zip(u.shape, patch)
    ]
    probs = None if probabilities is None else np.asarray(probabilities)
    if probs is not None and probs.shape[1:] != u.shape:
        raise ValueError(
            f"probabilities {probs.shape} do not match the {u.shape} uncertainty map."
        )
    out = []
    for start in itertools.product(*ranges):
        sl = tuple(slice(a, a + p) for a, p in zip(start, patch))
        if exclude is not None and np.asarray(exclude[sl], bool).mean() > 0.5:
            continue
        comp: tuple[float, ...] = ()
        if probs is not None:
            comp = tuple(
                float(v)
                for v in probs[(slice(None), *sl)].reshape(len(probs), -1).mean(1)
            )
        out.append(RankedPatch(float(u[sl].mean()), sl, comp))
    out.sort(key=lambda r: (-r.score, r.start))
    if variety > 0 and probs is not None:
        out = [out[i] for i in diversify(out, variety)]
    return out[:top_k] if top_k else out


# the share of an image a network must see as background (class 0) for the
# queue's automatic variety to be on
AUTO_VARIETY_BACKGROUND = 0.2


def auto_variety(probabilities: NDArray | Sequence[NDArray]) -> float:
    """The queue's variety when left to the plugin: 1.0 where the network sees at
    least :data:`AUTO_VARIETY_BACKGROUND` of the image as background, else 0.0.

    Much background means many blank patches that look alike to the network,
    and a young network is unsure of all of them in the same way: on BBBC039
    nuclei the plain queue spent all its picks of three rounds on one field's
    empty background, and with variety 1.0 the simulated user learnt faster
    than from random patches (0 did not). Where there is no background (EM
    neuropil: every voxel is a cell's interior or a membrane) the patches'
    class mixes differ little, variety would reorder them by those small
    differences instead of by uncertainty, and on FlyEM it lowered the first
    round (docs/benchmarks.md).

    Args:
        probabilities: ``(C, *spatial)`` probabilities, or several such arrays
            (the images ranked together), weighted by their sizes.
    """
    arrays = [probabilities] if isinstance(probabilities, np.ndarray) else probabilities
    backgrounds = [np.asarray(p)[0] for p in arrays]
    size = sum(b.size for b in backgrounds)
    total = sum(float(b.sum()) for b in backgrounds)
    return 1.0 if size and total / size >= AUTO_VARIETY_BACKGROUND else 0.0


def diversify(
    entries: Sequence[RankedPatch],
    strength: float = 1.0,
    radius: float = 0.25,
    limit: int = 256,
) -> list[int]:
    """Order patches so that near-identical ones do not crowd the top.

    Pure uncertainty order puts look-alikes side by side: a young network is
    unsure of all empty background in the same way, and its top four patches can
    all be blank corners of one field, three of which teach nothing the first did
    not. Each next entry is chosen greedily (maximal marginal relevance) by its
    score times ``1 - strength * similarity``, where similarity to the entries
    already chosen is ``1 - TV / radius`` (clipped to [0, 1]) and TV is the total
    variation distance between predicted class compositions: patches whose class
    mix differs by ``radius`` or more do not hold each other back.

    Args:
        entries: patches sorted by score, most uncertain first, with
            compositions (from :func:`rank_patches` with ``probabilities``); they
            may come from several images.
        strength: 0 keeps the score order, 1 lets an identical patch drop to the
            back.
        radius: total variation distance at which patches count as different.
        limit: only the first ``limit`` entries are reordered (the cost is
            quadratic); the rest keep their order.

    Returns:
        Indices into ``entries`` in the new order.
    """
    n = len(entries)
    head = min(n, limit)
    if head < 2 or strength <= 0 or not all(e.composition for e in entries[:head]):
        return list(range(n))
    scores = np.array([e.score for e in entries[:head]], np.float64)
    comps = np.array([e.composition for e in entries[:head]], np.float64)
    similarity = np.zeros(head)
    free = np.ones(head, bool)
    order: list[int] = []
    for _ in range(head):
        gain = np.where(free, scores * (1.0 - strength * similarity), -np.inf)
        j = int(np.argmax(gain))  # ties: the earlier (higher-scored) entry
        order.append(j)
        free[j] = False
        tv = 0.5 * np.abs(comps - comps[j]).sum(axis=1)
        similarity = np.maximum(similarity, np.clip(1.0 - tv / radius, 0.0, 1.0))
    return order + list(range(head, n))
