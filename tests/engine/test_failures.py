"""A trial whose code raises: the search goes on, and the search algorithm learns the
best value the trial reached (not a failure without a value)."""

from __future__ import annotations

import json

import optuna
import pytest

from search.engine.searchers import feasible_optuna_searcher
from search.engine.tuner import run_search
from search.settings import SearchSettings
from search.space import parse_space
from search.trial.faults import FAULTS_ENV


@pytest.mark.slow
def test_a_diverged_trial_tells_the_search_algorithm_its_best_value(small_digits, tmp_path,
                                                                     ray_with_worker_env):
    faults = [{"trial": 1, "epoch": 2, "action": "nan"}]
    space = parse_space("learning_rate: {loguniform: [3.0e-3, 1.0e-2]}\nconv_blocks: 1\n"
                        "filters: 4\ndense_units: 8\n")
    settings = SearchSettings(name="learns", algorithm="tpe", trials=2, max_epochs=3,
                              scheduler="none", concurrency=1, checkpoint_interval_s=0,
                              storage=tmp_path / "ray")
    with ray_with_worker_env({FAULTS_ENV: json.dumps(faults)}):
        outcome = run_search(space, small_digits, settings)
    first, second = sorted(outcome.trials, key=lambda t: t.number)
    assert (first.status, second.status) == ("failed", "completed")
    assert first.error == "TrainingError: loss became NaN or infinite in epoch 2 (injected)"
    assert first.epochs == 2 and first.best_val_accuracy > 0
    assert outcome.best is second  # a failed trial is never the search's model

    # The searcher state the search saved: Optuna completed trial 1 with its value.
    searcher = feasible_optuna_searcher(space, settings, small_digits.input_shape,
                                        small_digits.num_classes)
    searcher.restore_from_dir(str(tmp_path / "ray" / "learns"))
    study = searcher.inner._ot_study
    states = [(t.state, t.value) for t in study.trials]
    assert states[0] == (optuna.trial.TrialState.COMPLETE, first.best_val_accuracy)
