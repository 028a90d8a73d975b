"""Champion and challenger: the decision and McNemar's exact test, on made-up predictions
whose figures are known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from search.champion import PromotionPolicy, decide, mcnemar_p_value

LABELS = np.array([0, 1, 2, 3] * 25)  # 100 test images


def predictions(wrong: list[int]) -> np.ndarray:
    """The labels, with the given examples predicted wrong."""
    predicted = LABELS.copy()
    predicted[wrong] = (predicted[wrong] + 1) % 4
    return predicted


def test_mcnemar_uses_only_the_examples_one_model_alone_gets_right():
    assert mcnemar_p_value(0, 0) == 1.0
    # 10 discordant pairs, all for the challenger: 2 * 0.5**10.
    assert mcnemar_p_value(0, 10) == pytest.approx(2 * 0.5 ** 10)
    assert mcnemar_p_value(5, 5) == pytest.approx(1.0)
    assert mcnemar_p_value(3, 7) == pytest.approx(mcnemar_p_value(7, 3))


def test_a_first_search_is_champion():
    decision = decide(LABELS, predictions([1, 2]), None, PromotionPolicy())
    assert decision.promote and decision.reason == "no champion yet"
    assert decision.challenger_accuracy == pytest.approx(0.98)


def test_the_challenger_must_beat_the_margin():
    champion = predictions(list(range(10)))  # 0.90
    challenger = predictions(list(range(6)))  # 0.94: right on 4 the champion missed
    decision = decide(LABELS, challenger, champion, PromotionPolicy(margin=0.0), "3")
    assert decision.promote
    assert (decision.champion_only, decision.challenger_only) == (0, 4)
    assert decision.champion_accuracy == pytest.approx(0.90)
    kept = decide(LABELS, challenger, champion, PromotionPolicy(margin=0.05), "3")
    assert not kept.promote and "not better by more than the margin 0.05" in kept.reason
    equal = decide(LABELS, champion, champion, PromotionPolicy(), "3")
    assert not equal.promote  # a tie keeps the champion


def test_significance_asks_mcnemar_as_well():
    champion = predictions(list(range(10)))
    challenger = predictions(list(range(6)))  # 4 discordant pairs: p = 0.125
    decision = decide(LABELS, challenger, champion, PromotionPolicy(significance=0.05), "3")
    assert not decision.promote and decision.p_value == pytest.approx(0.125)
    assert "not significantly" in decision.reason
    much_better = predictions([])  # right on all 10: p = 0.002
    assert decide(LABELS, much_better, champion, PromotionPolicy(significance=0.05),
                  "3").promote


def test_a_champion_that_cannot_score_the_new_split_is_replaced():
    decision = decide(LABELS, predictions([]), None, PromotionPolicy(), "7",
                      champion_unusable="expected shape (8, 8, 1)")
    assert decision.promote
    assert decision.reason == ("the champion (version 7) cannot score this test split: "
                               "expected shape (8, 8, 1)")
