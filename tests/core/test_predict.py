import itertools

import numpy as np
import pytest
import torch
from tests.conftest import drain, tiny_model

from napari_resunet.core import (
    InferenceConfig,
    TrainConfig,
    TrainData,
    iter_predict,
    predict,
    train,
)
from napari_resunet.core.inference.predict import (
    flip_sets,
    image_flip_sets,
    make_tile_plan,
    prediction_steps,
    prepare_for_inference,
)
from napari_resunet.core.normalize import normalize_image


def _whole(model, image, channel_axis=None):
    """Reference: one forward pass over the whole (reflect-padded) image."""
    from napari_resunet.core.inference.tiling import pad_to

    x = normalize_image(image, model.normalization, channel_axis)
    x = x[None] if channel_axis is None else np.moveaxis(x, channel_axis, 0)
    m = model.size_multiple
    padded = tuple(int(np.ceil(s / m) * m) for s in x.shape[1:])
    xp = pad_to(x, padded)
    with torch.no_grad():
        p = torch.softmax(model.eval()(torch.from_numpy(xp)[None]), 1)[0].numpy()
    return p[(slice(None), *(slice(0, s) for s in x.shape[1:]))]


_TRAINED: dict = {}


def _trained(spatial_dims, norm, image, labels):
    """A briefly trained tiny net, so predictions vary across the image."""
    key = (spatial_dims, norm)
    if key not in _TRAINED:
        patch = (48, 48) if spatial_dims == 2 else (16, 32, 32)
        cfg = TrainConfig(steps=60, patch_shape=patch, label_mode="foreground", lr=5e-3)
        _TRAINED[key] = train(
            tiny_model(spatial_dims, norm=norm), TrainData(image, labels), cfg
        ).model
    return _TRAINED[key]


@pytest.mark.parametrize("norm", ["batch", "none"])
@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_tiled_matches_whole_image(norm, spatial_dims, blobs2d, blobs3d):
    """With data-independent norms a conv net is translation-equivariant, so tiles
    differ from the whole image only through zero padding at tile borders, which
    overlap and Gaussian blending keep small."""
    image, labels = blobs2d if spatial_dims == 2 else blobs3d
    model = _trained(spatial_dims, norm, image, labels)
    ref = _whole(model, image)
    tile = (32, 48) if spatial_dims == 2 else (16, 24, 24)
    out = predict(
        model, image, InferenceConfig(tile_shape=tile, overlap=0.5, use_compile="never")
    )
    assert out.shape == ref.shape and out.dtype == np.float32
    diff = np.abs(out - ref)
    assert diff.mean() < 0.01, diff.mean()
    assert np.quantile(diff, 0.99) < 0.1
    assert (out.argmax(0) == ref.argmax(0)).mean() > 0.99
    # the test is not trivial: classes vary across the image
    assert 0.02 < ref.argmax(0).mean() < 0.95


def test_tiled_matches_whole_image_groupnorm(blobs2d):
    """Group norm normalises with per-tile statistics, so tiles can only approximate
    the whole image; with large tiles and overlap the labels still agree."""
    image = blobs2d[0]
    model = _trained(2, "group", *blobs2d)
    ref = _whole(model, image)
    out = predict(
        model,
        image,
        InferenceConfig(tile_shape=(64, 64), overlap=0.5, use_compile="never"),
    )
    assert np.abs(out - ref).mean() < 0.05
    assert (out.argmax(0) == ref.argmax(0)).mean() > 0.95


def test_single_tile_equals_whole_image_exactly(blobs2d):
    model = tiny_model(2)
    out = predict(
        model,
        blobs2d[0],
        InferenceConfig(
            tile_shape=(512, 512), use_compile="never", precision="float32"
        ),
    )
    np.testing.assert_allclose(out, _whole(model, blobs2d[0]), atol=2e-5)


def _mirrored_mean(run, image, flips):
    """Reference test-time augmentation: ``run(image)`` of mirrored copies, each
    mirrored back, averaged."""
    out = []
    for axes in flips:
        x = np.ascontiguousarray(np.flip(image, axes)) if axes else image
        p = run(x)
        out.append(np.flip(p, tuple(a + 1 for a in axes)) if axes else p)
    return np.mean(out, axis=0)


