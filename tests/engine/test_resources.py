"""Splitting a cluster's CPUs and GPUs between concurrent trials."""

from __future__ import annotations

import pytest

from search.engine.resources import plan_resources
from search.errors import SettingsError
from search.settings import SearchSettings


@pytest.mark.parametrize(("settings", "cluster", "expected"), [
    ({}, {"CPU": 2}, (1, 0.0, 2)),
    ({"concurrency": 1}, {"CPU": 2}, (2, 0.0, 1)),
    ({}, {"CPU": 16}, (1, 0.0, 16)),
    ({"trials": 3}, {"CPU": 16}, (5, 0.0, 3)),
    ({}, {"CPU": 16, "GPU": 1}, (16, 1.0, 1)),
    ({}, {"CPU": 16, "GPU": 4}, (4, 1.0, 4)),
    ({"gpus_per_trial": 0.5}, {"CPU": 16, "GPU": 1}, (8, 0.5, 2)),
    ({"gpus_per_trial": 0}, {"CPU": 8, "GPU": 1}, (1, 0.0, 8)),
])
def test_plan_resources(settings, cluster, expected):
    plan = plan_resources(SearchSettings(**settings), cluster)
    assert (plan.cpus, plan.gpus, plan.concurrency) == expected


def test_more_gpus_than_the_cluster_has_is_a_settings_error():
    with pytest.raises(SettingsError, match=r"--gpus-per-trial 1 asks for more GPUs than "
                                            r"Ray sees \(0\)"):
        plan_resources(SearchSettings(gpus_per_trial=1), {"CPU": 2})
