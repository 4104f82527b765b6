import numpy as np
import pytest
import torch
from tests.conftest import drain, tiny_model

from napari_resunet.core import (
    InferenceConfig,
    TrainConfig,
    TrainData,
    iter_train,
    load_checkpoint,
    predict,
    save_checkpoint,
    train,
)
from napari_resunet.core.io import load_sample
from napari_resunet.core.training.augment import augment_pair
from napari_resunet.core.training.dataset import PatchSampler, prepare_sample
from napari_resunet.core.training.losses import IGNORE_INDEX, masked_ce_dice_loss

FAST = TrainConfig(
    steps=30,
    batch_size=2,
    patch_shape=(48, 48),
    label_mode="foreground",
    lr=5e-3,
    device="cpu",
)


def _mean(v, a, b):
    return float(np.mean(v[a:b]))


def test_loss_falls_on_synthetic_2d(blobs2d):
    img, lab = blobs2d
    res = train(tiny_model(2), TrainData(img, lab), FAST)
    loss = res.history["loss"]
    assert len(loss) == FAST.steps
    assert _mean(loss, -5, None) < 0.7 * _mean(loss, 0, 5)
    assert not res.model.training


def test_loss_falls_on_synthetic_3d_with_elastic(blobs3d):
    img, lab = blobs3d
    cfg = FAST.replace(patch_shape=(16, 32, 32), steps=25, augment_elastic=True)
    res = train(tiny_model(3), TrainData(img, lab), cfg)
    loss = res.history["loss"]
    assert _mean(loss, -5, None) < 0.8 * _mean(loss, 0, 5)


def test_training_on_real_sample_lowers_loss_and_checkpoint_round_trips(tmp_path):
    """A short run on the shipped BBBC039 field (real microscopy) improves the net,
    and save/load reproduces its outputs exactly."""
    image, labels = load_sample("nuclei2d")
    img, lab = image.data[:256, :256], labels.data[:256, :256]
    model = tiny_model(2, features=(8, 16, 32))
    cfg = FAST.replace(steps=40, patch_shape=(64, 64))
    res = train(model, TrainData(img, lab), cfg)
    loss = res.history["loss"]
    assert _mean(loss, -8, None) < 0.6 * _mean(loss, 0, 5)
    icfg = InferenceConfig(use_compile="never")
    before = predict(model, img, icfg)
    after = predict(res.model, img, icfg)
    fg = lab > 0
    from napari_resunet.core.metrics import dice_per_class

    d_before = dice_per_class(before.argmax(0), fg.astype(int), 2)[1]
    d_after = dice_per_class(after.argmax(0), fg.astype(int), 2)[1]
    assert d_after > max(0.6, d_before + 0.1), (d_before, d_after)

    path = save_checkpoint(tmp_path / "m.pt", res.model, res.metadata())
    loaded, ckpt = load_checkpoint(path)
    np.testing.assert_array_equal(predict(loaded, img, icfg), after)
    assert ckpt.training["history"]["loss"] == pytest.approx(loss)
    assert ckpt.training["train_config"]["steps"] == 40


def test_same_seed_same_weights(blobs2d):
    img, lab = blobs2d
    cfg = FAST.replace(steps=4, augment_elastic=True)
    a = train(tiny_model(2, dropout=0.2), TrainData(img, lab), cfg).model.state_dict()
    b = train(tiny_model(2, dropout=0.2), TrainData(img, lab), cfg).model.state_dict()
    c = train(
        tiny_model(2, dropout=0.2), TrainData(img, lab), cfg.replace(seed=1)
    ).model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_bfloat16_training_learns_like_float32(blobs2d):
    """bfloat16 forward passes (emulated where the CPU lacks them) train float32
    weights as far as float32 does, reproducibly."""
    img, lab = blobs2d
    cfg = FAST.replace(precision="bfloat16")
    a = train(tiny_model(2), TrainData(img, lab), cfg)
    b = train(tiny_model(2), TrainData(img, lab), cfg)
    ref = train(tiny_model(2), TrainData(img, lab), FAST)
    assert all(p.dtype == torch.float32 for p in a.model.parameters())
    loss, loss32 = a.history["loss"], ref.history["loss"]
    assert loss != loss32  # the forward passes did run in bfloat16
    assert _mean(loss, -5, None) < 0.7 * _mean(loss, 0, 5)
    assert _mean(loss, -5, None) == pytest.approx(_mean(loss32, -5, None), rel=0.15)
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    icfg = InferenceConfig(use_compile="never", precision="float32")
    p16, p32 = predict(a.model, img, icfg), predict(ref.model, img, icfg)
    assert (p16.argmax(0) == p32.argmax(0)).mean() > 0.97


