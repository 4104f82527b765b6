"""Simulated-user benchmark: does the annotation queue pick better patches?

An oracle user, playing from ground truth, starts from a model (untrained, or a
starter model) and in each round corrects the top-k queue patches (pastes the
truth there, marks them reviewed; the queue ranks all pool images together, in
the Annotation queue's order), then fine-tunes on all
corrections so far (the Fine-tune widget's settings). Compared in the same run, with the same budget:

- random patch choice;
- an ilastik-style random forest (scikit-image ``multiscale_basic_features`` +
  ``fit_segmenter``) trained on exactly the voxels the queue had annotated (2D: its
  foreground through the same distance-seeded watershed);
- the network fully supervised on all ground truth of the pool, for the same
  total number of steps;
- with ``--oracle``, patches ranked by the network's true error (a diagnostic:
  what a perfect uncertainty estimate would choose); ``--diagnose`` prints how
  well the queue's uncertainty ranks that error; ``--pool-score`` also scores
  the labels the user ends with on the pool images themselves; ``--changes``
  records how much of the pool outside the corrections each round changed.

    python benchmarks/bench_active_learning.py [--dataset bbbc039|flyem]
        [--start untrained|starter] [--seeds 0 1 2] [--rounds 5] [--k 4]
        [--pool 4] [--pool-first 0] [--pool-corner 0]
        [--variety auto] [--class-mix auto|on|off|argmax|truth] [--explore 0]
        [--select variety|cluster-uncertain|cluster-typical|softrank|badge]
        [--skip-top 0] [--field-cap 0]
        [--foreground-fraction F] [--intensity-contrast C] [--edge-margin 0]
        [--quick [queue|forest|full]] [--oracle [error|instances]] [--diagnose [error|instances]]
        [--score auto|pixel|foreground|instances|both] [--test-time-flips 1]
        [--pool-score] [--changes] [--stack] [--first shuffle|rank]
        [--normalization percentile|foreground] [--norm group|batch|instance|none]
        [--plot out.png] [--json out.json]

BBBC039 (2D cells): pool = 4 training fields (the first four, or from
``--pool-first``), held out = the 10 validation fields.
FlyEM medulla (3D boundaries): pool = the 48x160x160 corner of the validation
crop (or another of its eight corners: ``--pool-corner``); held out = the rest of
the validation crop beside it (two blocks, 75x90x250 and 75x160x90), so the
starter model (trained on the training crop) has seen neither. Needs ``pip install -e .[bench]`` (scikit-learn, matplotlib) and
../shared/data.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import tifffile

import napari_resunet.core.normalize as normalize_module
from napari_resunet.core import (
    InferenceConfig,
    TrainData,
    build_model,
    predict,
    train,
)
from napari_resunet.core.committee import (
    disputed_cells,
    fit_forest,
    forest_cells,
    pixel_features,
)
from napari_resunet.core.config import (
    CommitteeConfig,
    InstanceConfig,
    NormalizationConfig,
)
from napari_resunet.core.edits import merge_prediction
from napari_resunet.core.inference.postprocess import (
    labels_from_probabilities,
    probabilities_to_instances,
)
from napari_resunet.core.metrics import dice_per_class, iou_matrix, match_instances
from napari_resunet.core.models.zoo import load_model
from napari_resunet.core.normalize import normalize_image
from napari_resunet.core.ordering import (
    auto_variety,
    blind_order,
    diversify,
    patch_descriptions,
    patch_typicality,
)
from napari_resunet.core.patches import rank_patches
from napari_resunet.core.progress import run_generator
from napari_resunet.core.training.dataset import class_mix, instance_targets
from napari_resunet.core.training.finetune import (
    auto_class_mix,
    finetune_config,
    new_network_config,
)
from napari_resunet.core.uncertainty import iter_uncertainty, queue_scores

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
ICFG = InferenceConfig(use_compile="never")
STARTERS = {"bbbc039": "nuclei2d", "flyem": "em_boundaries3d"}
# set from --train-precision: the fine-tuning arithmetic when not the widget's own
TRAIN_PRECISION: dict[str, str] = {}
# set from --foreground-fraction and --intensity-contrast: other fine-tuning
# settings than the widget's
TRAIN_CHANGES: dict[str, float] = {}
# set from --time-limit: the rounds' training time limit (TrainConfig.max_seconds).
# None (the default): every step, so that scores do not depend on how fast the
# machine was at the time; "widget": the Fine-tune widget's limit, divided by
# --limit-scale (a stand-in this many times faster than the CPU it plays then
# plans the steps that CPU would)
TIME_LIMIT: str | None = None
LIMIT_SCALE = 1.0
# set from --normalization: how an untrained network (and the forest) scales
# intensities
NORMALIZATION = NormalizationConfig()
# set from --norm: an untrained network's normalisation layers (None: the
# Segment widget's choice, new_network_config)
NORM: str | None = None
# set from --test-time-flips: the mirrorings the networks are scored with (the
# Segment widget's "test-time flips"; the queue's own passes are unaffected)
SCORE_FLIPS = 1
# set from --oracle: what the oracle ranking ranks by (the pixels' cross-entropy
# against the truth, or the pixels of wrongly segmented cells)
ORACLE = "error"
# set from --select: how the queue picks its k patches from the ranked pool
SELECT = "auto"
# set from --skip-top: the share of most uncertain patches the queue passes over
SKIP_TOP = 0.0
# set from --field-cap: most picks one pool image may get in a round (0: no cap)
FIELD_CAP = 0
# set from --score: what the queue ranks by (the widget's choice, or one of the
# scores it chooses between, or the cells' instability under threshold shifts)
SCORE = "auto"
# set from --edge-margin: the image-edge band the queue's patch scores leave out
EDGE_MARGIN = 0
# set from --diagnose: the true error the queue's ranking is compared with
DIAGNOSE = "error"
# the pool images' forest features, from main: what --select clusters on
POOL_FEATURES: list = []
# set from --pool-score: also score the user's labels on the pool images
POOL_SCORE = False
COMMITTEE_PASSES = 1  # --committee-passes
# set from --queue-from: seed -> the queue's rounds of a saved run
QUEUE_FROM: dict = {}
# set from --first: how the queue orders a new network's patches (its first round)
FIRST = "shuffle"
# set from --shared-first-round: random patches' first round of a new network
# takes the queue's random order (blind_order) rather than a draw of its own
SHARED_FIRST = False
# set from --confident: the probability above which the labels layer's own cells
# (outside the corrections) are also learnt from, and the share of the patches
# drawn there (0: the corrections alone, the widget's behaviour)
CONFIDENT = 0.0
CONFIDENT_SHARE = 0.25
# set from --changes: also record how much of the pool outside the corrections a
# round changed (a label-free warning sign; on fields 13-20 it did not show the
# held-out falls, docs/benchmarks.md)
CHANGES = False


@dataclass
class Task:
    """Pool images the oracle annotates and held-out images it is scored on.

    ``pool`` / ``held`` hold (image, instance labels); ``forest_targets`` what the
    forest learns per pool image (foreground or boundary, 0/1) and ``held_truth``
    the 0/1 map the pixel Dice is scored against.
    """

    name: str
    pool: list
    held: list
    forest_targets: list
    held_truth: list

    @property
    def boundaries(self) -> bool:
        return self.name == "flyem"


def load_bbbc039(n_pool: int, first: int = 0) -> Task:
    """Pool: ``n_pool`` training fields from the ``first``; held out: the 10
    validation fields."""
    d = SHARED / "bbbc039_nuclei2d"
    split = json.loads((d / "split.json").read_text())

    def read(names):
        return [
            (
                tifffile.imread(d / "images" / f"{n}.tif"),
                tifffile.imread(d / "labels" / f"{n}.tif"),
            )
            for n in names
        ]

    # skip the empty field: an oracle learns nothing from it
    pool = [n for n in split["train"] if "F13_s7" not in n]
    pool = read(pool[first : first + n_pool])
    held = read(split["val"])
    return Task(
        "bbbc039",
        pool,
        held,
        [(lab > 0).astype(np.uint8) for _, lab in pool],
        [(lab > 0).astype(np.uint8) for _, lab in held],
    )


# the corners of the 75x250x250 validation crop a 48x160x160 pool can sit in
# (--pool-corner): z at the top or the bottom, y and x at the start or the end
FLYEM_POOL = (48, 160, 160)


def load_flyem(corner: int = 0) -> Task:
    """Pool: a 48x160x160 corner of the validation crop (``corner`` 0-7, bits
    z, y, x: 0 at the start of that axis, 1 at its end; 0 is val[0:48, 0:160,
    0:160]); held out: the rest of the crop beside it, over all slices (for
    corner 0 val[:, 160:, :] and val[:, :160, 160:]), never the pool's voxels.

    Boundaries are the dataset's derived map (a voxel whose neuron differs from a
    face neighbour's), the same definition as the instance networks' boundary class.
    """
    d = SHARED / "flyem_medulla3d"
    img = tifffile.imread(d / "val_image.tif")
    lab = tifffile.imread(d / "val_labels.tif")
    bnd = tifffile.imread(d / "val_boundaries.tif").astype(np.uint8)
    at_end = [(corner >> bit) & 1 for bit in (2, 1, 0)]  # z, y, x
    pool_sl = tuple(
        slice(n - size, n) if end else slice(0, size)
        for n, size, end in zip(img.shape, FLYEM_POOL, at_end)
    )
    _, ys, xs = pool_sl
    y_rest = slice(0, ys.start) if ys.start else slice(ys.stop, None)
    x_rest = slice(0, xs.start) if xs.start else slice(xs.stop, None)
    held_sl = [
        (slice(None), y_rest, slice(None)),
        (slice(None), ys, x_rest),
    ]
    return Task(
        "flyem",
        [(img[pool_sl], lab[pool_sl])],
        [(img[s], lab[s]) for s in held_sl],
        [bnd[pool_sl]],
        [bnd[s] for s in held_sl],
    )


def scores(model, task: Task) -> dict[str, float]:
    """``dice`` and ``f1`` with ``SCORE_FLIPS`` test-time flips and, when that is
    more than one, ``dice_1flip`` and ``f1_1flip`` from a single pass."""
    dice, f1 = score_model(model, task, SCORE_FLIPS)
    out = {"dice": dice, "f1": f1}
    if SCORE_FLIPS > 1:
        out["dice_1flip"], out["f1_1flip"] = score_model(model, task, 1)
    return out


def score_model(model, task: Task, flips: int = 1) -> tuple[float, float]:
    """Pixel Dice (foreground / boundary) and, for cells, instance F1@0.5, from
    predictions under ``flips`` test-time mirrorings."""
    cfg = ICFG.replace(test_time_flips=flips)
    dice, f1 = [], []
    for (img, lab), truth in zip(task.held, task.held_truth):
        probs = predict(model, img, cfg)
        if task.boundaries:  # interior (1) vs boundary (2); no background in FlyEM
            pred = (probs[2] > probs[1]).astype(np.uint8)
            dice.append(dice_per_class(pred, truth, 2)[1])
            continue
        cells = labels_from_probabilities(probs, model.config, InstanceConfig())
        dice.append(dice_per_class((cells > 0).astype(np.uint8), truth, 2)[1])
        f1.append(match_instances(cells, lab, (0.5,))[0]["f1"])
    return float(np.mean(dice)), float(np.mean(f1)) if f1 else float("nan")


def initial_model(task: Task, start: str, seed: int):
    """The starter model for the task, a checkpoint, or an untrained cell network."""
    if start == "starter":
        return load_model(STARTERS[task.name])[0]
    if start != "untrained":  # a checkpoint trained elsewhere
        return load_model(start)[0]
    cfg = new_network_config(task.pool[0][0].ndim, instance=True)  # the widget's
    if NORM:
        cfg = cfg.replace(norm=NORM)
    return build_model(cfg, NORMALIZATION, seed=seed)


def round_config(
    task: Task,
    start: str,
    steps: int,
    lr: float | None,
    seed: int,
    mix: str = "auto",
    trained: bool = True,
):
    """The Fine-tune widget's settings for this start (or ``lr`` when given);
    ``mix`` other than "auto" overrides its choice of class-mix weighting;
    ``trained``: the network has learnt something (a new network's first round
    has not)."""
    cfg = finetune_config(
        task.pool[0][0].ndim,
        steps=steps,
        seed=seed,
        pretrained=start != "untrained",
        untrained=not trained,
    )
    if mix != "auto":
        cfg = cfg.replace(match_class_mix=mix != "off")
    cfg = cfg.replace(**TRAIN_PRECISION, **TRAIN_CHANGES)
    limit = cfg.max_seconds / LIMIT_SCALE if TIME_LIMIT == "widget" else None
    cfg = cfg.replace(max_seconds=limit)
    return cfg.replace(lr=lr) if lr else cfg


def widget_cells(model, img, probs=None) -> np.ndarray:
    """The instance labels the Segment widget shows for ``img`` (the model's own
    instance settings where it has them), as int64; from ``probs`` when the
    model's predictions are at hand."""
    probs = predict(model, img, ICFG) if probs is None else probs
    own = getattr(model, "instance_config", None)
    cells = labels_from_probabilities(probs, model.config, own or InstanceConfig())
    return cells.astype(np.int64)


