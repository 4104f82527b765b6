"""The network and what it is fed: its architecture (``ModelConfig``) and how raw
intensities are scaled for it (``NormalizationConfig``). A checkpoint records both."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from napari_resunet.core.config._base import (
    NormKind,
    Task,
    _as_int_tuple,
    _check_choice,
    _ConfigBase,
)


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
