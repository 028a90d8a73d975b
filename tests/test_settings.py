"""Run settings are validated once, with messages that name the CLI flag."""

from __future__ import annotations

import pytest

from search.errors import SettingsError
from search.settings import SearchSettings, new_search_name


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
    ({"scheduler": "hyperband"}, r"--scheduler 'hyperband' is not a scheduler \(known: asha, "
                                 r"none\)"),
    ({"epoch_budget": 0}, r"--epoch-budget must be at least 1"),
    ({"algorithm": "bohb"}, r"--algo 'bohb' is not a search algorithm \(known: tpe, "),
    ({"name": ""}, r"--name '' must be"),
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
