import numpy as np
import pytest

from napari_resunet.core.config import NormalizationConfig
from napari_resunet.core.io import load_sample
from napari_resunet.core.normalize import normalize_image

FOREGROUND = NormalizationConfig(anchor="foreground")


def nuclei_field(blob: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A fluorescence-like field: camera offset and noise, discs of nuclei at about
    6x the background and, with ``blob``, one saturated patch of debris covering
    2% of the field (more than the 0.2% the 99.8th percentile looks past)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:256, :256]
    nuclei = np.zeros((256, 256), bool)
    for _ in range(30):
        cy, cx = rng.integers(10, 246, 2)
        nuclei |= (yy - cy) ** 2 + (xx - cx) ** 2 < 7**2
    image = 100 + rng.normal(0, 4, (256, 256)) + 20 * rng.random((256, 256))
    image[nuclei] += 500 + rng.normal(0, 30, int(nuclei.sum()))
    if blob:
        image[20:56, 200:236] = 4095  # 36 x 36 = 2% of the field
    return image.astype(np.uint16), nuclei


def test_percentile_scaling_maps_low_and_high_percentiles_to_0_and_1():
    image, _ = nuclei_field(blob=False)
    x = normalize_image(image, NormalizationConfig())
    assert x.dtype == np.float32
    assert np.percentile(x, 1) == pytest.approx(0.0, abs=1e-5)
    assert np.percentile(x, 99.8) == pytest.approx(1.0, abs=1e-5)


def test_foreground_anchor_puts_the_objects_median_at_one_half():
    image, nuclei = nuclei_field(blob=False)
    x = normalize_image(image, FOREGROUND)
    assert np.median(x[nuclei]) == pytest.approx(0.5, abs=0.03)
    assert np.percentile(x, 1) == pytest.approx(0.0, abs=1e-5)
    assert np.median(x[~nuclei]) < 0.05


def test_foreground_anchor_is_not_moved_by_a_bright_blob():
    """The debris sets the 99.8th percentile and dims the nuclei to a fifth of
    their level; anchored on the foreground they stay where they were."""
    image, nuclei = nuclei_field(blob=True)
    keep = nuclei.copy()
    keep[20:56, 200:236] = False  # nuclei under the blob are gone
    plain, _ = nuclei_field(blob=False)
    by_percentile = np.median(normalize_image(image, NormalizationConfig())[keep])
    clean = np.median(normalize_image(plain, NormalizationConfig())[keep])
    assert by_percentile < 0.3 * clean  # the problem the anchor solves
    anchored = np.median(normalize_image(image, FOREGROUND)[keep])
    assert anchored == pytest.approx(0.5, abs=0.03)


def test_foreground_anchor_ignores_gain_and_offset():
    image, _ = nuclei_field(blob=True)
    a = normalize_image(image.astype(np.float32), FOREGROUND)
    b = normalize_image(3.5 * image.astype(np.float32) + 200.0, FOREGROUND)
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_foreground_anchor_on_a_shipped_bbbc039_field():
    image, labels = load_sample("nuclei2d")
    x = normalize_image(image.data, FOREGROUND)
    inside = np.median(x[labels.data > 0])
    assert 0.45 < inside < 0.65, inside
    assert np.median(x[labels.data == 0]) < 0.1


def test_foreground_anchor_on_flat_images_falls_back_to_percentiles():
    flat = np.full((32, 32), 7.0, np.float32)
    assert not normalize_image(flat, FOREGROUND).any()
    two = np.zeros((32, 32), np.float32)
    two[:4] = 10.0  # one level above the floor: no second hump to split off
    x = normalize_image(two, FOREGROUND)
    assert x.min() == 0.0 and x.max() == pytest.approx(1.0)


def test_unknown_anchor_is_rejected():
    with pytest.raises(ValueError, match="anchor"):
        NormalizationConfig(anchor="otsu")
