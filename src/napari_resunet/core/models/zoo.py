"""Starter models shipped with the package (no download at run time)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import torch

from napari_resunet.core.models.checkpoint import Checkpoint, load_checkpoint
from napari_resunet.core.models.resunet import ResUNet

STARTER_MODELS: dict[str, str] = {
    "nuclei2d": "2D fluorescent nuclei (BBBC039), one label per nucleus",
    "em_boundaries3d": "3D FIB-SEM neuron boundaries (FlyEM medulla), one label per cell",
    "nuclei3d": "3D fluorescent nuclei in early embryos (BBBC050), demonstration",
}


def _models_dir() -> Path:
    return Path(str(resources.files("napari_resunet.data") / "models"))


def available_starter_models() -> list[str]:
    """Names of the starter models whose weights are installed."""
    root = _models_dir()
    return [name for name in STARTER_MODELS if (root / f"{name}.pt").is_file()]


def starter_model_card(name: str) -> str:
    """The model card (Markdown) of a starter model, or '' if it has none."""
    card = _models_dir() / f"{name}.md"
    return card.read_text(encoding="utf-8") if card.is_file() else ""


def load_model(
    name_or_path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[ResUNet, Checkpoint]:
    """Load a starter model by name, or any checkpoint by path."""
    text = str(name_or_path)
    if text in STARTER_MODELS and not Path(text).exists():
        path = _models_dir() / f"{text}.pt"
        if not path.is_file():
            raise ValueError(
                f"The starter model {text!r} is not installed with this copy of "
                f"napari-resunet."
            )
        return load_checkpoint(path, device)
    return load_checkpoint(text, device)
