"""Record a search in MLflow: a parent run per search, a nested child run per trial, and
the best model in the Model Registry under the alias ``champion``.

This is the only module that imports MLflow. `SearchTracker` is a `SearchObserver`: the
engine calls it from the driver for every trial event, so the tracking store has one
writer, and a trial's epochs, checkpoint and status are in MLflow the moment Tune sees
them (a killed driver loses nothing already reported). Every write is idempotent: runs
are found by their convsearch tags before one is created, metrics are logged once per
epoch, and artifacts overwrite themselves, so a resumed search continues the same runs.
MLflow errors become `TrackingError` here.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from search.champion import ChampionDecision
from search.data import Dataset
from search.errors import SettingsError, TrackingError, first_line
from search.memory import rss_mb
from search.observers import SearchObserver, SearchOutcome, TrialResult
from search.secrets import redacted
from search.settings import SearchSettings
from search.space import SearchSpace

logger = logging.getLogger(__name__)

#: Folder, beside a local SQLite store's file, that holds its runs' artifacts.
ARTIFACT_DIR_NAME = "mlartifacts"
#: MLflow experiment that searches are recorded in unless told otherwise.
DEFAULT_EXPERIMENT = "convsearch"
#: Registry alias that always points at the best model of the latest search.
CHAMPION_ALIAS = "champion"
#: Parent-run tags of the champion/challenger decision: promoted or kept, why, and the
#: champion's version before it.
TAG_CHAMPION_DECISION = "convsearch.champion.decision"
TAG_CHAMPION_REASON = "convsearch.champion.reason"
TAG_CHAMPION_BEFORE = "convsearch.champion.previous_version"
#: Alias of the newest search's best model, whether or not it became champion.
CHALLENGER_ALIAS = "challenger"
#: Artifact path of a trial's best checkpoint, and of the best model in the parent run.
CHECKPOINT_ARTIFACT = "checkpoint"
#: The parent run's folder of figures, and its summary.
PLOTS_DIR = "plots"
SUMMARY_FILE = "summary.md"
#: The parent run's folder of what the best model learned.
INSIGHT_DIR = "insight"
MODEL_ARTIFACT = "model"

TAG_SEARCH = "convsearch.search"
TAG_ROLE = "convsearch.role"
TAG_TRIAL_ID = "convsearch.trial_id"
TAG_STATUS = "convsearch.status"
#: Digest of the knobs a search searches (`space_digest`), so later searches of the same
#: space can find it; and the earlier search a warm-started one began from.
TAG_SPACE_DIGEST = "convsearch.space_digest"
TAG_WARM_START = "convsearch.warm_start"
#: How many of an earlier search's best configs a warm start tries first.
WARM_START_CONFIGS = 3
TAG_ERROR = "convsearch.error"
TAG_TRIAL_NUMBER = "convsearch.trial_number"
#: On the parent run: the best trial's id and its child run.
TAG_BEST_TRIAL = "convsearch.best_trial_id"
TAG_BEST_RUN = "convsearch.best_run_id"
#: Population-based training: the trial and epoch a trial last continued from.
TAG_CLONED_FROM = "convsearch.pbt.cloned_from"
#: Prefix of the metrics that trace the knobs PBT mutated, at the epochs it did.
PBT_PREFIX = "pbt."
#: The search's trial budget now (a resumed search may have been extended).
TAG_BUDGET = "convsearch.trial_budget"
#: Prefix of the tags holding the best trial's parameters (tags: an extended search's
#: best may change, and MLflow params cannot).
BEST_PREFIX = "best."
#: The driver's resident memory when a trial ended, in MB (a metric of each trial run).
DRIVER_RSS = "driver_rss_mb"

_MLFLOW_PARENT_TAG = "mlflow.parentRunId"
_RUN_STATUS = {"completed": "FINISHED", "stopped": "FINISHED", "failed": "FAILED"}
#: Status tag of a trial run that an interrupted search left unfinished (it continues
#: when the search is resumed), and of one a resumed search discarded (it started after
#: the driver's last snapshot, so its config runs again as a new trial).
INTERRUPTED = "interrupted"
DISCARDED = "discarded"
#: Status tag of a trial run whose end MLflow could not take in time.
UNRECORDED = "unrecorded"


@dataclass(frozen=True)
class RegisteredModel:
    """The registry entry of a search's best model."""

    name: str
    version: str
    uri: str  # models:/<name>@champion, or models:/<name>/<version> if it is not champion
    #: Whether this version took the champion alias; and why (or why not).
    champion: bool = True
    decision: str = ""