def labels_layers(model, task: Task, masks, probs=None) -> list:
    """Each pool image's labels layer: the oracle's truth in the annotated patches
    and, elsewhere, the model's segmentation (the instance labels the widget
    shows, as the Fine-tune widget reads them); from ``probs`` (one per pool
    image) when the model's predictions are at hand. Not timed: in the widget
    the layer is already there."""
    probs = probs or [None] * len(task.pool)
    return [
        with_truth(widget_cells(model, img, p), lab, m)
        for (img, lab), m, p in zip(task.pool, masks, probs)
    ]


def with_truth(layer, truth, mask):
    """``layer`` with the oracle's ``truth`` pasted where ``mask`` is set (its
    cells numbered above the layer's own), in place."""
    layer[mask] = np.where(
        truth[mask] > 0, truth[mask].astype(np.int64) + layer.max(), 0
    )
    return layer


def confident_data(task: Task, masks, class_mixes, probs, layers) -> list:
    """Training data from where the network is sure (``--confident``): each pool
    image's labels layer (``layers``: the truth in the reviewed patches, the
    network's cells elsewhere), annotated outside the corrections wherever the
    network's most probable class (``probs``, its predictions the layers were
    made from) has probability at least ``CONFIDENT`` and agrees with the
    layer's class there, as in self-training with confident pseudo-labels
    (CEAL, Wang et al. 2016). Weighted so that ``CONFIDENT_SHARE`` of the patches
    are drawn from them. Not timed, like the labels layer."""
    out = []
    for (img, _), m, c, p, layer in zip(task.pool, masks, class_mixes, probs, layers):
        sure = p.max(0) >= CONFIDENT
        sure &= (p.argmax(0) == instance_targets(layer)) & ~m
        if sure.any():
            out.append(TrainData(img, layer, sure, class_mix=c))
    human = sum(int(m.sum()) for m in masks)
    machine = sum(int(d.mask.sum()) for d in out)
    w = CONFIDENT_SHARE * human / max((1 - CONFIDENT_SHARE) * machine, 1)
    for d in out:
        d.draw_weight = w
    return out


def argmax_mixes(model, task: Task, masks) -> list:
    """Each pool image's class mix with the oracle's truth in the annotated patches
    and the model's most probable class per voxel elsewhere."""
    mixes = []
    n = model.config.out_channels
    for (img, lab), m in zip(task.pool, masks):
        target = predict(model, img, ICFG).argmax(0)
        target[m] = instance_targets(lab)[m]
        mixes.append(np.bincount(target.ravel(), minlength=n)[:n] / target.size)
    return mixes


def error_map(probabilities, labels):
    """Per-voxel cross-entropy of the prediction against the truth's classes
    (background / interior / boundary): where the network is wrong, and how
    badly. Needs the truth, so only the oracle ranking and diagnostics use it."""
    t = instance_targets(labels).astype(np.int64)
    p = np.take_along_axis(np.asarray(probabilities), t[None], axis=0)[0]
    return -np.log(np.clip(p, 1e-6, 1.0)).astype(np.float32)


def instance_error_map(probabilities, labels, model):
    """1 on every pixel of an object the network gets wrong at IoU 0.5 (a predicted
    cell matching no true one, or a true cell no predicted one matches), else 0:
    where instance F1 is lost. Needs the truth, like :func:`error_map`."""
    cells = labels_from_probabilities(probabilities, model.config, InstanceConfig())
    iou, pred_ids, true_ids = iou_matrix(cells, labels)
    # (n_pred, n_true), either side possibly empty: no partner then for the other
    good = iou >= 0.5
    out = np.isin(cells, pred_ids[~good.any(1)]) | np.isin(
        labels, true_ids[~good.any(0)]
    )
    return out.astype(np.float32)


