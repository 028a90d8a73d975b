"""Run settings are validated once, with messages that name the CLI flag."""

from __future__ import annotations

import pytest

from search.errors import SettingsError
from search.settings import (
    DEFAULT_GRACE_EPOCHS,
    SearchSettings,
    new_search_name,
    parse_duration,
)


@pytest.mark.parametrize(("kwargs", "pattern"), [
    ({"trials": 0}, r"--trials must be at least 1, got 0"),
    ({"max_epochs": -1}, r"--max-epochs must be at least 1"),
    ({"patience": 0}, r"--patience must be at least 1"),
    ({"grace_epochs": 0}, r"--grace-epochs must be at least 1"),
    ({"grace_epochs": 9, "max_epochs": 5}, r"--grace-epochs \(9\) cannot exceed --max-epochs"),
    ({"concurrency": 0}, r"--concurrency must be at least 1"),
    ({"cpus": 0}, r"--cpus must be at least 1"),
    ({"gpus_per_trial": -0.5}, r"--gpus-per-trial must be 0 or more"),
    ({"name": "a/b"}, r"--name 'a/b' must be a non-empty name"),
    ({"scheduler": "bohb"}, r"--scheduler 'bohb' is not a scheduler \(known: asha, "
                            r"mo-asha, hyperband, median, pbt, none\)"),
    ({"scheduler": "pbt", "algorithm": "tpe"}, r"--scheduler pbt evolves a population drawn "
                                               r"up front, which --algo tpe cannot propose"),
    ({"reduction_factor": 1}, r"--reduction-factor must be at least 2"),
    ({"perturbation_interval": 0}, r"--perturbation-interval must be at least 1"),
    ({"epoch_budget": 0}, r"--epoch-budget must be at least 1"),
    ({"algorithm": "bohb"}, r"--algo 'bohb' is not a search algorithm \(known: tpe, "),
    ({"name": ""}, r"--name '' must be"),
    ({"max_failures": -1}, r"--max-failures must be 0 or more"),
    ({"max_consecutive_failures": 0}, r"--max-consecutive-failures must be at least 1"),
    ({"time_budget_s": 0}, r"--time-budget must be positive"),
])
def test_bad_settings_name_the_flag(kwargs, pattern):
    with pytest.raises(SettingsError, match=pattern):
        SearchSettings(**kwargs)


def test_defaults_are_valid_and_loggable():
    settings = SearchSettings()
    params = settings.to_params()
    assert params["trials"] == settings.trials
    assert params["name"].startswith("search-")


def test_search_names_sort_by_time():
    assert new_search_name() <= new_search_name()


def test_the_grace_period_follows_max_epochs_unless_given():
    # A quick run needs no --grace-epochs: the default never exceeds --max-epochs.
    assert SearchSettings(max_epochs=3).grace == 3
    assert SearchSettings(max_epochs=30).grace == DEFAULT_GRACE_EPOCHS
    assert SearchSettings(max_epochs=30, grace_epochs=7).grace == 7


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("30m", 1800), ("2h", 7200), ("45", 45), (" 1.5h ", 5400)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5m", "0s", "5 min", "3d"])
def test_bad_durations_name_the_flag(text):
    with pytest.raises(SettingsError, match=r"--time-budget .* is not a duration like 90s"):
        parse_duration(text)


def test_settings_round_trip_through_their_record(tmp_path):
    settings = SearchSettings(name="x", trials=7, time_budget_s=60.0, storage=tmp_path,
                              grace_epochs=2, algorithm="random")
    assert SearchSettings.from_record(settings.to_record()) == settings
