"""Champion and challenger: whether a new search's best model replaces the registered one.

A scheduled search usually reruns on fresh data, and its best model is not always better
than the one in service. Both are scored on the same new test split; the challenger takes
the ``champion`` alias only when it is more accurate by more than a margin the user sets
and, if asked, significantly so by McNemar's exact test on the paired predictions (the
test for two classifiers scored on the same examples: only the examples exactly one of
them gets right carry information). Plain NumPy and SciPy: no MLflow, no Keras.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PromotionPolicy:
    """When a challenger replaces the champion."""

    #: The challenger's test accuracy must exceed the champion's by more than this.
    margin: float = 0.0
    #: If set, McNemar's p-value must also be below it (e.g. 0.05).
    significance: float | None = None


@dataclass(frozen=True)
class ChampionDecision:
    """What was decided, and the figures it rests on (all logged on the parent run)."""

    promote: bool
    reason: str
    challenger_accuracy: float
    champion_version: str | None = None
    champion_accuracy: float | None = None
    #: Test examples only the champion got right, and only the challenger.
    champion_only: int | None = None
    challenger_only: int | None = None
    p_value: float | None = None


def mcnemar_p_value(champion_only: int, challenger_only: int) -> float:
    """Two-sided exact McNemar test: under "both are as accurate", each example that one
    model alone gets right is a fair coin's toss between them."""
    from scipy.stats import binomtest

    discordant = champion_only + challenger_only
    if discordant == 0:
        return 1.0
    return float(binomtest(challenger_only, discordant, 0.5).pvalue)


def decide(labels: np.ndarray, challenger: np.ndarray, champion: np.ndarray | None,
           policy: PromotionPolicy, champion_version: str | None = None,
           champion_unusable: str | None = None) -> ChampionDecision:
    """Compare the challenger's predicted classes with the champion's on `labels`.

    No champion (a first search), or one that cannot score this test split (the data's
    shape or classes changed: `champion_unusable` says how), leaves the challenger as
    champion.
    """
    labels = np.asarray(labels)
    challenger_right = np.asarray(challenger) == labels
    challenger_accuracy = float(challenger_right.mean())
    if champion is None:
        reason = (f"the champion (version {champion_version}) cannot score this test "
                  f"split: {champion_unusable}" if champion_unusable
                  else "no champion yet")
        return ChampionDecision(True, reason, challenger_accuracy, champion_version)
    champion_right = np.asarray(champion) == labels
    champion_accuracy = float(champion_right.mean())
    champion_only = int(np.sum(champion_right & ~challenger_right))
    challenger_only = int(np.sum(challenger_right & ~champion_right))
    p_value = mcnemar_p_value(champion_only, challenger_only)
    gain = challenger_accuracy - champion_accuracy
    figures = (f"test accuracy {challenger_accuracy:.4f} vs the champion's "
               f"{champion_accuracy:.4f} (version {champion_version}), McNemar p = "
               f"{p_value:.3g}")
    if gain <= policy.margin:
        promote, why = False, f"not better by more than the margin {policy.margin:g}"
    elif policy.significance is not None and p_value >= policy.significance:
        promote, why = False, f"better, but not significantly (p >= {policy.significance:g})"
    else:
        promote, why = True, "better" + (f" by more than {policy.margin:g}"
                                         if policy.margin else "")
    return ChampionDecision(promote, f"{why}: {figures}", challenger_accuracy,
                            champion_version, champion_accuracy, champion_only,
                            challenger_only, p_value)
