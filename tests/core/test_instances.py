"""Instance mode: targets from instance labels, watershed post-processing, training."""

import numpy as np
import pytest
from skimage.draw import disk

from napari_resunet.core import (
    InferenceConfig,
    ModelConfig,
    TrainConfig,
    TrainData,
    build_model,
    predict,
    train,
)
from napari_resunet.core.config import InstanceConfig
from napari_resunet.core.inference.postprocess import (
    labels_from_probabilities,
    probabilities_to_instances,
)
from napari_resunet.core.metrics import match_instances
from napari_resunet.core.synthetic import make_blobs
from napari_resunet.core.training.dataset import instance_targets


def _two_touching(shape=(40, 60)):
    lab = np.zeros(shape, np.uint16)
    lab[disk((20, 20), 10, shape=shape)] = 1
    lab[disk((20, 38), 10, shape=shape)] = 2
    return lab


def test_instance_targets_mark_boundaries_between_touching_cells():
    lab = _two_touching()
    t = instance_targets(lab)
    assert set(np.unique(t)) == {0, 1, 2}
    assert lab[20, 28] == 1 and lab[20, 29] == 2
    assert t[20, 28] == 2 and t[20, 29] == 2  # both sides of the contact
    assert t[20, 20] == 1 and t[0, 0] == 0
    # dense labels (no background): boundaries only where ids change
    dense = np.ones((6, 6), int)
    dense[:, 3:] = 2
    td = instance_targets(dense)
    assert (td[:, 2:4] == 2).all() and (td[:, :2] == 1).all()
    # 3D
    vol = np.zeros((5, 8, 8), int)
    vol[1:4, 2:6, 2:6] = 3
    assert instance_targets(vol)[2, 3, 3] == 1 and instance_targets(vol)[1, 3, 3] == 2


def test_watershed_recovers_instances_from_ideal_probabilities():
    lab = _two_touching()
    t = instance_targets(lab)
    probs = np.stack([t == 0, t == 1, t == 2]).astype(np.float32)
    inst = probabilities_to_instances(probs, InstanceConfig(min_size=1))
    assert inst.dtype == np.uint32 and inst.max() == 2
    assert match_instances(inst, lab, (0.8,))[0]["f1"] == 1.0


def test_distance_seeds_split_merged_cells_and_respect_anisotropy():
    lab = _two_touching()
    fg = lab > 0
    probs = np.stack([~fg, fg, np.zeros_like(fg)]).astype(
        np.float32
    )  # no boundary seen
    assert probabilities_to_instances(probs, InstanceConfig(min_size=1)).max() == 1
    cfg = InstanceConfig(min_size=1, seeds="distance", seed_min_distance=5)
    assert probabilities_to_instances(probs, cfg).max() == 2
    # distances are physical: with y voxels 4x larger the pair is a tall shape
    # whose waist is as wide as each half, so it is no longer split
    assert probabilities_to_instances(probs, cfg, voxel_size=(4.0, 1.0)).max() == 1


def test_min_size_removes_specks_and_empty_gives_zeros():
    lab = _two_touching()
    t = instance_targets(lab)
    probs = np.stack([t == 0, t == 1, t == 2]).astype(np.float32)
    probs[:, 35, 55] = (0, 1, 0)  # a one-pixel speck
    assert (
        probabilities_to_instances(
            probs, InstanceConfig(min_size=1, min_seed_size=1)
        ).max()
        == 3
    )
    assert probabilities_to_instances(probs, InstanceConfig(min_size=20)).max() == 2
    empty = np.zeros((3, 10, 10), np.float32)
    empty[0] = 1
    assert probabilities_to_instances(empty).max() == 0
    with pytest.raises(ValueError, match="3, \\*spatial"):
        probabilities_to_instances(np.zeros((2, 4, 4)))


def test_instance_model_config_validation():
    with pytest.raises(ValueError, match="out_channels=3"):
        ModelConfig(task="instance", out_channels=2)


@pytest.mark.parametrize("dims", [2, 3])
def test_instance_model_learns_to_separate_cells(dims):
    shape = (96, 96) if dims == 2 else (24, 48, 48)
    img, lab = make_blobs(
        shape, n_objects=14 if dims == 2 else 8, radius=7 if dims == 2 else 5, seed=5
    )
    model = build_model(
        ModelConfig(
            spatial_dims=dims, out_channels=3, task="instance", features=(8, 16, 32)
        )
    )
    patch = (64, 64) if dims == 2 else (16, 32, 32)
    res = train(
        model,
        TrainData(img, lab),
        TrainConfig(steps=80, patch_shape=patch, lr=5e-3, batch_size=4),
    )
    probs = predict(res.model, img, InferenceConfig(use_compile="never"))
    inst = labels_from_probabilities(
        probs, res.model.config, InstanceConfig(min_size=8)
    )
    assert inst.dtype == np.uint32
    f1 = match_instances(inst, lab, (0.5,))[0]["f1"]
    assert f1 > 0.6, f1
