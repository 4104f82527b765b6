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

from napari_resunet.core.config._base import (
    BlendKind,
    CompileMode,
    LabelMode,
    NormKind,
    Precision,
    SeedKind,
    Task,
)
from napari_resunet.core.config.committee import CommitteeConfig
from napari_resunet.core.config.inference import InferenceConfig, InstanceConfig
from napari_resunet.core.config.network import ModelConfig, NormalizationConfig
from napari_resunet.core.config.training import TrainConfig

__all__ = [
    "BlendKind",
    "CommitteeConfig",
    "CompileMode",
    "InferenceConfig",
    "InstanceConfig",
    "LabelMode",
    "ModelConfig",
    "NormKind",
    "NormalizationConfig",
    "Precision",
    "SeedKind",
    "Task",
    "TrainConfig",
]