def instance_instability(
    probabilities: np.ndarray,
    cfg: InstanceConfig | None = None,
    shift: float = 0.15,
) -> np.ndarray:
    """Where the cells themselves are in doubt, in [0, 1] (``--score``; a
    diagnostic, not what the Annotation queue ranks by: docs/benchmarks.md).

    Pixel uncertainty sits on every cell's rim, where background and interior
    meet, so a patch full of well-separated cells scores as high as one where two
    touching cells are about to merge; instance F1 only loses the second. Here the
    cells are segmented again with the seed and foreground thresholds moved by
    ``shift`` either way (four segmentations, no network pass), and every pixel of
    a cell scores ``1 - IoU`` with that cell's best match, averaged over the four:
    a cell that splits, merges, appears or vanishes when a threshold moves a
    little scores high; one that keeps its shape scores 0.

    Args:
        probabilities: ``(3, *spatial)`` background/interior/boundary
            probabilities (an instance model's mean prediction).
        cfg: the post-processing the user sees (a model's own
            ``instance_config``, or the defaults).
        shift: how far each threshold moves.
    """
    cfg = cfg or InstanceConfig()
    reference = probabilities_to_instances(probabilities, cfg)
    out = np.zeros(reference.shape, np.float32)
    shifts = [("seed_threshold", -shift), ("seed_threshold", shift)]
    shifts += [("foreground_threshold", -shift), ("foreground_threshold", shift)]
    for name, delta in shifts:
        value = float(np.clip(getattr(cfg, name) + delta, 0.05, 0.95))
        other = probabilities_to_instances(probabilities, cfg.replace(**{name: value}))
        iou, ref_ids, other_ids = iou_matrix(reference, other)
        change = np.zeros(reference.shape, np.float32)
        # each side's cells: 1 - IoU with their best partner (0 without one)
        for labels, ids, best in (
            (reference, ref_ids, iou.max(1) if iou.size else None),
            (other, other_ids, iou.max(0) if iou.size else None),
        ):
            if ids.size == 0:
                continue
            lut = np.zeros(int(ids.max()) + 1, np.float32)
            lut[ids] = 1.0 - (best if best is not None else 0.0)
            np.maximum(change, lut[labels], out=change)
        out += change
    return out / np.float32(len(shifts))


def committee_forest(task: Task, masks, seed: int):
    """``--score committee``: the Annotation queue's forest
    (:func:`napari_resunet.core.committee.fit_forest`, 20 trees) trained on the
    pool's corrections so far, foreground against background, the pool's
    fields side by side as one image.

    Only the corrected pixels' features are gathered, field by field, in the
    order the fields side by side would give them: concatenating the pool's
    whole feature maps (116 MB for four fields) cost up to 1.6 s a round in
    fresh memory pages, which the widget, whose image's features lie in one
    array, never pays."""
    x = np.concatenate([f[m] for f, m in zip(POOL_FEATURES, masks)])
    y = np.concatenate([t[m] for t, m in zip(task.forest_targets, masks)])
    return fit_forest(x, y, np.ones(len(y), bool), CommitteeConfig(seed=seed))


def committee_disagreement(probabilities, model, forest, field: int) -> np.ndarray:
    """Query by a committee of two unlike learners, as the Annotation queue
    asks it (:mod:`napari_resunet.core.committee`): 1 on every pixel of a cell
    on which the network and the forest trained on the same corrections
    disagree at IoU 0.5, else 0."""
    cells = labels_from_probabilities(probabilities, model.config, InstanceConfig())
    return disputed_cells(cells, forest_cells(forest, POOL_FEATURES[field]))


def spearman(pairs) -> float:
    """Rank correlation of (uncertainty, error) pairs (ties get mean ranks)."""
    from scipy.stats import spearmanr

    a = np.asarray(pairs, np.float64)
    return float(spearmanr(a[:, 0], a[:, 1])[0]) if len(a) >= 3 else float("nan")


def round_data(model, task: Task, masks, start, steps, lr, seed, trained, mix="auto"):
    """A round's settings and training data, as the Fine-tune widget makes them
    from the labels layers (the truth in the ``masks``, the network's cells
    elsewhere): its settings for this start (:func:`round_config`), the
    automatic class mix or the one ``mix`` asks for, and with ``--confident``
    the network's sure pixels too. ``model`` is the network before the round,
    ``trained`` whether it has learnt anything (the widgets'
    ``ModelStore.trained``); ``seed`` the round's."""
    cfg = round_config(task, start, steps, lr, seed, mix, trained)
    # the network's predictions on the pool, made once where --confident needs
    # them beside the labels layers they are made into
    confident = bool(CONFIDENT) and trained
    probs = [predict(model, img, ICFG) for img, _ in task.pool] if confident else None
    layers = None
    if mix == "auto" and trained:
        # the Fine-tune widget's automatic class mix, from its labels layer (a
        # new network's first round is never weighted)
        layers = labels_layers(model, task, masks, probs)
        flat = np.concatenate([layer.ravel() for layer in layers])
        cfg = cfg.replace(match_class_mix=auto_class_mix(flat, trained=True))
    # the oracle's labels are the truth everywhere, so the mix the widget would
    # read from the labels layer is handed over explicitly
    n = model.config.out_channels
    if mix == "truth":
        mixes = [class_mix(lab, n, "instances") for _, lab in task.pool]
    elif cfg.match_class_mix and mix == "argmax":
        mixes = argmax_mixes(model, task, masks)
    elif cfg.match_class_mix:
        layers = layers or labels_layers(model, task, masks, probs)
        mixes = [class_mix(layer, n, "instances") for layer in layers]
    else:
        mixes = [None] * len(masks)
    extra = []
    if confident:
        layers = layers or labels_layers(model, task, masks, probs)
        extra = confident_data(task, masks, mixes, probs, layers)
    data = [
        TrainData(img, lab, m, class_mix=c)
        for (img, lab), m, c in zip(task.pool, masks, mixes)
        if m.any()
    ] + extra
    return cfg, data


