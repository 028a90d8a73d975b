"""Each trial scheduler acting in a real search (local Ray, real Keras training on tiny
data), and MO-ASHA's rung decisions."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from search.engine.pareto_asha import ParetoASHA
from search.engine.tuner import run_search
from search.metrics import OBJECTIVE, PARAMS
from search.settings import SearchSettings
from search.space import parse_space

#: One good learning rate first, then rates too small to learn anything in a few epochs:
#: run one at a time, the later trials lag behind the first at every rung.
LAGGARDS = ("learning_rate: {grid: [0.03, 1.0e-6, 2.0e-6, 3.0e-6]}\n"
            "conv_blocks: 1\nfilters: 4\ndense_units: 8\n")


def _settings(name, tmp_path, **options) -> SearchSettings:
    values = {"name": name, "max_epochs": 4, "patience": 10, "cpus": 2, "concurrency": 1,
              "storage": tmp_path / "ray", **options}
    return SearchSettings(**values)


@pytest.mark.slow
def test_asha_stops_laggards_and_mlflow_says_stopped(small_digits, tmp_path, local_ray,
                                                     write_space, tracking_uri):
    from search.pipeline import execute, prepare
    from search.request import DataRequest, SearchRequest

    settings = _settings("asha", tmp_path, scheduler="asha", grace_epochs=1)
    prepared = prepare(SearchRequest(space=str(write_space(LAGGARDS)),
                                     data=DataRequest(limit=300), settings=settings,
                                     tracking_uri=tracking_uri))
    report = execute(prepared)
    trials = sorted(report.outcome.trials, key=lambda t: t.number)
    assert (trials[0].status, trials[0].epochs) == ("completed", 4)
    stopped = [t for t in trials if t.status == "stopped"]
    assert stopped and all(t.epochs < 4 for t in stopped)

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("convsearch")
    runs = client.search_runs([experiment.experiment_id],
                              "tags.`convsearch.role` = 'trial'")
    statuses = {r.data.tags["convsearch.trial_id"]: r.data.tags["convsearch.status"]
                for r in runs}
    assert {statuses[t.trial_id] for t in stopped} == {"stopped"}


@pytest.mark.slow
def test_hyperband_stops_laggards(small_digits, tmp_path, local_ray):
    from search.engine.stopping import hyperband_brackets

    settings = _settings("hyperband", tmp_path, scheduler="hyperband", grace_epochs=1)
    assert hyperband_brackets(settings) == 2  # first cuts after 1 and 3 of 4 epochs
    # Ray assigns trials to brackets at random (numpy's generator): fixed here, the good
    # first trial shares its bracket with laggards that arrive after it.
    np.random.seed(0)
    space = parse_space(LAGGARDS.replace("3.0e-6]", "3.0e-6, 4.0e-6, 5.0e-6, 6.0e-6]"))
    outcome = run_search(space, small_digits, settings)
    stopped = [t for t in outcome.trials if t.status == "stopped"]
    assert stopped and all(t.epochs < 4 for t in stopped)
    best = max(outcome.trials, key=lambda t: t.best_val_accuracy)
    assert best.params["learning_rate"] == 0.03 and best.epochs == 4


@pytest.mark.slow
def test_median_rule_stops_a_trial_below_the_median(small_digits, tmp_path, local_ray):
    # Three trials that learn, then one that cannot: the median rule stops the last.
    space = parse_space("learning_rate: {grid: [0.03, 0.02, 0.01, 1.0e-6]}\n"
                        "conv_blocks: 1\nfilters: 4\ndense_units: 8\n")
    settings = _settings("median", tmp_path, scheduler="median", grace_epochs=1)
    outcome = run_search(space, small_digits, settings)
    by_rate = {t.params["learning_rate"]: t for t in outcome.trials}
    assert by_rate[1e-6].status == "stopped" and by_rate[1e-6].epochs < 4
    assert all(by_rate[r].status == "completed" for r in (0.03, 0.02, 0.01))


def test_pbt_needs_a_knob_it_can_mutate():
    from search.engine.population import make_population_training
    from search.errors import SettingsError

    with pytest.raises(SettingsError, match="this space searches none of them"):
        make_population_training(SearchSettings(scheduler="pbt"),
                                 parse_space("filters: {int: [4, 8]}\n"))


@pytest.mark.slow
def test_mo_asha_is_the_default_and_stops_dominated_trials(small_digits, tmp_path,
                                                           local_ray):
    # The same model at every rate: the later trials are as large and less accurate than
    # the first, so they are dominated at the first rung.
    space = parse_space("objectives: [val_accuracy, params]\n" + LAGGARDS)
    settings = _settings("mo-asha", tmp_path, grace_epochs=1)
    outcome = run_search(space, small_digits, settings)
    trials = sorted(outcome.trials, key=lambda t: t.number)
    assert (trials[0].status, trials[0].epochs) == ("completed", 4)
    stopped = [t for t in trials if t.status == "stopped"]
    assert stopped and all(t.epochs < 4 for t in stopped)


def _rung_decisions(scheduler, arrivals):
    """Feed each (trial id, accuracy, params) to the scheduler at its first rung."""
    decisions = {}
    for trial_id, accuracy, params in arrivals:
        trial = SimpleNamespace(trial_id=trial_id)
        decisions[trial_id] = scheduler.on_trial_result(
            None, trial, {"epoch": 1, OBJECTIVE: accuracy, PARAMS: params})
    return decisions


def test_mo_asha_keeps_a_small_model_that_asha_would_cut():
    scheduler = ParetoASHA(["val_accuracy", "params"], time_attr="epoch", max_t=9,
                           grace_period=1, reduction_factor=3)
    assert scheduler.milestones == [1, 3]
    arrivals = [("big-good", 0.90, 100_000), ("big-worse", 0.85, 120_000),
                ("dominated", 0.50, 150_000), ("small", 0.60, 2_000)]
    decisions = _rung_decisions(scheduler, arrivals)
    # Fourth at the rung, the top third by accuracy alone (ASHA's rule) would be
    # "big-good" only; the Pareto order is big-good, small (the front), then the others,
    # and the top ceil(4 / 3) = 2 go on. Dominated trials stop.
    assert decisions == {"big-good": "CONTINUE", "big-worse": "STOP", "dominated": "STOP",
                         "small": "CONTINUE"}


def test_mo_asha_is_the_default_for_several_objectives():
    from search.settings import choose_scheduler

    assert choose_scheduler(None, ("val_accuracy", "params")) == "mo-asha"
    assert choose_scheduler(None, ("val_accuracy",)) == "asha"
    assert choose_scheduler("median", ("val_accuracy", "params")) == "median"
