"""The pure-Python core: networks, tiled inference, training, metrics and I/O.

Nothing here imports Qt, magicgui or napari; a test enforces it. Widgets, the CLI
and notebooks all call these functions.
"""

from __future__ import annotations

from napari_resunet.core.config import (
    InferenceConfig,
    ModelConfig,
    NormalizationConfig,
    TrainConfig,
)
from napari_resunet.core.device import resolve_device
from napari_resunet.core.inference.postprocess import probabilities_to_labels
from napari_resunet.core.inference.predict import iter_predict, predict
from napari_resunet.core.inference.tiling import TilePlan, plan_tiles
from napari_resunet.core.models.checkpoint import (
    Checkpoint,
    CheckpointError,
    build_model,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from napari_resunet.core.models.resunet import ResUNet
from napari_resunet.core.normalize import normalize_image
from napari_resunet.core.progress import Progress
from napari_resunet.core.training.trainer import (
    TrainData,
    TrainResult,
    iter_train,
    train,
)

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "InferenceConfig",
    "ModelConfig",
    "NormalizationConfig",
    "Progress",
    "ResUNet",
    "TilePlan",
    "TrainConfig",
    "TrainData",
    "TrainResult",
    "build_model",
    "iter_predict",
    "iter_train",
    "load_checkpoint",
    "normalize_image",
    "plan_tiles",
    "predict",
    "probabilities_to_labels",
    "read_checkpoint",
    "resolve_device",
    "save_checkpoint",
    "train",
]
