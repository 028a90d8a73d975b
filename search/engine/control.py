"""The driver's handle on a running search: its observers, its budgets and why it stops.

Ray Tune pickles the search algorithm, the stopper and the callbacks into the experiment
folder so that `Tuner.restore` can rebuild them; what they need from the driver that runs
the search (live observers, the trial budget, the clock, a signal that arrived) cannot
travel in that pickle, and a resumed search must use the resuming driver's. So those
objects hold only the search's name and look its `SearchControl` up here.

Used from the driver's Tune loop only (one thread), except `interrupt`, which a signal
handler calls.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from search.observers import SearchObserver, TrialResult
from search.settings import SearchSettings


@dataclass
class SearchControl:
    """What one search run by this driver may do, and what it has seen."""

    settings: SearchSettings
    observers: Sequence[SearchObserver] = ()
    #: Trials in all; a resumed search may raise it (``--resume NAME --trials N``).
    budget: int = 1
    #: time.monotonic() after which running trials stop and no new one starts.
    deadline: float | None = None
    #: The signal that asked the search to stop (SIGINT, SIGTERM), if one did, and
    #: whether Tune's loop has been told.
    interrupted: int | None = None
    interrupt_forwarded: bool = False
    #: Epochs reported so far, by trial (the trials' own epoch counters).
    epochs: dict[str, int] = field(default_factory=dict)
    #: Every trial that ended, in this run or before it (a resumed search), by id.
    ended: dict[str, TrialResult] = field(default_factory=dict)
    #: Trials that ended failed since the last one that did not, and their errors.
    failure_streak: list[str] = field(default_factory=list)
    #: Why the search stopped starting trials early, once it has.
    stop_reason: str | None = None
    #: Latest registered checkpoint of each trial, filled when the experiment ends.
    checkpoints: dict[str, Any] = field(default_factory=dict)
    #: Whether Tune's loop has run its first step (observers were told the search began).
    started: bool = False
    #: The search algorithm Tune runs (the restored one, for a resumed search).
    generator: Any = None
    #: Trials proposed and not yet finished at a time, as planned for this driver run (a
    #: resumed search may differ).
    concurrency: int = 1
    #: Trials in the snapshot this driver run restores (0 for a new search).
    restoring: int = 0

    def __post_init__(self) -> None:
        if self.deadline is None and self.settings.time_budget_s is not None:
            self.deadline = time.monotonic() + self.settings.time_budget_s

    def stopping(self) -> bool:
        """Whether the search should start no more trials and stop the running ones
        after their current epoch (a budget is spent, or too many trials failed)."""
        if self.stop_reason is None:
            budget = self.settings.epoch_budget
            if budget is not None and sum(self.epochs.values()) >= budget:
                self.stop_reason = f"the epoch budget ({budget}) is spent"
            elif self.deadline is not None and time.monotonic() >= self.deadline:
                self.stop_reason = "the time budget is spent"
            elif len(self.failure_streak) >= self.settings.max_consecutive_failures:
                self.stop_reason = "failures"
        return self.stop_reason is not None

    def record_end(self, result: TrialResult) -> None:
        self.ended[result.trial_id] = result
        if self.stop_reason == "failures":
            return  # the streak that stopped the search stays as it was
        if result.status == "failed":
            self.failure_streak.append(result.error or "unknown error")
        else:
            self.failure_streak.clear()

    def interrupt(self, signum: int) -> None:
        """Called from a signal handler: remember the first signal only."""
        if self.interrupted is None:
            self.interrupted = signum

    def most_common_failure(self) -> tuple[str, int]:
        error, count = Counter(self.failure_streak).most_common(1)[0]
        return error, count


_CONTROLS: dict[str, SearchControl] = {}


def control_of(search_name: str) -> SearchControl | None:
    """The control of the search with this name that this driver runs, if any."""
    return _CONTROLS.get(search_name)


@contextmanager
def controlling(control: SearchControl) -> Iterator[SearchControl]:
    """Make `control` findable by its search's name for the duration of the block."""
    name = control.settings.name
    _CONTROLS[name] = control
    try:
        yield control
    finally:
        _CONTROLS.pop(name, None)
