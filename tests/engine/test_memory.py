"""Memory stays flat over a long search, and a worker that grows is replaced.

Each trial logs its worker's resident memory (per epoch) and the driver's (at its end) on
its MLflow run; these tests read them back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from search.engine.trainable import GROWTH_LIMIT_ENV, WORKER_GROWTH_LIMIT_MB
from search.engine.tuner import run_search
from search.settings import SearchSettings
from search.space import parse_space

#: Most the driver's memory may grow from trial 5 to trial 40 (MB). Measured on 2 CPUs:
#: 9 MB (Tune's trial records, MLflow's client); a leak of one model or copy of the data
#: per trial (2 MB or more each) would exceed it within the 35 trials.
DRIVER_GROWTH_BOUND_MB = 60
#: Most a worker's memory may grow from trial 5 to trial 40 (MB): the recycling limit
#: (TensorFlow keeps about 6 MB per trained model, so a worker grows until it is
#: replaced) plus one trial's growth and the allocator's noise.
WORKER_GROWTH_BOUND_MB = WORKER_GROWTH_LIMIT_MB + 40

SPACE = ("optimizer: adam\nlearning_rate: {loguniform: [3.0e-3, 3.0e-2]}\nconv_blocks: 1\n"
         "filters: {choices: [4, 8, 16]}\ndense_units: 16\nbatch_size: 64\n")


def search(tmp_path, trials: int, name: str, env: dict | None = None) -> list:
    (tmp_path / "space.yaml").write_text(SPACE)
    result = subprocess.run(
        [sys.executable, "-m", "search.run", "--space", "space.yaml", "--trials", str(trials),
         "--max-epochs", "1", "--scheduler", "none", "--cpus", "2", "--concurrency", "1",
         "--data-limit", "300",
         "--name", name], cwd=tmp_path, env={**os.environ, **(env or {})},
        capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("convsearch")
    runs = client.search_runs([experiment.experiment_id], "tags.`convsearch.role` = 'trial'")
    return sorted(runs, key=lambda r: int(r.data.tags["convsearch.trial_number"]))


def worker_pids(tmp_path, name: str, runs: list) -> list[int]:
    pids = []
    for run in runs:
        trial = run.data.tags["convsearch.trial_id"]
        lines = (tmp_path / "ray_results" / name / f"trial-{trial}" / "result.json")
        pids.append(json.loads(lines.read_text().splitlines()[0])["pid"])
    return pids


@pytest.mark.slow
def test_memory_stays_flat_over_forty_trials(tmp_path, store_in):
    store_in(tmp_path)
    runs = search(tmp_path, 40, "long")
    assert len(runs) == 40
    worker = [r.data.metrics["worker_rss_mb"] for r in runs]
    driver = [r.data.metrics["driver_rss_mb"] for r in runs]
    print(f"worker MB, trials 1/5/20/40: {worker[0]:.0f} {worker[4]:.0f} {worker[19]:.0f} "
          f"{worker[39]:.0f}; driver MB: {driver[0]:.0f} {driver[4]:.0f} {driver[19]:.0f} "
          f"{driver[39]:.0f}")
    assert max(worker[4:]) - worker[4] < WORKER_GROWTH_BOUND_MB
    assert max(driver[4:]) - driver[4] < DRIVER_GROWTH_BOUND_MB
    # Workers are reused (TensorFlow stays loaded between trials): few ran them all.
    assert len(set(worker_pids(tmp_path, "long", runs))) <= 3
    assert all(r.data.tags["convsearch.status"] == "completed" for r in runs)


@pytest.fixture
def recycling_ray(ray_with_worker_env):
    """A local Ray instance of the test's own whose workers count as grown after every
    trial (a negative limit)."""
    with ray_with_worker_env({GROWTH_LIMIT_ENV: "-1"}):
        yield


@pytest.mark.slow
def test_a_worker_that_grew_is_replaced(small_digits, tmp_path, recycling_ray):
    settings = SearchSettings(name="recycled", trials=2, max_epochs=1, scheduler="none",
                              concurrency=1, storage=tmp_path / "ray")
    outcome = run_search(parse_space(SPACE), small_digits, settings)
    assert [t.status for t in outcome.trials] == ["completed", "completed"]
    results = [Path(outcome.experiment_path) / f"trial-{t.trial_id}" / "result.json"
               for t in outcome.trials]
    pids = {json.loads(path.read_text().splitlines()[0])["pid"] for path in results}
    assert len(pids) == 2
