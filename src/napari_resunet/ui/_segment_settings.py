"""The Segment widget's advanced settings: tiles, device, test-time flips and
how cells are cut apart, read into the core's config objects."""

from __future__ import annotations

from magicgui.widgets import ComboBox, Container, FloatSpinBox, LineEdit, SpinBox

from napari_resunet.core import InferenceConfig
from napari_resunet.core.checks import parse_tile_shape
from napari_resunet.core.config import InstanceConfig
from napari_resunet.ui._tooltips import tipped


class SegmentSettings(Container):
    """The settings behind the Segment widget's "Advanced settings" box, with the
    core's defaults to start with."""

    def __init__(self) -> None:
        defaults, inst = InferenceConfig(), InstanceConfig()
        self.tile_edit = LineEdit(label="tile shape", value="auto")
        self.overlap_spin = FloatSpinBox(
            label="overlap", value=defaults.overlap, min=0.0, max=0.9, step=0.05
        )
        self.batch_spin = SpinBox(
            label="tiles per batch", value=defaults.batch_size, min=1, max=64
        )
        self.device_combo = ComboBox(
            label="device",
            choices=["auto", "cpu", "cuda", "mps"],
            value=defaults.device,
        )
        self.flips_spin = SpinBox(
            label="test-time flips", value=defaults.test_time_flips, min=1, max=8
        )
        self.min_size_spin = SpinBox(
            label="min cell size", value=inst.min_size, min=0, max=10**7
        )
        self.seeds_combo = ComboBox(
            label="cell seeds", choices=["interior", "distance"], value=inst.seeds
        )
        self.seed_threshold_spin = FloatSpinBox(
            label="seed threshold",
            value=inst.seed_threshold,
            min=0.05,
            max=0.99,
            step=0.05,
        )
        super().__init__(
            widgets=tipped(
                (self.tile_edit, "tile"),
                (self.overlap_spin, "overlap"),
                (self.batch_spin, "batch"),
                (self.device_combo, "device"),
                (self.flips_spin, "flips"),
                (self.min_size_spin, "min_size"),
                (self.seeds_combo, "seeds"),
                (self.seed_threshold_spin, "seed_threshold"),
            )
        )

    def inference_config(self) -> InferenceConfig:
        """The tiling, device and flips as typed (``ValueError`` with a message
        the user can act on for a tile shape that is not understood)."""
        return InferenceConfig(
            tile_shape=parse_tile_shape(self.tile_edit.value),
            overlap=float(self.overlap_spin.value),
            batch_size=int(self.batch_spin.value),
            device=self.device_combo.value,
            test_time_flips=int(self.flips_spin.value),
            # A viewer job must stay cancellable within a second: never block on a
            # compile warm-up here.
            use_compile="never",
        )

    def instance_config(self, base: InstanceConfig | None = None) -> InstanceConfig:
        """``base`` (a tuned model's own cell settings, or the defaults) with the
        three the form shows as set there."""
        return (base or InstanceConfig()).replace(
            min_size=int(self.min_size_spin.value),
            seeds=self.seeds_combo.value,
            seed_threshold=float(self.seed_threshold_spin.value),
        )

    def show_cell_settings(self, cfg: InstanceConfig) -> None:
        """Put a model's own cell settings in the form."""
        self.min_size_spin.value = cfg.min_size
        self.seeds_combo.value = cfg.seeds
        self.seed_threshold_spin.value = cfg.seed_threshold
