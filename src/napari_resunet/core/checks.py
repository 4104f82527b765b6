"""Input checks shared by prediction and training, with messages that say the fix."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from napari_resunet.core.config import ModelConfig


def check_image(
    image: NDArray, cfg: ModelConfig, channel_axis: int | None
) -> tuple[int, ...]:
    """Check that ``image`` fits a model built from ``cfg``; return its spatial shape.

    Raises:
        ValueError: wrong dtype, number of axes or channels (RGB for a one-channel
            model gets its own message).
    """
    arr = image
    if arr.dtype.kind not in "uif" and arr.dtype != np.bool_:
        raise ValueError(
            f"Unsupported image dtype {arr.dtype}; use integers or floats."
        )
    if channel_axis is not None:
        if not -arr.ndim <= channel_axis < arr.ndim:
            raise ValueError(
                f"channel_axis={channel_axis} is out of range for a {arr.ndim}D image."
            )
        channels = arr.shape[channel_axis]
        spatial_shape = tuple(np.delete(arr.shape, channel_axis))
    else:
        # A trailing axis of 3 or 4 is (almost always) RGB(A), not 3 pixels of X.
        if arr.ndim >= 3 and arr.shape[-1] in (3, 4) and cfg.in_channels == 1:
            raise ValueError(
                f"The image of shape {arr.shape} looks like RGB(A) but the model reads "
                f"1 channel. Convert it to one channel (e.g. take the nuclear channel) "
                f"or use a model trained with {arr.shape[-1]} input channels."
            )
        channels, spatial_shape = 1, arr.shape
    spatial = len(spatial_shape)
    allowed = (2, 3) if cfg.spatial_dims == 2 else (3,)
    if spatial not in allowed:
        kind = "2D" if cfg.spatial_dims == 2 else "3D"
        want = "(Y, X) or (Z, Y, X)" if cfg.spatial_dims == 2 else "(Z, Y, X)"
        raise ValueError(
            f"A {kind} model needs a {want} image"
            f"{' plus its channel axis' if channel_axis is not None else ''}; got "
            f"shape {arr.shape}."
        )
    if channels != cfg.in_channels:
        if channels in (3, 4) and cfg.in_channels == 1:
            raise ValueError(
                f"The image has {channels} channels (RGB(A)?) but the model reads 1 "
                f"channel. Convert it to one channel (e.g. take the nuclear channel) "
                f"or use a model trained with {channels} input channels."
            )
        raise ValueError(
            f"The model reads {cfg.in_channels} channel(s) but the image has "
            f"{channels}. "
            + (
                "Set channel_axis to the image's channel axis."
                if channel_axis is None
                else "Pick an image with the right number of channels."
            )
        )
    return tuple(int(s) for s in spatial_shape)


def check_not_constant(x: NDArray) -> None:
    """Raise ``ValueError`` if every voxel of ``x`` has the same value."""
    flat = x.reshape(-1)
    if flat.size and (flat == flat[0]).all():
        raise ValueError(
            f"The image is constant (every voxel is {flat[0]}); there is nothing to "
            f"segment."
        )


def parse_sizes(text: str) -> tuple[int, ...]:
    """Positive integers written as ``64,128,128`` or ``64x128x128``.

    Raises:
        ValueError: anything else, with an example of what is understood.
    """
    try:
        vals = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        vals = ()
    if not vals or any(v < 1 for v in vals):
        raise ValueError(
            f"expected positive whole numbers such as 64,128,128 or 64x128x128; "
            f"got {text!r}"
        )
    return vals


def parse_tile_shape(text: str) -> tuple[int, ...] | None:
    """A tile shape typed by the user: ``None`` for "auto" (or nothing), else
    :func:`parse_sizes`."""
    text = text.strip().lower()
    if text in ("", "auto"):
        return None
    try:
        return parse_sizes(text)
    except ValueError:
        raise ValueError(
            f"the tile shape {text!r} is not understood: write auto, or sizes such "
            "as 256,256 or 64x128x128"
        ) from None
