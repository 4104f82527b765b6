"""Training settings for particular jobs, built on :class:`TrainConfig`.

:mod:`napari_resunet.core.config` declares what each setting means and checks
it; this module holds what was learnt about which values suit a job, with the
measurements behind them (``docs/benchmarks.md``), so the config module stays a
plain declaration and tuning lives beside the training code it tunes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_resunet.core.config import ModelConfig, TrainConfig
from napari_resunet.core.ordering import AUTO_VARIETY_BACKGROUND

# A round's time limit for its training (TrainConfig.max_seconds), by the
# network's dimensionality and whether it is fine-tuned at the pretrained rate
# (a starter, a checkpoint): (spatial_dims, pretrained) -> seconds. On 2 cores
# computing in float32 (no faster than a CPU without native bfloat16) they hardly
# bind: 2D rounds took 5-7 s and 3D ones 16-23 s, all with 40 steps but one
# pretrained round of 32. They hold back slower CPUs. Measured in
# docs/benchmarks.md ("a time limit for a round's training", "measured
# directly: two cores computing in float32"):
# - A pretrained 3D network hardly moves in a round (22 steps scored as 40 on
#   FlyEM), so its limit is tight.
# - A network learning at the full rate learns from every step (a new 3D
#   network's fifth round scored 0.14 lower with 22 steps a round, a new 2D
#   network's first 0.04 lower with 27), and a round's seconds are little beside
#   the minutes its corrections took to paint: 40 steps fit in its limits there
#   with room to spare (at 16 s a new 3D network's rounds were cut to 35-40
#   steps; at 8 s the simulated user's 2D rounds to 29-40 on a slower stand-in).
ROUND_TRAIN_SECONDS = {
    (2, False): 10.0,
    (2, True): 10.0,
    (3, False): 40.0,
    (3, True): 16.0,
}

# the rate of a new 2D network's first round: from a handful of corrected
# patches in tens of steps, at 1e-3 it often ends before it has learnt the cells
FIRST_ROUND_LR = 3e-3


def finetune_config(
    spatial_dims: int,
    image_ndim: int | None = None,
    pretrained: bool = False,
    untrained: bool = False,
    **changes: Any,
) -> TrainConfig:
    """Training settings for one interactive fine-tuning round.

    Tuned so that a round (training plus re-prediction) takes seconds on a 2-core
    CPU: a 512² image about 4 s, a 32x256x256 volume about 12 s (see
    ``benchmarks/bench_finetune.py``). Patches are small and centred on the
    corrections, there is no warm-up, and augmentation stays cheap (no elastic).
    The loss counts only corrected voxels, which the patches are centred on, so
    patches a little larger than a correction see about as many of them as large
    ones, for less compute: 96² in 2D (40% less per step than 128²) and
    32x48x48 in 3D (46% less than 32x64x64); the simulated user's scores rose
    with them, dense 3D training fell a little (docs/benchmarks.md).

    The training stops planning steps beyond :data:`ROUND_TRAIN_SECONDS`
    (``TrainConfig.max_seconds``; ``max_seconds=None`` runs every step), so that
    on a CPU without native bfloat16 a round still takes seconds: tighter for a
    pretrained network, which gains little from more steps, than for one still
    learning at the full rate.

    Where the CPU computes bfloat16 natively the forward passes run in it
    (``precision="auto"``): a round's steps take 20% (2D) to 31% (3D) less time,
    and the simulated user's scores stay where float32 puts them
    (``docs/benchmarks.md``). Full trainings (``TrainConfig()``) stay float32.

    Args:
        spatial_dims: the network's dimensionality.
        image_ndim: spatial axes of the image (3 with a 2D network = slice-wise).
        pretrained: the weights come from a finished training (a starter model or a
            saved checkpoint) rather than a new network. Such a network sits in a
            narrow minimum its cosine schedule ended in; a rate of 1e-3 throws it
            out of it within a few steps (the first FlyEM starter went from
            boundary Dice 0.65 to 0.29 after 40 steps on two corrected blocks), so
            it is fine-tuned at 1e-4.
        untrained: a new network before its first round. A 2D one has nothing to
            lose and much to learn from a few corrected patches, so its first
            round runs at :data:`FIRST_ROUND_LR` (later rounds at 1e-3): on
            BBBC039 nuclei the first round's F1 rose by 0.02-0.03 and the second's
            by about 0.01, and later rounds stayed where they were. A 3D network
            stays at 1e-3: on FlyEM boundaries the faster first round delayed the
            annotation queue's first boundaries by a round (docs/benchmarks.md).
        changes: overrides, e.g. ``steps=60``.
    """
    if spatial_dims == 2:
        patch: tuple[int, ...] = (96, 96)
        if image_ndim == 3:
            patch = (1, *patch)
        base = TrainConfig(patch_shape=patch, batch_size=4, steps=40)
    else:
        base = TrainConfig(patch_shape=(32, 48, 48), batch_size=2, steps=40)
    base = base.replace(
        lr=1e-4
        if pretrained
        else FIRST_ROUND_LR
        if untrained and spatial_dims == 2
        else 1e-3,
        warmup_steps=0,
        min_lr_ratio=0.1,
        val_every=0,
        foreground_fraction=0.5,
        precision="auto",
        max_seconds=ROUND_TRAIN_SECONDS[
            (3 if spatial_dims == 3 else 2, bool(pretrained))
        ],
    )
    return base.replace(**changes) if changes else base


def new_network_config(
    spatial_dims: int, in_channels: int = 1, instance: bool = False
) -> ModelConfig:
    """The architecture of a new network for the annotation loop (the Segment
    widget's "new network").

    A new cell network (``instance``), 2D or 3D, gets batch norm; a class
    (semantic) network keeps :class:`ModelConfig`'s group norm. Group norm takes
    its statistics from each tile it is shown, so what a cell network calls haze
    depended on the tile and on the field around it: on BBBC039 its held-out F1
    fell by up to 0.1 in some rounds after learning one atypical patch. Batch
    norm uses the statistics it learnt, the same for every image and tile. Alone
    it made a new 2D network's first rounds worse; with the fast first round
    (:data:`FIRST_ROUND_LR`) the simulated user's first round scores higher on
    average (one run of 24 lower), every later round higher, and the annotation
    queue stays ahead of random patches on each of four BBBC039 pools of four
    fields. On FlyEM neurons (3D, first rounds at 1e-3, 6 seeds) the queue's
    boundaries came a round or two earlier (Dice 0.28, 0.48, 0.54 in rounds 1-3
    against 0.14, 0.31, 0.44; every run had boundaries by round 2) and rounds 4-5
    were level (docs/benchmarks.md, "batch norm with the fast first round" and
    "FlyEM from an untrained network"). Not measured for class networks.

    Args:
        spatial_dims: 2 or 3.
        in_channels: the image's channels.
        instance: a cell network (background / interior / boundary).
    """
    return ModelConfig(
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        out_channels=3 if instance else 2,
        task="instance" if instance else "semantic",
        norm="batch" if instance else "group",
    )


# the share of a labels layer that must be background (0) for a round to keep the
# image's class mix by itself: the line the queue's automatic variety draws
# between cells and EM neuropil, one constant so the two rules cannot drift apart
AUTO_CLASS_MIX_BACKGROUND = AUTO_VARIETY_BACKGROUND


def auto_class_mix(labels: NDArray, trained: bool) -> bool:
    """Whether a round weights its corrections to the labels layer's class mix
    (``TrainConfig.match_class_mix``) when left to the plugin.

    Yes for a network that has learnt something (a starter or saved model, or a
    new one after its first round) whose labels layer is at least
    :data:`AUTO_CLASS_MIX_BACKGROUND` background. The corrections a user or the
    annotation queue picks are crowded with cells, and a network fine-tuned on
    them alone learns too much foreground; outside the corrections the layer is
    the network's own segmentation, so its mix is a fair estimate of the image's.
    With the simulated user on BBBC039 nuclei (four pools of fields, 10 seeds
    each) it lifted the annotation queue by about 0.01 F1 from the second round
    and left random patches where they were, which put the queue ahead of
    random patches from round 3 on average (docs/benchmarks.md).
    Not for a network's first round from scratch: its segmentation says nothing
    of the image. Not for EM neuropil, where every voxel belongs to a cell: there
    the weighting made boundaries worse.

    Args:
        labels: the labels layer the round learns from (0 = background).
        trained: the network comes from a finished training or has been
            fine-tuned at least once.
    """
    lab = np.asarray(labels)
    if not trained or lab.size == 0:
        return False
    return float(np.count_nonzero(lab == 0)) / lab.size >= AUTO_CLASS_MIX_BACKGROUND


def finetune_label_mode(labels: NDArray, model_config: ModelConfig) -> str:
    """How a labels layer's ids become a fine-tuning round's targets
    (``TrainConfig.label_mode``) for a model.

    ``"auto"`` (cell models learn interior and boundary from instance ids; class
    models learn the ids as classes) unless a 2-class model meets ids it cannot
    predict: a layer of cells (one id per object) painted for a foreground
    model, whose round then learns foreground against background.

    Raises:
        ValueError: ids a class model of more than 2 classes cannot predict.
    """
    if model_config.task != "semantic" or np.size(labels) == 0:
        return "auto"
    top, n_classes = int(np.max(labels)), model_config.out_channels
    if top < n_classes:
        return "auto"
    if n_classes != 2:
        raise ValueError(
            f"the labels hold ids up to {top} but the model predicts {n_classes} "
            f"classes (0..{n_classes - 1})"
        )
    return "foreground"
