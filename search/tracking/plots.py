"""Figures of a search, drawn with Optuna's visualization module (matplotlib backend).

The tracker logs them to MLflow; nothing here knows about MLflow or Ray. Optuna draws from
a study, so the search's finished trials are loaded into an in-memory study first.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from search.objectives import OBJECTIVES
from search.observers import TrialResult
from search.space import SearchSpace
from search.space.distributions import Distribution, IntRange, LogUniform, Uniform


def pareto_figures(trials: Sequence[TrialResult], objectives: Sequence[str],
                   ) -> dict[str, Any]:
    """The trials' objective values, Pareto front highlighted, by file name: a matplotlib
    figure and a plotly page (hovering a point names its trial)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import optuna
    from optuna.visualization import plot_pareto_front as pareto_page
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
        page = pareto_page(study, target_names=list(objectives))
    figure = axes.figure
    figure.set_size_inches(7, 5)
    return {"pareto_front.png": figure, "pareto_front.html": page}


def search_study(trials: Sequence[TrialResult], space: SearchSpace) -> Any:
    """The search's finished trials as an in-memory Optuna study on validation accuracy,
    with the space's searched knobs as distributions (what Optuna's plots read)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    distributions = {name: _optuna_distribution(d) for name, d in space.searched().items()}
    for trial in trials:
        if trial.best_val_accuracy is None:
            continue
        params = {k: v for k, v in trial.params.items() if k in distributions}
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: distributions[k] for k in params},
            value=float(trial.best_val_accuracy), user_attrs={"trial": trial.number}))
    return study


def _optuna_distribution(distribution: Distribution) -> Any:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if isinstance(distribution, Uniform | LogUniform):
        return FloatDistribution(distribution.low, distribution.high,
                                 log=isinstance(distribution, LogUniform))
    if isinstance(distribution, IntRange):
        return IntDistribution(distribution.low, distribution.high, log=distribution.log,
                               step=distribution.step)
    return CategoricalDistribution(list(distribution.extremes()))


#: Optuna plots drawn for every search: PNG (matplotlib) for a glance, and HTML (plotly)
#: where hovering and brushing help: which trial a point is, filtering parallel axes.
STUDY_PLOTS = {"optimization_history": True, "parallel_coordinate": True,
               "param_importances": False}


def study_figures(study: Any) -> dict[str, Any]:
    """Optuna's optimisation history, parallel coordinates and parameter importances of
    the study, by file name (``.png`` matplotlib figures, ``.html`` plotly ones); a plot
    the study cannot support (too few trials, nothing searched) is left out."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna import visualization
    from optuna.visualization import matplotlib as optuna_plots

    figures = {}
    for name, interactive in STUDY_PLOTS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna flags these plots experimental
            try:
                axes = getattr(optuna_plots, f"plot_{name}")(study)
                page = getattr(visualization, f"plot_{name}")(study) if interactive else None
            except (ValueError, RuntimeError, ZeroDivisionError):
                continue  # e.g. importances need two trials that differ
        figure = _figure_of(axes)
        figure.set_size_inches(9, 5.5)
        figure.tight_layout()
        figures[f"{name}.png"] = figure
        if page is not None:
            figures[f"{name}.html"] = page
    return figures


def _figure_of(axes: Any) -> Any:
    first = axes.flat[0] if hasattr(axes, "flat") else axes
    return first.figure


def learning_curves_figure(curves: dict[str, list[tuple[int, float]]]) -> Any:
    """Validation accuracy per epoch of the given trials (label: points)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    for label, points in curves.items():
        axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3,
                  label=label)
    axes.set_xlabel("epoch")
    axes.set_ylabel("validation accuracy")
    axes.set_title("Learning curves of the top trials")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    return figure


def confusion_figures(labels: np.ndarray, predicted: np.ndarray,
                      class_names: Sequence[str]) -> dict[str, Any]:
    """The best model's confusion matrix and per-class accuracy on the test split
    (scikit-learn's display), by file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    classes = list(range(len(class_names)))
    figure, axes = plt.subplots(figsize=(7.5, 6.5))
    ConfusionMatrixDisplay.from_predictions(labels, predicted, labels=classes,
                                            display_labels=list(class_names), ax=axes,
                                            colorbar=False, cmap="Blues")
    axes.set_title("Best model on the test split: true (rows) vs predicted")
    axes.grid(False)
    figure.tight_layout()

    accuracy = per_class_accuracy(labels, predicted, len(class_names))
    bars, bar_axes = plt.subplots(figsize=(max(6.0, 0.6 * len(classes)), 4))
    bar_axes.bar([str(n) for n in class_names], accuracy, color="tab:blue")
    bar_axes.set_ylim(0, 1)
    bar_axes.set_ylabel("test accuracy")
    bar_axes.set_title("Best model: accuracy per class (test split)")
    bar_axes.grid(axis="y", alpha=0.3)
    bars.tight_layout()
    return {"confusion_matrix.png": figure, "per_class_accuracy.png": bars}


def per_class_accuracy(labels: np.ndarray, predicted: np.ndarray, classes: int,
                       ) -> list[float]:
    """The share of each class's test images predicted right (NaN for an absent class)."""
    return [float(np.mean(predicted[labels == c] == c)) if np.any(labels == c)
            else float("nan") for c in range(classes)]
