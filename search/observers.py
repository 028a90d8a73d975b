"""What the engine tells the rest of convsearch while a search runs.

The engine calls every `SearchObserver` from the driver process, one event at a time, in
the order Ray Tune sees them; observers never touch Ray. The MLflow tracker and the CLI's
progress display are the two observers. An observer may see the same event twice (after
the driver restarts and resumes a search), so each must handle repeats idempotently.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

TrialStatus = Literal["completed", "stopped", "failed"]


@dataclass(frozen=True)
class TrialResult:
    """How a trial ended.

    ``completed``: trained until early stopping or the epoch budget; ``stopped``: the
    scheduler (ASHA) stopped it for lagging behind; ``failed``: it raised (message in
    `error`).
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


class SearchObserver(Protocol):
    """Receives trial events from the engine, in the driver."""

    def trial_started(self, trial_id: str, params: dict[str, Any]) -> None: ...

    def epoch_ended(self, trial_id: str, epoch: int, metrics: dict[str, float]) -> None: ...

    def checkpoint_saved(self, trial_id: str, checkpoint_dir: Path) -> None: ...

    def trial_ended(self, result: TrialResult) -> None: ...