def _mirrored_whole(model, image, flips):
    """Whole-image (one forward pass) predictions, mirrored and averaged."""
    return _mirrored_mean(lambda x: _whole(model, x), image, flips)


def test_test_time_flips_average_the_mirrored_predictions(blobs2d):
    """One tile over the whole image: the prediction is the mean of the four
    in-plane mirrorings, so it mirrors exactly with the image (a single pass
    does not)."""
    model = _trained(2, "batch", *blobs2d)
    image = blobs2d[0]
    cfg = InferenceConfig(
        tile_shape=(512, 512), use_compile="never", precision="float32"
    )
    single = predict(model, image, cfg)
    tta = predict(model, image, cfg.replace(test_time_flips=4))
    ref = _mirrored_whole(model, image, [(), (1,), (0,), (0, 1)])
    np.testing.assert_allclose(tta, ref, atol=2e-5)
    assert np.abs(tta - single).max() > 1e-3  # the mirrorings did differ
    np.testing.assert_allclose(tta.sum(0), 1.0, atol=1e-5)
    mirrored = predict(model, np.ascontiguousarray(image[:, ::-1]), cfg)
    assert np.abs(mirrored[:, :, ::-1] - single).max() > 1e-3
    mirrored = predict(
        model, np.ascontiguousarray(image[:, ::-1]), cfg.replace(test_time_flips=4)
    )
    np.testing.assert_allclose(mirrored[:, :, ::-1], tta, atol=1e-6)
    # two flips: the unmirrored and the X-mirrored pass
    two = predict(model, image, cfg.replace(test_time_flips=2))
    np.testing.assert_allclose(
        two, _mirrored_whole(model, image, [(), (1,)]), atol=2e-5
    )


def test_test_time_flips_in_3d_and_on_stacks(blobs3d):
    """A 3D network has 8 mirrorings (more count as 8); a 2D network on a stack
    is mirrored in-plane only, as each plane would be on its own."""
    image = blobs3d[0]
    cfg = InferenceConfig(
        tile_shape=(24, 48, 40), use_compile="never", precision="float32"
    )
    model = _trained(3, "batch", *blobs3d)
    eight = predict(model, image, cfg.replace(test_time_flips=8))
    all_flips = [c for k in range(4) for c in itertools.combinations(range(3), k)]
    np.testing.assert_allclose(
        eight, _mirrored_whole(model, image, all_flips), atol=2e-5
    )
    np.testing.assert_array_equal(
        predict(model, image, cfg.replace(test_time_flips=50)), eight
    )
    four = predict(model, image, cfg.replace(test_time_flips=4))
    assert np.abs(four - eight).max() > 1e-4
    net2d = tiny_model(2)
    stack_cfg = cfg.replace(tile_shape=(48, 40))
    on_stack = predict(net2d, image, stack_cfg.replace(test_time_flips=8))
    np.testing.assert_array_equal(
        predict(net2d, image, stack_cfg.replace(test_time_flips=4)), on_stack
    )
    assert np.abs(on_stack - predict(net2d, image, stack_cfg)).max() > 1e-4
    with pytest.raises(ValueError, match="test_time_flips"):
        InferenceConfig(test_time_flips=0)


def test_test_time_flips_mirror_the_whole_image(blobs2d):
    """Several padded tiles: the average is over predictions of the mirrored
    image (its padding and tile cuts move with it), the same passes the queue's
    uncertainty averages."""
    from napari_resunet.core.uncertainty import iter_uncertainty

    model = _trained(2, "batch", *blobs2d)
    image = blobs2d[0][:90, :101]  # padded to multiples of 4
    cfg = InferenceConfig(
        tile_shape=(48, 48), overlap=0.25, use_compile="never", precision="float32"
    )
    tta = predict(model, image, cfg.replace(test_time_flips=3))
    tiled = _mirrored_mean(lambda x: predict(model, x, cfg), image, [(), (1,), (0,)])
    np.testing.assert_allclose(tta, tiled, atol=1e-6)
    unc = drain(iter_uncertainty(model, image, cfg, n_flips=3))[1]
    np.testing.assert_allclose(tta, unc.probabilities, atol=1e-6)