def test_ignored_voxels_do_not_affect_loss_or_gradient():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    target = torch.randint(0, 3, (2, 8, 8))
    ignore = torch.rand(2, 8, 8) < 0.5
    t1 = target.clone()
    t1[ignore] = IGNORE_INDEX
    loss1 = masked_ce_dice_loss(logits, t1)
    (g1,) = torch.autograd.grad(loss1, logits)
    # change logits wherever the target is ignored: loss and gradient must not move
    other = logits.detach().clone()
    other[ignore.unsqueeze(1).expand_as(other)] = (
        torch.randn(int(ignore.sum()) * 3) * 10
    )
    other.requires_grad_(True)
    loss2 = masked_ce_dice_loss(other, t1)
    (g2,) = torch.autograd.grad(loss2, other)
    torch.testing.assert_close(loss1, loss2)
    torch.testing.assert_close(g1, g2)
    assert g1.permute(0, 2, 3, 1)[ignore].abs().max() == 0
    # and annotated voxels do move it
    assert masked_ce_dice_loss(logits, target) != loss1


def test_loss_is_zero_without_annotation():
    logits = torch.randn(1, 2, 4, 4, requires_grad=True)
    loss = masked_ce_dice_loss(logits, torch.full((1, 4, 4), IGNORE_INDEX))
    loss.backward()
    assert loss.item() == 0 and logits.grad.abs().max() == 0


def test_sparse_mask_training_only_learns_annotated_region(blobs2d):
    img, lab = blobs2d
    mask = np.zeros(lab.shape, bool)
    mask[:40] = True
    model = tiny_model(2)
    sample = prepare_sample(
        img, lab, mask, model.config, model.normalization, "foreground"
    )
    assert sample.n_annotated == mask.sum()
    assert (sample.target[~mask] == IGNORE_INDEX).all()
    sampler = PatchSampler(
        [sample],
        model.config,
        FAST.replace(augment_flip=False, augment_rot90=False),
        np.random.default_rng(0),
    )
    _, tgt = sampler.sample_batch(8)
    assert ((tgt != IGNORE_INDEX).reshape(8, -1).any(1)).all()  # every patch has labels


def test_draw_weights_set_each_images_share_of_patches(blobs2d):
    img, _ = blobs2d
    model = tiny_model(2)

    def sample(value, rows):  # labels all `value`, annotated in the first rows
        mask = np.zeros(img.shape, bool)
        mask[:rows] = True
        lab = np.full(img.shape, value, np.int32)
        return prepare_sample(
            img, lab, mask, model.config, model.normalization, "foreground"
        )

    # 3x more annotated voxels in the background image; a weight of 1/3 on it
    # (and 1/3 again for the wanted 1:3 share) leaves the cell image 3 of 4 draws
    samples = [sample(0, 48), sample(1, 16)]
    cfg = FAST.replace(augment_flip=False, augment_rot90=False)

    def cell_share(weights):
        sampler = PatchSampler(
            samples, model.config, cfg, np.random.default_rng(1), weights
        )
        _, tgt = sampler.sample_batch(400)
        return float((tgt == 1).reshape(400, -1).any(1).mean())

    assert cell_share(None) == pytest.approx(0.25, abs=0.06)  # by voxel count
    assert cell_share([1 / 9, 1.0]) == pytest.approx(0.75, abs=0.06)
    assert cell_share([0.0, 1.0]) == 1.0
    with pytest.raises(ValueError, match="one finite, non-negative weight"):
        PatchSampler(samples, model.config, cfg, np.random.default_rng(1), [1.0])
    with pytest.raises(ValueError, match="draw weight 0"):
        PatchSampler(samples, model.config, cfg, np.random.default_rng(1), [0, 0])


def test_train_data_draw_weight_reaches_the_sampler(blobs2d):
    img, lab = blobs2d
    data = [TrainData(img, lab, draw_weight=0.0), TrainData(img, lab, draw_weight=0.0)]
    with pytest.raises(ValueError, match="draw weight 0"):
        train(tiny_model(2), data, FAST.replace(steps=1))


