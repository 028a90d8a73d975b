"""services/mlflow-server.sh: a real `mlflow server` process, used as a tracking URI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

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
from tests.conftest import REPO


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = _free_port()
    env = {**os.environ, "CONVSEARCH_MLFLOW_DIR": str(tmp_path / "server"),
           "MLFLOW_PORT": str(port), "PYTHON": sys.executable}
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(["bash", str(REPO / "services" / "mlflow-server.sh")], env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("mlflow server did not start:\n" +
                            (tmp_path / "server.log").read_text())
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)
        log.close()


@pytest.mark.slow
def test_search_recorded_through_the_tracking_server(mlflow_server, small_digits, tmp_path):
    tracker = SearchTracker(mlflow_server, "server-test")
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

    client = MlflowClient(mlflow_server)
    (child,) = client.search_runs([tracker.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{tracker.parent_run_id}'")
    assert [a.path for a in client.list_artifacts(child.info.run_id, "checkpoint")] == \
        ["checkpoint/model.keras"]
    with using_tracking_store(mlflow_server):
        loaded = mlflow.pyfunc.load_model(registered.uri)
    np.testing.assert_allclose(loaded.predict(small_digits.x_test[:2]),
                               model.predict(small_digits.x_test[:2], verbose=0), rtol=1e-5)
