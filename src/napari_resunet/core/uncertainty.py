"""Where the model is unsure: per-voxel uncertainty maps (numpy + core).

Uncertainty combines what one prediction says (entropy of the class
probabilities) with how much the prediction changes under test-time flips (a
model that is sure of a voxel predicts it the same way when the image is
mirrored). :mod:`napari_resunet.core.patches` and
:mod:`napari_resunet.core.ordering` turn such a map into the annotation queue's
ranked and ordered patches.
"""

from __future__ import annotations

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
from napari_resunet.core.ordering import sees_background
from napari_resunet.core.progress import Progress, relay, run_generator


def entropy_map(probabilities: NDArray) -> NDArray[np.float32]:
    """Normalised entropy of ``(C, *spatial)`` probabilities, in [0, 1]."""
    p = np.clip(np.asarray(probabilities, np.float32), 1e-7, 1.0)
    h = -(p * np.log(p)).sum(axis=0)
    return (h / math.log(p.shape[0])).astype(np.float32)


def foreground_entropy_map(probabilities: NDArray) -> NDArray[np.float32]:
    """Binary entropy, in [0, 1], of "a cell" (any class but 0) against background
    (class 0): how unsure ``(C, *spatial)`` probabilities are that a voxel
    belongs to a cell at all, whatever part of it."""
    q = np.clip(1.0 - np.asarray(probabilities, np.float32)[0], 1e-6, 1.0 - 1e-6)
    return (-(q * np.log2(q) + (1.0 - q) * np.log2(1.0 - q))).astype(np.float32)


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
        uncertainty: ``0.5 * (entropy + disagreement)``, what the queue ranks
            by except for trained cell networks in a background
            (:func:`queue_scores`).
    """

    probabilities: NDArray[np.float32]
    entropy: NDArray[np.float32]
    disagreement: NDArray[np.float32]

    @property
    def uncertainty(self) -> NDArray[np.float32]:
        return (0.5 * (self.entropy + self.disagreement)).astype(np.float32)

    @property
    def foreground_entropy(self) -> NDArray[np.float32]:
        """:func:`foreground_entropy_map` of the mean prediction."""
        return foreground_entropy_map(self.probabilities)


def queue_scores(
    result: UncertaintyResult,
    cells: bool,
    trained: bool = True,
    background: bool | None = None,
    committee: NDArray | None = None,
) -> NDArray[np.float32]:
    """What the annotation queue ranks patches by, per voxel.

    For a cell network (background, cell interior, cell boundary) that has learnt
    something and sees at least a fifth of the image as background
    (:func:`~napari_resunet.core.ordering.sees_background`): the cells on which
    it and a forest trained on the same corrections disagree (``committee``,
    from :func:`~napari_resunet.core.committee.iter_committee`) where there is
    such a forest, else how unsure the mean prediction is that a voxel is a cell
    at all (``foreground_entropy``). Otherwise the full ``uncertainty``.

    Why: the three-class entropy also counts interior against boundary, which is
    uncertain along every nucleus's rim, so its patch means grow with how crowded
    a patch is rather than with what the network gets wrong. With the simulated
    user on BBBC039 nuclei the cell-or-background score narrowed the gap to
    random patches on the pool of fields where the queue lagged them (round 5:
    +0.014 F1 over 20 seeds) and left three other pools within 0.01 of where
    they were; from a network trained on other nuclei it lifted the queue by
    0.017-0.037 F1 a round (three seeds), level with random patches from round
    2 where it had been behind them (``docs/benchmarks.md``). The flips still
    count: passes that disagree pull the mean toward 0.5. A new network's first
    ranking keeps the full score: what it calls background is arbitrary, and
    ranked by it the first round fell on three pools of four. EM neuropil has
    no background to speak of, and there boundaries are what matters. The
    committee lifted the queue on the two pools of four fields where it was
    level with or behind random patches, to ahead of them on one and level on
    the other, and left the other two ahead; on the pool of eight fields where
    the queue is behind random patches it fell further behind
    (:mod:`napari_resunet.core.committee`).

    Args:
        result: from :func:`iter_uncertainty`.
        cells: the network is a cell network (``ModelConfig.task == "instance"``).
        trained: the network comes from a finished training or has been
            fine-tuned at least once.
        background: :func:`~napari_resunet.core.ordering.sees_background` of
            ``result.probabilities`` when the caller has it already (the queue
            also needs it for its automatic variety; on a large volume the sum
            over the background channel is worth doing once).
        committee: :attr:`~napari_resunet.core.committee.CommitteeResult.score`
            for this image, or ``None`` where no forest could be trained.
    """
    if not (cells and trained):
        return result.uncertainty
    if background is None:
        background = sees_background(result.probabilities)
    if background and committee is not None:
        return np.asarray(committee, np.float32)
    if background:
        return result.foreground_entropy
    return result.uncertainty


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
    anyway, the queue's three passes become two (none where the queue ranks by
    a forest's second opinion, which compares the cells of this pass alone).

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