def test_augmentation_moves_image_and_labels_together():
    rng = np.random.default_rng(0)
    target = np.zeros((1, 32, 32), np.int64)
    target[0, 4:12, 6:20] = 1
    image = target.astype(np.float32)[None] * 5.0
    cfg = FAST.replace(augment_intensity=False, augment_elastic=True, elastic_alpha=3)
    for _ in range(10):
        im, tg = augment_pair(image, target, cfg, rng)
        assert im.shape == image.shape and tg.shape == target.shape
        assert set(np.unique(tg)) <= {0, 1}
        # nearest-neighbour labels stay where the (interpolated) bright voxels are
        assert ((im[0] > 2.5) == (tg == 1)).mean() > 0.97


def test_intensity_contrast_sets_the_range_of_contrast_factors():
    """The contrast factor stays within exp(±intensity_contrast); 0 keeps the
    patch's contrast (brightness, gamma and noise still vary)."""
    image = np.zeros((1, 32, 32), np.float32)
    image[0, 8:24, 8:24] = 1.0  # a square of 1 on 0: its step is the contrast
    target = (image[0] > 0).astype(np.uint8)
    only = TrainConfig(augment_flip=False, augment_rot90=False)

    def steps(contrast: float) -> np.ndarray:
        rng = np.random.default_rng(0)
        cfg = only.replace(intensity_contrast=contrast)
        out = []
        for _ in range(200):
            im, tg = augment_pair(image, target, cfg, rng)
            assert np.array_equal(tg, target)
            # the median inside minus outside: robust to the noise, unmoved by
            # the brightness shift and (on a 0/1 image) by gamma
            out.append(np.median(im[0][tg == 1]) - np.median(im[0][tg == 0]))
        return np.array(out)

    assert np.allclose(steps(0.0), 1.0, atol=0.02)
    narrow, wide = steps(0.29), steps(1.39)
    assert narrow.min() > np.exp(-0.29) - 0.02 and narrow.max() < np.exp(0.29) + 0.02
    assert wide.min() > np.exp(-1.39) - 0.02 and wide.max() < np.exp(1.39) + 0.02
    # the wide range is used: factors beyond the narrow one on both sides
    assert wide.min() < 0.5 and wide.max() > 2.0


