"""Figures of a search, drawn with Optuna's visualization module (matplotlib backend).

The tracker logs them to MLflow; nothing here knows about MLflow or Ray. Optuna draws from
a study, so the search's finished trials are loaded into an in-memory study first.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from search.objectives import OBJECTIVES
from search.observers import TrialResult


def pareto_figure(trials: Sequence[TrialResult], objectives: Sequence[str]) -> Any:
    """A matplotlib Figure of the trials' objective values, Pareto front highlighted."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import optuna
    from optuna.visualization.matplotlib import plot_pareto_front

    directions = ["maximize" if OBJECTIVES[n].mode == "max" else "minimize"
                  for n in objectives]
    study = optuna.create_study(directions=directions)
    for trial in trials:
        values = [trial.values.get(OBJECTIVES[n].metric) for n in objectives]
        if None not in values:
            study.add_trial(optuna.trial.create_trial(values=values,
                                                      user_attrs={"trial": trial.trial_id}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        axes = plot_pareto_front(study, target_names=list(objectives))
    figure = axes.figure
    figure.set_size_inches(7, 5)
    return figure
