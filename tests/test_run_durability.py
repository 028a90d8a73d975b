"""A search never loses work: kill -9 then --resume, Ctrl+C and SIGTERM, --trials
extension, trials that fail or whose worker dies, and budgets that end a search early.

Every test runs ``python -m search.run`` as a user would, on real Ray, Optuna, MLflow
and Keras with tiny models. Faults are injected through `search.trial.faults` (a chosen
trial sleeps, raises or exits at a chosen epoch); a ``once`` marker file both limits a
fault to one firing and tells the test that the trial has reached that point.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from search.errors import SettingsError
from search.pipeline import execute, load_request, prepare
from search.tracking.tracker import (
    CHALLENGER_ALIAS,
    CHAMPION_ALIAS,
    TAG_CHAMPION_DECISION,
    TAG_ROLE,
    TAG_STATUS,
)
from search.trial.checkpoints import read_state
from search.trial.faults import FAULTS_ENV
from search.workdirs import name_prefix
from tests.test_run import run_cli

#: Flags of every search here: tiny data, one trial at a time, every trial trains its
#: epochs (no scheduler), a checkpoint every epoch (so a fault's epoch is the one a
#: restart continues from), two CPUs.
TINY = ("--data-limit", "300", "--cpus", "2", "--concurrency", "1", "--scheduler", "none",
        "--checkpoint-interval", "0", "--space", "tiny.yaml")

SPACE = """\
optimizer: adam
learning_rate: {loguniform: [3.0e-3, 3.0e-2]}
conv_blocks: 1
filters: {choices: [4, 8]}
dense_units: 16
batch_size: 32
"""


@pytest.fixture
def folder(tmp_path, store_in):
    (tmp_path / "tiny.yaml").write_text(SPACE)
    store_in(tmp_path)
    return tmp_path


def start_cli(*args: str, cwd: Path, faults: list[dict] | None = None) -> subprocess.Popen:
    """The CLI in the background, in its own process group (as a shell job is)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if faults:
        env[FAULTS_ENV] = json.dumps(faults)
    return subprocess.Popen([sys.executable, "-m", "search.run", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 240) -> None:
    """Wait until a fault's marker file appears (the trial reached the fault)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the search ended before the fault fired:\n{out}\n{err}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the fault never fired")
        time.sleep(0.2)
    time.sleep(2.0)  # let the driver take in the epoch reported before the fault


def runs(folder: Path, name: str) -> tuple[MlflowClient, object, list]:
    """The store's client, the search's parent run and its trial runs (deleted ones too)."""
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("convsearch")
    (parent,) = client.search_runs(
        [experiment.experiment_id],
        f"tags.`{TAG_ROLE}` = 'search' and tags.`convsearch.search` = '{name}'")
    children = client.search_runs([experiment.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
                                  run_view_type=3)
    return client, parent, children


def steps(client: MlflowClient, run) -> list[int]:
    return [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")]


def ray_results(folder: Path, name: str, trial_id: str) -> list[dict]:
    """What Ray recorded of one trial, result by result."""
    lines = (folder / "ray_results" / name / f"trial-{trial_id}" / "result.json").read_text()
    return [json.loads(line) for line in lines.splitlines() if line.strip()]


def by_number(children: list) -> dict[int, object]:
    return {int(r.data.tags["convsearch.trial_number"]): r for r in children
            if r.info.lifecycle_stage == "active"}


def assert_resume_hint(stdout: str, name: str) -> None:
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("resume it with: ") and last.endswith(f"-m search.run --resume {name}")


@pytest.mark.slow
def test_a_killed_driver_resumes_where_it_stopped(folder):
    marker = folder / "asleep"
    driver = start_cli("--trials", "4", "--max-epochs", "4", "--name", "crash", *TINY,
                       cwd=folder, faults=[{"trial": 2, "epoch": 2, "action": "sleep:120",
                                            "once": str(marker)}])
    wait_for(marker, driver)

    # A second driver cannot take over a search that is running.
    second = run_cli("--resume", "crash", cwd=folder)
    assert second.returncode == 2, second.stdout + second.stderr
    assert second.stderr.strip().splitlines() == [
        line for line in second.stderr.strip().splitlines() if "convsearch: error: search "
        "'crash' is being run by driver pid" in line]

    os.killpg(driver.pid, signal.SIGKILL)  # kill -9: the driver and everything it started
    driver.wait()
    client, parent, before = runs(folder, "crash")
    assert parent.info.status == "RUNNING"  # nobody could close it
    first_two = {n: r.data.params for n, r in by_number(before).items()}

    # Resume needs no other flag: space, data and settings come from the record, which
    # names the tracking store by its absolute path. From another folder, --storage says
    # where the search is.
    elsewhere = folder / "elsewhere"
    elsewhere.mkdir()
    resumed = run_cli("--resume", "crash", "--storage", str(folder / "ray_results"),
                      cwd=elsewhere, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "crash: resuming, 4 trials" in resumed.stdout
    assert "Best trials (4 run)" in resumed.stdout

    client, parent, children = runs(folder, "crash")
    assert parent.info.status == "FINISHED"
    trials = by_number(children)
    assert sorted(trials) == [1, 2, 3, 4]  # the budget, each trial once
    assert all(r.info.status == "FINISHED" for r in children if r.info.lifecycle_stage ==
               "active")
    for run in trials.values():  # no epoch logged twice, none missing
        assert steps(client, run) == list(range(1, 5))
    # Trials 1 and 2 kept their configs; the algorithm went on from its history instead
    # of drawing its first configs again.
    for number, params in first_two.items():
        assert trials[number].data.params == params
    assert trials[3].data.params != trials[1].data.params
    # Trial 2 continued after its last checkpointed epoch, not from epoch 1.
    results = ray_results(folder, "crash", trials[2].data.tags["convsearch.trial_id"])
    assert [r["epoch"] for r in results] == [1, 2, 3, 4]
    assert [r["iterations_since_restore"] for r in results] == [1, 2, 1, 2]
    assert CHAMPION_ALIAS in client.get_registered_model("convsearch-digits").aliases


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_an_extension_resumes(folder):
    # A finished search with its champion.
    first = run_cli("--trials", "1", "--max-epochs", "2", "--name", "grow", *TINY,
                    cwd=folder, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("convsearch-digits", CHAMPION_ALIAS).version

    # Extend it to 3 trials; Ctrl+C (SIGINT to the whole process group) while trial 2 runs.
    marker = folder / "asleep"
    driver = start_cli("--resume", "grow", "--trials", "3", cwd=folder,
                       faults=[{"trial": 2, "epoch": 1, "action": "sleep:6",
                                "once": str(marker)}])
    wait_for(marker, driver)
    signalled = time.monotonic()
    os.killpg(driver.pid, signal.SIGINT)
    out, err = driver.communicate(timeout=120)
    assert time.monotonic() - signalled < 30
    assert driver.returncode == 130, out + err
    assert "grow: resuming, 3 trials" in out
    assert "extending search grow to 3 trials in all" in out
    assert "search grow stopped by SIGINT" in out
    assert_resume_hint(out, "grow")
    assert "Traceback" not in err

    client, parent, children = runs(folder, "grow")
    assert parent.info.status == "KILLED"
    assert parent.data.tags["convsearch.extended"] == "1 -> 3 trials"
    assert all(r.info.status != "RUNNING" for r in children)
    assert sorted(r.data.tags[TAG_STATUS] for r in children) == ["completed", "interrupted"]
    assert client.get_model_version_by_alias("convsearch-digits",
                                              CHAMPION_ALIAS).version == champion

    resumed = run_cli("--resume", "grow", cwd=folder, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    client, parent, children = runs(folder, "grow")
    assert parent.info.status == "FINISHED" and "convsearch.error" not in parent.data.tags
    assert sorted(by_number(children)) == [1, 2, 3]
    assert [steps(client, r) for r in by_number(children).values()] == [[1, 2]] * 3
    # The extended search's best is registered and challenges the champion.
    challenger = client.get_model_version_by_alias("convsearch-digits", CHALLENGER_ALIAS)
    assert challenger.version != champion and challenger.run_id == parent.info.run_id
    # Promoted exactly when more accurate on this search's test split (margin 0).
    better = parent.data.metrics["challenger.test_accuracy"] > \
        parent.data.metrics["champion.test_accuracy"]
    assert parent.data.tags[TAG_CHAMPION_DECISION] == ("promoted" if better else "kept")
    assert client.get_model_version_by_alias("convsearch-digits", CHAMPION_ALIAS).version == \
        (challenger.version if better else champion)

    # Resuming a finished search is an error that says how to extend it.
    with pytest.raises(SettingsError, match=r"already finished its 3 trials; give --trials N "
                                            r"\(more than 3\)"):
        execute(prepare(load_request("grow", folder / "ray_results")), resume=True)


@pytest.mark.slow
def test_sigterm_stops_cleanly_with_nothing_left_running(folder):
    marker = folder / "asleep"
    driver = start_cli("--trials", "3", "--max-epochs", "3", "--name", "term", *TINY,
                       cwd=folder, faults=[{"trial": 1, "epoch": 2, "action": "sleep:6",
                                            "once": str(marker)}])
    wait_for(marker, driver)
    os.kill(driver.pid, signal.SIGTERM)  # as Ray Jobs, Kubernetes and systemd send it
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == 143, out + err
    assert_resume_hint(out, "term")

    client, parent, children = runs(folder, "term")
    assert parent.info.status == "KILLED"
    assert [(r.info.status, r.data.tags[TAG_STATUS]) for r in children] == \
        [("KILLED", "interrupted")]
    assert steps(client, children[0]) == [1, 2]
    assert client.search_registered_models() == []  # no champion from a stopped search


@pytest.mark.slow
def test_failed_trials_are_isolated_and_a_dead_worker_is_retried(folder):
    faults = [{"trial": 2, "epoch": 2, "action": "raise"},
              {"trial": 3, "epoch": 1, "action": "nan"},
              {"trial": 4, "epoch": 2, "action": "exit", "once": str(folder / "died")}]
    driver = start_cli("--trials", "5", "--max-epochs", "3", "--name", "faults", *TINY,
                       cwd=folder, faults=faults)
    out, err = driver.communicate(timeout=400)
    assert driver.returncode == 0, out + err
    assert "trials: 3 completed, 0 stopped, 2 failed" in out
    assert "RuntimeError: injected fault in trial 2 at epoch 2" in out

    client, parent, children = runs(folder, "faults")
    trials = by_number(children)
    assert sorted(trials) == [1, 2, 3, 4, 5]
    assert parent.info.status == "FINISHED"
    # The failed trials keep what they learned before failing, and say why they failed.
    assert trials[2].data.tags[TAG_STATUS] == "failed"
    assert trials[2].info.status == "FAILED"
    assert trials[2].data.tags["convsearch.error"].startswith("RuntimeError: injected fault")
    assert steps(client, trials[2]) == [1, 2]
    assert [a.path for a in client.list_artifacts(trials[2].info.run_id)] == \
        ["checkpoint", "error.txt"]
    assert trials[3].data.tags["convsearch.error"].startswith("TrainingError: loss became NaN")
    # The trial whose worker died was restarted from its checkpoint and completed.
    assert os.path.exists(folder / "died")
    assert trials[4].data.tags[TAG_STATUS] == "completed"
    assert steps(client, trials[4]) == [1, 2, 3]
    results = ray_results(folder, "faults", trials[4].data.tags["convsearch.trial_id"])
    assert [(r["epoch"], r["iterations_since_restore"]) for r in results][-1] == (3, 1)
    # The next worker removed the work folder that the killed one left.
    killed = results[0]["pid"]
    assert killed != results[-1]["pid"]
    assert not list(Path(tempfile.gettempdir()).glob(f"{name_prefix('trial', killed)}*"))
    # Memory of the worker and the driver is logged with every trial.
    for run in trials.values():
        assert run.data.metrics["worker_rss_mb"] > 50
        assert run.data.metrics["driver_rss_mb"] > 50


#: A learning rate this small leaves validation accuracy flat after the first epoch, so
#: no later epoch is a new best, and with the default checkpoint interval (10 s) none of
#: those short epochs is checkpointed before the last.
FLAT_SPACE = """\
optimizer: sgd
learning_rate: 1.0e-6
conv_blocks: 1
filters: 4
dense_units: 8
batch_size: 32
"""


@pytest.mark.slow
def test_a_restarted_trials_curves_are_those_of_its_checkpoint(folder):
    (folder / "flat.yaml").write_text(FLAT_SPACE)
    fault = {"trial": 1, "epoch": 4, "action": "exit", "once": str(folder / "died")}
    result = run_cli("--trials", "1", "--max-epochs", "6", "--patience", "10", "--name",
                     "curves", "--space", "flat.yaml", "--data-limit", "300", "--cpus", "2",
                     "--scheduler", "none", cwd=folder, timeout=300,
                     env={FAULTS_ENV: json.dumps([fault])})
    assert result.returncode == 0, result.stdout + result.stderr
    client, _, children = runs(folder, "curves")
    (trial,) = children
    trial_id = trial.data.tags["convsearch.trial_id"]
    # The worker died after epoch 4, which no checkpoint held, and the trial went on from
    # an earlier checkpoint: epoch 4 at least was trained twice, with other values the
    # second time (its shuffled batches start over). Ray's own result log may lose the
    # lines from before the restart, so only its last line is read.
    assert (folder / "died").exists()
    last = ray_results(folder, "curves", trial_id)[-1]
    assert last["epoch"] == 6 and last["iterations_since_restore"] >= 3

    trial_folder = folder / "ray_results" / "curves" / f"trial-{trial_id}"
    kept = read_state(sorted(trial_folder.glob("checkpoint_*"))[-1])
    assert kept.epoch == 6 and len(kept.history) == 6
    for metric in ("loss", "val_loss", "accuracy"):
        curve = client.get_metric_history(trial.info.run_id, metric)
        assert [m.step for m in curve] == [1, 2, 3, 4, 5, 6], metric
        assert [m.value for m in curve] == [epoch[metric] for epoch in kept.history], metric


@pytest.mark.slow
def test_a_search_whose_trials_all_fail_stops_with_one_line(folder):
    faults = [{"trial": n, "epoch": 1, "action": "nan"} for n in range(1, 10)]
    driver = start_cli("--trials", "8", "--max-epochs", "2", "--max-consecutive-failures", "3",
                       "--name", "doomed", *TINY, "--concurrency", "2", cwd=folder,
                       faults=faults)
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 2, out + err
    assert err.strip().splitlines() == [
        "convsearch: error: 3 trials in a row failed, so the search stopped; the most common "
        "error (3x): TrainingError: loss became NaN or infinite in epoch 1 (injected)"]
    _, parent, children = runs(folder, "doomed")
    assert parent.info.status == "FAILED"
    assert 3 <= len(children) <= 4 and all(r.info.status != "RUNNING" for r in children)


@pytest.mark.slow
def test_a_time_budget_ends_the_search_normally(folder):
    started = time.monotonic()
    result = run_cli("--trials", "200", "--max-epochs", "3", "--time-budget", "8s",
                     "--name", "timed", *TINY, cwd=folder, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started < 120
    assert "the search ended early: the time budget is spent" in result.stdout
    assert "registered as models:/convsearch-digits@champion" in result.stdout
    _, parent, children = runs(folder, "timed")
    assert parent.info.status == "FINISHED"
    assert 1 <= len(children) < 200
    assert all(r.info.status == "FINISHED" for r in children)
