"""The MLflow tracker, against a real SQLite tracking store: runs, idempotency, registry."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from search.errors import TrackingError
from search.observers import SearchOutcome, TrialResult
from search.settings import SearchSettings
from search.space import load_space
from search.tracking.tracker import (
    CHAMPION_ALIAS,
    TAG_ERROR,
    TAG_STATUS,
    SearchTracker,
    using_tracking_store,
)
from search.tracking.uri import DEFAULT_TRACKING_URI, resolve_tracking_uri
from search.trial.config import TrialConfig
from search.trial.model import build_model

PARAMS = TrialConfig().to_params()


@pytest.fixture
def tracker(tracking_uri, digits) -> SearchTracker:
    tracker = SearchTracker(tracking_uri, "tests")
    tracker.start_search(SearchSettings(name="s1", trials=5, algorithm="tpe"),
                         load_space("default"), digits)
    return tracker


def _children(client: MlflowClient, tracker: SearchTracker) -> list:
    return client.search_runs([tracker.experiment_id],
                              f"tags.`mlflow.parentRunId` = '{tracker.parent_run_id}'")


def test_tracking_uri_flag_then_environment_then_default(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # A SQLite file is named by its absolute path, so a resumed search finds it anywhere.
    assert DEFAULT_TRACKING_URI == "sqlite:///mlflow.db"
    assert resolve_tracking_uri(None) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert resolve_tracking_uri(None) == "http://127.0.0.1:5000"
    assert resolve_tracking_uri("sqlite:///x.db") == f"sqlite:///{tmp_path / 'x.db'}"
    assert resolve_tracking_uri("sqlite:////abs/x.db") == "sqlite:////abs/x.db"


def test_parent_run_holds_settings_space_and_data(tracker, tracking_uri):
    run = MlflowClient(tracking_uri).get_run(tracker.parent_run_id)
    assert run.info.run_name == "s1"
    assert run.data.params["settings.trials"] == "5"
    assert run.data.params["settings.algorithm"] == "tpe"
    assert run.data.params["space.optimizer"].startswith("choice of 'sgd'")
    assert run.data.params["data.input_shape"] == "8x8x1"
    artifacts = {a.path for a in MlflowClient(tracking_uri).list_artifacts(run.info.run_id,
                                                                          "space")}
    assert artifacts == {"space/default.yaml"}


def test_artifacts_of_a_local_store_live_beside_its_database(tracker, tracking_uri, tmp_path):
    experiment = MlflowClient(tracking_uri).get_experiment(tracker.experiment_id)
    assert experiment.artifact_location == (tmp_path / "mlartifacts").as_uri()


def test_trial_lifecycle_is_one_child_run(tracker, tracking_uri, tmp_path):
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "model.keras").write_bytes(b"weights")
    tracker.trial_started("t1", PARAMS)
    for epoch in (1, 2, 3):
        tracker.epoch_ended("t1", epoch, {"val_accuracy": 0.1 * epoch, "loss": 1.0 / epoch})
    tracker.checkpoint_saved("t1", checkpoint)
    tracker.trial_ended(TrialResult("t1", PARAMS, "completed", 3, 0.3))

    client = MlflowClient(tracking_uri)
    (child,) = _children(client, tracker)
    assert child.info.status == "FINISHED"
    assert child.data.tags[TAG_STATUS] == "completed"
    assert child.data.params["optimizer"] == "adam"
    assert child.data.params["augmentation.flip"] == "none"
    history = client.get_metric_history(child.info.run_id, "val_accuracy")
    assert [(m.step, round(m.value, 2)) for m in history] == [(1, 0.1), (2, 0.2), (3, 0.3)]
    assert [a.path for a in client.list_artifacts(child.info.run_id, "checkpoint")] == \
        ["checkpoint/model.keras"]


def test_curves_keep_the_epochs_of_the_training_that_went_on(tracker, tracking_uri):
    # Epochs 2 and 3 were reported, then the worker died before a checkpoint held them:
    # the restarted trial trains them again from epoch 1's checkpoint, and its curve
    # must show those values, not the lost ones.
    tracker.trial_started("t1", PARAMS)
    for epoch, loss in ((1, 1.0), (2, 0.9), (3, 0.8)):
        tracker.epoch_ended("t1", epoch, {"val_accuracy": 0.5, "loss": loss})
        if epoch == 1:
            tracker.epochs_saved("t1", 1)
    tracker.trial_restarted("t1")
    for epoch, loss in ((2, 0.7), (3, 0.6), (4, 0.5)):
        tracker.epoch_ended("t1", epoch, {"val_accuracy": 0.5, "loss": loss})
    tracker.epochs_saved("t1", 3)
    client = MlflowClient(tracking_uri)
    (child,) = _children(client, tracker)

    def curve():
        return [(m.step, m.value) for m in client.get_metric_history(child.info.run_id,
                                                                     "loss")]

    assert curve() == [(1, 1.0), (2, 0.7), (3, 0.6)]  # epoch 4 waits for its checkpoint
    tracker.trial_ended(TrialResult("t1", PARAMS, "stopped", 4, 0.5))  # or the trial's end
    assert curve() == [(1, 1.0), (2, 0.7), (3, 0.6), (4, 0.5)]


def test_repeated_events_are_logged_once(tracker, tracking_uri, digits):
    tracker.trial_started("t1", PARAMS)
    tracker.epoch_ended("t1", 1, {"val_accuracy": 0.5})
    tracker.epochs_saved("t1", 1)
    tracker.trial_started("t1", PARAMS)
    tracker.epoch_ended("t1", 1, {"val_accuracy": 0.5})
    tracker.epochs_saved("t1", 1)

    # A new driver (a resumed search) finds the same parent and child runs.
    again = SearchTracker(tracking_uri, "tests")
    assert again.start_search(SearchSettings(name="s1"), load_space("default"), digits,
                              resume=True) == tracker.parent_run_id
    again.trial_started("t1", PARAMS)
    again.epoch_ended("t1", 1, {"val_accuracy": 0.5})
    again.epoch_ended("t1", 2, {"val_accuracy": 0.6})
    again.epochs_saved("t1", 2)

    client = MlflowClient(tracking_uri)
    (child,) = _children(client, tracker)
    steps = [m.step for m in client.get_metric_history(child.info.run_id, "val_accuracy")]
    assert steps == [1, 2]


def test_a_new_search_cannot_take_an_existing_name(tracker, tracking_uri, digits):
    with pytest.raises(TrackingError, match=r"a search named 's1' already exists .*choose "
                                            r"another --name"):
        SearchTracker(tracking_uri, "tests").start_search(
            SearchSettings(name="s1"), load_space("default"), digits)


def test_failed_trial_keeps_its_error(tracker, tracking_uri):
    tracker.trial_started("bad", PARAMS)
    tracker.trial_ended(TrialResult("bad", PARAMS, "failed", 0, None,
                                    error="TrainingError: loss became NaN"))
    (child,) = _children(MlflowClient(tracking_uri), tracker)
    assert child.info.status == "FAILED"
    assert child.data.tags[TAG_ERROR] == "TrainingError: loss became NaN"


def test_end_search_marks_the_parent(tracker, tracking_uri):
    tracker.end_search("FAILED", "every trial failed")
    run = MlflowClient(tracking_uri).get_run(tracker.parent_run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags[TAG_ERROR] == "every trial failed"


def test_finish_search_registers_the_champion(tracker, tracking_uri, digits, monkeypatch,
                                              capfd):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    keras.utils.set_random_seed(0)
    config = TrialConfig.from_params({"conv_blocks": 1, "filters": 4, "dense_units": 8})
    model = build_model(config, digits.input_shape, digits.num_classes, digits.value_scale)
    best = TrialResult("t1", config.to_params(), "completed", 2, 0.9)
    outcome = SearchOutcome(trials=[best], best=best, best_checkpoint=Path("."),
                            experiment_path="")
    space = load_space("default")
    registered = tracker.finish_search(outcome, space, {"test_accuracy": 0.88,
                                                        "test_loss": 0.4}, model,
                                       digits.x_test[:5], "tests-model")
    assert registered.uri == f"models:/tests-model@{CHAMPION_ALIAS}"

    client = MlflowClient(tracking_uri)
    run = client.get_run(tracker.parent_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test_accuracy"] == pytest.approx(0.88)
    assert run.data.tags["best.conv_blocks"] == "1"
    version = client.get_model_version_by_alias("tests-model", CHAMPION_ALIAS)
    assert str(version.version) == registered.version

    with using_tracking_store(tracking_uri):
        loaded = mlflow.pyfunc.load_model(registered.uri)
    signature = loaded.metadata.signature
    assert signature.inputs.inputs[0].shape == (-1, 8, 8, 1)
    expected = model.predict(digits.x_test[:3], verbose=0)
    capfd.readouterr()
    np.testing.assert_allclose(loaded.predict(digits.x_test[:3]), expected, rtol=1e-5)
    assert capfd.readouterr().out == ""  # predicts quietly: no progress bars on stdout

    # Logging the model left MLflow's process-wide state as it found it.
    assert "MLFLOW_REGISTRY_URI" not in os.environ
    assert "MLFLOW_TRACKING_URI" not in os.environ

    # A second search's best becomes the new champion.
    second = tracker.finish_search(outcome, space, {"test_accuracy": 0.9}, model,
                                   digits.x_test[:5], "tests-model")
    assert int(second.version) == int(registered.version) + 1
    assert str(client.get_model_version_by_alias("tests-model", CHAMPION_ALIAS).version) == \
        second.version


def test_unusable_store_is_a_tracking_error(tmp_path: Path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with pytest.raises(TrackingError, match="cannot use MLflow tracking store"):
        SearchTracker(f"sqlite:///{not_a_folder / 'mlflow.db'}", "tests")


def test_a_pbt_mutation_is_traced_on_the_trial_run(tracker, tracking_uri):
    from search.tracking.tracker import PBT_PREFIX, TAG_CLONED_FROM

    tracker.trial_started("t2", PARAMS, number=2)
    tracker.trial_mutated("t2", 4, 1, {"learning_rate": 0.002, "dropout": 0.25})
    tracker.trial_mutated("t2", 8, 3, {"learning_rate": 0.0016, "dropout": 0.3})
    client = MlflowClient(tracking_uri)
    (run,) = _children(client, tracker)
    assert run.data.tags[TAG_CLONED_FROM] == "trial 3 at epoch 8"
    history = client.get_metric_history(run.info.run_id, PBT_PREFIX + "learning_rate")
    assert [(m.step, m.value) for m in history] == [(4, 0.002), (8, 0.0016)]
    sources = client.get_metric_history(run.info.run_id, PBT_PREFIX + "cloned_from")
    assert [m.value for m in sources] == [1.0, 3.0]


def test_the_parent_run_shows_plots_a_summary_and_per_class_accuracy(tracker, tracking_uri):
    from search.space import parse_space
    from search.tracking.tracker import PLOTS_DIR, SUMMARY_FILE

    space = parse_space("learning_rate: {loguniform: [1.0e-4, 1.0e-1]}\n"
                        "dropout: {uniform: [0.0, 0.5]}\nfilters: {choices: [4, 8]}\n")
    trials = []
    for number, (rate, dropout, filters) in enumerate(
            [(1e-3, 0.1, 4), (1e-2, 0.3, 8), (3e-2, 0.2, 4), (1e-4, 0.4, 8)], start=1):
        params = {**PARAMS, "learning_rate": rate, "dropout": dropout, "filters": filters}
        trial_id = f"t{number}"
        tracker.trial_started(trial_id, params, number)
        for epoch in (1, 2):
            tracker.epoch_ended(trial_id, epoch, {"val_accuracy": 0.2 * number + 0.05 * epoch})
        result = TrialResult(trial_id, params, "completed", 2, 0.2 * number + 0.1,
                             number=number)
        tracker.trial_ended(result)
        trials.append(result)
    outcome = SearchOutcome(trials=trials, best=trials[-1], best_checkpoint=Path("."),
                            experiment_path="")
    labels = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 0])
    tracker.log_search_report(outcome, space, 7, {"test_accuracy": 0.67}, labels, predicted,
                              ("zero", "one", "two"))

    client = MlflowClient(tracking_uri)
    run_id = tracker.parent_run_id
    plots = {a.path.split("/")[-1] for a in client.list_artifacts(run_id, PLOTS_DIR)}
    assert plots == {"optimization_history.png", "parallel_coordinate.png",
                     "param_importances.png", "learning_curves.png", "confusion_matrix.png",
                     "per_class_accuracy.png",
                     "optimization_history.html", "parallel_coordinate.html"}
    page = Path(client.download_artifacts(run_id, f"{PLOTS_DIR}/parallel_coordinate.html"))
    assert "plotly" in page.read_text()[:5000].lower()  # an interactive page, not a picture
    metrics = client.get_run(run_id).data.metrics
    assert metrics["test_accuracy.zero"] == pytest.approx(0.5)
    assert metrics["test_accuracy.one"] == 1.0
    summary = Path(client.download_artifacts(run_id, SUMMARY_FILE)).read_text()
    assert "Best trial: 4 (t4)" in summary and "| seed | 7 |" in summary
    assert "| tensorflow |" in summary and "| one | 1.0000 |" in summary
