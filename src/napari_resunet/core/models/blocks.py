"""Layer lookup by ``spatial_dims`` and the residual block shared by 2D and 3D nets.

One code path serves both dimensionalities: every block asks :func:`layer` for the
conv / pool / norm class of its dimension instead of keeping 2D and 3D copies.
"""

from __future__ import annotations

from torch import nn

_LAYERS: dict[str, dict[int, type[nn.Module]]] = {
    "conv": {2: nn.Conv2d, 3: nn.Conv3d},
    "convtranspose": {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d},
    "maxpool": {2: nn.MaxPool2d, 3: nn.MaxPool3d},
    "batchnorm": {2: nn.BatchNorm2d, 3: nn.BatchNorm3d},
    "instancenorm": {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d},
}


def layer(kind: str, spatial_dims: int) -> type[nn.Module]:
    """Return the torch layer class ``kind`` for 2 or 3 spatial dimensions."""
    try:
        return _LAYERS[kind][spatial_dims]
    except KeyError as err:
        raise ValueError(
            f"No {kind!r} layer for spatial_dims={spatial_dims}; use 2 or 3."
        ) from err


def _group_count(channels: int, max_groups: int = 8) -> int:
    """Largest divisor of ``channels`` not above ``max_groups``."""
    for groups in range(min(max_groups, channels), 0, -1):
        if channels % groups == 0:
            return groups
    return 1


def make_norm(norm: str, spatial_dims: int, channels: int) -> nn.Module:
    """Build the normalisation layer named ``norm`` for ``channels`` channels."""
    if norm == "group":
        return nn.GroupNorm(_group_count(channels), channels)
    if norm == "instance":
        return layer("instancenorm", spatial_dims)(channels, affine=True)
    if norm == "batch":
        return layer("batchnorm", spatial_dims)(channels)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"Unknown norm {norm!r}; use group, instance, batch or none.")


class ResidualBlock(nn.Module):
    """Two conv-norm-ReLU units with an additive skip.

    ``y = relu(norm2(conv2(drop(relu(norm1(conv1(x)))))) + skip(x))`` where the skip
    is the identity when the channel count is unchanged and a 1x1 projection conv
    (plus norm) otherwise.

    The convolution comes *before* its norm (post-activation ResNet order) rather
    than the pre-activation norm-act-conv order: every norm then directly follows a
    conv, so a BatchNorm can be folded into that conv for inference
    (:func:`napari_resunet.core.models.resunet.fold_batch_norm`), which removes a
    full pass over each feature map.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        norm: str = "group",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        conv = layer("conv", spatial_dims)
        bias = norm == "none"
        self.conv1 = conv(in_channels, out_channels, 3, padding=1, bias=bias)
        self.norm1 = make_norm(norm, spatial_dims, out_channels)
        self.conv2 = conv(out_channels, out_channels, 3, padding=1, bias=bias)
        self.norm2 = make_norm(norm, spatial_dims, out_channels)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        if in_channels != out_channels:
            self.skip_conv: nn.Module = conv(in_channels, out_channels, 1, bias=bias)
            self.skip_norm: nn.Module = make_norm(norm, spatial_dims, out_channels)
        else:
            self.skip_conv = nn.Identity()
            self.skip_norm = nn.Identity()

    def forward(self, x):  # noqa: D102 - documented on the class
        skip = self.skip_norm(self.skip_conv(x))
        y = self.act(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(self.drop(y)))
        return self.act(y + skip)
