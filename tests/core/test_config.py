import pytest

from napari_resunet.core.config import (
    InferenceConfig,
    ModelConfig,
    NormalizationConfig,
    TrainConfig,
)


@pytest.mark.parametrize(
    "cfg",
    [
        ModelConfig(),
        ModelConfig(
            spatial_dims=2,
            in_channels=3,
            out_channels=4,
            features=(8, 16),
            norm="batch",
            dropout=0.2,
        ),
        NormalizationConfig(low=2, high=98, per_channel=False, equalize=True),
        NormalizationConfig(anchor="foreground"),
        InferenceConfig(),
        InferenceConfig(
            tile_shape=(16, 64, 64), overlap=0.5, blend="constant", use_compile="never"
        ),
        TrainConfig(),
        TrainConfig(
            patch_shape=(32, 32, 32),
            steps=5,
            label_mode="foreground",
            augment_elastic=True,
            precision="bfloat16",
            channels_last=False,
        ),
    ],
)
def test_dict_round_trip(cfg):
    d = cfg.to_dict()
    assert all(not isinstance(v, tuple) for v in d.values())  # JSON-friendly
    assert type(cfg).from_dict(d) == cfg


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (ModelConfig, {"spatial_dims": 4}, "spatial_dims"),
        (ModelConfig, {"out_channels": 1}, "out_channels"),
        (ModelConfig, {"features": (16,)}, "at least two levels"),
        (ModelConfig, {"features": (16, 0)}, "positive"),
        (ModelConfig, {"norm": "layer"}, "norm"),
        (ModelConfig, {"dropout": 1.0}, "dropout"),
        (NormalizationConfig, {"low": 99, "high": 1}, "Percentiles"),
        (InferenceConfig, {"overlap": 1.0}, "overlap"),
        (InferenceConfig, {"tile_shape": (64,)}, "tile_shape"),
        (InferenceConfig, {"blend": "linear"}, "blend"),
        (InferenceConfig, {"batch_size": 0}, "batch_size"),
        (InferenceConfig, {"precision": "float16"}, "precision"),
        (TrainConfig, {"precision": "half"}, "precision"),
        (TrainConfig, {"steps": 0}, "steps"),
        (TrainConfig, {"lr": 0}, "lr"),
        (TrainConfig, {"label_mode": "cells"}, "label_mode"),
        (TrainConfig, {"ce_weight": 0, "dice_weight": 0}, "not both 0"),
        (TrainConfig, {"intensity_contrast": -0.1}, "intensity_contrast"),
    ],
)
def test_validation_errors(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="Unknown ModelConfig field"):
        ModelConfig.from_dict({"spatial_dims": 2, "width": 3})


def test_size_multiple():
    assert ModelConfig(features=(16, 32, 64, 128)).size_multiple == 8
    assert ModelConfig(features=(64, 128, 256, 512, 1024)).size_multiple == 16


def test_instance_config_validation_and_round_trip():
    from napari_resunet.core.config import InstanceConfig

    cfg = InstanceConfig(seeds="distance", min_size=30)
    assert InstanceConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="seed_threshold"):
        InstanceConfig(seed_threshold=1.0)
    with pytest.raises(ValueError, match="seeds"):
        InstanceConfig(seeds="random")
    assert ModelConfig(task="instance", out_channels=3).task == "instance"
