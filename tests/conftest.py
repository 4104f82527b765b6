"""Shared fixtures: small deterministic data, tiny networks, the shared data folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_resunet.core import ModelConfig, build_model
from napari_resunet.core.synthetic import make_blobs

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# Keep CPU tests predictable on small CI machines.
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def blobs2d() -> tuple[np.ndarray, np.ndarray]:
    return make_blobs((96, 112), n_objects=10, radius=7, seed=3)


@pytest.fixture
def blobs3d() -> tuple[np.ndarray, np.ndarray]:
    return make_blobs((24, 48, 40), n_objects=6, radius=5, seed=4)


def tiny_model(spatial_dims: int = 2, **kw) -> torch.nn.Module:
    cfg = ModelConfig(
        spatial_dims=spatial_dims, features=kw.pop("features", (4, 8, 16)), **kw
    )
    return build_model(cfg, seed=kw.pop("seed", 0))


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present beside the checkout")
    return SHARED_DATA
