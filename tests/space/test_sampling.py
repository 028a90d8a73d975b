"""Sampling a space through a real Optuna study, the way the engine's searcher does."""

from __future__ import annotations

import optuna
import pytest

from search.space import load_space, parse_space
from search.space.sampling import suggest_params
from search.trial.config import TrialConfig

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _sample(space, seed: int, n: int) -> list[dict]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    samples = []
    for _ in range(n):
        trial = study.ask()
        samples.append(suggest_params(space, trial))
        study.tell(trial, 0.5)
    return samples


def test_samples_stay_inside_their_distributions():
    space = load_space("default")
    for params in _sample(space, seed=1, n=50):
        for name, dist in space.distributions.items():
            if not space.active(name, params):
                assert name not in params, name
                continue
            value = params[name]
            if hasattr(dist, "values"):
                assert value in dist.values, name
            elif hasattr(dist, "low"):
                assert dist.low <= value <= dist.high, name
            else:
                assert value == dist.value, name
        TrialConfig.from_params(params)  # every sample is a valid config


def test_fixed_parameters_are_not_shown_to_the_sampler():
    space = parse_space("optimizer: {choices: [adam, sgd]}\nbatch_size: 64\n")
    study = optuna.create_study()
    trial = study.ask()
    params = suggest_params(space, trial)
    assert params["batch_size"] == 64
    assert set(trial.params) == {"optimizer"}


def test_int_ranges_respect_step_and_log():
    space = parse_space("filters: {int: [16, 64], step: 16}\n"
                        "dense_units: {int: [8, 256], log: true}\n")
    for params in _sample(space, seed=2, n=30):
        assert params["filters"] in (16, 32, 48, 64)
        assert 8 <= params["dense_units"] <= 256


@pytest.mark.parametrize("seed", [0, 7])
def test_same_seed_same_samples(seed):
    space = load_space("default")
    assert _sample(space, seed, 5) == _sample(space, seed, 5)


def test_different_seeds_differ():
    space = load_space("default")
    assert _sample(space, 0, 5) != _sample(space, 1, 5)


def test_an_optional_knob_is_sampled_only_when_switched_on():
    space = parse_space("augmentation:\n  rotation: {uniform: [0.02, 0.2], optional: true}\n")
    samples = _sample(space, seed=4, n=40)
    on = [p for p in samples if p["augmentation.rotation.on"]]
    off = [p for p in samples if not p["augmentation.rotation.on"]]
    assert on and off
    assert all(0.02 <= p["augmentation.rotation"] <= 0.2 for p in on)
    assert all("augmentation.rotation" not in p for p in off)
    assert TrialConfig.from_params(off[0]).augmentation.rotation == 0.0
    assert TrialConfig.from_params(on[0]).augmentation.rotation == \
        on[0]["augmentation.rotation"]


def test_grid_refuses_optional_knobs():
    from search.errors import SettingsError
    from search.space.sampling import grid_points

    space = parse_space("batch_size: {grid: [16, 32]}\n"
                        "dropout: {choices: [0.1, 0.2], optional: true}\n")
    with pytest.raises(SettingsError, match="cannot search conditional or optional knobs: "
                                            "dropout"):
        grid_points(space, (8, 8, 1), 10)