class SearchTracker(SearchObserver):
    """Writes one search into an MLflow experiment.

    Call `start_search` first, then let the engine deliver trial events, then call
    `finish_search` (or `end_search` when the search stops without a result). Not thread
    safe: the engine calls it from the driver's Tune loop only.
    """

    def __init__(self, tracking_uri: str, experiment: str = DEFAULT_EXPERIMENT) -> None:
        """Raises:
            TrackingError: the store cannot be reached or the experiment cannot be made.
        """
        self.tracking_uri = tracking_uri
        with _mlflow_errors(f"cannot use MLflow tracking store {tracking_uri}", tracking_uri):
            self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
            found = self.client.get_experiment_by_name(experiment)
            if found is None:
                self.experiment_id = self.client.create_experiment(
                    experiment, artifact_location=_artifact_location(tracking_uri))
            elif found.lifecycle_stage == "deleted":
                raise TrackingError(f"MLflow experiment {experiment!r} is deleted; restore it "
                                    "or name another with --experiment")
            else:
                self.experiment_id = found.experiment_id
        self.parent_run_id: str | None = None
        self._search_name: str | None = None
        self._trial_runs: dict[str, str] = {}
        self._logged_epochs: dict[str, int] = {}
        #: Epochs reported but not yet in a checkpoint, by trial: (epoch, metrics, time).
        self._unsaved: dict[str, list[tuple[int, dict[str, float], int]]] = {}
        self._open_trials: set[str] = set()

    # -- the search (parent run) -------------------------------------------------------

    def start_search(self, settings: SearchSettings, space: SearchSpace, data: Dataset, *,
                     resume: bool = False) -> str:
        """Open the search's parent run and return its id.

        With `resume`, reopen the parent run of the search with this name (so a restarted
        driver continues the same runs); without it, that name must be new.

        Raises:
            TrackingError: a new search's name is taken, or MLflow refused.
        """
        self._search_name = settings.name
        with _mlflow_errors("cannot start the search's MLflow run"):
            existing = self._find_runs(f"tags.`{TAG_SEARCH}` = '{settings.name}' and "
                                       f"tags.`{TAG_ROLE}` = 'search'")
            if existing and not resume:
                raise TrackingError(
                    f"a search named {settings.name!r} already exists in this MLflow "
                    f"experiment (run {existing[0].info.run_id}); choose another --name")
            if existing:
                run_id = existing[0].info.run_id
                self.client.update_run(run_id, status="RUNNING")
                if TAG_ERROR in existing[0].data.tags:  # why it stopped last time
                    self.client.delete_tag(run_id, TAG_ERROR)
            else:
                run_id = self.client.create_run(
                    self.experiment_id, run_name=settings.name,
                    tags={TAG_SEARCH: settings.name, TAG_ROLE: "search",
                          TAG_SPACE_DIGEST: space_digest(space),
                          "mlflow.note.content": space.description}).info.run_id
                params = {f"settings.{k}": v for k, v in settings.to_params().items()}
                params.update({f"space.{name}": _describe_knob(space, name)
                               for name in space.distributions})
                params.update({"data.name": data.name, "data.input_shape":
                               "x".join(map(str, data.input_shape)),
                               "data.classes": data.num_classes,
                               **{f"data.{k}_examples": v for k, v in data.sizes().items()}})
                self._log_params(run_id, params)
                name = space.path.name if space.path is not None else "space.yaml"
                self.client.log_text(run_id, space.text, f"space/{name}")
                self.client.log_dict(run_id, {"classes": list(data.class_names)},
                                     "data/classes.json")
        self.parent_run_id = run_id
        return run_id

    def finish_search(self, outcome: SearchOutcome, space: SearchSpace,
                      test_metrics: dict[str, float], model: Any, example_images: np.ndarray,
                      model_name: str, decision: ChampionDecision | None = None,
                      ) -> RegisteredModel:
        """Log the search's result on the parent run (best trial, test metrics, skipped
        configs, and the Pareto front of a multi-objective search), log and register the
        best model as ``challenger``, point ``champion`` at it if `decision` says so (no
        decision: it does), log the decision and its figures, and close the parent run."""
        run_id = self._require_parent()
        best = outcome.best
        with _mlflow_errors("cannot record the search's result in MLflow"):
            for key, value in best.params.items():
                self.client.set_tag(run_id, f"{BEST_PREFIX}{key}", _param_value(value))
            self.client.set_tag(run_id, TAG_BEST_TRIAL, best.trial_id)
            best_run = self._trial_runs.get(best.trial_id)
            if best_run:
                self.client.set_tag(run_id, TAG_BEST_RUN, best_run)
            now = _now_ms()
            self.client.log_batch(run_id, metrics=[
                Metric("best_val_accuracy", float(best.best_val_accuracy or 0.0), now, 0),
                Metric("skipped_configs", float(sum(outcome.infeasible.values())), now, 0),
                *(Metric(f"best_{k}", v, now, 0) for k, v in best.values.items()
                  if k != "best_val_accuracy"),
                *(Metric(k, float(v), now, 0) for k, v in test_metrics.items()),
            ])
            if outcome.pareto:
                self._log_pareto_front(run_id, outcome, space)
            registered = self._log_model(run_id, model, example_images, model_name,
                                         decision)
            # A trial whose end could not be recorded (the store was down too long) is
            # over all the same: its run must not stay RUNNING.
            self._close_open_trials(UNRECORDED)
            self.client.set_terminated(run_id, status="FINISHED")
        return registered

    def log_search_report(self, outcome: SearchOutcome, space: SearchSpace, seed: int,
                          test_metrics: dict[str, float], test_labels: np.ndarray,
                          test_predicted: np.ndarray, class_names: Sequence[str]) -> None:
        """Log what the parent run shows first: under ``plots/``, Optuna's optimisation
        history, parallel coordinates and parameter importances, the top trials' learning
        curves, and the best model's confusion matrix and per-class accuracy on the test
        split; ``summary.md``; and ``test_accuracy.<class>`` metrics. A figure that cannot
        be drawn is left out with a warning; it never costs the search its result."""
        from search.tracking import plots
        from search.tracking.summary import summary_markdown

        run_id = self._require_parent()
        accuracy = plots.per_class_accuracy(test_labels, test_predicted, len(class_names))
        by_class = dict(zip(class_names, accuracy, strict=True))
        figures: dict[str, Any] = {}
        try:
            figures.update(plots.study_figures(plots.search_study(outcome.trials, space)))
            curves = self._learning_curves(outcome.trials)
            if curves:
                figures["learning_curves.png"] = plots.learning_curves_figure(curves)
            figures.update(plots.confusion_figures(test_labels, test_predicted, class_names))
        except Exception:  # a plotting library's failure must not lose the search
            logger.warning("some of the search's plots could not be drawn", exc_info=True)
        with _mlflow_errors("cannot log the search's plots and summary"):
            self.log_figures(figures, PLOTS_DIR)
            self.client.log_text(run_id, summary_markdown(
                self._search_name or "", outcome, space.objectives, seed, test_metrics,
                by_class), SUMMARY_FILE)
            now = _now_ms()
            self.client.log_batch(run_id, metrics=[
                Metric(f"test_accuracy.{name}", value, now, 0)
                for name, value in by_class.items() if value == value])

    def log_figures(self, figures: dict[str, Any], folder: str) -> None:
        """Log figures (by file name: matplotlib for ``.png``, plotly for ``.html``) on the
        parent run under `folder`, and close the matplotlib ones."""
        import matplotlib.pyplot as plt
        from matplotlib.figure import Figure

        run_id = self._require_parent()
        try:
            with _mlflow_errors(f"cannot log the figures of {folder}/"):
                for name, figure in figures.items():
                    self.client.log_figure(run_id, figure, f"{folder}/{name}")
        finally:
            for figure in figures.values():
                if isinstance(figure, Figure):
                    plt.close(figure)

    def _learning_curves(self, trials: Sequence[TrialResult], top: int = 5,
                         ) -> dict[str, list[tuple[int, float]]]:
        """Validation accuracy per epoch of the best `top` trials, read back from their
        runs (a resumed search's earlier epochs are there too)."""
        ranked = sorted((t for t in trials if t.best_val_accuracy is not None
                         and t.trial_id in self._trial_runs),
                        key=lambda t: -t.best_val_accuracy)[:top]
        curves = {}
        for trial in ranked:
            history = self.client.get_metric_history(self._trial_runs[trial.trial_id],
                                                     "val_accuracy")
            points = sorted((m.step, m.value) for m in history)
            if points:
                curves[f"trial {trial.number} ({trial.best_val_accuracy:.3f})"] = points
        return curves

    def _log_pareto_front(self, run_id: str, outcome: SearchOutcome,
                          space: SearchSpace) -> None:
        from search.objectives import OBJECTIVES
        from search.tracking.plots import pareto_figures

        rows: dict[str, list[Any]] = {"trial_id": [], "run_id": []}
        for name in space.objectives:
            rows[name] = []
        for trial in outcome.pareto:
            rows["trial_id"].append(trial.trial_id)
            rows["run_id"].append(self._trial_runs.get(trial.trial_id, ""))
            for name in space.objectives:
                rows[name].append(trial.values[OBJECTIVES[name].metric])
        self.client.log_table(run_id, data=rows, artifact_file="pareto_front.json")
        self.log_figures(pareto_figures(outcome.trials, space.objectives), PLOTS_DIR)
        self.client.set_tag(run_id, "convsearch.pareto_front", ",".join(rows["trial_id"]))

    def note_budget(self, trials: int, extended_from: int | None = None) -> None:
        """Record the search's trial budget, and that a resume extended it."""
        run_id = self._require_parent()
        with _mlflow_errors("cannot record the search's budget in MLflow"):
            self.client.set_tag(run_id, TAG_BUDGET, str(trials))
            if extended_from is not None and extended_from != trials:
                self.client.set_tag(run_id, "convsearch.extended",
                                    f"{extended_from} -> {trials} trials")

    def end_search(self, status: str, message: str | None = None) -> None:
        """Close the parent run without a result: ``FAILED`` or ``KILLED`` (interrupted),
        and with it the runs of trials that had not ended (``KILLED``; a resumed search
        reopens them)."""
        if self.parent_run_id is None:
            return
        with _mlflow_errors("cannot close the search's MLflow runs"):
            self._close_open_trials(INTERRUPTED)
            if message:
                self.client.set_tag(self.parent_run_id, TAG_ERROR, message[:5000])
            self.client.set_terminated(self.parent_run_id, status=status)

    def run_url(self, run_id: str | None = None) -> str:
        """The run's page path in the MLflow UI (after the UI's base address)."""
        return f"#/experiments/{self.experiment_id}/runs/{run_id or self.parent_run_id}"

    # -- trials (child runs): the SearchObserver interface ------------------------------

    def search_started(self, budget: int, ended: Sequence[TrialResult],
                       unfinished: Sequence[str]) -> None:
        """On a resumed search, discard the runs of trials that Tune does not know: they
        started after the dead driver's last snapshot, and run again as new trials."""
        parent = self._require_parent()
        known = {t.trial_id for t in ended} | set(unfinished)
        with _mlflow_errors("cannot read the search's trial runs"):
            runs = self.client.search_runs(
                [self.experiment_id], f"tags.`{_MLFLOW_PARENT_TAG}` = '{parent}'",
                max_results=50_000)
            for run in runs:
                trial_id = run.data.tags.get(TAG_TRIAL_ID)
                if trial_id in known:
                    continue
                logger.info("discarding the MLflow run of trial %s: it started after the "
                            "last snapshot of the search and runs again", trial_id)
                self.client.set_tag(run.info.run_id, TAG_STATUS, DISCARDED)
                self.client.set_terminated(run.info.run_id, status="KILLED")
                self.client.delete_run(run.info.run_id)

    def trial_started(self, trial_id: str, params: dict[str, Any], number: int = 0) -> None:
        self._trial_run(trial_id, params, number)
        self._open_trials.add(trial_id)

    def epoch_ended(self, trial_id: str, epoch: int, metrics: dict[str, float], *,
                    timestamp_ms: int | None = None) -> None:
        """Hold one epoch's metrics until the trial's checkpoint covers the epoch
        (`epochs_saved`) or the trial ends: a worker that dies before then makes the
        trial train the epoch again, and only the values of the training that goes on
        belong on its curves (MLflow cannot take a logged value back)."""
        held = [e for e in self._unsaved.get(trial_id, []) if e[0] < epoch]
        self._unsaved[trial_id] = [*held, (epoch, metrics, timestamp_ms or _now_ms())]

    def epochs_saved(self, trial_id: str, epoch: int) -> None:
        """Log the held epochs through `epoch`, each at its step, once: an epoch logged
        before (by a driver that died) is not logged again."""
        held = self._unsaved.get(trial_id, [])
        due = [e for e in held if e[0] <= epoch]
        if not due:
            return
        run_id = self._trial_run(trial_id)
        logged = self._logged_epochs.get(trial_id, 0)
        with _mlflow_errors(f"cannot log epochs {due[0][0]}-{due[-1][0]} of trial "
                            f"{trial_id}"):
            self.client.log_batch(run_id, metrics=[
                Metric(key, value, stamp, number) for number, metrics, stamp in due
                if number > logged for key, value in metrics.items()])
        self._logged_epochs[trial_id] = max(logged, due[-1][0])
        self._unsaved[trial_id] = [e for e in held if e[0] > epoch]

    def trial_restarted(self, trial_id: str) -> None:
        """Forget the epochs no checkpoint holds: the restarted trial trains them again."""
        self._unsaved.pop(trial_id, None)

    def checkpoint_saved(self, trial_id: str, checkpoint_dir: Path) -> None:
        """Log the trial's best model (the folder's `BEST_FILE`) as ``checkpoint/``."""
        from search.trial.checkpoints import BEST_FILE

        run_id = self._trial_run(trial_id)
        with _mlflow_errors(f"cannot log the checkpoint of trial {trial_id}"):
            self.client.log_artifact(run_id, str(checkpoint_dir / BEST_FILE),
                                     artifact_path=CHECKPOINT_ARTIFACT)

    def trial_mutated(self, trial_id: str, epoch: int, source: int, params: dict[str, Any],
                      *, timestamp_ms: int | None = None) -> None:
        """Record a PBT exploitation on the trial's run: a ``pbt.<knob>`` metric per mutated
        knob at step `epoch` (its values over time), and the trial it continued from."""
        run_id = self._trial_run(trial_id)
        with _mlflow_errors(f"cannot record the mutation of trial {trial_id}"):
            now = timestamp_ms or _now_ms()
            metrics = [Metric(PBT_PREFIX + name, float(value), now, epoch)
                       for name, value in params.items()]
            metrics.append(Metric(PBT_PREFIX + "cloned_from", float(source), now, epoch))
            tags = [RunTag(TAG_CLONED_FROM, f"trial {source} at epoch {epoch}")]
            self.client.log_batch(run_id, metrics=metrics, tags=tags)

    def trial_ended(self, result: TrialResult, *, timestamp_ms: int | None = None) -> None:
        # Its last epochs need no checkpoint to be final: the trial will not train again.
        held = self._unsaved.get(result.trial_id)
        if held:
            self.epochs_saved(result.trial_id, held[-1][0])
        run_id = self._trial_run(result.trial_id, result.params, result.number)
        with _mlflow_errors(f"cannot close the run of trial {result.trial_id}"):
            tags = [RunTag(TAG_STATUS, result.status)]
            if result.error:
                tags.append(RunTag(TAG_ERROR, result.error[:5000]))
            now = timestamp_ms or _now_ms()
            metrics = [Metric("epochs", float(result.epochs), now, 0),
                       Metric(DRIVER_RSS, rss_mb(), now, 0)]
            self.client.log_batch(run_id, metrics=metrics, tags=tags)
            if result.error_detail:
                self.client.log_text(run_id, result.error_detail, "error.txt")
            self.client.set_terminated(run_id, status=_RUN_STATUS[result.status])
        self._open_trials.discard(result.trial_id)

    # -- helpers -----------------------------------------------------------------------

    def _trial_run(self, trial_id: str, params: dict[str, Any] | None = None,
                   number: int = 0) -> str:
        """The child run of `trial_id`: remembered, found by tag, or created."""
        if trial_id in self._trial_runs:
            return self._trial_runs[trial_id]
        parent = self._require_parent()
        with _mlflow_errors(f"cannot open the MLflow run of trial {trial_id}"):
            found = self._find_runs(f"tags.`{TAG_TRIAL_ID}` = '{trial_id}' and "
                                    f"tags.`{_MLFLOW_PARENT_TAG}` = '{parent}'")
            if found:
                run_id = found[0].info.run_id
                history = self.client.get_metric_history(run_id, "val_accuracy")
                self._logged_epochs[trial_id] = max((m.step for m in history), default=0)
                if found[0].info.status != "RUNNING":
                    self.client.update_run(run_id, status="RUNNING")
            else:
                run_id = self.client.create_run(
                    self.experiment_id, run_name=f"trial-{trial_id}",
                    tags={_MLFLOW_PARENT_TAG: parent, TAG_TRIAL_ID: trial_id,
                          TAG_TRIAL_NUMBER: str(number), TAG_SEARCH: self._search_name or "",
                          TAG_ROLE: "trial"}).info.run_id
                if params:
                    self._log_params(run_id, params)
        self._trial_runs[trial_id] = run_id
        return run_id

    def _close_open_trials(self, status: str) -> None:
        """End the runs of trials that started and did not end, as KILLED."""
        for trial_id in sorted(frozenset(self._open_trials)):
            run_id = self._trial_runs[trial_id]
            self.client.set_tag(run_id, TAG_STATUS, status)
            self.client.set_terminated(run_id, status="KILLED")
        self._open_trials.clear()

    def warm_start_configs(self, reference: str, space: SearchSpace,
                           ) -> tuple[str, list[dict[str, Any]]]:
        """The earlier search `reference` names (or the latest one of the same space in
        this experiment), and its best completed trials' configs that this space still
        allows, best first; recorded on the parent run.

        Raises:
            SettingsError: no such search, one of another space, or no usable trial.
            TrackingError: MLflow cannot be read.
        """
        from search.space.sampling import recorded_params

        digest = space_digest(space)
        with _mlflow_errors("cannot read the earlier searches for --warm-start"):
            if reference == "latest":
                found = [r for r in self.client.search_runs(
                    [self.experiment_id], f"tags.`{TAG_ROLE}` = 'search' and "
                    f"tags.`{TAG_SPACE_DIGEST}` = '{digest}'",
                    order_by=["attributes.start_time DESC"], max_results=5)
                    if r.info.run_id != self.parent_run_id]
                if not found:
                    raise SettingsError("--warm-start latest: no earlier search of this "
                                        "space in this experiment")
            else:
                found = self._find_runs(f"tags.`{TAG_SEARCH}` = '{reference}' and "
                                        f"tags.`{TAG_ROLE}` = 'search'")
                if not found:
                    raise SettingsError(f"--warm-start {reference}: no search of that name "
                                        "in this experiment")
                if found[0].data.tags.get(TAG_SPACE_DIGEST) != digest:
                    raise SettingsError(f"--warm-start {reference}: that search searched "
                                        "other knobs or ranges than this space")
            source = found[0]
            trials = self.client.search_runs(
                [self.experiment_id], f"tags.`mlflow.parentRunId` = "
                f"'{source.info.run_id}' and tags.`{TAG_STATUS}` = 'completed'",
                order_by=["metrics.best_val_accuracy DESC"], max_results=50)
            configs: list[dict[str, Any]] = []
            for trial in trials:
                params = recorded_params(space, trial.data.params)
                if params is not None and params not in configs:
                    configs.append(params)
            name = source.data.tags.get(TAG_SEARCH, source.info.run_id)
            if not configs:
                raise SettingsError(f"--warm-start: search {name!r} has no completed trial "
                                    "whose config this space allows")
        return name, configs[:WARM_START_CONFIGS]

    def note_warm_start(self, source: str) -> None:
        """Record on the parent run which earlier search this one started from."""
        with _mlflow_errors("cannot record the warm start in MLflow"):
            self.client.set_tag(self._require_parent(), TAG_WARM_START, source)

    def _find_runs(self, filter_string: str) -> list:
        return list(self.client.search_runs([self.experiment_id], filter_string=filter_string,
                                            max_results=2))

    def _log_params(self, run_id: str, params: dict[str, Any]) -> None:
        items = [Param(k, _param_value(v)) for k, v in params.items()]
        for start in range(0, len(items), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(run_id, params=items[start:start + 100])

    def _require_parent(self) -> str:
        if self.parent_run_id is None:
            raise RuntimeError("start_search() must be called before trial events")
        return self.parent_run_id

    def champion(self, model_name: str) -> tuple[str, Any] | None:
        """The registered champion's version and Keras model (loaded in safe mode; None if
        it cannot be loaded), or None when `model_name` has no champion yet.

        Raises:
            TrackingError: the registry cannot be read or the model downloaded.
        """
        import keras

        with _mlflow_errors(f"cannot read the champion of {model_name!r}"):
            try:
                version = str(self.client.get_model_version_by_alias(
                    model_name, CHAMPION_ALIAS).version)
            except MlflowException as exc:
                if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                    return None
                raise
            with using_tracking_store(self.tracking_uri), \
                    tempfile.TemporaryDirectory(prefix="convsearch-champion-") as folder:
                local = Path(mlflow.artifacts.download_artifacts(
                    artifact_uri=f"models:/{model_name}/{version}", dst_path=folder))
                files = sorted(local.rglob("*.keras"))
                try:
                    return version, keras.saving.load_model(files[0], safe_mode=True)
                except (IndexError, OSError, ValueError, TypeError):
                    logger.warning("champion %s of %s cannot be loaded", version, model_name,
                                   exc_info=True)
                    return version, None

    def _log_decision(self, run_id: str, decision: ChampionDecision) -> None:
        figures = {"champion.test_accuracy": decision.champion_accuracy,
                   "challenger.test_accuracy": decision.challenger_accuracy,
                   "mcnemar.p_value": decision.p_value,
                   "mcnemar.champion_only": decision.champion_only,
                   "mcnemar.challenger_only": decision.challenger_only}
        now = _now_ms()
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0)
                                               for k, v in figures.items() if v is not None])
        self.client.set_tag(run_id, TAG_CHAMPION_DECISION,
                            "promoted" if decision.promote else "kept")
        self.client.set_tag(run_id, TAG_CHAMPION_REASON, decision.reason)
        if decision.champion_version:
            self.client.set_tag(run_id, TAG_CHAMPION_BEFORE, decision.champion_version)

    def _log_model(self, run_id: str, model: Any, example_images: np.ndarray,
                   model_name: str, decision: ChampionDecision | None) -> RegisteredModel:
        from mlflow.models import infer_signature

        example = example_images.astype("float32")
        signature = infer_signature(example, model.predict(example, verbose=0))
        from search.tracking.served_model import KERAS_ARTIFACT

        # The registry announces itself with bare prints to stderr; the CLI reports it.
        with using_tracking_store(self.tracking_uri), mlflow.start_run(run_id=run_id), \
                contextlib.redirect_stderr(io.StringIO()), \
                tempfile.TemporaryDirectory(prefix="convsearch-model-") as folder:
            keras_file = Path(folder) / "model.keras"
            model.save(keras_file)
            # A model from code (served_model.py, copied into the model): it predicts
            # without Keras's progress bars.
            info = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT, python_model=str(Path(__file__).with_name(
                    "served_model.py")), artifacts={KERAS_ARTIFACT: str(keras_file)},
                signature=signature, input_example=example[:2],
                registered_model_name=model_name,
                pip_requirements=_model_requirements(), await_registration_for=60)
        version = str(info.registered_model_version)
        self.client.set_registered_model_alias(model_name, CHALLENGER_ALIAS, version)
        promote = decision is None or decision.promote
        if decision is not None:
            self._log_decision(run_id, decision)
        if promote:
            self.client.set_registered_model_alias(model_name, CHAMPION_ALIAS, version)
        return RegisteredModel(
            name=model_name, version=version, champion=promote,
            decision=decision.reason if decision is not None else "",
            uri=f"models:/{model_name}@{CHAMPION_ALIAS}" if promote
            else f"models:/{model_name}/{version}")


