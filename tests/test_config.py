"""TrialConfig: defaults, domains and the dotted-name round trip."""

from __future__ import annotations

import pytest

from search.config import (
    Augmentation,
    TrialConfig,
    default_params,
    parameter_domains,
    parameter_help,
)


def test_every_default_lies_in_its_domain():
    domains = parameter_domains()
    for name, value in default_params().items():
        assert domains[name].problem(value) is None, name


def test_every_parameter_has_help():
    assert set(parameter_help()) == set(parameter_domains())
    assert all(parameter_help().values())


def test_augmentation_parameters_are_dotted():
    names = set(parameter_domains())
    assert {"augmentation.flip", "augmentation.rotation", "augmentation.zoom",
            "augmentation.translation"} <= names


def test_round_trip_through_dotted_params():
    config = TrialConfig(optimizer="nadam", learning_rate=0.01, conv_blocks=3,
                         augmentation=Augmentation(flip="horizontal", rotation=0.1))
    assert TrialConfig.from_params(config.to_params()) == config


def test_missing_params_take_defaults():
    config = TrialConfig.from_params({"optimizer": "sgd", "augmentation.zoom": 0.2})
    assert config.optimizer == "sgd"
    assert config.augmentation.zoom == 0.2
    assert config.batch_size == TrialConfig().batch_size


def test_unknown_param_is_rejected():
    with pytest.raises(KeyError, match="optimiser"):
        TrialConfig.from_params({"optimiser": "adam"})