def test_flip_sets_order():
    assert flip_sets(2, 10) == [(), (1,), (0,), (0, 1)]
    assert flip_sets(3, 8) == [(), (2,), (1,), (0,), (1, 2), (0, 2), (0, 1), (0, 1, 2)]
    assert flip_sets(3, 3) == [(), (2,), (1,)]
    assert flip_sets(3, 0) == [()]
    assert flip_sets(3, 8, axes=(2, 1)) == [(), (2,), (1,), (1, 2)]
    assert image_flip_sets(2, 3, 8) == [(), (2,), (1,), (1, 2)]  # in-plane only
    assert image_flip_sets(3, 3, 2) == [(), (2,)]


@pytest.mark.parametrize("batch_size", [1, 3])
def test_generator_contract(blobs3d, batch_size):
    model = tiny_model(3)
    cfg = InferenceConfig(
        tile_shape=(16, 16, 16),
        overlap=0.25,
        batch_size=batch_size,
        use_compile="never",
    )
    image = blobs3d[0]
    plan = make_tile_plan(model, image.shape, cfg)
    records, result = drain(iter_predict(model, image, cfg))
    assert len(records) == plan.n_batches(batch_size) > 1
    assert [r.step for r in records] == list(range(1, len(records) + 1))
    assert all(r.total == len(records) for r in records)
    assert result.shape == (2, *image.shape) and result.dtype == np.float32
    np.testing.assert_allclose(result.sum(0), 1.0, atol=1e-5)
    assert prediction_steps(model, image.shape, cfg) == len(records)
    # with test-time flips every mirrored pass is a step, so Cancel (closing the
    # generator) never waits for more than one forward pass
    tta = cfg.replace(test_time_flips=3)
    records, flipped = drain(iter_predict(model, image, tta))
    assert len(records) == 3 * plan.n_batches(batch_size)
    assert prediction_steps(model, image.shape, tta) == len(records)
    assert [r.step for r in records] == list(range(1, len(records) + 1))
    assert "mirroring 3/3" in records[-1].message
    np.testing.assert_allclose(flipped.sum(0), 1.0, atol=1e-5)


def test_closing_early_leaves_model_untouched(blobs3d):
    model = tiny_model(3, norm="batch", dropout=0.1)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gen = iter_predict(
        model, blobs3d[0], InferenceConfig(tile_shape=(16, 16, 16), use_compile="never")
    )
    next(gen)
    gen.close()
    assert model.training  # the caller's mode is not changed
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_batching_and_memory_format_do_not_change_results(blobs2d):
    model = tiny_model(2)
    base = InferenceConfig(
        tile_shape=(32, 32), overlap=0.25, use_compile="never", precision="float32"
    )
    a = predict(model, blobs2d[0], base)
    b = predict(model, blobs2d[0], base.replace(batch_size=4, channels_last=False))
    np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_bfloat16_prediction_is_close_to_float32(spatial_dims, blobs2d, blobs3d):
    """bfloat16 convolutions (on any CPU: emulated where not native) change the
    probabilities by rounding only; they come back float32 and still sum to 1."""
    image, labels = blobs2d if spatial_dims == 2 else blobs3d
    model = _trained(spatial_dims, "batch", image, labels)
    base = InferenceConfig(use_compile="never", precision="float32")
    ref = predict(model, image, base)
    out = predict(model, image, base.replace(precision="bfloat16"))
    assert out.dtype == np.float32 and out.shape == ref.shape
    np.testing.assert_allclose(out.sum(0), 1.0, atol=1e-5)
    diff = np.abs(out - ref)
    assert 0 < diff.max() < 0.05, diff.max()  # it did run in bfloat16
    assert (out.argmax(0) == ref.argmax(0)).mean() > 0.995
    assert 0.02 < ref.argmax(0).mean() < 0.95  # classes vary: not trivial


def test_precision_auto_follows_the_cpu(monkeypatch):
    from napari_resunet.core import device as dev

    cpu = torch.device("cpu")
    assert dev.resolve_precision("float32", cpu) is None
    assert dev.resolve_precision("bfloat16", cpu) is torch.bfloat16
    monkeypatch.setattr(dev, "native_bfloat16_cpu", lambda: True)
    assert dev.resolve_precision("auto", cpu) is torch.bfloat16
    assert dev.resolve_precision("auto", torch.device("cuda")) is None  # not measured
    monkeypatch.setattr(dev, "native_bfloat16_cpu", lambda: False)
    assert dev.resolve_precision("auto", cpu) is None  # emulated: slower, so no
    with pytest.raises(ValueError, match="not available on mps"):
        dev.resolve_precision("bfloat16", torch.device("mps"))
    with pytest.raises(ValueError, match="precision"):
        InferenceConfig(precision="float16")


