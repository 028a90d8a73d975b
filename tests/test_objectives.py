"""Objectives: the Pareto front and which trial's model is registered."""

from __future__ import annotations

import pytest

from search.objectives import OBJECTIVES, choose_best, pareto_front, worst_values
from search.observers import TrialResult


def trial(name: str, accuracy: float, params: float, **extra: float) -> TrialResult:
    values = {"best_val_accuracy": accuracy, "params": params, **extra}
    return TrialResult(name, {}, "completed", 3, accuracy, values=values)


TRIALS = [
    trial("big-best", 0.99, 400_000),   # 0.99 - 0.04 under the trade-off below
    trial("small-good", 0.97, 5_000),
    trial("dominated", 0.96, 50_000),   # small-good is better on both
    trial("tiny-poor", 0.80, 1_000),
    trial("twin", 0.97, 5_000),          # equal to small-good: neither dominates
]


def test_pareto_front_keeps_the_undominated_in_order():
    front = pareto_front(TRIALS, ["val_accuracy", "params"])
    assert [t.trial_id for t in front] == ["big-best", "small-good", "tiny-poor", "twin"]


def test_single_objective_front_is_the_best():
    assert [t.trial_id for t in pareto_front(TRIALS, ["val_accuracy"])] == ["big-best"]


def test_trials_missing_a_value_are_left_out():
    missing = TrialResult("no-latency", {}, "completed", 1, 0.99,
                          values={"best_val_accuracy": 0.99, "params": 10.0})
    front = pareto_front([missing, TRIALS[1]], ["val_accuracy", "latency_ms"])
    assert front == []


def test_best_by_first_objective_unless_a_trade_off_is_named():
    names = ["val_accuracy", "params"]
    assert choose_best(TRIALS, names).trial_id == "big-best"
    assert choose_best(TRIALS, ["params", "val_accuracy"]).trial_id == "tiny-poor"
    # One point of accuracy is worth 100,000 parameters.
    trade_off = {"val_accuracy": 1.0, "params": -1e-7}
    assert choose_best(TRIALS, names, trade_off).trial_id == "small-good"


def test_worst_values_lose_to_any_real_trial():
    worst = worst_values(["val_accuracy", "params", "latency_ms"])
    assert worst == {"best_val_accuracy": 0.0, "params": 1e18, "latency_ms": 1e18}


def test_no_scored_trial_is_an_error():
    with pytest.raises(ValueError, match="no trial has a value for every objective"):
        choose_best([TrialResult("x", {}, "failed", 0, None)], ["val_accuracy"])


def test_objectives_have_a_direction():
    assert {o.mode for o in OBJECTIVES.values()} <= {"max", "min"}


def test_pareto_order_puts_fronts_first_and_spreads_each_front():
    from search.objectives import pareto_order

    # Front: a (most accurate), b (smallest), c, d between them; e is dominated by c.
    points = {"a": (0.95, -6.0), "b": (0.50, -3.0), "c": (0.90, -5.0), "d": (0.70, -4.0),
              "e": (0.40, -7.0)}
    names = list(points)
    order = [names[i] for i in pareto_order(list(points.values()))]
    assert order[0] == "a" and order[1] == "b"  # the two ends of the front first
    assert set(order[:4]) == {"a", "b", "c", "d"} and order[4] == "e"
