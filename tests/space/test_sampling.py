"""Sampling a space through a real Optuna study, the way the engine's searcher does."""

from __future__ import annotations

import warnings

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


def test_grid_refuses_ranges():
    from search.errors import SettingsError
    from search.space.sampling import grid_points

    space = parse_space("batch_size: {grid: [16, 32]}\ndropout: {uniform: [0.1, 0.2]}\n")
    with pytest.raises(SettingsError, match="dropout is a range"):
        grid_points(space, (8, 8, 1), 10)


#: Spaces of finitely many configs, each with the kinds of knob a grid and a sampler
#: could disagree on.
_FINITE_SPACES = {
    "fixed knobs under a knob's own condition and a per-block override": (
        "optimizer: {grid: [sgd, adam]}\nmomentum: 0.9\nconv_blocks: 2\n"
        "block2: {filters: 64}\n"),
    "searched conditional knobs": (
        "optimizer: {grid: [sgd, rmsprop, adam]}\nmomentum: {grid: [0.5, 0.9]}\n"
        "nesterov: {choices: [true, false]}\n"),
    "conditions from the file, fixed and searched": (
        "conv_blocks: {grid: [1, 2, 3]}\n"
        "dense_units: {value: 32, when: {conv_blocks: [1, 2]}}\n"
        "dropout: {grid: [0.0, 0.3], when: {conv_blocks: 3}}\n"),
    "per-block overrides under a searched block count": (
        "conv_blocks: {grid: [1, 2, 3]}\nfilters: {grid: [8, 16]}\n"
        "block2: {kernel_size: {grid: [3, 5]}}\nblock3: {pooling: none, filters: 4}\n"),
    "optional knobs": (
        "batch_size: {grid: [16, 32]}\n"
        "dropout: {choices: [0.1, 0.2], optional: true}\n"
        "augmentation:\n  rotation: {choices: [0.05], optional: true}\n"),
    "infeasible points among feasible ones": (
        "conv_blocks: {grid: [1, 2, 3, 4]}\nkernel_size: {grid: [3, 5]}\npadding: valid\n"),
}


def _brute_force_configs(space) -> set[TrialConfig]:
    """Every config Optuna's brute-force sampler reaches through `suggest_params`."""
    configs = set()

    def objective(trial):
        configs.add(TrialConfig.from_params(suggest_params(space, trial)))
        return 0.0

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.BruteForceSampler(seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=1000)
    assert len(study.trials) < 1000, "the sampler did not exhaust the space"
    return configs


@pytest.mark.parametrize("text", _FINITE_SPACES.values(), ids=_FINITE_SPACES.keys())
def test_grid_and_sampler_resolve_the_same_configs(text):
    from search.space.sampling import grid_points, infeasibility

    space = parse_space(text)
    shape = (8, 8, 1)
    points, infeasible = grid_points(space, shape, 10)
    grid = [TrialConfig.from_params(p) for p in points]
    assert len(set(grid)) == len(grid), "a grid point is repeated"
    sampled = _brute_force_configs(space)
    feasible = {c for c in sampled
                if infeasibility(space, c.to_params(), shape, 10) is None}
    assert set(grid) == feasible
    assert len(sampled) == len(grid) + sum(infeasible.values())


def test_grid_keeps_fixed_knobs_that_carry_a_condition():
    from search.space.sampling import grid_points

    space = parse_space(_FINITE_SPACES[
        "fixed knobs under a knob's own condition and a per-block override"])
    points, _ = grid_points(space, (8, 8, 1), 10)
    by_optimizer = {p["optimizer"]: TrialConfig.from_params(p) for p in points}
    assert by_optimizer["sgd"].momentum == 0.9
    assert by_optimizer["adam"].momentum == 0.0  # adam has no momentum knob
    assert all(c.blocks[1].filters == 64 for c in by_optimizer.values())


def test_violation_measures_how_far_a_config_is_from_trainable():
    from search.space.sampling import violation

    space = parse_space("filters: {choices: [4, 64]}\ndense_units: 8\nmax_params: 2000\n")
    small = {"conv_blocks": 1, "filters": 4, "dense_units": 8}
    assert violation(space, small, (8, 8, 1), 10) == 0.0
    over = violation(space, {**small, "filters": 64}, (8, 8, 1), 10)
    bigger = violation(space, {**small, "filters": 64, "dense_units": 16}, (8, 8, 1), 10)
    assert 0 < over < bigger  # by how much the model exceeds max_params
    assert violation(space, {**small, "conv_blocks": 4}, (8, 8, 1), 10) == 1.0
