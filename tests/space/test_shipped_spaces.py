"""Every space in spaces/ validates, samples, and every sample builds in Keras."""

from __future__ import annotations

import keras
import optuna
import pytest

from search.errors import ArchitectureError
from search.space import load_space, shipped_spaces_dir
from search.space.sampling import grid_points, suggest_params, survey_space
from search.trial.architecture import plan_architecture
from search.trial.config import TrialConfig
from search.trial.model import build_model

optuna.logging.set_verbosity(optuna.logging.WARNING)
SHIPPED = sorted(p.stem for p in shipped_spaces_dir().glob("*.yaml"))


def test_the_documented_spaces_ship():
    assert {"default", "mnist", "cifar", "grid_optimizers", "multi_objective"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_space_is_documented_and_mostly_trainable(name):
    space = load_space(name)
    assert space.description
    assert space.input_shape is not None
    survey = survey_space(space, space.input_shape, 10, samples=300)
    assert survey.feasible >= 0.5 * survey.samples, survey.reasons


@pytest.mark.parametrize("name", SHIPPED)
def test_every_sample_builds(name):
    space = load_space(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=11))
    built = 0
    for _ in range(6):
        config = TrialConfig.from_params(suggest_params(space, study.ask()))
        try:
            plan = plan_architecture(config, space.input_shape, 10, max_params=space.max_params)
        except ArchitectureError:
            continue  # rejected at sampling in a real search; never built
        keras.backend.clear_session(free_memory=False)  # a full collection per model is slow
        model = build_model(config, space.input_shape, 10, training_steps=100)
        assert model.count_params() == plan.params
        built += 1
    assert built >= 3


def test_grid_space_enumerates_its_product():
    space = load_space("grid_optimizers")
    assert space.is_grid()
    points, infeasible = grid_points(space, space.input_shape, 10)
    assert len(points) == 7 * 4 * 3 and not infeasible
    assert len({tuple(sorted(p.items())) for p in points}) == len(points)
