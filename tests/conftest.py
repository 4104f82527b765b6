"""Shared fixtures: small deterministic data and tiny networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_resunet.core import ModelConfig, build_model
from napari_resunet.core.synthetic import make_blobs

# Keep CPU tests predictable on small CI machines.
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def blobs2d() -> tuple[np.ndarray, np.ndarray]:
    return make_blobs((96, 112), n_objects=10, radius=7, seed=3)


@pytest.fixture
def blobs3d() -> tuple[np.ndarray, np.ndarray]:
    return make_blobs((24, 48, 40), n_objects=6, radius=5, seed=4)


def drain(gen) -> tuple[list, object]:
    """Run a progress generator to its end: its records and its return value."""
    records = []
    while True:
        try:
            records.append(next(gen))
        except StopIteration as stop:
            return records, stop.value


def tiny_model(spatial_dims: int = 2, seed: int = 0, **kw) -> torch.nn.Module:
    """A small network for fast tests (features 4-8-16 unless given)."""
    cfg = ModelConfig(
        spatial_dims=spatial_dims, features=kw.pop("features", (4, 8, 16)), **kw
    )
    return build_model(cfg, seed=seed)
