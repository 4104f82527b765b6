"""Intensity normalisation: robust percentile or foreground-anchored scaling,
optional equalisation.

The scheme (a :class:`NormalizationConfig`) is stored in each checkpoint; the
statistics are computed per image at run time, so an image acquired with another
gain still maps to the range the network was trained on.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from napari_resunet.core.config import NormalizationConfig

# Percentiles are estimated on at most this many voxels (a strided subsample):
# exact on small images, fast and stable on large volumes.
_MAX_STAT_SAMPLES = 2_000_000


def _subsample(flat: NDArray) -> NDArray:
    if flat.size <= _MAX_STAT_SAMPLES:
        return flat
    step = int(np.ceil(flat.size / _MAX_STAT_SAMPLES))
    return flat[::step]


def _equalize(x: NDArray, nbins: int = 4096) -> NDArray:
    """Global histogram equalisation of one channel to [0, 1]."""
    sample = _subsample(x.ravel())
    lo, hi = float(sample.min()), float(sample.max())
    if hi <= lo:
        return np.zeros_like(x, dtype=np.float32)
    hist, edges = np.histogram(sample, bins=nbins, range=(lo, hi))
    cdf = np.cumsum(hist).astype(np.float64)
    cdf /= cdf[-1]
    centers = 0.5 * (edges[:-1] + edges[1:])
    return np.interp(x, centers, cdf).astype(np.float32)


def _foreground_limits(
    sample: NDArray, cfg: NormalizationConfig
) -> tuple[float, float]:
    """``(lo, hi)`` that put the ``low`` percentile at 0 and the median of the
    bright mode at 0.5 (``NormalizationConfig.anchor == "foreground"``).

    The bright mode is what lies above an Otsu threshold of ``log(x - lo)``: on
    the log scale the dim background's many pixels and the objects' fewer,
    brighter ones form two humps whatever the camera's gain and offset, and the
    threshold does not move when the image is multiplied by a constant. An image
    with no such split (flat above ``lo``) falls back to the ``high`` percentile.
    """
    lo = float(np.percentile(sample, cfg.low))
    above = sample[sample > lo].astype(np.float64) - lo
    if above.size >= 2:
        logs = np.log(above)
        if logs.max() > logs.min():
            from skimage.filters import threshold_otsu

            bright = above[logs > threshold_otsu(logs)]
            if bright.size:
                return lo, lo + 2.0 * float(np.median(bright))
    return lo, float(np.percentile(sample, cfg.high))


def _scale(x: NDArray, cfg: NormalizationConfig) -> NDArray:
    x = x.astype(np.float32, copy=False)
    if cfg.equalize:
        x = _equalize(x)
    sample = _subsample(x.ravel())
    if cfg.anchor == "foreground":
        lo, hi = _foreground_limits(sample, cfg)
    else:
        lo, hi = np.percentile(sample, [cfg.low, cfg.high])
    if hi - lo < 1e-12:
        # A constant image has no contrast to scale; centre it at zero.
        out = np.zeros_like(x, dtype=np.float32)
    else:
        out = (x - np.float32(lo)) / np.float32(hi - lo)
    if cfg.clip:
        np.clip(out, 0.0, 1.0, out=out)
    return out


def normalize_image(
    image: NDArray,
    cfg: NormalizationConfig,
    channel_axis: int | None = None,
) -> NDArray[np.float32]:
    """Return ``image`` as float32 scaled by ``cfg``.

    Args:
        image: array in napari axis order, optionally with a channel axis.
        cfg: the normalisation scheme.
        channel_axis: index of the channel axis, or ``None`` for single-channel.

    Raises:
        ValueError: the image holds NaN or infinite values.
    """
    arr = np.asarray(image)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(
            "The image contains NaN or infinite values; replace them (e.g. with "
            "numpy.nan_to_num) before segmenting."
        )
    if channel_axis is None or not cfg.per_channel:
        return _scale(arr, cfg)
    moved = np.moveaxis(arr, channel_axis, 0)
    out = np.stack([_scale(c, cfg) for c in moved], axis=0)
    return np.moveaxis(out, 0, channel_axis)