def test_cancel_leaves_model_unchanged(blobs2d):
    img, lab = blobs2d
    model = tiny_model(2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gen = iter_train(model, TrainData(img, lab), FAST)
    for _ in range(3):
        rec = next(gen)
        assert rec.phase == "train" and "loss" in rec.metrics
    gen.close()
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_validation_is_reported(blobs2d):
    img, lab = blobs2d
    cfg = FAST.replace(steps=6, val_every=3)
    records, result = drain(
        iter_train(tiny_model(2), TrainData(img, lab), cfg, TrainData(img, lab))
    )
    val = [r for r in records if r.phase == "validate"]
    assert [r.step for r in val] == [3, 6]
    assert result.history["val_step"] == [3, 6]
    assert all(0 <= r.metrics["val_dice"] <= 1 for r in val)


def test_planned_steps_fit_the_time_left_within_bounds():
    from napari_resunet.core.training.trainer import planned_steps

    cfg = TrainConfig(steps=40, max_seconds=10.0)
    # 3 steps in 1.5 s at 0.25 s a step: 34 more fit in the 8.5 s left
    assert planned_steps(cfg, 3, 1.5, 0.25) == 37
    # all fit: the steps asked for, no more
    assert planned_steps(cfg, 3, 0.3, 0.1) == 40
    # too slow: never fewer than half the steps, nor than those done
    assert planned_steps(cfg, 3, 3.0, 2.0) == 20
    assert planned_steps(cfg, 25, 30.0, 2.0) == 25
    # a faster pace later plans more again
    assert planned_steps(cfg, 10, 5.0, 0.5) < planned_steps(cfg, 11, 5.1, 0.2)
    # no limit: every step
    assert planned_steps(TrainConfig(steps=40), 3, 99.0, 9.0) == 40
    with pytest.raises(ValueError, match="max_seconds"):
        TrainConfig(max_seconds=0)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_time_limit_shortens_the_run_and_its_schedule(blobs2d):
    """A limit no step fits in plans half the steps after the pacing steps, tells
    the progress bar, and lays the rest of the schedule out over the new plan."""
    from napari_resunet.core.training.trainer import PACE_STEPS, _lr_factor

    img, lab = blobs2d
    cfg = FAST.replace(steps=10, max_seconds=1e-6)
    records, result = drain(iter_train(tiny_model(2), TrainData(img, lab), cfg))
    assert result.steps_done == 5 and result.history["step"] == [1, 2, 3, 4, 5]
    assert [r.total for r in records] == [10] * (PACE_STEPS - 1) + [5] * 3
    assert "time limit" in records[-1].message
    lr = result.history["lr"]
    assert lr[:PACE_STEPS] == pytest.approx(
        [cfg.lr * _lr_factor(s, cfg) for s in range(PACE_STEPS)]
    )
    assert lr[PACE_STEPS:] == pytest.approx(
        [cfg.lr * _lr_factor(s, cfg, 5) for s in range(PACE_STEPS, 5)]
    )


def test_time_limit_all_steps_fit_is_the_same_run(blobs2d):
    img, lab = blobs2d
    cfg = FAST.replace(steps=5)
    a = train(tiny_model(2), TrainData(img, lab), cfg)
    b = train(tiny_model(2), TrainData(img, lab), cfg.replace(max_seconds=1e6))
    assert b.steps_done == 5 and a.history["loss"] == b.history["loss"]
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k


def test_2d_model_trains_on_a_stack(blobs3d):
    img, lab = blobs3d
    res = train(
        tiny_model(2), TrainData(img, lab), FAST.replace(steps=3, patch_shape=None)
    )
    assert len(res.history["loss"]) == 3


@pytest.mark.parametrize(
    ("labels", "kwargs", "match"),
    [
        (lambda lab: lab[:-1], {}, "differs from the image"),
        (lambda lab: lab.astype(np.float32), {}, "integers"),
        (lambda lab: lab.astype(np.int32) - 1, {}, "negative"),
        (lambda lab: lab, {"label_mode": "classes"}, "instance labels"),
    ],
)
def test_bad_labels(blobs2d, labels, kwargs, match):
    img, lab = blobs2d
    with pytest.raises(ValueError, match=match):
        train(tiny_model(2), TrainData(img, labels(lab)), FAST.replace(**kwargs))


def test_empty_mask_is_refused(blobs2d):
    img, lab = blobs2d
    with pytest.raises(ValueError, match="Nothing is annotated"):
        train(tiny_model(2), TrainData(img, lab, np.zeros(lab.shape, bool)), FAST)


def test_class_weights_count_voxels_as_if_repeated():
    """A class weight of 2 is the same loss, both terms, as a batch holding each
    voxel of that class twice."""
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 8, 8)
    target = torch.randint(0, 3, (2, 8, 8))
    target[0, :3] = IGNORE_INDEX
    # unit weights: the unweighted loss
    torch.testing.assert_close(
        masked_ce_dice_loss(logits, target, class_weights=torch.ones(3)),
        masked_ce_dice_loss(logits, target),
    )
    w = torch.tensor([1.0, 1.0, 2.0])
    repeated = torch.where(target == 2, target, IGNORE_INDEX)
    twice = (torch.cat([logits, logits]), torch.cat([target, repeated]))
    for ce, dice in ((1.0, 0.0), (0.0, 1.0), (1.0, 1.0)):
        torch.testing.assert_close(
            masked_ce_dice_loss(logits, target, ce, dice, class_weights=w),
            masked_ce_dice_loss(*twice, ce, dice),
        )
    assert masked_ce_dice_loss(logits, target, class_weights=w) != (
        masked_ce_dice_loss(logits, target)
    )


def test_balance_weights_give_the_batch_the_prior_mix():
    from napari_resunet.core.training.trainer import _balance_weights

    target = np.full((2, 10, 10), IGNORE_INDEX)
    target[:, :5] = 1  # annotated: 80 % class 1, 20 % class 0
    target[:, 5:6, :] = 0
    target[:, 6:7, :5] = 1
    prior = np.array([0.7, 0.3, 0.0])
    w = _balance_weights(target, prior)
    counts = np.bincount(target[target >= 0], minlength=3)
    weighted = counts * w
    np.testing.assert_allclose(weighted[:2] / weighted.sum(), [0.7, 0.3], atol=1e-6)
    # the batch's mean weight stays 1 (same loss scale and learning rate)
    assert (counts * w).sum() / counts.sum() == pytest.approx(1.0)
    # a class the prior says is absent is damped, not silenced
    target[0, 7, 0] = 2
    w = _balance_weights(target, prior)
    assert w[2] > 0
    assert w[2] / w[1] == pytest.approx(
        0.1 / (0.3 / (counts[1] / counts.sum())), rel=0.1
    )


