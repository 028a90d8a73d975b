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

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from search.metrics import LATENCY, OBJECTIVE, PARAMS, ROBUST_ACCURACY
from search.observers import TrialResult


@dataclass(frozen=True)
class Objective:
    """A quantity a search can optimise."""

    name: str  # as written in space files
    metric: str  # as trials report it
    mode: str  # "max" or "min"
    help: str
    #: Compared on a log scale (sizes and times spread over orders of magnitude).
    log_scale: bool = False

    def oriented(self, value: float) -> float:
        """`value` on this objective's comparison scale, where larger is better."""
        scaled = math.log10(max(value, 1e-12)) if self.log_scale else value
        return scaled if self.mode == "max" else -scaled


#: Every objective a space may name, in the order documentation lists them.
OBJECTIVES: dict[str, Objective] = {
    objective.name: objective for objective in (
        Objective("val_accuracy", OBJECTIVE, "max", "best validation accuracy"),
        Objective("params", PARAMS, "min", "trainable and non-trainable parameters",
                  log_scale=True),
        Objective("latency_ms", LATENCY, "min",
                  "inference milliseconds per image (batch of 32, on the trial's device)",
                  log_scale=True),
        Objective("robust_accuracy", ROBUST_ACCURACY, "max",
                  "validation accuracy under FGSM at 0.03 of the pixel scale, of the "
                  "model the trial keeps (its best epoch)"),
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
    return [scored[i] for i in non_dominated(keys)]


def non_dominated(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the points no other point dominates (vectors where larger is better on
    every coordinate), in their order."""
    return [i for i, mine in enumerate(points)
            if not any(_dominates(other, mine) for other in points)]


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


def pareto_order(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of `points` (vectors where larger is better on every coordinate), best
    first: by non-dominated front, and within a front as an epsilon-net (the point best
    on the first coordinate, then each time the point farthest from those already taken,
    with every coordinate scaled to the points' range), so the leading points spread over
    the front instead of crowding one end of it. How MO-ASHA ranks a rung (Schmucker et
    al., 2021)."""
    width = [max(p[k] for p in points) - min(p[k] for p in points) or 1.0
             for k in range(len(points[0]))] if points else []
    scaled = [[x / w for x, w in zip(p, width, strict=True)] for p in points]
    remaining = list(range(len(points)))
    order: list[int] = []
    while remaining:
        front = [remaining[k] for k in non_dominated([points[i] for i in remaining])]
        taken = [max(front, key=lambda i: tuple(points[i]))]
        rest = [i for i in front if i != taken[0]]
        while rest:
            farthest = max(rest, key=lambda i: (_distance(scaled, i, taken), tuple(points[i])))
            taken.append(farthest)
            rest.remove(farthest)
        order += taken
        remaining = [i for i in remaining if i not in front]
    return order


def _distance(points: Sequence[Sequence[float]], i: int, others: Sequence[int]) -> float:
    return min(math.dist(points[i], points[j]) for j in others)


def _dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x >= y for x, y in zip(a, b, strict=True)) and tuple(a) != tuple(b)
