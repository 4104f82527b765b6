import pytest
import torch

from napari_resunet.core import ModelConfig, ResUNet, build_model
from napari_resunet.core.models.resunet import fold_batch_norm


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize(("in_ch", "out_ch"), [(1, 2), (3, 4)])
@pytest.mark.parametrize("norm", ["group", "instance", "batch", "none"])
def test_output_shape(spatial_dims, in_ch, out_ch, norm):
    net = ResUNet(spatial_dims, in_ch, out_ch, features=(4, 8, 16), norm=norm).eval()
    spatial = (8, 24, 16) if spatial_dims == 3 else (24, 40)
    with torch.no_grad():
        y = net(torch.randn(2, in_ch, *spatial))
    assert y.shape == (2, out_ch, *spatial)
    assert torch.isfinite(y).all()


def test_residual_blocks_have_projection_only_when_channels_change():
    net = ResUNet(2, 1, 2, features=(4, 8))
    first = net.encoders[0]
    assert isinstance(first.skip_conv, torch.nn.Conv2d)
    assert first.skip_conv.kernel_size == (1, 1)
    # decoder block: 2*4 -> 4 channels -> projection; a same-width block -> identity
    from napari_resunet.core.models.blocks import ResidualBlock

    same = ResidualBlock(3, 8, 8)
    assert isinstance(same.skip_conv, torch.nn.Identity)
    assert isinstance(net.ups[0], torch.nn.ConvTranspose2d)
    assert isinstance(net.pool, torch.nn.MaxPool2d)


def test_seed_design_width_is_buildable():
    net = ResUNet(2, 1, 2, features=(64, 128, 256, 512, 1024))
    n = sum(p.numel() for p in net.parameters())
    assert 30e6 < n < 80e6
    assert net.size_multiple == 16


def test_odd_size_gives_a_helpful_error():
    net = ResUNet(2, features=(4, 8, 16))
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.zeros(1, 1, 30, 32))
    with pytest.raises(ValueError, match="Expected a 4D tensor"):
        net(torch.zeros(1, 1, 8, 32, 32))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"spatial_dims": 1}, "spatial_dims"),
        ({"in_channels": 0}, "in_channels"),
        ({"features": (8,)}, "two levels"),
        ({"norm": "weird"}, "norm"),
    ],
)
def test_constructor_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ResUNet(**kwargs)


def test_build_model_is_seeded_and_leaves_global_rng_alone():
    cfg = ModelConfig(spatial_dims=2, features=(4, 8))
    state = torch.random.get_rng_state()
    a, b = build_model(cfg, seed=5), build_model(cfg, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    c = build_model(cfg, seed=6)
    for (ka, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), ka
    assert any(
        not torch.equal(va, vc)
        for va, vc in zip(a.state_dict().values(), c.state_dict().values())
    )


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_fold_batch_norm_preserves_outputs(spatial_dims):
    net = ResUNet(spatial_dims, 1, 3, features=(4, 8, 16), norm="batch")
    spatial = (16, 16, 16) if spatial_dims == 3 else (32, 32)
    net.train()
    with torch.no_grad():
        for _ in range(3):  # give the running statistics non-trivial values
            net(torch.randn(2, 1, *spatial) * 3 + 1)
    net.eval()
    x = torch.randn(1, 1, *spatial)
    with torch.no_grad():
        before = net(x)
        fold_batch_norm(net)
        after = net(x)
    assert not any(
        isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules()
    )
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)


def test_fold_batch_norm_refuses_training_mode():
    with pytest.raises(ValueError, match="eval"):
        fold_batch_norm(ResUNet(2, features=(4, 8), norm="batch").train())