def test_class_mix_of_a_labels_layer():
    from napari_resunet.core.training.dataset import class_mix

    labels = np.zeros((10, 10), np.uint16)
    labels[2:6, 2:6] = 1  # 16 px: 12 boundary, 4 interior
    mix = class_mix(labels, 3, "instances")
    np.testing.assert_allclose(mix, [84 / 100, 4 / 100, 12 / 100])
    np.testing.assert_allclose(class_mix(labels, 2, "foreground"), [0.84, 0.16])


def test_class_mix_keeps_crowded_corrections_from_tilting_the_network(blobs2d):
    """Corrections only where the image is mostly cells: without the image's class
    mix the network learns to see cells everywhere; with it, much less so."""
    img, lab = blobs2d
    fg = lab > 0
    mask = np.zeros(lab.shape, bool)
    ys, xs = np.nonzero(fg)
    for y, x in zip(ys[::15], xs[::15]):  # small windows centred on cells
        mask[max(0, y - 4) : y + 5, max(0, x - 4) : x + 5] = True
    assert fg[mask].mean() > 2 * fg.mean()
    cfg = FAST.replace(steps=40, lr=1e-2)
    icfg = InferenceConfig(device="cpu", use_compile="never")

    def fg_fraction(match):
        data = TrainData(img, lab, mask)  # the mix of the whole labels array
        model = train(tiny_model(2), data, cfg.replace(match_class_mix=match)).model
        return float((predict(model, img, icfg).argmax(0) == 1).mean())

    plain, balanced = fg_fraction(False), fg_fraction(True)
    assert plain > 1.5 * fg.mean()  # the tilt this guards against
    assert abs(balanced - fg.mean()) < 0.5 * abs(plain - fg.mean())


def test_class_mix_defaults_to_the_labels_and_can_be_given(blobs2d):
    from napari_resunet.core.training.dataset import class_mix

    img, lab = blobs2d
    mask = np.zeros(lab.shape, bool)
    mask[30:60, 30:70] = True
    cfg = FAST.replace(steps=3, match_class_mix=True)
    own = class_mix(lab, 2, "foreground")
    assert 0.05 < own[1] < 0.5

    def weights(data, c=cfg):
        return list(train(tiny_model(2), data, c).model.parameters())

    labels_mix = weights(TrainData(img, lab, mask))
    given_same = weights(TrainData(img, lab, mask, class_mix=own))
    given_other = weights(TrainData(img, lab, mask, class_mix=[0.5, 0.5]))
    unmatched = weights(TrainData(img, lab, mask, class_mix=own), FAST.replace(steps=3))
    for pa, pb in zip(labels_mix, given_same):
        torch.testing.assert_close(pa, pb)
    for other in (given_other, unmatched):
        assert any(not torch.equal(pa, po) for pa, po in zip(labels_mix, other))
    with pytest.raises(ValueError, match="class_mix needs 2"):
        weights(TrainData(img, lab, mask, class_mix=[0.2, 0.3, 0.5]))