def run_strategy(
    strategy,
    task,
    start,
    rounds,
    k,
    patch,
    steps,
    lr,
    seed,
    variety,
    mix,
    explore=0.0,
    record=None,
    record_errors=None,
):
    rng = np.random.default_rng(seed)
    dims = task.pool[0][0].ndim
    model = initial_model(task, start, seed)
    masks = [np.zeros(lab.shape, bool) for _, lab in task.pool]
    boxes: list[list] = [[] for _ in task.pool]  # each image's reviewed patches
    rows = []
    # --changes: the pool's foreground (any class but background) under the
    # network before the round, to compare the round's network with
    before = [pool_foreground(model, img) for img, _ in task.pool] if CHANGES else []
    for r in range(1, rounds + 1):
        t0 = time.perf_counter()
        # the widgets' ModelStore.trained: a new network has learnt nothing before
        # its first round
        trained = start != "untrained" or r > 1
        candidates = []  # (field, RankedPatch)
        pool_probs = []  # the queue's mean predictions, for its automatic variety
        embeddings = {}  # --select badge: (field, start) -> gradient embedding
        field_scores = []  # the queue's mean score over each field's unreviewed part
        chosen = None
        # --score committee: a forest on the corrections so far, whose cells the
        # network's are compared with (timed: the widget would train it)
        forest = None
        if strategy == "queue" and SCORE == "committee" and trained:
            forest = committee_forest(task, masks, seed + r)
        # the committee ranks by cells, not by the flips' disagreement: the widget
        # then measures one pass (--committee-passes); a new network's patches
        # come in a random order (--first shuffle): one pass, as the widget
        n_flips = COMMITTEE_PASSES if forest is not None else 3
        if strategy == "queue" and FIRST == "shuffle" and not trained:
            n_flips = 1
        for i, (img, _) in enumerate(task.pool):
            if strategy == "queue":
                res = run_generator(
                    iter_uncertainty(model, img, ICFG, n_flips=n_flips), False, "u"
                )
                probs = res.probabilities
                # no forest (a new network, too few corrections): as the widget
                if SCORE == "auto" or (SCORE == "committee" and forest is None):
                    cells = model.config.task == "instance"  # the widget's choice
                    score_map = queue_scores(res, cells, trained)
                elif SCORE == "committee":
                    score_map = committee_disagreement(probs, model, forest, i)
                elif SCORE == "pixel":
                    score_map = res.uncertainty
                elif SCORE == "foreground":
                    score_map = res.foreground_entropy
                else:
                    own = getattr(model, "instance_config", None)
                    unstable = instance_instability(probs, own)
                    score_map = (
                        unstable
                        if SCORE == "instances"
                        else 0.5 * (res.uncertainty + unstable)
                    )
                pool_probs.append(probs)
                field_scores.append(round(float(score_map[~masks[i]].mean()), 5))
            elif strategy == "oracle":  # ranked by the true error: an upper bound
                p = predict(model, img, ICFG)
                if ORACLE == "instances":
                    score_map = instance_error_map(p, task.pool[i][1], model)
                else:
                    score_map = error_map(p, task.pool[i][1])
                probs = None
            else:
                score_map, probs = np.zeros(img.shape, np.float32), None
            ranked = rank_patches(
                score_map,
                (patch,) * dims,
                exclude=masks[i],
                probabilities=probs,
                edge_margin=EDGE_MARGIN if strategy == "queue" else 0,
            )
            candidates += [(i, e) for e in ranked]
            if strategy == "queue" and SELECT == "badge" and trained:
                emb = gradient_embeddings(model, img, ranked)
                embeddings.update({(i, e.start): v for e, v in zip(ranked, emb)})
            if strategy == "queue" and record_errors is not None:  # not timed
                t_err = time.perf_counter()
                lab = task.pool[i][1]
                if DIAGNOSE == "instances":
                    err = instance_error_map(probs, lab, model)
                else:
                    err = error_map(probs, lab)
                pairs = [(e.score, float(err[e.slices].mean())) for e in ranked]
                record_errors.append((r, i, pairs))
                t0 += time.perf_counter() - t_err
        if strategy == "oracle":
            candidates.sort(key=lambda c: (-c[1].score, c[0], c[1].start))
            order = list(range(len(candidates)))
        elif strategy == "queue" and SELECT.startswith("cluster"):
            candidates.sort(key=lambda c: (-c[1].score, c[0], c[1].start))
            order = cluster_order(candidates, masks, k, seed + r)
        elif strategy == "queue":  # the widget's order, over all pool images at once
            # uncertainty x typicality: where the committee ranks, as the widget
            if (SELECT == "density" and trained) or (
                SELECT in ("auto", "apart") and forest is not None
            ):
                candidates = density_weighted(candidates)
            candidates.sort(key=lambda c: (-c[1].score, c[0], c[1].start))
            # --skip-top: the most uncertain share goes to the back, not picked
            n_skip = int(SKIP_TOP * len(candidates))
            candidates = candidates[n_skip:] + candidates[:n_skip]
            chosen = auto_variety(pool_probs) if variety == "auto" else float(variety)
            entries = [e for _, e in candidates]
            # the widget's order for a network that has learnt nothing (with its
            # automatic variety; here whatever --variety says), drawn per seed
            if FIRST == "shuffle" and not trained:
                order = first_round_order(candidates, seed)
            elif SELECT == "badge" and trained:
                # (BADGE, Ash et al. 2020): k-means++ seeding over the patches'
                # gradient embeddings, in the candidates' sorted order
                emb = np.stack([embeddings[(i, e.start)] for i, e in candidates])
                order = badge_order(emb, k, [seed, r, 11])
            else:
                order = diversify(entries, chosen)
            if FIELD_CAP and trained:  # picks over the cap move behind the rest
                order = field_capped(order, [i for i, _ in candidates], k, FIELD_CAP)
            if SELECT == "apart":  # overlapping picks move behind the rest
                order = apart(order, candidates, k)
            n_random = int(round(explore * k))
            if n_random:  # the last picks drawn at random from the rest
                rest = np.asarray(order[k - n_random :])
                order = [*order[: k - n_random], *rng.permutation(rest)[:n_random]]
            if SELECT == "softrank":  # drawn with weight 1 / rank in that order
                # (stochastic batch acquisition, Kirsch et al. 2023): Gumbel
                # top-k draws k without replacement
                draw = np.random.default_rng([seed, r, 7])
                keys = -np.log(np.arange(1, len(order) + 1))
                keys += draw.gumbel(size=len(order))
                order = [order[j] for j in np.argsort(-keys, kind="stable")]
        elif SHARED_FIRST and not trained and FIRST == "shuffle":
            # both strategies pick at random here: the same draw, so that what
            # they are compared on is what each picks from round 2 on (a paired
            # comparison: the first draw's luck is common to both)
            order = first_round_order(candidates, seed)
        else:
            order = rng.permutation(len(candidates))
        picks = []  # (image, *start, share of cell / boundary voxels) of each pick
        for i, e in (candidates[j] for j in order[:k]):
            sl = e.slices
            masks[i][sl] = True  # the oracle pastes the truth there: annotated
            boxes[i].append(sl)
            share = float((task.forest_targets[i][sl] > 0).mean())
            picks.append([i, *e.start, round(share, 4)])
        t_data = time.perf_counter()  # not timed: in the widget the layer is there
        cfg, data = round_data(
            model, task, masks, start, steps, lr, seed + r, trained, mix
        )
        t0 += time.perf_counter() - t_data
        result = train(model, data, cfg)
        model = result.model
        elapsed = time.perf_counter() - t0
        scored = scores(model, task)
        if POOL_SCORE and not task.boundaries:  # not timed, as scoring
            scored["pool_f1"] = pool_f1(model, task, masks, boxes)
        if CHANGES:  # not timed, as scoring
            after = [pool_foreground(model, img) for img, _ in task.pool]
            outside = sum(int((~m).sum()) for m in masks)
            flipped = sum(
                int((a != b)[~m].sum()) for a, b, m in zip(after, before, masks)
            )
            scored["changed"] = flipped / max(outside, 1)
            before = after
        dice, f1 = scored["dice"], scored["f1"]
        rows.append(
            {
                "round": r,
                **scored,
                "seconds": elapsed,
                "steps": result.steps_done,
                "annotated": int(sum(m.sum() for m in masks)),
                "class_mix": bool(cfg.match_class_mix),
                "picks": picks,
                **({} if chosen is None else {"variety": chosen}),
                **({"field_scores": field_scores} if field_scores else {}),
            }
        )
        print(
            f"seed {seed} {strategy} round {r}: Dice {dice:.3f} F1@0.5 {f1:.3f} "
            f"({elapsed:.1f} s, {rows[-1]['annotated']} px annotated)",
            flush=True,
        )
        if record is not None:
            record.append([m.copy() for m in masks])
    return rows


def first_round_order(candidates, seed) -> list[int]:
    """A new network's order of the pool's (field, patch) candidates: the
    widget's random order (``blind_order``, each field a group), drawn per seed.
    The queue's first round, and with --shared-first-round random patches' too."""
    return blind_order([e for _, e in candidates], seed, [i for i, _ in candidates])


def pool_foreground(model, img) -> np.ndarray:
    """Where the network's most likely class is not background (--changes)."""
    return predict(model, img, ICFG).argmax(0) > 0


def _image_key(x) -> tuple:
    """A cheap content key for a pool image (--stack)."""
    a = np.asarray(x)
    return (a.shape, a.dtype.str, a.ravel()[::7919].tobytes())


def normalize_as_stacks(*stacks) -> None:
    """Scale each of ``stacks`` (lists of (image, labels)) as one stack
    (--stack): the percentiles of all its images together, as the plugin scales
    a stack of fields it segments or learns from as one array. Other images keep
    their own. Patches the package's scaling for the rest of the process."""
    own = normalize_module._scale
    samples = {}
    for stack in stacks:
        flat = np.concatenate([np.asarray(img, np.float32).ravel() for img, _ in stack])
        sample = normalize_module._subsample(flat)
        samples.update({_image_key(img): sample for img, _ in stack})

    @functools.cache
    def limits(key, cfg: NormalizationConfig) -> tuple[float, float]:
        if cfg.anchor == "foreground":
            return normalize_module._foreground_limits(samples[key], cfg)
        lo, hi = np.percentile(samples[key], [cfg.low, cfg.high])
        return float(lo), float(hi)

    def scale(x, cfg):
        key = _image_key(x)
        if cfg.equalize or key not in samples:
            return own(x, cfg)
        lo, hi = limits(key, cfg)
        out = (np.asarray(x, np.float32) - np.float32(lo)) / np.float32(hi - lo)
        return np.clip(out, 0.0, 1.0, out=out) if cfg.clip else out

    normalize_module._scale = scale


def _defer(order, k: int, refused) -> list[int]:
    """``order`` with each entry that ``refused(entry, picks)`` turns away from
    the first ``k`` picks (``picks``: those taken so far) moved, in order,
    behind the entries that are taken."""
    kept, deferred = [], []
    for j in order:
        if len(kept) < k and refused(j, kept):
            deferred.append(j)
            continue
        kept.append(j)
    return kept[:k] + deferred + kept[k:]


def apart(order, candidates, k: int) -> list[int]:
    """``order`` with no two of its first ``k`` picks overlapping: an entry
    that overlaps an earlier pick of the same pool image moves behind the rest
    (``--select apart``; the even grid's neighbours share a voxel or two, so
    touching neighbours count as overlapping)."""

    def overlaps(j, picks) -> bool:
        i, e = candidates[j]
        return any(
            candidates[c][0] == i
            and all(
                abs(a - b) < s.stop - s.start
                for a, b, s in zip(e.start, candidates[c][1].start, e.slices)
            )
            for c in picks
        )

    return _defer(order, k, overlaps)