@contextmanager
def _mlflow_errors(what: str, uri: str | None = None) -> Iterator[None]:
    """Turn MLflow's and the network's errors into a one-line `TrackingError`; the store's
    `uri`, which `what` and MLflow's own message may quote, is shown `redacted`."""
    try:
        yield
    except TrackingError:
        raise
    except (MlflowException, OSError) as exc:
        message = f"{what}: {first_line(exc)}"
        if uri:
            message = message.replace(uri, redacted(uri))
        raise TrackingError(message) from exc


@contextmanager
def using_tracking_store(uri: str) -> Iterator[None]:
    """Point MLflow's process-wide tracking and registry URIs at `uri` for one call, then
    put back exactly what was there (unset stays unset).

    `mlflow.keras.log_model` knows no other URIs, and MLflow's setters also write
    MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI into the environment; left behind, they would
    send the caller's later MLflow calls (and its child processes) to this store.
    """
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved_env = {name: os.environ.get(name) for name in names}
    saved = (tracking_utils._tracking_uri, registry_utils._registry_uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        tracking_utils._tracking_uri, registry_utils._registry_uri = saved
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _artifact_location(tracking_uri: str) -> str | None:
    """Artifacts of a local SQLite store go in a folder beside its file; a tracking
    server decides for itself."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    database = Path(tracking_uri[len(prefix):])
    return (database.resolve().parent / ARTIFACT_DIR_NAME).as_uri()


def _model_requirements() -> list[str]:
    """Pinned requirements of the logged model, without MLflow's slow inference of them."""
    requirements = []
    for package in ("tensorflow", "keras"):
        try:
            requirements.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            requirements.append(package)
    return requirements


def _describe_knob(space: SearchSpace, name: str) -> str:
    conditions = space.conditions.get(name, ())
    when = f" when {' and '.join(map(str, conditions))}" if conditions else ""
    optional = " (optional: off or on)" if name in space.optional else ""
    return f"{space.distributions[name]}{optional}{when}"


def space_digest(space: SearchSpace) -> str:
    """Names the knobs a space searches and their ranges (not comments or fixed values):
    searches with the same digest can share what they learned."""
    text = "\n".join(f"{name}: {distribution}"
                     for name, distribution in space.searched().items())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:6000]  # MLflow's limit on a param value


def _now_ms() -> int:
    return int(time.time() * 1000)

