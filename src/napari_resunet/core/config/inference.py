"""How prediction runs (``InferenceConfig``) and how its probabilities become one
label per cell (``InstanceConfig``)."""

from __future__ import annotations

from dataclasses import dataclass

from napari_resunet.core.config._base import (
    BlendKind,
    CompileMode,
    Precision,
    SeedKind,
    _as_spatial_shape,
    _check_choice,
    _ConfigBase,
)


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
            self, "tile_shape", _as_spatial_shape("tile_shape", self.tile_shape)
        )
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
