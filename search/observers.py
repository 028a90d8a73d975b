"""What the engine tells the rest of convsearch while a search runs.

The engine calls every `SearchObserver` from the driver process, one event at a time, in
the order Ray Tune sees them; observers never touch Ray. The MLflow tracker and the CLI's
progress display are the two observers. An observer may see the same event twice (after
the driver restarts and resumes a search), so each must handle repeats idempotently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

TrialStatus = Literal["completed", "stopped", "failed"]


@dataclass(frozen=True)
class TrialResult:
    """How a trial ended.

    ``completed``: trained until early stopping or the epoch budget; ``stopped``: the
    scheduler (ASHA) stopped it for lagging behind, or the search's budget ran out;
    ``failed``: it raised, or its worker died more often than retried (message in `error`).
    A failed trial keeps the best value it reached before failing.
    """

    trial_id: str
    params: dict[str, Any]
    status: TrialStatus
    epochs: int
    best_val_accuracy: float | None
    error: str | None = None
    #: The trial's last reported objective values by metric name (best_val_accuracy,
    #: params, latency_ms where measured).
    values: dict[str, float] = field(default_factory=dict)
    #: The trial's number in its search, from 1 (0: unknown).
    number: int = 0
    #: A failed trial's traceback, when its code raised.
    error_detail: str | None = None


@dataclass(frozen=True)
class SearchOutcome:
    """What a finished search produced."""

    #: Every trial, in the order they started.
    trials: list[TrialResult]
    #: The trial with the highest validation accuracy.
    best: TrialResult
    #: Directory holding the best trial's best-epoch checkpoint.
    best_checkpoint: Path
    #: Where Ray Tune keeps this search's state and results.
    experiment_path: str
    #: Sampled configs that were never trained, by reason (model cannot take the data,
    #: or more parameters than the space's max_params).
    infeasible: Counter[str] = field(default_factory=Counter)
    #: With several objectives: the trials no other trial beats on all of them.
    pareto: list[TrialResult] = field(default_factory=list)
    #: Why the search ended before its trial budget (a time or epoch budget), if it did.
    stop_reason: str | None = None
    #: Whether `best_checkpoint` is a temporary copy of remote storage (s3://...), for
    #: the caller to remove once it has read the model.
    best_checkpoint_is_copy: bool = False


class SearchObserver:
    """Receives trial events from the engine, in the driver. Subclasses override the
    events they need; the others do nothing.

    `search_started` comes first, once per driver run: `ended` are the trials a resumed
    search finished before (empty for a new search), `unfinished` the ids of trials it
    will continue. `checkpoint_dir` holds the trial's new best model (`BEST_FILE` of
    `search.trial.checkpoints`) and is valid only during the call.
    """

    def search_started(self, budget: int, ended: Sequence[TrialResult],
                       unfinished: Sequence[str]) -> None:
        """The search's trial loop began."""

    def trial_started(self, trial_id: str, params: dict[str, Any], number: int = 0) -> None:
        """A trial began (the `number`-th of its search), or a restarted one began again."""

    def epoch_ended(self, trial_id: str, epoch: int, metrics: dict[str, float]) -> None:
        """A trial finished an epoch (its own count, from 1). Until `epochs_saved` covers
        it, a restart (`trial_restarted`) may train that epoch again and report it anew."""

    def epochs_saved(self, trial_id: str, epoch: int) -> None:
        """Ray Tune holds a checkpoint of the trial's training through `epoch`: a restart
        continues after it."""

    def trial_restarted(self, trial_id: str) -> None:
        """The trial's worker died and the trial continues from its latest checkpoint: the
        epochs it reported after that checkpoint are trained again."""

    def checkpoint_saved(self, trial_id: str, checkpoint_dir: Path) -> None:
        """A trial's best model changed."""

    def trial_mutated(self, trial_id: str, epoch: int, source: int,
                      params: dict[str, Any]) -> None:
        """Population-based training: the trial continues from trial number `source`'s
        checkpoint at `epoch`, with these values of the knobs it mutates."""

    def trial_ended(self, result: TrialResult) -> None:
        """A trial ended: completed, stopped or failed."""
