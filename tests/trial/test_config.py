"""TrialConfig: defaults, block rules and overrides, and the dotted-name round trip."""

from __future__ import annotations

import pytest

from search.space.parameters import BLOCK_KNOBS, KNOBS, MAX_CONV_BLOCKS, default_params
from search.trial.config import Augmentation, ConvBlock, TrialConfig


def test_every_default_lies_in_its_domain():
    for name, value in default_params().items():
        assert KNOBS[name].domain.problem(value) is None, name


def test_every_knob_has_help_and_per_block_knobs_exist_for_every_block():
    assert all(knob.help for knob in KNOBS.values())
    for number in range(1, MAX_CONV_BLOCKS + 1):
        for name in BLOCK_KNOBS:
            knob = KNOBS[f"block{number}.{name}"]
            assert knob.default is None
            assert str(knob.when) == f"conv_blocks >= {number}"


def test_a_condition_comes_after_the_knob_it_reads():
    order = list(KNOBS)
    for name, knob in KNOBS.items():
        if knob.when is not None:
            assert order.index(knob.when.param) < order.index(name), name


def test_defaults_resolve_to_two_blocks():
    config = TrialConfig()
    assert config == TrialConfig.from_params({})
    assert config.blocks == (ConvBlock(), ConvBlock())
    assert config.augmentation == Augmentation()


def test_filters_growth_is_the_rule_for_later_blocks():
    config = TrialConfig.from_params({"conv_blocks": 4, "filters": 16, "filters_growth": 2.0})
    assert [b.filters for b in config.blocks] == [16, 32, 64, 128]
    config = TrialConfig.from_params({"conv_blocks": 3, "filters": 10, "filters_growth": 1.5})
    assert [b.filters for b in config.blocks] == [10, 15, 22]


def test_per_block_knobs_override_shared_ones_for_that_block_only():
    config = TrialConfig.from_params({
        "conv_blocks": 3, "filters": 16, "filters_growth": 2.0, "kernel_size": 3,
        "block2.kernel_size": 5, "block2.filters": 20, "block3.pooling": "global"})
    assert [b.kernel_size for b in config.blocks] == [3, 5, 3]
    assert [b.filters for b in config.blocks] == [16, 20, 64]
    assert [b.pooling for b in config.blocks] == ["max", "max", "global"]


def test_round_trip_through_dotted_params():
    config = TrialConfig.from_params({
        "optimizer": "sgd", "momentum": 0.9, "nesterov": True, "conv_blocks": 3,
        "filters_growth": 2.0, "block3.stride": 2, "augmentation.flip": "horizontal",
        "augmentation.contrast": 0.2})
    params = config.to_params()
    assert params["block3.filters"] == 128 and params["block3.stride"] == 2
    assert TrialConfig.from_params(params) == config


def test_to_params_leaves_out_knobs_that_do_not_apply():
    params = TrialConfig.from_params({"optimizer": "adam"}).to_params()
    assert "momentum" not in params and "nesterov" not in params
    params = TrialConfig.from_params({"optimizer": "rmsprop", "momentum": 0.5}).to_params()
    assert params["momentum"] == 0.5 and "nesterov" not in params


def test_unknown_param_is_rejected():
    with pytest.raises(KeyError, match="optimiser"):
        TrialConfig.from_params({"optimiser": "adam"})
