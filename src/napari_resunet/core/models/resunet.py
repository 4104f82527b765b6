"""The residual U-Net (2D and 3D from one class) and inference-time rewrites."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from napari_resunet.core.config import InstanceConfig, ModelConfig, NormalizationConfig
from napari_resunet.core.models.blocks import ResidualBlock, layer


class ResUNet(nn.Module):
    """Residual U-Net for 2D or 3D semantic segmentation; returns logits.

    Encoder: one :class:`ResidualBlock` per level, max-pool (2x) between levels.
    Decoder: transposed conv (2x) up, concatenation with the encoder's skip, one
    residual block. Head: a 1x1 conv to ``out_channels`` logits.

    Axes: input ``(N, C, Y, X)`` for ``spatial_dims=2`` or ``(N, C, Z, Y, X)`` for
    ``spatial_dims=3``; output has the same spatial shape with ``out_channels``
    channels.

    Size rule: every spatial size must be a multiple of ``2 ** (len(features) - 1)``
    (8 for the default four levels). Tiled prediction pads inputs to meet it.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels (>= 1).
        out_channels: output classes (>= 2).
        features: channels per level, finest first, at least two levels.
        norm: ``"group"`` (default), ``"instance"``, ``"batch"`` or ``"none"``.
        dropout: dropout probability inside each block, in [0, 1).
        normalization: intensity scaling the network expects (default percentile
            1-99.8 per channel).
        task: ``"semantic"`` or ``"instance"`` (3 outputs: background, interior,
            boundary; see :class:`ModelConfig`). Recorded for post-processing.
        instance_config: watershed settings tuned for this network (instance
            models); ``None`` means the :class:`InstanceConfig` defaults.

    Example:
        >>> net = ResUNet(spatial_dims=2, features=(8, 16, 32))
        >>> net(torch.zeros(1, 1, 64, 64)).shape
        torch.Size([1, 2, 64, 64])
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 1,
        out_channels: int = 2,
        features: tuple[int, ...] = (16, 32, 64, 128),
        norm: str = "group",
        dropout: float = 0.0,
        normalization: NormalizationConfig | None = None,
        task: str = "semantic",
        instance_config: InstanceConfig | None = None,
    ) -> None:
        super().__init__()
        # The intensity scheme the network expects travels with it (and with its
        # checkpoint) so that prediction always matches training; so do the cell
        # post-processing settings tuned for it, if any.
        self.normalization = normalization or NormalizationConfig()
        self.instance_config = instance_config
        # ModelConfig validates every argument and raises ValueError with a fix.
        self.config = ModelConfig(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=out_channels,
            features=tuple(features),
            norm=norm,
            dropout=dropout,
            task=task,
        )
        cfg = self.config
        feats = cfg.features
        self.encoders = nn.ModuleList()
        prev = cfg.in_channels
        for f in feats:
            self.encoders.append(
                ResidualBlock(cfg.spatial_dims, prev, f, cfg.norm, cfg.dropout)
            )
            prev = f
        self.pool = layer("maxpool", cfg.spatial_dims)(2)
        up = layer("convtranspose", cfg.spatial_dims)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for coarse, fine in zip(feats[:0:-1], feats[-2::-1]):
            self.ups.append(up(coarse, fine, kernel_size=2, stride=2))
            self.decoders.append(
                ResidualBlock(cfg.spatial_dims, 2 * fine, fine, cfg.norm, cfg.dropout)
            )
        self.head = layer("conv", cfg.spatial_dims)(feats[0], cfg.out_channels, 1)

    @property
    def spatial_dims(self) -> int:
        return self.config.spatial_dims

    @property
    def size_multiple(self) -> int:
        """Each spatial input size must be a multiple of this."""
        return self.config.size_multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, C_in, *spatial)`` to ``(N, C_out, *spatial)`` logits."""
        if x.ndim != self.spatial_dims + 2:
            raise ValueError(
                f"Expected a {self.spatial_dims + 2}D tensor (N, C, "
                f"{'Z, ' if self.spatial_dims == 3 else ''}Y, X), got shape "
                f"{tuple(x.shape)}."
            )
        m = self.size_multiple
        if any(s % m for s in x.shape[2:]):
            raise ValueError(
                f"Spatial sizes {tuple(x.shape[2:])} must be multiples of {m}; pad "
                f"the input (tiled prediction does this for you)."
            )
        skips = []
        for i, enc in enumerate(self.encoders):
            x = enc(x)
            if i < len(self.encoders) - 1:
                skips.append(x)
                x = self.pool(x)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.head(x)


def fold_batch_norm(model: ResUNet) -> ResUNet:
    """Fold every eval-mode BatchNorm into the conv before it, in place.

    Only valid for inference (``model.eval()``); group/instance norms depend on the
    data and are left alone. Returns ``model`` for chaining.
    """
    if model.training:
        raise ValueError("fold_batch_norm needs an eval-mode model (call .eval()).")
    for block in model.modules():
        if not isinstance(block, ResidualBlock):
            continue
        for conv_name, norm_name in (
            ("conv1", "norm1"),
            ("conv2", "norm2"),
            ("skip_conv", "skip_norm"),
        ):
            norm = getattr(block, norm_name)
            if isinstance(norm, nn.modules.batchnorm._BatchNorm):
                conv = getattr(block, conv_name)
                setattr(block, conv_name, fuse_conv_bn_eval(conv, norm))
                setattr(block, norm_name, nn.Identity())
    return model