def test_finetune_presets():
    from napari_resunet.core.config import ModelConfig
    from napari_resunet.core.training.finetune import FIRST_ROUND_LR, finetune_config

    # small patches, slice-wise for a 2D network on a stack
    assert finetune_config(2).patch_shape == (96, 96)
    assert finetune_config(2, image_ndim=3).patch_shape == (1, 96, 96)
    assert finetune_config(3).patch_shape == (32, 48, 48)
    assert finetune_config(3, steps=7).steps == 7
    # a finished training's weights are moved gently
    assert finetune_config(2, pretrained=True).lr == pytest.approx(1e-4)
    assert finetune_config(2).lr == pytest.approx(1e-3)
    assert finetune_config(2, untrained=True).lr == pytest.approx(FIRST_ROUND_LR)
    assert FIRST_ROUND_LR > 1e-3
    assert finetune_config(2, image_ndim=3, untrained=True).lr == FIRST_ROUND_LR
    # measured in 2D only; a new 3D network's first round stays at 1e-3
    assert finetune_config(3, untrained=True).lr == pytest.approx(1e-3)
    # a finished training is never untrained
    assert finetune_config(2, pretrained=True, untrained=True).lr == pytest.approx(1e-4)
    # a round's training has a time limit by dimensionality, which can be lifted
    assert finetune_config(2).max_seconds < finetune_config(3).max_seconds
    # a 3D network still learning at the full rate gains from every step: its
    # limit is looser than a pretrained one's, which gains little from more
    learning, gentle = finetune_config(3), finetune_config(3, pretrained=True)
    assert gentle.max_seconds < learning.max_seconds
    assert finetune_config(3, untrained=True).max_seconds == learning.max_seconds
    assert (
        finetune_config(2, image_ndim=3).max_seconds == finetune_config(2).max_seconds
    )
    assert finetune_config(3, max_seconds=None).max_seconds is None
    # the patches obey the default networks' size rule
    for dims in (2, 3):
        m = ModelConfig(spatial_dims=dims).size_multiple
        assert all(p % m == 0 for p in finetune_config(dims).patch_shape)


def test_new_networks_get_batch_norm_where_it_was_measured():
    from napari_resunet.core.training.finetune import new_network_config

    cells2d = new_network_config(2, in_channels=2, instance=True)
    assert (cells2d.spatial_dims, cells2d.in_channels, cells2d.norm) == (2, 2, "batch")
    assert (cells2d.task, cells2d.out_channels) == ("instance", 3)
    cells3d = new_network_config(3, instance=True)
    assert (cells3d.spatial_dims, cells3d.norm, cells3d.task) == (
        3,
        "batch",
        "instance",
    )
    assert new_network_config(3).norm == "group"
    semantic = new_network_config(2)
    assert (semantic.norm, semantic.task, semantic.out_channels) == (
        "group",
        "semantic",
        2,
    )


def test_auto_class_mix_needs_a_trained_network_and_background():
    from napari_resunet.core.training.finetune import (
        AUTO_CLASS_MIX_BACKGROUND,
        auto_class_mix,
    )

    cells = np.zeros((40, 50), np.int32)
    cells[:20] = 3  # half background
    assert auto_class_mix(cells, trained=True)
    # a new network's first round: its segmentation says nothing of the image
    assert not auto_class_mix(cells, trained=False)
    # EM neuropil: every voxel belongs to a cell
    assert not auto_class_mix(cells + 1, trained=True)
    # the line, in 3D too
    edge = np.ones((10, 10, 10), np.int32)
    n = int(round(AUTO_CLASS_MIX_BACKGROUND * edge.size))
    edge.reshape(-1)[:n] = 0
    assert auto_class_mix(edge, trained=True)
    edge.reshape(-1)[n - 1] = 5
    assert not auto_class_mix(edge, trained=True)
    assert not auto_class_mix(np.zeros((0, 4), np.int32), trained=True)


def test_finetune_label_mode_follows_the_model_and_the_ids():
    from napari_resunet.core.config import ModelConfig
    from napari_resunet.core.training.finetune import finetune_label_mode

    cells = np.zeros((16, 16), np.int32)
    cells[2:6, 2:6], cells[8:12, 8:12] = 1, 7  # one id per cell
    instance = ModelConfig(spatial_dims=2, out_channels=3, task="instance")
    assert finetune_label_mode(cells, instance) == "auto"
    # a foreground model painted with cell ids learns foreground
    two = ModelConfig(spatial_dims=2, out_channels=2, task="semantic")
    assert finetune_label_mode(cells, two) == "foreground"
    assert finetune_label_mode(cells.clip(0, 1), two) == "auto"
    # class ids a class model predicts are its classes; others cannot be learnt
    four = ModelConfig(spatial_dims=2, out_channels=4, task="semantic")
    assert finetune_label_mode(cells.clip(0, 3), four) == "auto"
    with pytest.raises(ValueError, match=r"ids up to 7 .* 4 classes \(0\.\.3\)"):
        finetune_label_mode(cells, four)
    assert finetune_label_mode(np.zeros((0, 4), np.int32), four) == "auto"
