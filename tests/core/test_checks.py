"""Input checks and the parsing of sizes the user types (core.checks)."""

import pytest

from napari_resunet.core.checks import parse_sizes, parse_tile_shape


def test_sizes_are_read_with_commas_or_crosses():
    assert parse_sizes("64,128,128") == (64, 128, 128)
    assert parse_sizes("64x128x128") == (64, 128, 128)
    assert parse_sizes(" 256, 256 ") == (256, 256)
    for bad in ("abc", "64;64", "", "0,64", "-8,64", "6.5,64"):
        with pytest.raises(ValueError, match=r"such as 64,128,128 .*got"):
            parse_sizes(bad)


def test_a_tile_shape_is_auto_or_sizes_with_a_message_that_names_it():
    assert parse_tile_shape("auto") is None
    assert parse_tile_shape("  AUTO ") is None
    assert parse_tile_shape("") is None
    assert parse_tile_shape("16x32x32") == (16, 32, 32)
    with pytest.raises(ValueError, match=r"tile shape 'big' is not understood: .*auto"):
        parse_tile_shape("big")
