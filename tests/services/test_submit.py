"""``python -m services.submit``: a search as a Ray Job on a real Ray head (``ray start
--head`` on loopback, token auth on as Ray 2.60 has it by default), followed, stopped
mid-search, and resumed through the Jobs API."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from search.engine.jobs import JobSpec, jobs_address
from search.tracking.tracker import TAG_STATUS
from search.trial.faults import FAULTS_ENV
from services.submit import parse_args
from tests.conftest import REPO
from tests.services.conftest import free_port

TINY = ("--data-limit", "300", "--max-epochs", "2", "--scheduler", "none",
        "--concurrency", "1")


@dataclass
class RayHead:
    jobs: str  # the Jobs API's address
    env: dict[str, str]  # what a client needs: the token


@contextlib.contextmanager
def _ray_head(agent_port: int) -> Iterator[RayHead]:
    """A one-node Ray cluster of its own (own temp dir, so no other test's ray.init()
    finds it), its dashboard and Jobs API on loopback, token auth on, its dashboard
    agent (which runs the jobs) on `agent_port`."""
    folder = Path(tempfile.mkdtemp(prefix="cs-ray-"))  # short: Ray's socket paths
    token = folder / "auth_token"
    token.write_text(secrets.token_hex(16))
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
           "RAY_USAGE_STATS_ENABLED": "0",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    dashboard = free_port()
    head = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
         "--node-ip-address", "127.0.0.1", "--port", str(free_port()),
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
         "--dashboard-agent-listen-port", str(agent_port),
         "--num-cpus", "2", "--temp-dir", str(folder / "ray"), "--disable-usage-stats"],
        env=env, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    jobs = f"http://127.0.0.1:{dashboard}"
    try:
        _wait_for_jobs_api(jobs, token.read_text(), head)
        yield RayHead(jobs=jobs, env=env)
    finally:
        # `ray start --block` takes its time over SIGTERM; what is left is killed.
        for sig, wait_s in ((signal.SIGTERM, 5), (signal.SIGKILL, 30)):
            try:
                os.killpg(head.pid, sig)
                head.wait(timeout=wait_s)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass


@pytest.fixture(scope="module")
def ray_head():
    """The agent takes any free port (0), not Ray's fixed default (52365), which any
    other Ray instance on this machine may hold: a head whose agent cannot bind its port
    refuses every job for good. The Jobs API finds the agent wherever it listens."""
    with _ray_head(0) as head:
        yield head


def _wait_for_jobs_api(address: str, token: str, head: subprocess.Popen) -> None:
    request = urllib.request.Request(f"{address}/api/jobs/",
                                     headers={"Authorization": f"Bearer {token}"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if head.poll() is not None:
            pytest.fail(f"ray start --head exited with {head.returncode}")
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.5)
    pytest.fail("the Ray head's Jobs API did not come up in 120 s")


def submit(head: RayHead, *search_args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "services.submit", "--address", head.jobs, "--",
         *search_args], cwd=REPO, env=head.env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)


def _ignore_sigint() -> None:
    """Start as a script's background job does (and as CI runners may): SIGINT ignored.
    Ctrl+C must stop the job all the same."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.slow
def test_a_search_runs_as_a_ray_job_and_stops_and_resumes(ray_head, tmp_path, tracking_uri):
    where = ("--tracking-uri", tracking_uri, "--storage", str(tmp_path / "ray_results"))
    marker = tmp_path / "asleep"
    faults = [{"trial": 2, "epoch": 1, "action": "sleep:8", "once": str(marker)}]
    env_faults = {**ray_head.env, FAULTS_ENV: json.dumps(faults)}
    job = subprocess.Popen(
        [sys.executable, "-m", "services.submit", "--address", ray_head.jobs,
         "--env", FAULTS_ENV, "--", "--trials", "2", "--name", "viajob", *TINY,
         *where], cwd=REPO, env=env_faults, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=_ignore_sigint)
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert job.poll() is None and time.monotonic() < deadline, job.communicate()
        time.sleep(0.5)
    job.send_signal(signal.SIGINT)  # Ctrl+C at the submitting terminal stops the job
    out, err = job.communicate(timeout=200)
    assert job.returncode == 143, out + err
    assert "stopping job" in out and "search viajob stopped by SIGTERM" in out
    assert "--resume viajob" in out

    client = MlflowClient(tracking_uri)
    (parent,) = client.search_runs(
        [client.get_experiment_by_name("convsearch").experiment_id],
        "tags.`convsearch.role` = 'search'")
    assert parent.info.status == "KILLED"

    resumed = submit(ray_head, "--resume", "viajob", *where)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out + err
    assert "job " in out and ": SUCCEEDED" in out
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"
    assert sorted(c.data.tags[TAG_STATUS] for c in children) == ["completed"] * 2


def test_bad_search_flags_are_refused_before_anything_is_submitted(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--", "--trials", "many"])
    assert "--trials: invalid" in capsys.readouterr().err


def test_a_job_gives_the_search_time_to_stop_cleanly(monkeypatch):
    spec = JobSpec(search_args=["--trials", "3", "--name", "x y"], env={"A": "1"})
    assert spec.entrypoint() == "python -m search.run --trials 3 --name 'x y'"
    env = spec.runtime_env()["env_vars"]
    assert int(env["RAY_JOB_STOP_WAIT_TIME_S"]) >= 60 and env["A"] == "1"
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_ADDRESS", "http://head:8265")
    assert jobs_address() == "http://head:8265"
    assert jobs_address("http://other:8265") == "http://other:8265"


def test_an_unreachable_jobs_api_is_one_line():
    done = subprocess.run([sys.executable, "-m", "services.submit", "--address",
                           f"http://127.0.0.1:{free_port()}", "--", "--trials", "2"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("convsearch: error: cannot reach the Ray Jobs API at ")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


_SUBMIT_WAITING_3_S = """
import sys
from search.engine.jobs import JobError, JobSpec, SearchJobs
try:
    SearchJobs(sys.argv[1]).submit(JobSpec(search_args=["--trials", "1"]), agent_wait_s=3)
except JobError as exc:
    print(exc)
"""


@pytest.mark.slow
def test_a_head_whose_job_agent_lost_its_port_is_named_as_such():
    """Another Ray instance holding the agent's port leaves the head without jobs; the
    submission says so in one line instead of Ray's "try again later"."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with _ray_head(port) as head:
            done = subprocess.run([sys.executable, "-c", _SUBMIT_WAITING_3_S, head.jobs],
                                  cwd=REPO, env=head.env, capture_output=True, text=True,
                                  timeout=120)
    assert re.match(rf"the Ray head at {head.jobs} still had no job agent after \d+ s; ",
                    done.stdout), done.stdout + done.stderr
    assert "--dashboard-agent-listen-port" in done.stdout and done.stdout.count("\n") == 1
