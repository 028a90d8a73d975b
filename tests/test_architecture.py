"""Conv arithmetic: which architectures fit which images."""

from __future__ import annotations

import pytest

from search.architecture import (
    check_config_fits,
    check_space_fits,
    feature_map_sizes,
    max_conv_blocks,
)
from search.config import TrialConfig
from search.errors import ArchitectureError, SpaceError
from search.space import load_space, parse_space


@pytest.mark.parametrize(("height", "width", "blocks"), [
    (8, 8, 3), (28, 28, 4), (32, 32, 5), (1, 1, 0), (2, 5, 1), (7, 7, 2),
])
def test_max_conv_blocks(height, width, blocks):
    assert max_conv_blocks(height, width) == blocks


def test_feature_map_sizes_halve_and_floor():
    assert feature_map_sizes(28, 28, 4) == [(14, 14), (7, 7), (3, 3), (1, 1)]
    assert feature_map_sizes(8, 8, 5) == [(4, 4), (2, 2), (1, 1)]  # stops: impossible


def test_too_deep_config_is_rejected():
    with pytest.raises(ArchitectureError, match=r"4 conv blocks need images of at least "
                                                r"16x16, but these are 8x8 \(at most 3"):
        check_config_fits(TrialConfig(conv_blocks=4), (8, 8, 1))
    check_config_fits(TrialConfig(conv_blocks=3), (8, 8, 1))


def test_space_too_deep_for_the_data_points_at_its_line():
    space = parse_space("description: deep\nconv_blocks: {int: [1, 5]}\n", path="deep.yaml")
    with pytest.raises(SpaceError, match=r"^deep.yaml:2: conv_blocks: 5 conv blocks need"):
        check_space_fits(space, (8, 8, 1))
    check_space_fits(space, (32, 32, 3))


def test_default_space_fits_digits():
    check_space_fits(load_space("default"), (8, 8, 1))