def field_capped(order, fields, k: int, cap: int) -> list[int]:
    """``order`` with its first ``k`` picks taking at most ``cap`` patches from
    any one pool image: an entry that would exceed it moves, in order, behind
    the entries that do not (``--field-cap``)."""
    return _defer(
        order, k, lambda j, picks: sum(fields[c] == fields[j] for c in picks) >= cap
    )


def pool_f1(model, task: Task, masks, boxes) -> float:
    """Instance F1@0.5 of the labels the user has on the pool images after the
    round: the truth in the reviewed patches and the new network's cells
    elsewhere, merged as the Segment widget merges a new prediction into edited
    labels (cells crossing a reviewed patch's face continue the kept cell).
    The annotated image itself, not held-out ones: what the annotation is for."""
    f1 = []
    for (img, lab), m, b in zip(task.pool, masks, boxes):
        current = np.where(m, lab, 0).astype(np.int64)
        merged = merge_prediction(
            current, widget_cells(model, img), m, instances=True, boxes=b
        )
        f1.append(match_instances(merged, lab, (0.5,))[0]["f1"])
    return float(np.mean(f1))


def gradient_embeddings(model, img, ranked) -> np.ndarray:
    """Each patch's BADGE embedding: the gradient of the cross-entropy against
    the network's own most probable class with respect to its 1x1 head's
    weights, averaged over the patch's pixels, ``(p - onehot(argmax p)) x h``
    with ``h`` the features the head reads. One pass, no flips."""
    import torch

    from napari_resunet.core.inference.tiling import pad_to

    x = normalize_image(img, model.normalization)[None]
    m = model.size_multiple
    padded = pad_to(x, [-(-s // m) * m for s in img.shape])
    crop = tuple(slice(0, s) for s in img.shape)
    seen = {}
    hook = model.head.register_forward_hook(lambda _, a, __: seen.update(h=a[0]))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(torch.from_numpy(np.ascontiguousarray(padded))[None])
    finally:
        hook.remove()
        model.train(was_training)
    h = seen["h"][0][(slice(None), *crop)]  # (F, *spatial)
    p = torch.softmax(logits[0][(slice(None), *crop)], 0)  # (C, *spatial)
    r = p - torch.nn.functional.one_hot(p.argmax(0), p.shape[0]).movedim(-1, 0)
    g = (r[:, None] * h[None]).flatten(0, 1).numpy()  # (C * F, *spatial)
    return np.stack(
        [g[(slice(None), *e.slices)].mean(tuple(range(1, g.ndim))) for e in ranked]
    )


def badge_order(emb: np.ndarray, k: int, seed) -> list[int]:
    """k-means++ seeding (BADGE): the largest embedding first, then each next
    pick drawn with probability proportional to its squared distance to the
    nearest pick so far. Returns indices (the k picks first, the rest after)."""
    rng = np.random.default_rng(seed)
    picks = [int(np.argmax((emb**2).sum(1)))]
    d2 = ((emb - emb[picks[0]]) ** 2).sum(1)
    while len(picks) < min(k, len(emb)):
        if d2.sum() > 0:
            j = int(rng.choice(len(emb), p=d2 / d2.sum()))
        else:  # every patch alike: the next one not yet picked
            j = next(j for j in range(len(emb)) if j not in picks)
        picks.append(j)
        d2 = np.minimum(d2, ((emb - emb[j]) ** 2).sum(1))
    return picks + [j for j in range(len(emb)) if j not in picks]


def _patch_vectors(field: int, slices_list) -> np.ndarray:
    """Mean and standard deviation of each forest feature in each patch."""
    return patch_descriptions(POOL_FEATURES[field], slices_list)


@functools.lru_cache(maxsize=2)
def _pool_patch_vectors(patch: tuple[int, ...]) -> tuple[list, np.ndarray]:
    """Every patch of the pool on the queue's grid (``rank_patches``' patches,
    the same in every round) as ``(field, slices)``, and its
    :func:`_patch_vectors`, one row each. The features never change within a
    run, so this is computed once, not every round."""
    rows, vecs = [], []
    for i, feats in enumerate(POOL_FEATURES):
        grid = rank_patches(np.zeros(feats.shape[:-1], np.float32), patch)
        rows += [(i, e.slices) for e in grid]
        vecs.append(_patch_vectors(i, [e.slices for e in grid]))
    return rows, np.concatenate(vecs)


@functools.lru_cache(maxsize=2)
def _typicality(patch: tuple[int, ...]) -> dict:
    """Each pool patch's typicality, by ``(field, start)``, as the Annotation
    queue measures it on a stack of fields
    (:func:`~napari_resunet.core.ordering.patch_typicality` on the pool's
    features, computed once a run)."""
    stack = np.stack(POOL_FEATURES)  # the pool's fields are of one shape
    typical = patch_typicality(stack, (1, *patch))
    return {(start[0], start[1:]): w for start, w in typical.items()}


def density_weighted(candidates):
    """Each candidate's score times its typicality among all the pool's patches
    (:func:`_typicality`; information density, Settles & Craven 2008). A patch
    unlike most of the pool (an artefact, an odd field) is demoted however
    uncertain it is. The candidates are patches of the pool's grid."""
    patch = tuple(s.stop - s.start for s in candidates[0][1].slices)
    typical = _typicality(patch)
    return [
        (i, replace(e, score=e.score * typical[(i, e.start)])) for i, e in candidates
    ]


def cluster_order(candidates, masks, k: int, seed: int) -> list[int]:
    """The k picks of ``--select cluster-*`` (typical-clusters selection, as in
    TypiClust): all patches of the pool, reviewed or not, are clustered by their
    image features into (reviewed + k) clusters; the k largest clusters holding
    no reviewed patch each give one pick, its most uncertain patch
    (``cluster-uncertain``) or its most typical one (``cluster-typical``: the
    smallest mean distance to its 10 nearest neighbours). Returns indices into
    ``candidates`` (the picks first, the rest after in their order)."""
    from sklearn.cluster import KMeans

    patch = tuple(s.stop - s.start for s in candidates[0][1].slices)
    grid, x = _pool_patch_vectors(patch)
    # rows: (field, start, reviewed) of every patch
    rows = [
        (i, tuple(s.start for s in sl), bool(masks[i][sl].mean() > 0.5))
        for i, sl in grid
    ]
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    reviewed = np.array([r[2] for r in rows])
    n_clusters = int(reviewed.sum()) + k
    labels = KMeans(n_clusters, n_init=4, random_state=seed).fit_predict(x)
    index = {(c[0], c[1].start): j for j, c in enumerate(candidates)}
    sizes = np.bincount(labels, minlength=n_clusters)
    covered = np.zeros(n_clusters, bool)
    covered[labels[reviewed]] = True
    picks: list[int] = []
    for c in sorted(range(n_clusters), key=lambda c: (covered[c], -sizes[c])):
        members = [
            j
            for j in np.flatnonzero(labels == c)
            if not reviewed[j] and rows[j][:2] in index
        ]
        if not members:
            continue
        if SELECT == "cluster-typical":  # nearest in mean distance to its 10 nearest
            d = np.sqrt(((x[members][:, None] - x[None]) ** 2).sum(-1))
            best = members[int(np.argmin(np.sort(d, 1)[:, 1:11].mean(1)))]
        else:
            best = max(members, key=lambda j: candidates[index[rows[j][:2]]][1].score)
        picks.append(index[rows[best][:2]])
        if len(picks) == k:
            break
    return picks + [j for j in range(len(candidates)) if j not in picks]


def _features(img):
    """The forests' pixel features: in 2D the Annotation queue's own
    (:func:`~napari_resunet.core.committee.pixel_features`, scales 1-16); the
    3D baseline's are 3D features (scales 1-8), which the plugin does not use."""
    if img.ndim == 2:
        return pixel_features(img, NORMALIZATION)
    from skimage.feature import multiscale_basic_features

    x = normalize_image(img, NORMALIZATION)
    return multiscale_basic_features(
        x, intensity=True, edges=True, texture=True, sigma_min=1, sigma_max=8
    ).astype(np.float32)


def run_forest(task: Task, masks_per_round, seed, feats):
    from skimage.future import fit_segmenter
    from sklearn.ensemble import RandomForestClassifier

    pool_feats, held_feats = feats
    rows = []
    for r, masks in enumerate(masks_per_round, start=1):
        t0 = time.perf_counter()
        # fit_segmenter trains on the pixels whose label is > 0: annotated pixels
        # get 1 (background / interior) or 2 (foreground / boundary), the pool
        # images stacked along the first axis
        labels = np.concatenate(
            [np.where(m, t + 1, 0) for t, m in zip(task.forest_targets, masks)]
        )
        clf = RandomForestClassifier(
            n_estimators=50, n_jobs=2, max_depth=10, random_state=seed
        )
        clf = fit_segmenter(labels, np.concatenate(pool_feats), clf)
        dice, f1 = [], []
        for (img, lab), truth, f in zip(task.held, task.held_truth, held_feats):
            p = clf.predict_proba(f.reshape(-1, f.shape[-1]))[:, 1].reshape(img.shape)
            dice.append(dice_per_class((p > 0.5).astype(np.uint8), truth, 2)[1])
            if task.boundaries:
                continue
            probs = np.stack([1 - p, p, np.zeros_like(p)]).astype(np.float32)
            cells = probabilities_to_instances(
                probs, InstanceConfig(seeds="distance", seed_min_distance=6)
            )
            f1.append(match_instances(cells, lab, (0.5,))[0]["f1"])
        rows.append(
            {
                "round": r,
                "dice": float(np.mean(dice)),
                "f1": float(np.mean(f1)) if f1 else float("nan"),
                "seconds": time.perf_counter() - t0,
                "annotated": int(sum(m.sum() for m in masks)),
            }
        )
        print(
            f"seed {seed} forest round {r}: Dice {rows[-1]['dice']:.3f} "
            f"F1@0.5 {rows[-1]['f1']:.3f}",
            flush=True,
        )
    return rows


def run_full(task: Task, start, steps, lr, seed):
    model = initial_model(task, start, seed)
    # the level sparse rounds are measured against: every step, whatever the limit
    cfg = round_config(task, start, steps, lr, seed).replace(max_seconds=None)
    t0 = time.perf_counter()
    model = train(model, [TrainData(img, lab) for img, lab in task.pool], cfg).model
    scored = scores(model, task)
    dice, f1 = scored["dice"], scored["f1"]
    print(
        f"seed {seed} full supervision ({steps} steps): Dice {dice:.3f} F1@0.5 {f1:.3f}",
        flush=True,
    )
    return {**scored, "seconds": time.perf_counter() - t0, "steps": steps}


def run_seed(task, args, seed, feats) -> dict:
    if args.quick == "full":  # the dense reference alone: no rounds
        return {
            "full": run_full(task, args.start, args.steps * args.rounds, args.lr, seed)
        }
    masks: list = []
    common = (task, args.start, args.rounds, args.k, args.patch, args.steps, args.lr)
    common = (*common, seed, args.variety, args.class_mix, args.explore)
    start = scores(initial_model(task, args.start, seed), task)
    dice0, f10 = start["dice"], start["f1"]
    print(f"seed {seed} start ({args.start}): Dice {dice0:.3f} F1@0.5 {f10:.3f}")
    errors: list | None = [] if args.diagnose else None
    if seed in QUEUE_FROM:  # the same settings and seed: the same rounds
        queue = QUEUE_FROM[seed]
        print(f"seed {seed} queue: {len(queue)} rounds from --queue-from")
    else:
        queue = run_strategy("queue", *common, record=masks, record_errors=errors)
    extra = {}
    if errors:
        extra["diagnosis"] = diagnose(errors, args.k, seed)
    if args.oracle:
        extra["oracle"] = run_strategy("oracle", *common)
    if args.quick == "queue":
        return {"start": start, "queue": queue, **extra}
    if args.quick == "forest":
        forest = run_forest(task, masks, seed, feats)
        return {"start": start, "queue": queue, "forest": forest, **extra}
    rand = run_strategy("random", *common)
    if args.quick:
        return {
            "start": start,
            "queue": queue,
            "random": rand,
            **extra,
        }
    forest = run_forest(task, masks, seed, feats)
    full = run_full(task, args.start, args.steps * args.rounds, args.lr, seed)
    return {
        "start": start,
        "queue": queue,
        "random": rand,
        "forest": forest,
        "full": full,
        **extra,
    }


# the arguments that do not change the queue's rounds (--queue-from)
_NOT_THE_QUEUES = {"json", "plot", "from_json", "queue_from", "shared_first_round"}


def saved_queue_rounds(args, parser) -> dict:
    """--queue-from: the saved run's queue rounds by seed, after checking that it
    was run with the settings the queue's rounds depend on."""
    if args.quick != "random" or args.oracle or args.diagnose:
        parser.error("--queue-from goes with --quick random, no --oracle/--diagnose")
    saved = json.loads(Path(args.queue_from).read_text())
    now = {k: v for k, v in vars(args).items() if k not in _NOT_THE_QUEUES}
    then = {k: v for k, v in saved["args"].items() if k not in _NOT_THE_QUEUES}
    differ = sorted(k for k in now if k != "seeds" and now[k] != then.get(k))
    if differ:
        parser.error(f"--queue-from was run with other settings: {differ}")
    rounds = dict(zip(saved["args"]["seeds"], (r["queue"] for r in saved["runs"])))
    missing = sorted(set(args.seeds) - set(rounds))
    if missing:
        parser.error(f"--queue-from has no runs of seeds {missing}")
    return rounds


def diagnose(errors, k: int, seed: int) -> list[dict]:
    """Per round: how well the queue's patch scores (its uncertainty, or what
    ``--score`` chose) rank the patches' true error (Spearman over all offered
    patches), and the mean error of the queue's top k, of the k worst patches and
    of all patches."""
    out = []
    for r in sorted({e[0] for e in errors}):
        pairs = [p for rr, _, ps in errors if rr == r for p in ps]
        a = np.asarray(pairs, np.float64)
        by_u = a[np.argsort(-a[:, 0], kind="stable")]
        row = {
            "round": r,
            "spearman": spearman(pairs),
            "top_k_error": float(by_u[:k, 1].mean()),
            "worst_k_error": float(np.sort(a[:, 1])[::-1][:k].mean()),
            "mean_error": float(a[:, 1].mean()),
        }
        out.append(row)
        print(
            f"seed {seed} diagnosis round {r}: Spearman(score, error) "
            f"{row['spearman']:+.2f}; error of the queue's top {k} "
            f"{row['top_k_error']:.3f}, of the worst {k} {row['worst_k_error']:.3f}, "
            f"mean {row['mean_error']:.3f}",
            flush=True,
        )
    return out


def _mean(runs, method, key, r):
    return float(np.mean([run[method][r][key] for run in runs]))


def print_quick(runs: list[dict], boundaries: bool) -> None:
    """Per round, the mean score of each way of choosing a ``--quick`` run has
    (the queue; random patches, the forest, the pool's labels and the oracle
    where run)."""
    key = "dice" if boundaries else "f1"
    nan = float("nan")
    for r in range(len(runs[0]["queue"])):
        q = _mean(runs, "queue", key, r)
        rd = _mean(runs, "random", key, r) if "random" in runs[0] else nan
        line = f"round {r + 1}: queue {q:.3f} random {rd:.3f}"
        if "forest" in runs[0]:
            fo = _mean(runs, "forest", key, r)
            line += f" forest {fo:.3f} queue - forest {q - fo:+.3f}"
        if "pool_f1" in runs[0]["queue"][r]:
            qp = _mean(runs, "queue", "pool_f1", r)
            rp = _mean(runs, "random", "pool_f1", r) if "random" in runs[0] else nan
            line += f" | pool: queue {qp:.3f} random {rp:.3f}"
        if "oracle" in runs[0]:
            line += f" oracle {_mean(runs, 'oracle', key, r):.3f}"
        print(line)


def print_full(runs: list[dict], boundaries: bool) -> None:
    """The mean score of a ``--quick full`` run's full supervision."""
    key = "dice" if boundaries else "f1"
    values = [run["full"][key] for run in runs]
    print(f"full supervision: {key} {np.mean(values):.3f} ({len(values)} seeds)")


def print_tables(runs: list[dict], seeds: list[int], boundaries: bool) -> None:
    metric = "boundary Dice" if boundaries else "F1@0.5"
    key = "dice" if boundaries else "f1"
    for seed, run in zip(seeds, runs):
        print(f"\nseed {seed}")
        print(
            "| round | annotated | queue Dice | queue F1@0.5 | random Dice | "
            "random F1@0.5 | forest Dice | forest F1@0.5 | queue round (s) |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for q, r, f in zip(run["queue"], run["random"], run["forest"]):
            print(
                f"| {q['round']} | {q['annotated']} | {q['dice']:.3f} | {q['f1']:.3f} "
                f"| {r['dice']:.3f} | {r['f1']:.3f} | {f['dice']:.3f} | {f['f1']:.3f} "
                f"| {q['seconds']:.1f} |"
            )
        full, start = run["full"], run["start"]
        print(f"start model: Dice {start['dice']:.3f}, F1@0.5 {start['f1']:.3f}")
        print(
            f"full supervision ({full['steps']} steps): Dice {full['dice']:.3f}, "
            f"F1@0.5 {full['f1']:.3f}"
        )
    flips = "dice_1flip" in runs[0]["queue"][0]
    _mean_table(runs, seeds, key, metric + (" (test-time flips)" if flips else ""))
    if flips:
        _mean_table(runs, seeds, f"{key}_1flip", f"{metric} (single pass)")


def _mean_table(runs: list[dict], seeds: list[int], key: str, metric: str) -> None:
    """Means over seeds of ``key`` per round; the forest has one score only."""
    fkey = key.removesuffix("_1flip")
    n = len(runs[0]["queue"])
    print(f"\nmean over seeds {seeds}: {metric}")
    print(
        "| round | queue | random | queue - random (per seed) | forest "
        "| queue - forest (per seed) | full - queue | queue round (s, max) |"
    )
    print("|---:|---:|---:|---|---:|---|---:|---:|")
    full = float(np.mean([run["full"][key] for run in runs]))
    for r in range(n):
        q = _mean(runs, "queue", key, r)
        diffs = " ".join(
            f"{run['queue'][r][key] - run['random'][r][key]:+.3f}" for run in runs
        )
        vs_forest = " ".join(
            f"{run['queue'][r][key] - run['forest'][r][fkey]:+.3f}" for run in runs
        )
        secs = max(run["queue"][r]["seconds"] for run in runs)
        f = _mean(runs, "forest", fkey, r)
        print(
            f"| {r + 1} | {q:.3f} | {_mean(runs, 'random', key, r):.3f} | {diffs} "
            f"| {f:.3f} | {q - f:+.3f} ({vs_forest}) | {full - q:+.3f} | {secs:.1f} |"
        )
    start = float(np.mean([run["start"][key] for run in runs]))
    print(f"start model, mean: {metric} {start:.3f}")
    print(f"full supervision, mean: {metric} {full:.3f}")


def plot(runs: list[dict], task: Task, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("dice", "boundary Dice" if task.boundaries else "foreground Dice")]
    if not task.boundaries:
        panels.append(("f1", "instance F1@0.5"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
    axes = np.atleast_1d(axes)
    title = "FlyEM held out" if task.boundaries else "BBBC039 val"
    for ax, (key, label) in zip(axes, panels):
        for name, method, style in (
            ("queue (uncertainty)", "queue", "o-"),
            ("random patches", "random", "s--"),
            ("random forest, queue's voxels", "forest", "^:"),
        ):
            x = [row["annotated"] / 1e3 for row in runs[0][method]]
            ys = np.array([[row[key] for row in run[method]] for run in runs])
            (line,) = ax.plot(x, ys.mean(0), style, label=name)
            if len(runs) > 1:
                ax.fill_between(
                    x, ys.min(0), ys.max(0), color=line.get_color(), alpha=0.15
                )
        full = float(np.mean([run["full"][key] for run in runs]))
        ax.axhline(full, color="k", lw=1, label="full supervision")
        start = float(np.mean([run["start"][key] for run in runs]))
        lo = min(ax.get_ylim()[0], full)
        if start >= lo:
            ax.axhline(start, color="0.5", lw=1, ls="--", label="start model")
        else:  # an untrained start far below the curves would flatten them
            ax.text(
                0.02,
                0.02,
                f"start model: {start:.3f}",
                ha="left",
                transform=ax.transAxes,
                fontsize=8,
                color="0.4",
            )
        ax.set_xlabel(
            f"annotated {'voxels' if task.boundaries else 'pixels'} (thousands, seed 0)"
        )
        start = args.start
        if start not in ("untrained", "starter"):
            start = f"{Path(start).stem} (checkpoint)"
        flips = "dice_1flip" in runs[0]["queue"][0]
        note = ", networks with test-time flips" if flips else ""
        ax.set_title(f"{title}: {label}\n{start} start, {len(runs)} seed(s){note}")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)
    print(f"plot written to {args.plot}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=["bbbc039", "flyem"], default="bbbc039")
    p.add_argument(
        "--start",
        default="untrained",
        help="untrained, starter (the task's starter model) or a checkpoint path "
        "(a model trained on other data)",
    )
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--k", type=int, default=4, help="patches corrected per round")
    p.add_argument("--patch", type=int, help="patch side (default 64 in 2D, 24 in 3D)")
    p.add_argument("--steps", type=int, help="steps per round (default 60 / 40)")
    p.add_argument(
        "--lr", type=float, help="fine-tuning rate (default: the widget's choice)"
    )
    p.add_argument(
        "--pool", type=int, default=4, help="training fields to annotate (2D)"
    )
    p.add_argument(
        "--pool-corner",
        type=int,
        choices=range(8),
        default=0,
        help="FlyEM: the corner of the validation crop the 48x160x160 pool sits "
        "in, bits z, y, x (0: the start of that axis, 1: its end; 0, the default, "
        "is val[0:48, 0:160, 0:160]); the held-out blocks are the rest of the "
        "crop beside it",
    )
    p.add_argument(
        "--pool-first",
        type=int,
        default=0,
        help="the pool's first training field (2D; another pool than the tables')",
    )
    p.add_argument(
        "--variety",
        default="auto",
        help="the queue's variety: auto (the widget's default: 1 where the network "
        "sees at least a fifth of the pool as background, else 0; recorded per "
        "round) or a number (0 = pure uncertainty order)",
    )
    p.add_argument(
        "--class-mix",
        choices=["auto", "on", "off", "argmax", "truth"],
        default="auto",
        help="weighting of the corrections to the image's class mix (the labels "
        "layer's: segmentation plus pasted truth). auto: as the Fine-tune widget "
        "(automatic: the layer's mix once the network has learnt something, where "
        "the layer is at least a fifth background); on: the labels layer's mix in "
        "every round; off: none (the default before the automatic choice); "
        "argmax: the network's most probable class per voxel instead of the "
        "layer; truth: the pool's true mix (a diagnostic: what if the mix were "
        "right)",
    )
    p.add_argument(
        "--quick",
        nargs="?",
        const="random",
        choices=["random", "queue", "forest", "full"],
        help="queue and random only (or the queue only: --quick queue; the queue "
        "and the forest on its voxels: --quick forest): no full supervision, no "
        "tables; --quick full: full supervision only (the level the sparse "
        "strategies are measured against)",
    )
    p.add_argument(
        "--explore",
        type=float,
        default=0.0,
        help="fraction of each round's k patches the queue draws at random from "
        "the rest of the pool instead of its top entries",
    )
    p.add_argument(
        "--oracle",
        nargs="?",
        const="error",
        choices=["error", "instances"],
        help="also rank patches by the network's true error: its cross-entropy "
        "against the truth (error, what a perfect uncertainty estimate would pick) "
        "or, for cells, the share of the patch covered by cells it segments wrongly "
        "at IoU 0.5 (instances: where instance F1 is lost)",
    )
    p.add_argument(
        "--diagnose",
        nargs="?",
        const="error",
        choices=["error", "instances"],
        help="print, per round, how well the queue's scores rank the patches' "
        "true error: the pixels' cross-entropy (error, the default) or the share "
        "of pixels in wrongly segmented cells (instances); not timed",
    )
    p.add_argument(
        "--train-precision",
        choices=["auto", "float32", "bfloat16"],
        help="fine-tuning arithmetic (TrainConfig.precision; default: the widget's)",
    )
    p.add_argument(
        "--time-limit",
        choices=["none", "widget"],
        default="none",
        help="the rounds' training time limit: none (every step, the default: "
        "scores that do not depend on the machine's speed at the time) or the "
        "Fine-tune widget's (ROUND_TRAIN_SECONDS; steps taken are recorded)",
    )
    p.add_argument(
        "--limit-scale",
        type=float,
        default=1.0,
        help="with --time-limit widget: divide the limit by this, to play a CPU "
        "this many times slower than this machine (its steps, in this one's time)",
    )
    p.add_argument(
        "--inference-precision",
        choices=["auto", "float32", "bfloat16"],
        help="prediction arithmetic (InferenceConfig.precision; default auto, the "
        "widget's): float32 shows what a round costs on a CPU without bfloat16",
    )
    p.add_argument(
        "--test-time-flips",
        type=int,
        default=1,
        help="score the networks with this many test-time mirrorings (as the "
        "Segment widget's setting; single-pass scores are kept beside them)",
    )
    p.add_argument(
        "--select",
        choices=[
            "auto",
            "variety",
            "cluster-uncertain",
            "cluster-typical",
            "softrank",
            "badge",
            "density",
            "apart",
        ],
        default="auto",
        help="how the queue picks: the widget's order (auto: with the forest's "
        "second opinion each patch's score times its typicality, as density, "
        "else as variety); the order before typicality (variety); one patch from "
        "each of the largest clusters of image features not yet reviewed, its "
        "most uncertain or its most typical; or k drawn at random with weight "
        "1/rank in the widget's order (softrank); or k-means++ seeding over the "
        "patches' gradient embeddings once the network is trained (badge); or "
        "the widget's order with each patch's score times its typicality in "
        "image features (density, once the network is trained); or the "
        "widget's order with no two picks of a round overlapping (apart)",
    )
    p.add_argument(
        "--score",
        choices=["auto", "pixel", "foreground", "instances", "both", "committee"],
        default="auto",
        help="what the queue ranks by: the widget's choice without the forest's "
        "second opinion (auto, queue_scores: the "
        "cells' foreground entropy once the network has learnt something, where "
        "it sees a fifth of the image as background, else pixel), pixel "
        "uncertainty (entropy of all classes plus the flips' disagreement: the "
        "widget's before), foreground entropy in every round, the cells' "
        "instability under threshold shifts (instance_instability, a "
        "diagnostic), the mean of pixel and instances, or the cells on which "
        "the network and a forest trained on the same corrections disagree "
        "(committee: the widget's choice for a 2D cell network once it has "
        "learnt something, with its box ticked as it is by default)",
    )
    p.add_argument(
        "--committee-passes",
        type=int,
        default=1,
        help="with --score committee, the passes (mirrorings) whose mean "
        "probabilities make the network's cells once it is trained: 1, the "
        "widget's (it ranks by cells, not by the flips' disagreement); 3, as "
        "before",
    )
    p.add_argument(
        "--edge-margin",
        type=int,
        default=0,
        help="voxels at the image's edge that do not count toward a queue "
        "patch's score (rank_patches' edge_margin)",
    )
    p.add_argument(
        "--foreground-fraction",
        type=float,
        help="share of training crops centred on annotated foreground "
        "(TrainConfig.foreground_fraction; default: the widget's)",
    )
    p.add_argument(
        "--intensity-contrast",
        type=float,
        help="fine-tuning's contrast augmentation: a factor log-uniform in "
        "exp(±C) (TrainConfig.intensity_contrast; default: the widget's, 0.29)",
    )
    p.add_argument(
        "--skip-top",
        type=float,
        default=0.0,
        help="share of the pool's most uncertain patches the queue passes over "
        "(outliers that may be too ambiguous to learn from)",
    )
    p.add_argument(
        "--field-cap",
        type=int,
        default=0,
        help="most of a round's k picks the queue may take from one pool image "
        "(0: no cap); the rest of its order is kept",
    )
    p.add_argument(
        "--stack",
        action="store_true",
        help="scale the pool images' intensities together, as one stack (the "
        "plugin's scaling of a stack of fields), and the held-out ones as another, "
        "not each image on its own",
    )
    p.add_argument(
        "--normalization",
        choices=["percentile", "foreground"],
        default="percentile",
        help="how an untrained network scales intensities "
        "(NormalizationConfig.anchor; default: the plugin's, percentile)",
    )
    p.add_argument(
        "--norm",
        choices=["group", "batch", "instance", "none"],
        help="an untrained network's normalisation layers (ModelConfig.norm; "
        "default: the Segment widget's, batch for a new cell network)",
    )
    p.add_argument(
        "--changes",
        action="store_true",
        help="also record, after each round, the share of the pool outside the "
        "corrections whose foreground/background call the round changed: changed "
        "in the JSON",
    )
    p.add_argument(
        "--pool-score",
        action="store_true",
        help="also score, after each round, the labels the user has on the pool "
        "images (the truth in the reviewed patches, the network's cells elsewhere): "
        "pool_f1 in the JSON (cells only)",
    )
    p.add_argument(
        "--first",
        choices=["shuffle", "rank"],
        default="shuffle",
        help="how the queue orders a new network's patches (its first round): in "
        "the widget's random order (blind_order, drawn per seed) or ranked by the "
        "new network's uncertainty (the widget's before)",
    )
    p.add_argument(
        "--shared-first-round",
        action="store_true",
        help="random patches' first round (a new network's) draws the same patches "
        "as the queue's, which is a random order there too (blind_order): the two "
        "are then compared on what each picks from round 2 on, without the luck "
        "of two separate first draws",
    )
    p.add_argument(
        "--queue-from",
        metavar="JSON",
        help="with --quick random: take the queue's rounds from a saved run of "
        "the same settings (--json; the runs are deterministic, so the same "
        "seed gives the same rounds) and run only the random patches",
    )
    p.add_argument(
        "--confident",
        type=float,
        default=0.0,
        help="also learn from the labels layer outside the corrections where the "
        "network's most probable class is at least this probable (0: off)",
    )
    p.add_argument(
        "--confident-share",
        type=float,
        default=0.25,
        help="with --confident, the share of fine-tuning patches drawn there",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--plot")
    p.add_argument("--json")
    p.add_argument(
        "--from-json", help="re-print the tables and re-plot a saved run, no training"
    )
    args = p.parse_args()
    if args.foreground_fraction is not None:
        TRAIN_CHANGES["foreground_fraction"] = args.foreground_fraction
    global NORMALIZATION, NORM
    NORMALIZATION = NormalizationConfig(anchor=args.normalization)
    NORM = args.norm
    if args.intensity_contrast is not None:
        TRAIN_CHANGES["intensity_contrast"] = args.intensity_contrast
    if args.train_precision:
        TRAIN_PRECISION["precision"] = args.train_precision
    global TIME_LIMIT, LIMIT_SCALE
    TIME_LIMIT, LIMIT_SCALE = args.time_limit, args.limit_scale
    global ICFG
    if args.inference_precision:
        ICFG = ICFG.replace(precision=args.inference_precision)
    global SCORE_FLIPS, ORACLE
    SCORE_FLIPS = args.test_time_flips
    ORACLE = args.oracle or ORACLE
    flyem = args.dataset == "flyem"
    if args.start == "starter" and not flyem:
        p.error(
            "nuclei2d was trained on the BBBC039 training fields the pool is drawn "
            "from: a starter start there measures nothing; use --start untrained."
        )
    args.patch = args.patch or (24 if flyem else 64)
    args.steps = args.steps or (40 if flyem else 60)
    if args.pool_corner and not flyem:
        p.error("--pool-corner places FlyEM's pool; BBBC039's is --pool-first")
    task = (
        load_flyem(args.pool_corner)
        if flyem
        else load_bbbc039(args.pool, args.pool_first)
    )
    if args.stack:  # the pool one stack, the held-out fields another
        normalize_as_stacks(task.pool, task.held)
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        args.start = saved["args"]["start"]
        if "random" in saved["runs"][0] and "forest" in saved["runs"][0]:
            print_tables(saved["runs"], saved["args"]["seeds"], task.boundaries)
        elif "queue" not in saved["runs"][0]:  # --quick full
            print_full(saved["runs"], task.boundaries)
            return
        else:  # a --quick run: no forest, no full supervision
            print_quick(saved["runs"], task.boundaries)
        if args.plot:
            plot(saved["runs"], task, args)
        return
    # the forest's image features (about 4.5 s on BBBC039): the pool's for the
    # forest, --select cluster-* and density, the held-out images' for the
    # forest alone; other --quick runs skip them
    needs = args.select.startswith("cluster") or args.select == "density"
    if args.quick in (None, "forest") or needs or args.score == "committee":
        POOL_FEATURES[:] = [_features(img) for img, _ in task.pool]
    feats = None
    if not args.quick or args.quick == "forest":
        feats = (list(POOL_FEATURES), [_features(img) for img, _ in task.held])
    global SELECT, SKIP_TOP, SCORE, DIAGNOSE, EDGE_MARGIN, POOL_SCORE, FIRST
    global COMMITTEE_PASSES
    global FIELD_CAP
    FIELD_CAP = args.field_cap
    global CONFIDENT, CONFIDENT_SHARE
    CONFIDENT, CONFIDENT_SHARE = args.confident, args.confident_share
    EDGE_MARGIN, POOL_SCORE, FIRST = args.edge_margin, args.pool_score, args.first
    global CHANGES
    CHANGES = args.changes
    SELECT, SKIP_TOP, SCORE = args.select, args.skip_top, args.score
    COMMITTEE_PASSES = args.committee_passes
    DIAGNOSE = args.diagnose or "error"
    global SHARED_FIRST
    SHARED_FIRST = args.shared_first_round
    if args.queue_from:
        QUEUE_FROM.update(saved_queue_rounds(args, p))
    runs = [run_seed(task, args, seed, feats) for seed in args.seeds]
    if args.quick == "full":
        print_full(runs, task.boundaries)
    elif args.quick:
        print_quick(runs, task.boundaries)
    if args.quick:
        if args.json:
            Path(args.json).write_text(
                json.dumps({"runs": runs, "args": vars(args)}, indent=1)
            )
        return
    print_tables(runs, args.seeds, task.boundaries)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"runs": runs, "args": vars(args)}, indent=1)
        )
    if args.plot:
        plot(runs, task, args)


if __name__ == "__main__":
    main()