def test_inference_copy_follows_weight_updates(blobs2d):
    model = tiny_model(2)
    dev = torch.device("cpu")
    first = prepare_for_inference(model, dev)
    assert prepare_for_inference(model, dev) is first  # cached
    with torch.no_grad():
        model.head.bias.add_(1.0)
    assert prepare_for_inference(model, dev) is not first


def test_2d_model_on_stack_runs_slice_by_slice(blobs3d):
    model = tiny_model(2)
    stack = blobs3d[0]
    out = predict(
        model,
        stack,
        InferenceConfig(tile_shape=(64, 64), use_compile="never", precision="float32"),
    )
    assert out.shape == (2, *stack.shape)
    # each slice equals a 2D prediction of that slice normalised with the stack's statistics
    norm = normalize_image(stack, model.normalization)
    z = 7
    with torch.no_grad():
        sl = torch.from_numpy(norm[z])[None, None]
        ref = torch.softmax(model.eval()(sl), 1)[0].numpy()
    np.testing.assert_allclose(out[:, z], ref, atol=1e-5)


def test_multichannel_input(blobs2d):
    model = tiny_model(2, in_channels=2)
    img = np.stack([blobs2d[0], blobs2d[0][::-1]], axis=-1)  # (Y, X, C)
    out = predict(model, img, InferenceConfig(use_compile="never"), channel_axis=-1)
    assert out.shape == (2, *blobs2d[0].shape)


@pytest.mark.parametrize(
    ("image", "kwargs", "match"),
    [
        (np.zeros((32, 32, 3), np.uint8) + np.arange(3), {}, "looks like RGB"),
        (np.ones((2, 4, 32, 32)), {}, "needs a"),
        (np.full((32, 32), 7.0), {}, "constant"),
        (np.where(np.eye(32) > 0, np.nan, 1.0), {}, "NaN"),
        (np.ones((32, 32, 2)), {"channel_axis": -1}, "reads 1 channel"),
        (np.ones((32, 32), complex), {}, "dtype"),
    ],
)
def test_bad_input_messages(image, kwargs, match):
    with pytest.raises(ValueError, match=match):
        predict(tiny_model(2), image, **kwargs)


def test_3d_model_rejects_2d_image(blobs2d):
    with pytest.raises(ValueError, match=r"3D model needs a \(Z, Y, X\)"):
        predict(tiny_model(3), blobs2d[0])


def test_compile_failure_falls_back_to_eager(blobs2d, monkeypatch):
    model = tiny_model(2)
    cfg = InferenceConfig(tile_shape=(48, 48), use_compile="never")
    expected = predict(model, blobs2d[0], cfg)

    def broken_compile(*args, **kwargs):
        def fail(*a, **k):
            raise RuntimeError("no compiler here")

        return fail

    monkeypatch.setattr(torch, "compile", broken_compile)
    out = predict(model, blobs2d[0], cfg.replace(use_compile="always"))
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_auto_compile_skips_short_jobs(blobs2d, monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "compile", lambda *a, **k: calls.append(1) or a[0])
    predict(
        tiny_model(2),
        blobs2d[0],
        InferenceConfig(tile_shape=(48, 48), use_compile="auto"),
    )
    assert calls == []
    cfg = InferenceConfig(
        tile_shape=(48, 48), use_compile="auto", compile_min_seconds=0.0
    )
    predict(tiny_model(2), blobs2d[0], cfg)
    assert calls == [1]


@pytest.mark.slow
def test_real_torch_compile_matches_eager(blobs2d):
    model = tiny_model(2)
    cfg = InferenceConfig(tile_shape=(64, 64), use_compile="never", precision="float32")
    eager = predict(model, blobs2d[0], cfg)
    compiled = predict(model, blobs2d[0], cfg.replace(use_compile="always"))
    np.testing.assert_allclose(compiled, eager, atol=1e-4)
