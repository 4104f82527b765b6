"""The Annotation queue's job, run in a worker: uncertainty passes, then a
forest's second opinion where one applies; and what the status line says the
order follows. Kept apart from the widget, which only gathers its inputs and
shows its result."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_resunet.core import InferenceConfig
from napari_resunet.core.committee import (
    CommitteeResult,
    committee_applies,
    iter_committee,
)
from napari_resunet.core.inference.postprocess import labels_from_probabilities
from napari_resunet.core.ordering import patch_typicality, sees_background
from napari_resunet.core.progress import Progress, relay
from napari_resunet.core.uncertainty import UncertaintyResult, iter_uncertainty
from napari_resunet.ui._model_store import FirstPass, ModelStore


@dataclass
class CommitteeInputs:
    """What the queue's forest learns from, copied on the viewer's thread.

    Attributes:
        labels: the labels layer's data.
        mask: the corrections a fine-tuning round would learn from (reviewed
            patches included, held-back ones not).
        instance_cfg: how the network's cells are made (as the Segment widget's).
        features: ``(image, features)`` from the last ranking, reused when the
            image is the same.
    """

    labels: np.ndarray
    mask: np.ndarray
    instance_cfg: Any
    features: tuple[np.ndarray, np.ndarray] | None


def committee_inputs(
    store: ModelStore,
    layer: Any,
    spatial_shape: tuple[int, ...],
    features: tuple[np.ndarray, np.ndarray] | None,
) -> CommitteeInputs | None:
    """The corrections a forest learns from, for the store's network when it is
    a trained 2D cell network and ``layer`` (the corrected labels) matches the
    image's ``spatial_shape``; else ``None`` (no second opinion). Read on the
    viewer's thread: the labels are copied, so the user can paint on while the
    forest learns."""
    model = store.model
    if (
        model is None
        or not (committee_applies(model.config) and store.trained)
        or layer is None
        or getattr(layer, "multiscale", False)
        or layer.data.shape != tuple(spatial_shape)
    ):
        return None
    labels = np.array(layer.data, copy=True)
    mask = store.learning_mask(layer, labels, "edited", model.spatial_dims)
    return CommitteeInputs(
        labels,
        mask,
        store.instance_cfg or getattr(model, "instance_config", None),
        features,
    )


@dataclass
class Ranking:
    """The worker's result: the uncertainty, whether the network sees a
    background, and the committee's opinion where one was asked."""

    result: UncertaintyResult
    background: bool
    committee: CommitteeResult | None
    # how typical each patch is of the image, by start, where the committee
    # ranks (core.ordering.patch_typicality); None elsewhere
    typicality: dict[tuple[int, ...], float] | None = None


def iter_queue_uncertainty(
    model: Any,
    image: np.ndarray,
    cfg: InferenceConfig,
    n_flips: int,
    channel_axis: int | None,
    voxel_size: tuple[float, ...] | None,
    mc_samples: int,
    kept: FirstPass | None,
    committee: CommitteeInputs | None = None,
    patch_shape: tuple[int, ...] | None = None,
) -> Generator[Any, None, Ranking]:
    """``iter_uncertainty``, reusing a segmentation's pass when it was made from
    this very image (compared here, in the worker: a fine-tuning round has just
    segmented it with the new model); then, for a trained 2D cell network that
    sees a background, where it and a forest on the same corrections disagree
    (``committee``: :mod:`napari_resunet.core.committee`).

    With a committee asked for, one unmirrored pass comes first: the forest
    compares cells, and the flips' disagreement does not enter its score, so
    the mirrored passes (and Monte-Carlo dropout samples) run only where no
    forest gives one (no background, or too few corrections). After a
    fine-tuning round that pass is the round's own segmentation, and the
    ranking costs the forest alone. With the simulated user on BBBC039 (four
    pools of four fields, 10 seeds each) cells from one pass ranked within
    0.003 F1 of the mean of three, with median rounds of 5.3 s instead of 7.7 s
    (``docs/benchmarks.md``).

    Where the committee ranks, each patch of ``patch_shape`` is also weighed by
    how typical it is of the image (:func:`patch_typicality`, on the forest's
    features): the committee finds the network's real mistakes, but those in
    an atypical corner (debris, an odd field of a stack) teach the rest of the
    image little.
    """
    first = None
    if kept is not None and np.array_equal(kept.image, image):
        first = kept.probabilities
    done = 0  # steps so far: each stage's records follow the last's

    def passes(flips: int, samples: int, first_pass: np.ndarray | None):
        nonlocal done
        gen = iter_uncertainty(
            model,
            image,
            cfg,
            flips,
            channel_axis,
            voxel_size,
            samples,
            first_pass=first_pass,
        )
        offset = done
        while True:
            try:
                rec = next(gen)
            except StopIteration as stop:
                return stop.value
            done = offset + rec.step
            yield Progress(done, offset + rec.total, rec.message, rec.phase)

    if committee is None:
        result = yield from passes(n_flips, mc_samples, first)
    else:
        result = yield from passes(1, 0, first)
    # one pass over the background channel serves the score and the variety
    background = sees_background(result.probabilities)
    opinion = None
    if committee is not None and background:
        cells = labels_from_probabilities(
            result.probabilities, model.config, committee.instance_cfg, voxel_size
        )
        features = None
        if committee.features is not None and np.array_equal(
            committee.features[0], image
        ):
            features = committee.features[1]
        opinion = yield from relay(
            iter_committee(
                image,
                cells,
                committee.labels,
                committee.mask,
                model.normalization,
                channel_axis,
                features=features,
            ),
            done,
            done + 3,
            "second opinion: ",
            "uncertainty",
        )
        done += 3
    if committee is not None and (opinion is None or opinion.score is None):
        # no second opinion after all: the network's own doubt, all passes
        result = yield from passes(n_flips, mc_samples, result.probabilities)
    typicality = None
    if opinion is not None and opinion.score is not None and patch_shape:
        typicality = patch_typicality(opinion.features, patch_shape)
    return Ranking(result, background, opinion, typicality)


def order_note(blind: bool, variety: float, opinion: CommitteeResult | None) -> str:
    """What the queue's order follows, for the status line: said when the scores
    in the list need not fall, so a higher score below a lower one does not look
    like a mistake."""
    if blind:
        note = (
            " The network is new and its uncertainty says little yet: the "
            "patches come in a random order until its first fine-tuning round."
        )
    elif variety > 0:
        note = f" Variety {variety:.1f}: a patch much like one above it moves down."
    else:
        note = ""
    if opinion is not None and opinion.score is not None:
        note += (
            " Ranked by the cells on which the network and a forest trained "
            "on your corrections disagree, weighed by how typical each patch is "
            "of the image."
        )
    elif opinion is not None:
        note += f" No forest to compare with yet: {opinion.reason}."
    return note
