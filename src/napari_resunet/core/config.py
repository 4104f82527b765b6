"""Typed, frozen configuration objects: one per concern.

``ModelConfig`` describes the network, ``NormalizationConfig`` how raw intensities
are scaled before they reach it, ``InferenceConfig`` how tiled prediction runs,
``TrainConfig`` how training runs and ``InstanceConfig`` how probabilities become
one label per cell. Each validates itself in ``__post_init__`` and round-trips
through plain dicts (``to_dict``/``from_dict``) so that checkpoints and widgets can
store them as JSON-like data. Which values suit a job (a fine-tuning round, say)
is measured, not declared, and lives beside the code it tunes
(:mod:`napari_resunet.core.training.finetune`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

NormKind = Literal["group", "instance", "batch", "none"]
BlendKind = Literal["gaussian", "constant"]
CompileMode = Literal["auto", "always", "never"]
Precision = Literal["auto", "float32", "bfloat16"]
LabelMode = Literal["auto", "classes", "foreground", "instances"]
Task = Literal["semantic", "instance"]
SeedKind = Literal["interior", "distance"]

_C = TypeVar("_C", bound="_ConfigBase")


def _check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    if value not in choices:
        raise ValueError(
            f"{name}={value!r} is not valid; choose one of {', '.join(map(repr, choices))}."
        )


def _as_int_tuple(name: str, value: Any, *, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    try:
        out = tuple(int(v) for v in value)
    except TypeError as err:
        raise ValueError(
            f"{name} must be a sequence of integers, got {value!r}."
        ) from err
    if any(v < 1 for v in out):
        raise ValueError(f"{name} must hold positive integers, got {out}.")
    return out


@dataclass(frozen=True)
class _ConfigBase:
    """Shared dict round-trip for the config dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        """Return a plain dict (tuples become lists) suitable for JSON/checkpoints."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls: type[_C], data: dict[str, Any]) -> _C:
        """Build from a dict made by ``to_dict``; unknown keys raise ``ValueError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(
                f"Unknown {cls.__name__} field(s): {', '.join(sorted(unknown))}."
            )
        return cls(**data)

    def replace(self: _C, **changes: Any) -> _C:
        """Return a copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class ModelConfig(_ConfigBase):
    """Architecture of a :class:`~napari_resunet.core.models.resunet.ResUNet`.

    Attributes:
        spatial_dims: 2 for (Y, X) images, 3 for (Z, Y, X) volumes.
        in_channels: image channels the network reads.
        out_channels: classes it predicts (softmax over channels; 2 = background /
            foreground).
        features: channels per level, finest first; ``len(features) - 1`` poolings.
        norm: normalisation layer. Group norm is the default: it normalises each
            patch by itself, whatever the batch. The Segment widget's new cell
            networks use batch norm, measured better there
            (``training.finetune.new_network_config``).
        dropout: dropout probability inside the residual blocks (0 disables it).
        task: ``"semantic"``: one class per voxel (``out_channels`` classes);
            ``"instance"``: three classes background / cell interior / cell
            boundary, turned into one label per cell by a seeded watershed.
    """

    spatial_dims: int = 3
    in_channels: int = 1
    out_channels: int = 2
    features: tuple[int, ...] = (16, 32, 64, 128)
    norm: NormKind = "group"
    dropout: float = 0.0
    task: Task = "semantic"

    def __post_init__(self) -> None:
        _check_choice("spatial_dims", self.spatial_dims, (2, 3))
        _check_choice("task", self.task, ("semantic", "instance"))
        if self.task == "instance" and self.out_channels != 3:
            raise ValueError(
                "An instance model predicts background, interior and boundary: use "
                f"out_channels=3 (got {self.out_channels})."
            )
        if int(self.in_channels) < 1:
            raise ValueError(f"in_channels must be >= 1, got {self.in_channels}.")
        if int(self.out_channels) < 2:
            raise ValueError(
                f"out_channels must be >= 2 (background plus at least one class), "
                f"got {self.out_channels}."
            )
        object.__setattr__(self, "features", _as_int_tuple("features", self.features))
        if len(self.features) < 2:
            raise ValueError(
                f"features needs at least two levels, e.g. (16, 32, 64, 128); got "
                f"{self.features}."
            )
        _check_choice("norm", self.norm, ("group", "instance", "batch", "none"))
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")

    @property
    def size_multiple(self) -> int:
        """Each spatial input size must be a multiple of this (``2**poolings``)."""
        return 2 ** (len(self.features) - 1)


@dataclass(frozen=True)
class NormalizationConfig(_ConfigBase):
    """How raw intensities are scaled before the network sees them.

    Robust percentile scaling maps the ``low`` percentile to 0 and the ``high``
    percentile to 1, computed per image (and per channel when ``per_channel``).
    ``equalize`` first applies global histogram equalisation. The scheme is stored
    in every checkpoint so that prediction uses what training used.

    ``anchor="foreground"`` sets the top of the scale from the image's bright
    objects instead of a percentile: the median of the pixels above an Otsu
    threshold of the log intensities maps to 0.5 (``high`` is then unused). A
    percentile lands on whatever is brightest, so one bright blob of debris
    covering more than ``100 - high`` percent of a field sets its scale and
    dims its nuclei (to a median of 0.11 in one BBBC039 field, against
    0.38-0.52 in the others); anchored on the foreground every BBBC039 field's
    nuclei land at 0.53-0.65, that field's at 0.55 (``docs/benchmarks.md``). For fluorescence, where
    the objects are the bright mode; not for EM.
    """

    low: float = 1.0
    high: float = 99.8
    per_channel: bool = True
    equalize: bool = False
    clip: bool = False
    anchor: Literal["percentile", "foreground"] = "percentile"

    def __post_init__(self) -> None:
        if not 0.0 <= self.low < self.high <= 100.0:
            raise ValueError(
                f"Percentiles must satisfy 0 <= low < high <= 100, got low={self.low}, "
                f"high={self.high}."
            )
        _check_choice("anchor", self.anchor, ("percentile", "foreground"))


@dataclass(frozen=True)
class InferenceConfig(_ConfigBase):
    """Tiled prediction settings.

    Attributes:
        tile_shape: tile size in array axis order ((Y, X) or (Z, Y, X)); ``None``
            picks a size from the model and image. A 2D model on a 3D stack runs slice
            by slice; give (Y, X) or (1, Y, X) then.
        overlap: fraction of the tile shared with its neighbour, in [0, 1).
        batch_size: tiles per forward pass.
        blend: ``"gaussian"`` weights tile centres over edges; ``"constant"`` averages.
        device: ``"auto"`` (cuda, then mps, then cpu) or a torch device string.
        use_compile: ``torch.compile`` the network. ``"auto"`` compiles only when the
            job is long enough to repay the warm-up (see ``compile_min_seconds``).
        compile_min_seconds: estimated eager run time above which "auto" compiles.
        channels_last: use the channels-last memory format (faster convs on CPU).
        precision: arithmetic of the network's convolutions. ``"auto"`` runs them
            in bfloat16 on a CPU that computes bfloat16 natively (AVX512-BF16 or
            AMX: recent AMD and Intel server and laptop chips) and in float32
            everywhere else; ``"bfloat16"`` asks for it on any CPU or CUDA GPU
            (emulated and slower on CPUs without it). Probabilities are always
            returned as float32. On 2 such cores bfloat16 predicts 1.8-2.5x faster
            and moves the starters' scores by under 0.001 (``docs/benchmarks.md``).
        test_time_flips: average the prediction over this many mirrorings of the
            image (test-time augmentation): 1 = none; then X, Y, Z, XY, XZ, YZ,
            XYZ. At most 4 count for a 2D network (in-plane mirrorings) and 8 for
            a 3D one; more are treated as all of them. Prediction takes that many
            times longer. On boundaries and membranes it raised Dice by
            0.006-0.014; nuclei2d's cells lost a little (F1 0.907 -> 0.903), its
            seed threshold being tuned on single passes (``docs/benchmarks.md``).
    """

    tile_shape: tuple[int, ...] | None = None
    overlap: float = 0.25
    batch_size: int = 1
    blend: BlendKind = "gaussian"
    device: str = "auto"
    use_compile: CompileMode = "auto"
    compile_min_seconds: float = 60.0
    channels_last: bool = True
    precision: Precision = "auto"
    test_time_flips: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "tile_shape",
            _as_int_tuple("tile_shape", self.tile_shape, allow_none=True),
        )
        if self.tile_shape is not None and len(self.tile_shape) not in (2, 3):
            raise ValueError(f"tile_shape needs 2 or 3 sizes, got {self.tile_shape}.")
        if not 0.0 <= float(self.overlap) < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {self.overlap}.")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}.")
        _check_choice("blend", self.blend, ("gaussian", "constant"))
        _check_choice("use_compile", self.use_compile, ("auto", "always", "never"))
        _check_choice("precision", self.precision, ("auto", "float32", "bfloat16"))
        if int(self.test_time_flips) < 1:
            raise ValueError(
                f"test_time_flips must be >= 1 (1 = no mirroring), got "
                f"{self.test_time_flips}."
            )
        object.__setattr__(self, "test_time_flips", int(self.test_time_flips))


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
            self,
            "patch_shape",
            _as_int_tuple("patch_shape", self.patch_shape, allow_none=True),
        )
        if self.patch_shape is not None and len(self.patch_shape) not in (2, 3):
            raise ValueError(f"patch_shape needs 2 or 3 sizes, got {self.patch_shape}.")
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


@dataclass(frozen=True)
class InstanceConfig(_ConfigBase):
    """Turning interior/boundary probabilities into one label per cell.

    Attributes:
        foreground_threshold: a voxel belongs to a cell where
            ``1 - p(background)`` exceeds this.
        seed_threshold: seeds are connected regions where ``p(interior)``
            exceeds this (``seeds="interior"``).
        seeds: ``"interior"`` (connected interior regions) or ``"distance"``
            (maxima of the distance transform of the interior, with anisotropic
            voxels weighted by their size; splits touching cells the network merged).
        min_seed_size: seeds smaller than this (voxels) are dropped.
        min_size: cells smaller than this (voxels) are removed.
        seed_min_distance: minimal distance between distance seeds, in voxels of
            the finest axis (unit-free, so a tuned value holds whatever unit the
            voxel size is given in).
    """

    foreground_threshold: float = 0.5
    seed_threshold: float = 0.5
    seeds: SeedKind = "interior"
    min_seed_size: int = 4
    min_size: int = 16
    seed_min_distance: float = 3.0

    def __post_init__(self) -> None:
        for name in ("foreground_threshold", "seed_threshold"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(
                    f"{name} must be in (0, 1), got {getattr(self, name)}."
                )
        _check_choice("seeds", self.seeds, ("interior", "distance"))
        if self.min_size < 0 or self.min_seed_size < 0:
            raise ValueError("min_size and min_seed_size must be >= 0.")


@dataclass(frozen=True)
class CommitteeConfig(_ConfigBase):
    """The annotation queue's second opinion on a 2D cell network
    (:mod:`napari_resunet.core.committee`): an ilastik-style random forest on
    scikit-image's ``multiscale_basic_features``, trained on the user's
    corrections. The defaults are what the simulated-user benchmark measured.

    Attributes:
        n_trees, max_depth: the forest's size.
        sigma_min, sigma_max: the features' Gaussian scales, in pixels (nuclei of
            10-40 px need the coarse ones).
        seed_min_distance: the forest's cells come from its foreground by a
            distance watershed with seeds at least this far apart (pixels): it
            has no boundary class to split touching cells by.
        min_class_pixels: corrected pixels each of background and cell needs
            before a forest is trained (below: no second opinion yet).
        max_train_pixels: corrected pixels drawn at most to train on (a seeded
            subsample beyond), which bounds the fit's memory.
        tree_samples: pixels each tree is grown from (a bootstrap sample of
            this size, scikit-learn's ``max_samples``; 0: as many as there are
            corrected pixels), which bounds the fit's time: 20 trees on 76,000
            corrected pixels took 2.1 s on two cores, on 20,000 each
            0.7 s (`benchmarks/bench_committee.py`).
        max_pixels: images with more pixels than this get no second opinion: the
            features take ``20 * channels * 4`` bytes per pixel.
        seed: the forest's and the subsample's random seed.
    """

    n_trees: int = 20
    max_depth: int = 10
    sigma_min: float = 1.0
    sigma_max: float = 16.0
    seed_min_distance: float = 6.0
    min_class_pixels: int = 50
    max_train_pixels: int = 200_000
    tree_samples: int = 20_000
    max_pixels: int = 2048 * 2048
    seed: int = 0

    def __post_init__(self) -> None:
        if int(self.n_trees) < 1 or int(self.max_depth) < 1:
            raise ValueError("n_trees and max_depth must be >= 1.")
        if not 0.0 < self.sigma_min <= self.sigma_max:
            raise ValueError(
                f"Need 0 < sigma_min <= sigma_max, got {self.sigma_min}, "
                f"{self.sigma_max}."
            )
        if self.seed_min_distance <= 0:
            raise ValueError("seed_min_distance must be > 0.")
        if self.tree_samples < 0:
            raise ValueError(f"tree_samples must be >= 0, got {self.tree_samples}.")
        if min(self.min_class_pixels, self.max_train_pixels, self.max_pixels) < 1:
            raise ValueError(
                "min_class_pixels, max_train_pixels and max_pixels must be >= 1."
            )
