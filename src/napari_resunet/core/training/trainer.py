"""Training as a generator (``iter_train``) plus the eager ``train``.

The network passed in is never modified: training runs on a copy, which is
returned only when training completes. A job closed early (cancel) or failing
leaves the caller's model exactly as it was.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from napari_resunet.core.config import InferenceConfig, TrainConfig
from napari_resunet.core.device import (
    autocast,
    release_memory,
    resolve_device,
    resolve_precision,
)
from napari_resunet.core.inference.postprocess import probabilities_to_labels
from napari_resunet.core.inference.predict import iter_predict
from napari_resunet.core.metrics import dice_per_class
from napari_resunet.core.models.resunet import ResUNet
from napari_resunet.core.progress import Progress, run_generator
from napari_resunet.core.training.dataset import (
    PatchSampler,
    TrainSample,
    labels_to_target,
    prepare_sample,
    resolve_label_mode,
)
from napari_resunet.core.training.losses import IGNORE_INDEX, masked_ce_dice_loss

logger = logging.getLogger(__name__)


@dataclass
class TrainData:
    """One training (or validation) image with its labels.

    Attributes:
        image: ``(Y, X)`` or ``(Z, Y, X)`` array, optionally with a channel axis.
        labels: integer labels of the image's spatial shape (0 = background).
        mask: optional boolean array, True where the labels are annotated; other
            voxels are ignored by the loss.
        channel_axis: the image's channel axis, if any.
        class_mix: fraction of each class over the whole image, used with
            ``TrainConfig.match_class_mix``; ``None`` (the default) takes the mix
            of ``labels`` over all voxels, which is right for a labels layer
            (outside the corrections it holds the network's own segmentation).
        draw_weight: how often patches come from this image, relative to its
            annotated voxel count (images are drawn in proportion to count times
            weight); 1 for all images draws every annotated voxel alike.
    """

    image: NDArray
    labels: NDArray
    mask: NDArray | None = None
    channel_axis: int | None = None
    class_mix: Sequence[float] | None = None
    draw_weight: float = 1.0


@dataclass
class TrainResult:
    """What a finished training run returns.

    Attributes:
        model: the trained network (a copy; eval mode).
        history: per-step ``step``/``loss``/``lr``/``seconds`` lists and per-validation
            ``val_step``/``val_dice`` lists.
        config: the :class:`TrainConfig` used.
    """

    model: ResUNet
    history: dict[str, list[float]] = field(default_factory=dict)
    config: TrainConfig = field(default_factory=TrainConfig)

    @property
    def steps_done(self) -> int:
        """Steps the run took: ``config.steps``, or fewer where its time limit
        (``TrainConfig.max_seconds``) planned fewer."""
        return len(self.history.get("step", []))

    def metadata(self) -> dict[str, Any]:
        """Training metadata for :func:`save_checkpoint`."""
        return {"train_config": self.config.to_dict(), "history": self.history}


def _lr_factor(step: int, cfg: TrainConfig, total: int | None = None) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio`` at step ``total``
    (``cfg.steps`` unless a time limit planned fewer)."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    span = max(1, (total or cfg.steps) - cfg.warmup_steps)
    t = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))


# steps a time-limited run takes before it plans the rest from their pace; the
# first step carries one-off costs (memory, kernels) and is left out of the pace
PACE_STEPS = 3


def planned_steps(cfg: TrainConfig, done: int, elapsed: float, pace: float) -> int:
    """How many steps a run with ``cfg.max_seconds`` goes on to, all told.

    The run asks again after every step, with the pace of all its steps so far
    but the first, so the plan follows the pace as it settles: a plan made once
    from the first few steps kept their slowness (on one core a 2D round's
    second to fourth steps took 0.15-0.19 s, later ones 0.13-0.14 s; in the
    widget the plugin's warm-up may still share the CPU then). Its changes are a
    step or two, which move the end of the learning-rate schedule by as little.

    Args:
        cfg: the run's settings (``steps``, ``max_seconds``).
        done: steps taken so far.
        elapsed: seconds since the run began.
        pace: seconds a step takes.

    Returns:
        As many steps as fit in the time left at ``pace``, but not fewer than
        ``done`` nor than half of ``cfg.steps`` (rounded up), and not more than
        ``cfg.steps``; ``cfg.steps`` without a limit.
    """
    if cfg.max_seconds is None:
        return cfg.steps
    fit = done + max(0, math.floor((cfg.max_seconds - elapsed) / max(pace, 1e-9)))
    return min(cfg.steps, max(fit, done, math.ceil(cfg.steps / 2)))


def _as_list(data: TrainData | Sequence[TrainData] | None) -> list[TrainData]:
    if data is None:
        return []
    return [data] if isinstance(data, TrainData) else list(data)


# Per-class loss weights for a class mix stay within this factor of 1,
# so a class that is nearly absent from a batch cannot dominate its loss.
_MAX_CLASS_WEIGHT = 10.0


def _mix_prior(
    train_list: Sequence[TrainData],
    samples: Sequence[TrainSample],
    n_classes: int,
    cfg: TrainConfig,
) -> NDArray[np.float64] | None:
    """The class mix sparse corrections are weighted towards, or ``None``.

    Only with ``cfg.match_class_mix`` and a mask on some image (dense labels are
    their own fair sample). Each image contributes its ``class_mix``, or else its
    labels' mix over all voxels, in proportion to its size.
    """
    if not cfg.match_class_mix or all(d.mask is None for d in train_list):
        return None
    total = np.zeros(n_classes)
    for d, s in zip(train_list, samples):
        mix = s.label_mix if d.class_mix is None else np.asarray(d.class_mix, float)
        if mix.shape != (n_classes,) or not np.all(np.isfinite(mix)) or mix.min() < 0:
            raise ValueError(
                f"class_mix needs {n_classes} non-negative fractions (one per class), "
                f"got {list(d.class_mix)}."
            )
        if mix.sum() > 0:
            total += mix / mix.sum() * s.target.size
    return total / total.sum() if total.sum() > 0 else None


def _balance_weights(target: NDArray, prior: NDArray) -> NDArray[np.float32]:
    """Class weights that give a batch's annotated voxels the mix ``prior``.

    Weighted by ``prior / frequency`` (clipped to ``_MAX_CLASS_WEIGHT``) and scaled
    so the batch's mean weight is 1, which keeps the loss's size and learning rate.
    """
    counts = np.bincount(target[target >= 0].ravel(), minlength=prior.size)
    w = np.ones(prior.size)
    if not counts.sum():  # nothing annotated: the loss is zero anyway
        return w.astype(np.float32)
    freq = counts / counts.sum()
    present = counts > 0
    w[present] = prior[present] / freq[present]
    w = np.clip(w, 1 / _MAX_CLASS_WEIGHT, _MAX_CLASS_WEIGHT)
    return (w / max(float((freq * w).sum()), 1e-12)).astype(np.float32)


def evaluate_dice(
    model: ResUNet,
    data: Sequence[TrainData],
    label_mode: str,
    device: str = "auto",
) -> float:
    """Mean foreground-class Dice of ``model`` on ``data`` (annotated voxels only)."""
    scores = []
    n_classes = model.config.out_channels
    icfg = InferenceConfig(device=device, use_compile="never")
    for d in data:
        probs = run_generator(
            iter_predict(model, d.image, icfg, d.channel_axis), False, "validate"
        )
        pred = probabilities_to_labels(probs)
        mode = resolve_label_mode(label_mode, model.config)
        target = labels_to_target(d.labels, n_classes, mode, d.mask)
        mask = target != IGNORE_INDEX
        scores.append(dice_per_class(pred, target, n_classes, mask)[1:].mean())
    return float(np.mean(scores))


def iter_train(
    model: ResUNet,
    data: TrainData | Sequence[TrainData],
    cfg: TrainConfig | None = None,
    val_data: TrainData | Sequence[TrainData] | None = None,
) -> Generator[Progress, None, TrainResult]:
    """Train a copy of ``model`` on patches of ``data``.

    Args:
        model: starting network (unchanged by this call).
        data: one or more :class:`TrainData`.
        cfg: training settings (defaults: ``TrainConfig()``).
        val_data: optional validation images; scored every ``cfg.val_every`` steps
            and at the end (mean foreground Dice).

    Yields:
        :class:`Progress` every ``cfg.log_every`` steps with ``metrics`` holding
        ``loss`` and ``lr``; after each validation one with ``phase="validate"``
        and ``val_dice``.

    Returns:
        :class:`TrainResult` with the trained copy and the loss history.

    Raises:
        ValueError: data that do not fit the model (shapes, channels, labels).
    """
    cfg = cfg or TrainConfig()
    rng = np.random.default_rng(cfg.seed)
    train_list, val_list = _as_list(data), _as_list(val_data)

    def prepare(d: TrainData):
        return prepare_sample(
            d.image,
            d.labels,
            d.mask,
            model.config,
            model.normalization,
            cfg.label_mode,
            d.channel_axis,
            rng,
        )

    t_called = time.perf_counter()  # a time limit counts the preparation too
    samples = [prepare(d) for d in train_list]
    for d in val_list:  # fail early, before any training time is spent
        prepare(d)
    sampler = PatchSampler(
        samples, model.config, cfg, rng, [d.draw_weight for d in train_list]
    )
    prior = _mix_prior(train_list, samples, model.config.out_channels, cfg)
    device = resolve_device(cfg.device)
    autocast_dtype = resolve_precision(cfg.precision, device)
    net = copy.deepcopy(model).to(device)
    fmt = torch.channels_last if net.spatial_dims == 2 else torch.channels_last_3d
    channels_last = cfg.channels_last
    if channels_last is None:  # see TrainConfig.channels_last
        channels_last = autocast_dtype is None
    if channels_last:
        net = net.to(memory_format=fmt)
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    history: dict[str, list[float]] = {
        "step": [],
        "loss": [],
        "lr": [],
        "seconds": [],
        "val_step": [],
        "val_dice": [],
    }
    log_every = cfg.log_every or cfg.steps
    planned = cfg.steps  # changed by a time limit (planned_steps)
    t_start = time.perf_counter()
    logger.info(
        "Training %d steps%s, patches %s x %d on %s (%s)",
        cfg.steps,
        "" if cfg.max_seconds is None else f" (at most {cfg.max_seconds:g} s)",
        sampler.patch_shape,
        cfg.batch_size,
        device,
        "bfloat16" if autocast_dtype is not None else "float32",
    )

    def validate(step: int) -> Progress:
        net.eval()
        dice = evaluate_dice(net, val_list, cfg.label_mode, str(device))
        net.train()
        history["val_step"].append(step)
        history["val_dice"].append(dice)
        return Progress(
            step,
            planned,
            f"validation Dice {dice:.3f}",
            "validate",
            {"val_dice": dice},
        )

    try:
        net.train()
        t_first = t_start
        step = 0
        while step < planned:
            lr = cfg.lr * _lr_factor(step, cfg, planned)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x_np, y_np = sampler.sample_batch(cfg.batch_size)
            x = torch.from_numpy(x_np).to(device)
            if channels_last:
                x = x.contiguous(memory_format=fmt)
            y = torch.from_numpy(y_np).to(device)
            weights = (
                None
                if prior is None
                else torch.from_numpy(_balance_weights(y_np, prior)).to(device)
            )
            # Dropout draws from torch's global generator: seed it from our RNG for
            # this step only, so runs are reproducible and no global state leaks.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(rng.integers(2**63 - 1)))
                with autocast(device, autocast_dtype):
                    logits = net(x)
                loss = masked_ce_dice_loss(  # in float32 whatever the convs ran in
                    logits.float(),
                    y,
                    cfg.ce_weight,
                    cfg.dice_weight,
                    class_weights=weights,
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
            optimizer.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"The loss became {value} at step {step + 1}; lower the learning "
                    f"rate (now {cfg.lr})."
                )
            step += 1
            now = time.perf_counter()
            history["step"].append(step)
            history["loss"].append(value)
            history["lr"].append(lr)
            history["seconds"].append(now - t_start)
            if step == 1:
                t_first = now
            elif step >= PACE_STEPS:
                pace = (now - t_first) / (step - 1)
                planned = planned_steps(cfg, step, now - t_called, pace)
            if step % log_every == 0 or step == planned:
                limit = (
                    f" (time limit {cfg.max_seconds:g} s)"
                    if planned < cfg.steps
                    else ""
                )
                yield Progress(
                    step,
                    planned,
                    f"step {step}/{planned}{limit} loss {value:.4f}",
                    "train",
                    {"loss": value, "lr": lr},
                )
            if val_list and cfg.val_every and step % cfg.val_every == 0:
                yield validate(step)
        if val_list and (not cfg.val_every or planned % cfg.val_every):
            yield validate(planned)
    finally:
        net.eval()
        net.zero_grad(set_to_none=True)  # the returned model carries no gradients
        release_memory(device)
    net = net.to(memory_format=torch.contiguous_format)
    return TrainResult(model=net, history=history, config=cfg)


def train(
    model: ResUNet,
    data: TrainData | Sequence[TrainData],
    cfg: TrainConfig | None = None,
    val_data: TrainData | Sequence[TrainData] | None = None,
    show_progress: bool = False,
) -> TrainResult:
    """Eager form of :func:`iter_train` (optionally with a tqdm bar)."""
    return run_generator(iter_train(model, data, cfg, val_data), show_progress, "train")
