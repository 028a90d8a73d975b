"""The background writer: events in order, retried while the store refuses them, and a
clear account of what could not be written."""

from __future__ import annotations

import threading
import time

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

from search.errors import TrackingError
from search.observers import TrialResult
from search.tracking import writer as writer_module
from search.tracking.writer import BackgroundWriter


class FlakyTracker:
    """Stands in for a SearchTracker whose store refuses some calls."""

    def __init__(self, refusals: int = 0, broken_epoch: int | None = None,
                 deleted_epoch: int | None = None) -> None:
        self.refusals = refusals
        self.broken_epoch = broken_epoch
        self.deleted_epoch = deleted_epoch
        self.written: list[tuple] = []
        self.lock = threading.Lock()

    def trial_started(self, trial_id, params, number=0):
        self.written.append(("start", trial_id))

    def epoch_ended(self, trial_id, epoch, metrics, *, timestamp_ms=None):
        if epoch == self.broken_epoch:
            raise RuntimeError("a bug")
        if epoch == self.deleted_epoch:
            raise TrackingError("run deleted") from MlflowException(
                "gone", error_code=RESOURCE_DOES_NOT_EXIST)
        if self.refusals:
            self.refusals -= 1
            raise TrackingError("the store is down")
        self.written.append(("epoch", trial_id, epoch))

    def trial_ended(self, result, *, timestamp_ms=None):
        self.written.append(("end", result.trial_id))


def _result(trial_id: str) -> TrialResult:
    return TrialResult(trial_id, {}, "completed", 3, 0.5)


def test_events_are_written_in_order_after_the_store_comes_back(monkeypatch):
    monkeypatch.setattr(writer_module, "RETRY_PAUSES_S", (0.01,))
    tracker = FlakyTracker(refusals=3)
    writer = BackgroundWriter(tracker)
    writer.trial_started("t1", {})
    for epoch in (1, 2, 3):
        writer.epoch_ended("t1", epoch, {"val_accuracy": 0.5})
    writer.trial_ended(_result("t1"))
    assert writer.close(10) == []
    assert tracker.written == [("start", "t1"), ("epoch", "t1", 1), ("epoch", "t1", 2),
                               ("epoch", "t1", 3), ("end", "t1")]


def test_a_bug_or_a_refusal_for_good_skips_one_event_and_says_so(monkeypatch):
    monkeypatch.setattr(writer_module, "RETRY_PAUSES_S", (0.01,))
    tracker = FlakyTracker(broken_epoch=2, deleted_epoch=3)
    writer = BackgroundWriter(tracker)
    writer.trial_started("t1", {})
    for epoch in (1, 2, 3, 4):
        writer.epoch_ended("t1", epoch, {"val_accuracy": 0.5})
    writer.trial_ended(_result("t1"))
    assert writer.close(10) == ["trial t1: epochs 2-3"]
    assert tracker.written == [("start", "t1"), ("epoch", "t1", 1), ("epoch", "t1", 4),
                               ("end", "t1")]


def test_a_store_that_stays_down_is_given_up_on_at_close(monkeypatch):
    monkeypatch.setattr(writer_module, "RETRY_PAUSES_S", (0.01,))
    tracker = FlakyTracker(refusals=10**9)
    writer = BackgroundWriter(tracker)
    writer.trial_started("t1", {})
    writer.epoch_ended("t1", 1, {"val_accuracy": 0.5})
    writer.epoch_ended("t1", 2, {"val_accuracy": 0.5})
    writer.trial_ended(_result("t1"))
    assert writer.close(0.5) == ["trial t1: epochs 1-2, end"]
    assert writer.close(0.5) == ["trial t1: epochs 1-2, end"]  # again: the same account


def test_the_end_of_the_search_cuts_a_long_retry_pause_short(monkeypatch):
    monkeypatch.setattr(writer_module, "RETRY_PAUSES_S", (60.0,))
    tracker = FlakyTracker(refusals=1)
    writer = BackgroundWriter(tracker)
    writer.epoch_ended("t1", 1, {"val_accuracy": 0.5})
    deadline = time.monotonic() + 10
    while tracker.refusals and time.monotonic() < deadline:  # the store refused it once
        time.sleep(0.01)
    started = time.monotonic()
    assert writer.close(30) == []
    assert time.monotonic() - started < writer_module.CLOSING_RETRY_PAUSE_S + 3
    assert tracker.written == [("epoch", "t1", 1)]
