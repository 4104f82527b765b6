"""Shipped starter models: present, loadable, and doing their job on shipped data."""

import pytest
from tests.conftest import tiny_model

from napari_resunet.core import InferenceConfig, predict, save_checkpoint
from napari_resunet.core.config import InstanceConfig
from napari_resunet.core.inference.postprocess import labels_from_probabilities
from napari_resunet.core.io import load_sample
from napari_resunet.core.metrics import match_instances
from napari_resunet.core.models.zoo import (
    STARTER_MODELS,
    available_starter_models,
    load_model,
    starter_model_card,
)


def test_all_starter_models_ship_with_cards():
    assert available_starter_models() == list(STARTER_MODELS)
    for name in STARTER_MODELS:
        card = starter_model_card(name)
        assert "Training data" in card and "Intended use" in card, name
        model, ckpt = load_model(name)
        assert model.config.task == "instance"
        assert model.instance_config is not None  # tuned post-processing ships too
        assert ckpt.training["train_config"]["steps"] > 0


def test_nuclei2d_segments_the_shipped_field():
    """Smoke test on the shipped BBBC039 field (a training field: the held-out
    accuracy is measured by benchmarks/bench_accuracy.py)."""
    image, labels = load_sample("nuclei2d")
    model, _ = load_model("nuclei2d")
    probs = predict(model, image.data, InferenceConfig(use_compile="never"))
    cells = labels_from_probabilities(probs, model.config, model.instance_config)
    assert match_instances(cells, labels.data, (0.5,))[0]["f1"] > 0.85


def test_unknown_names_and_paths(tmp_path):
    from napari_resunet.core import CheckpointError

    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "none.pt")
    path = save_checkpoint(
        tmp_path / "nuclei2d", tiny_model(2)
    )  # a path wins over a name
    model, _ = load_model(path)
    assert model.config.features == (4, 8, 16)


def test_instance_config_travels_with_the_checkpoint(tmp_path):
    from napari_resunet.core import load_checkpoint

    model = tiny_model(2, out_channels=3, task="instance")
    model.instance_config = InstanceConfig(seed_threshold=0.8, min_size=5)
    loaded, ckpt = load_checkpoint(save_checkpoint(tmp_path / "m.pt", model))
    assert loaded.instance_config == model.instance_config == ckpt.instance_config
    plain, _ = load_checkpoint(save_checkpoint(tmp_path / "p.pt", tiny_model(2)))
    assert plain.instance_config is None
