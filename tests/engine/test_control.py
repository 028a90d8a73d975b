"""The driver's handle on a search: objects Tune pickles find it by name, and it decides
when a search stops early."""

from __future__ import annotations

import time

import ray.cloudpickle as pickle

from search.engine.callbacks import TrialEvents
from search.engine.control import SearchControl, control_of, controlling
from search.observers import TrialResult
from search.settings import SearchSettings


def test_a_pickled_callback_reaches_the_current_drivers_observers():
    # Tune pickles callbacks into the experiment for Tuner.restore; live observers (MLflow
    # clients, consoles) must not travel, yet a restored callback must reach them.
    restored = pickle.loads(pickle.dumps(TrialEvents("resumable")))
    assert restored.observers == []
    observer = object()
    control = SearchControl(settings=SearchSettings(name="resumable"), observers=[observer])
    with controlling(control):
        assert control_of("resumable") is control
        assert restored.observers == [observer]
    assert control_of("resumable") is None


def _ended(status: str, error: str | None = None) -> TrialResult:
    return TrialResult(trial_id=f"t{time.perf_counter_ns()}", params={}, status=status,
                       epochs=1, best_val_accuracy=0.5, error=error)


def test_the_epoch_budget_stops_the_search():
    control = SearchControl(settings=SearchSettings(epoch_budget=5))
    control.epochs.update({"a": 2, "b": 2})
    assert not control.stopping()
    control.epochs["b"] = 3
    assert control.stopping()
    assert control.stop_reason == "the epoch budget (5) is spent"


def test_the_time_budget_stops_the_search():
    control = SearchControl(settings=SearchSettings(time_budget_s=0.05))
    assert not control.stopping()
    time.sleep(0.06)
    assert control.stopping() and control.stop_reason == "the time budget is spent"


def test_failures_in_a_row_stop_the_search_and_a_success_resets_the_count():
    control = SearchControl(settings=SearchSettings(max_consecutive_failures=3))
    for _ in range(2):
        control.record_end(_ended("failed", "TrainingError: loss became NaN"))
    control.record_end(_ended("completed"))
    control.record_end(_ended("failed", "RuntimeError: boom"))
    control.record_end(_ended("failed", "TrainingError: loss became NaN"))
    assert not control.stopping()
    control.record_end(_ended("failed", "TrainingError: loss became NaN"))
    assert control.stopping() and control.stop_reason == "failures"
    assert control.most_common_failure() == ("TrainingError: loss became NaN", 2)
