"""A tracking server that goes away mid-search: trials go on, what was queued is written
when it returns, and nothing is lost or written twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from search.trial.faults import FAULTS_ENV


@pytest.mark.slow
def test_a_search_outlives_a_tracking_server_outage(mlflow_server, tmp_path):
    (tmp_path / "tiny.yaml").write_text(
        "optimizer: adam\nlearning_rate: {loguniform: [3.0e-3, 3.0e-2]}\nconv_blocks: 1\n"
        "filters: 8\ndense_units: 16\nbatch_size: 32\n")
    marker = tmp_path / "asleep"
    # Trial 2 pauses after its first epoch: the server goes down then, and stays down
    # while trial 2 trains on and trial 3 starts and trains.
    faults = [{"trial": 2, "epoch": 1, "action": "sleep:3", "once": str(marker)}]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", FAULTS_ENV: json.dumps(faults)}
    driver = subprocess.Popen(
        [sys.executable, "-m", "search.run", "--space", "tiny.yaml", "--trials", "3",
         "--max-epochs", "3", "--scheduler", "none", "--data-limit", "300", "--cpus", "2",
         "--concurrency", "1", "--name", "outage", "--tracking-uri", mlflow_server.url],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert driver.poll() is None, driver.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    mlflow_server.stop()
    down = time.monotonic()
    time.sleep(8)
    assert driver.poll() is None  # training went on without the store
    mlflow_server.start()
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 0, out + err
    assert time.monotonic() - down > 8
    assert "MLflow refused a write" in out + err and "MLflow takes writes again" in out + err
    assert "could not record" not in out

    client = MlflowClient(mlflow_server.url)
    experiment = client.get_experiment_by_name("convsearch")
    (parent,) = client.search_runs([experiment.experiment_id],
                                   "tags.`convsearch.role` = 'search'")
    assert parent.info.status == "FINISHED"
    children = client.search_runs([experiment.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert len(children) == 3
    for child in children:
        assert child.info.status == "FINISHED"
        history = client.get_metric_history(child.info.run_id, "val_accuracy")
        assert [m.step for m in history] == [1, 2, 3]  # every epoch, once
        assert [a.path for a in client.list_artifacts(child.info.run_id, "checkpoint")] == \
            ["checkpoint/model.keras"]
