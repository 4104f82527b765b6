"""napari-resunet: interactive 2D/3D residual U-Net segmentation for napari.

The package root re-exports a few core names. It never imports the widgets, so
``import napari_resunet`` works on a headless server without Qt.
"""

from __future__ import annotations

__version__ = "0.1.0"

from napari_resunet.core import (  # noqa: E402
    InferenceConfig,
    ModelConfig,
    NormalizationConfig,
    ResUNet,
    TrainConfig,
    build_model,
    load_checkpoint,
    predict,
    save_checkpoint,
    train,
)

__all__ = [
    "InferenceConfig",
    "ModelConfig",
    "NormalizationConfig",
    "ResUNet",
    "TrainConfig",
    "__version__",
    "build_model",
    "load_checkpoint",
    "predict",
    "save_checkpoint",
    "train",
]
