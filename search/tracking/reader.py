"""Read a past search back from MLflow: its settings, trials and registered models, and
its best model's file. What `python -m search.report` shows.

A search is found by its name (the parent run's name, also its ``convsearch.search``
tag) or by the parent run's id.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from search.errors import SettingsError, TrackingError
from search.secrets import redacted
from search.tracking.tracker import (
    CHECKPOINT_ARTIFACT,
    TAG_BEST_RUN,
    TAG_ROLE,
    TAG_SEARCH,
    TAG_STATUS,
    TAG_TRIAL_ID,
    TAG_TRIAL_NUMBER,
    _mlflow_errors,
)

#: Prefix of the parent run's settings params.
_SETTINGS_PREFIX = "settings."


@dataclass(frozen=True)
class PastTrial:
    """One trial of a past search, as its child run recorded it."""

    number: int
    trial_id: str
    run_id: str
    status: str
    best_val_accuracy: float | None
    epochs: int
    params: dict[str, str]


@dataclass(frozen=True)
class RegisteredVersion:
    """A version of a registered model that came from the search."""

    name: str
    version: str
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class PastSearch:
    """What MLflow holds of one search."""

    name: str
    run_id: str
    status: str
    settings: dict[str, str]
    metrics: dict[str, float]
    #: Best first (by best validation accuracy); trials without one last.
    trials: list[PastTrial] = field(default_factory=list)
    best_run_id: str | None = None
    registered: list[RegisteredVersion] = field(default_factory=list)


def read_search(tracking_uri: str, experiment: str, name_or_run_id: str) -> PastSearch:
    """The search of this name (or parent run id) in `experiment`.

    Raises:
        SettingsError: no such search (names the searches there).
        TrackingError: the store cannot be read.
    """
    client = MlflowClient(tracking_uri)
    with _mlflow_errors(f"cannot read experiment {experiment!r}"):
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise SettingsError(f"no experiment named {experiment!r} in {redacted(tracking_uri)}")
        parents = client.search_runs([found.experiment_id], f"tags.`{TAG_ROLE}` = 'search'",
                                     order_by=["attributes.start_time DESC"])
    matches = [r for r in parents if name_or_run_id in (r.info.run_id, r.info.run_name,
                                                        r.data.tags.get(TAG_SEARCH))]
    if not matches:
        names = ", ".join(r.info.run_name for r in parents[:10]) or "none"
        raise SettingsError(f"no search named {name_or_run_id!r} in experiment "
                            f"{experiment!r} (latest searches there: {names})")
    parent = matches[0]
    with _mlflow_errors(f"cannot read search {name_or_run_id!r}"):
        children = client.search_runs(
            [found.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
            max_results=10_000)
        versions = client.search_model_versions(f"run_id = '{parent.info.run_id}'")
        # Searching versions does not return their aliases; reading each one does.
        registered = [RegisteredVersion(v.name, str(v.version), tuple(
            client.get_model_version(v.name, v.version).aliases)) for v in versions]
    trials = [_trial(run) for run in children]
    trials.sort(key=lambda t: (t.best_val_accuracy is None, -(t.best_val_accuracy or 0.0),
                               t.number))
    return PastSearch(
        name=parent.info.run_name, run_id=parent.info.run_id, status=parent.info.status,
        settings={k[len(_SETTINGS_PREFIX):]: v for k, v in parent.data.params.items()
                  if k.startswith(_SETTINGS_PREFIX)},
        metrics=dict(parent.data.metrics), trials=trials,
        best_run_id=parent.data.tags.get(TAG_BEST_RUN), registered=registered)


def _trial(run: Any) -> PastTrial:
    metrics = run.data.metrics
    return PastTrial(number=int(run.data.tags.get(TAG_TRIAL_NUMBER, 0)),
                     trial_id=run.data.tags.get(TAG_TRIAL_ID, ""), run_id=run.info.run_id,
                     status=run.data.tags.get(TAG_STATUS, run.info.status.lower()),
                     best_val_accuracy=metrics.get("best_val_accuracy"),
                     epochs=int(metrics.get("epochs", 0)), params=dict(run.data.params))


def export_best_model(tracking_uri: str, search: PastSearch, destination: Path) -> Path:
    """Write the search's best model (the best trial's checkpoint) to `destination`, a
    ``.keras`` file, after checking that Keras loads it in safe mode.

    Raises:
        SettingsError: the search recorded no best model, or `destination` is not a
            ``.keras`` path.
        TrackingError: the model cannot be downloaded or loaded.
    """
    if destination.suffix != ".keras":
        raise SettingsError(f"--export needs a .keras file name, got {destination}")
    if search.best_run_id is None:
        raise SettingsError(f"search {search.name!r} recorded no best model (it did not "
                            "finish)")
    import keras

    client = MlflowClient(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="convsearch-export-") as folder, \
            _mlflow_errors(f"cannot download the best model of {search.name!r}"):
        path = Path(client.download_artifacts(search.best_run_id,
                                              f"{CHECKPOINT_ARTIFACT}/model.keras", folder))
        try:
            keras.saving.load_model(path, safe_mode=True)
        except (OSError, ValueError) as exc:
            raise TrackingError(f"the best model of {search.name!r} cannot be loaded: "
                                f"{exc}") from exc
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
    return destination
