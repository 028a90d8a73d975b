"""services/mlflow-server.sh: a real `mlflow server` process, used as a tracking URI."""

from __future__ import annotations

import keras
import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from search.observers import SearchOutcome, TrialResult
from search.settings import SearchSettings
from search.space import load_space
from search.tracking.tracker import SearchTracker, using_tracking_store
from search.trial.config import TrialConfig
from search.trial.model import build_model


@pytest.mark.slow
def test_search_recorded_through_the_tracking_server(mlflow_server, small_digits, tmp_path):
    url = mlflow_server.url
    tracker = SearchTracker(url, "server-test")
    tracker.start_search(SearchSettings(name="via-server"), load_space("default"),
                         small_digits)
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "model.keras").write_bytes(b"weights")
    params = TrialConfig().to_params()
    tracker.trial_started("t1", params)
    tracker.epoch_ended("t1", 1, {"val_accuracy": 0.5})
    tracker.checkpoint_saved("t1", checkpoint)
    tracker.trial_ended(TrialResult("t1", params, "completed", 1, 0.5))

    keras.utils.set_random_seed(0)
    config = TrialConfig.from_params({"conv_blocks": 1, "filters": 4, "dense_units": 8})
    model = build_model(config, small_digits.input_shape, 10, small_digits.value_scale)
    best = TrialResult("t1", config.to_params(), "completed", 1, 0.5)
    outcome = SearchOutcome(trials=[best], best=best, best_checkpoint=tmp_path,
                            experiment_path="")
    registered = tracker.finish_search(outcome, load_space("default"), {"test_accuracy": 0.5},
                                       model, small_digits.x_test[:5], "server-model")

    client = MlflowClient(url)
    (child,) = client.search_runs([tracker.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{tracker.parent_run_id}'")
    assert [a.path for a in client.list_artifacts(child.info.run_id, "checkpoint")] == \
        ["checkpoint/model.keras"]
    with using_tracking_store(url):
        loaded = mlflow.pyfunc.load_model(registered.uri)
    np.testing.assert_allclose(loaded.predict(small_digits.x_test[:2]),
                               model.predict(small_digits.x_test[:2], verbose=0), rtol=1e-5)
