"""What a search optimises: one objective (validation accuracy) or several, their Pareto
front, and which trial's model is registered.

A space file names its objectives (``objectives: [val_accuracy, params]``); each has a
fixed direction, so a file cannot get one backwards. With several, the search algorithm
optimises them jointly and the search's result is the Pareto front: the trials no other
trial beats on every objective at once. The registered model is the best trial by the
first objective, unless the space names a ``trade_off``: weights per objective, and the
trial with the highest weighted sum wins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from search.metrics import LATENCY, OBJECTIVE, PARAMS
from search.observers import TrialResult


@dataclass(frozen=True)
class Objective:
    """A quantity a search can optimise."""

    name: str  # as written in space files
    metric: str  # as trials report it
    mode: str  # "max" or "min"
    help: str


#: Every objective a space may name, in the order documentation lists them.
OBJECTIVES: dict[str, Objective] = {
    objective.name: objective for objective in (
        Objective("val_accuracy", OBJECTIVE, "max", "best validation accuracy"),
        Objective("params", PARAMS, "min", "trainable and non-trainable parameters"),
        Objective("latency_ms", LATENCY, "min",
                  "inference milliseconds per image (batch of 32, on the trial's device)"),
    )
}

#: What a space optimises unless it says otherwise.
DEFAULT_OBJECTIVES: tuple[str, ...] = ("val_accuracy",)


def worst_values(names: Sequence[str]) -> dict[str, float]:
    """Reported values that any real trial beats: what an infeasible config scores."""
    return {OBJECTIVES[n].metric: 0.0 if OBJECTIVES[n].mode == "max" else 1e18 for n in names}


def pareto_front(trials: Sequence[TrialResult], names: Sequence[str]) -> list[TrialResult]:
    """The trials no other trial dominates (at least as good on every objective and better
    on one), in their original order. Trials without every value are left out."""
    scored = [t for t in trials if all(OBJECTIVES[n].metric in t.values for n in names)]

    def key(trial: TrialResult) -> tuple[float, ...]:
        # Larger is better on every coordinate.
        return tuple(trial.values[OBJECTIVES[n].metric] * (1 if OBJECTIVES[n].mode == "max"
                                                           else -1) for n in names)

    keys = [key(t) for t in scored]
    return [trial for trial, mine in zip(scored, keys, strict=True)
            if not any(all(o >= m for o, m in zip(other, mine, strict=True)) and other != mine
                       for other in keys)]


def choose_best(trials: Sequence[TrialResult], names: Sequence[str],
                trade_off: Mapping[str, float] | None = None) -> TrialResult:
    """The trial whose model the search registers: best by the trade-off's weighted sum
    if there is one, else by the first objective (the earliest of equals).

    Raises:
        ValueError: no trial has every objective value (the caller checks first).
    """
    scored = [t for t in trials if all(OBJECTIVES[n].metric in t.values for n in names)]
    if not scored:
        raise ValueError("no trial has a value for every objective")
    if trade_off:
        def score(trial: TrialResult) -> float:
            return sum(weight * trial.values[OBJECTIVES[n].metric]
                       for n, weight in trade_off.items())
    else:
        first = OBJECTIVES[names[0]]

        def score(trial: TrialResult) -> float:
            value = trial.values[first.metric]
            return value if first.mode == "max" else -value
    return max(scored, key=score)
