"""How training runs (``TrainConfig``)."""

from __future__ import annotations

from dataclasses import dataclass

from napari_resunet.core.config._base import (
    LabelMode,
    Precision,
    _as_spatial_shape,
    _check_choice,
    _ConfigBase,
)


@dataclass(frozen=True)
class TrainConfig(_ConfigBase):
    """Training settings.

    Attributes:
        patch_shape: patch size in array axis order; ``None`` picks 256² in 2D and
            64³ in 3D (clipped to the image).
        batch_size: patches per step.
        steps: optimiser steps.
        lr: AdamW peak learning rate (cosine decay to ``lr * min_lr_ratio``).
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps before the cosine decay.
        ce_weight / dice_weight: weights of cross-entropy and soft Dice in the loss.
        label_mode: how labels become targets. ``"classes"``: class ids 0..C-1;
            ``"foreground"``: any non-zero label (e.g. instance ids) is class 1;
            ``"instances"``: instance ids become background (0) / interior (1) /
            boundary (2, where the id changes); ``"auto"``: ``"instances"`` for
            instance models, ``"classes"`` otherwise.
        val_every: run validation every this many steps (when validation data are
            given; 0 = only at the end).
        log_every: yield a progress record every this many steps.
        augment_flip / augment_rot90 / augment_intensity / augment_elastic: joint
            image+label augmentations; ``elastic_alpha``/``elastic_sigma`` set the
            displacement size and smoothness in voxels.
        intensity_contrast: ``augment_intensity`` multiplies a patch by a factor
            drawn log-uniformly from ``exp(±intensity_contrast)`` (0.29:
            x0.75-1.34).
        foreground_fraction: fraction of patches centred on a non-background
            (annotated) voxel, the rest uniformly placed.
        match_class_mix: with sparse annotation (a mask), weight each class's
            annotated voxels (in both loss terms) so that they count as if they
            had the class mix of the whole image (``TrainData.class_mix``, by
            default the labels' mix over all voxels). Corrections are not a fair
            sample: the patches a user or the annotation queue picks are the hard
            ones, crowded with cell edges, and a network fine-tuned on them alone
            drifts towards seeing cells everywhere. Off by default: it helped a 2D
            cell network trained on other nuclei and hurt the 3D boundary starter
            model (``docs/benchmarks.md``).
        seed: seeds all randomness of the run (same seed -> same weights on CPU).
        device: ``"auto"`` or a torch device string.
        channels_last: channels-last memory format during training; ``None``
            (default) picks it for float32 and the contiguous layout for bfloat16.
            In bfloat16 GroupNorm's backward pass, several times slower in
            channels-last than in the contiguous layout, outweighs the faster
            convolutions: a 2D fine-tuning step took 0.138 s channels-last and
            0.114 s contiguous, a 3D one 0.525 s and 0.435 s (float32
            channels-last: 0.143 s and 0.635 s).
        precision: arithmetic of the forward pass (``InferenceConfig.precision``);
            weights, gradients, the optimiser and the loss stay float32.
        max_seconds: a time limit for the run, for interactive rounds; ``None``
            (default): all ``steps``. After the first few steps the run measures
            its pace and plans only as many steps as fit in the time left, never
            fewer than half of ``steps`` (below that a round learns too little to
            be worth its time); the learning-rate schedule is laid out over the
            planned steps, so a shortened run still ends at ``min_lr_ratio``.
            Where all steps fit, the run is exactly the one without a limit.
    """

    patch_shape: tuple[int, ...] | None = None
    batch_size: int = 2
    steps: int = 200
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 10
    min_lr_ratio: float = 0.05
    ce_weight: float = 1.0
    dice_weight: float = 1.0
    label_mode: LabelMode = "auto"
    val_every: int = 50
    log_every: int = 1
    augment_flip: bool = True
    augment_rot90: bool = True
    augment_intensity: bool = True
    augment_elastic: bool = False
    elastic_alpha: float = 8.0
    elastic_sigma: float = 6.0
    intensity_contrast: float = 0.29
    foreground_fraction: float = 0.5
    match_class_mix: bool = False
    seed: int = 0
    device: str = "auto"
    channels_last: bool | None = None
    precision: Precision = "float32"
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "patch_shape", _as_spatial_shape("patch_shape", self.patch_shape)
        )
        for name in ("batch_size", "steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        for name in ("warmup_steps", "val_every", "log_every"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}.")
        if self.max_seconds is not None:
            if not float(self.max_seconds) > 0:
                raise ValueError(
                    f"max_seconds must be > 0 or None, got {self.max_seconds}."
                )
            object.__setattr__(self, "max_seconds", float(self.max_seconds))
        if (
            self.ce_weight < 0
            or self.dice_weight < 0
            or self.ce_weight + self.dice_weight == 0
        ):
            raise ValueError("ce_weight and dice_weight must be >= 0 and not both 0.")
        if not self.intensity_contrast >= 0.0:
            raise ValueError(
                f"intensity_contrast must be >= 0, got {self.intensity_contrast}."
            )
        if not 0.0 <= self.foreground_fraction <= 1.0:
            raise ValueError(
                f"foreground_fraction must be in [0, 1], got {self.foreground_fraction}."
            )
        _check_choice(
            "label_mode",
            self.label_mode,
            ("auto", "classes", "foreground", "instances"),
        )
        _check_choice("precision", self.precision, ("auto", "float32", "bfloat16"))
