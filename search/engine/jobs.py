"""A search as a Ray Job: submitted to a cluster's Jobs API, its logs followed, stopped.

The job's entrypoint is the ordinary CLI (``python -m search.run ...``): the driver then
runs on the cluster, joins it through RAY_ADDRESS (which the Jobs API sets), and handles
the SIGTERM that stopping a job sends like any other, so a stopped job is resumable.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from search.errors import SearchError, first_line
from search.secrets import redacted_args

#: Where the Jobs API is when nothing says otherwise: a head's dashboard on this machine.
DEFAULT_JOBS_ADDRESS = "http://127.0.0.1:8265"
#: Seconds Ray gives a stopped job's entrypoint between SIGTERM and SIGKILL (Ray's own
#: default, 3 s, is shorter than a search needs to checkpoint its trials and close its
#: MLflow runs).
STOP_GRACE_S = 120
#: Seconds a submission keeps trying a cluster whose job agent is not ready yet: a head
#: that has just started serves its Jobs API before its agent registers, and Ray then
#: answers "No available agent to submit job, please try again later".
AGENT_WAIT_S = 90.0
_AGENT_NOT_READY = "No available agent"
#: The port a head's dashboard agent serves jobs on unless told otherwise (Ray's
#: DEFAULT_DASHBOARD_AGENT_LISTEN_PORT, not imported to keep Ray out of this import).
#: Every Ray instance on a machine asks for it; when it is taken the agent runs without
#: it and the head refuses every job, so the wait above ends in an error that says so.
_RAY_AGENT_PORT = 52365


class JobError(SearchError, RuntimeError):
    """The cluster's Jobs API cannot be reached, or refused the job."""


@dataclass(frozen=True)
class JobSpec:
    """What to run on the cluster: the search's own flags, and the job's environment."""

    search_args: Sequence[str]
    #: A folder uploaded as the job's working directory; None: the cluster runs the
    #: convsearch installed in its image.
    working_dir: str | None = None
    #: pip requirements installed for the job (e.g. ``convsearch==0.1.0``).
    pip: Sequence[str] = ()
    #: Environment variables for the job's driver and workers.
    env: Mapping[str, str] = field(default_factory=dict)
    submission_id: str | None = None

    def entrypoint(self) -> str:
        return shlex.join(["python", "-m", "search.run", *self.search_args])

    def shown_entrypoint(self) -> str:
        """The entrypoint as it may be printed: no webhook or password in it."""
        return shlex.join(["python", "-m", "search.run", *redacted_args(self.search_args)])

    def runtime_env(self) -> dict[str, object]:
        env = {"RAY_JOB_STOP_WAIT_TIME_S": str(STOP_GRACE_S), **self.env}
        runtime_env: dict[str, object] = {"env_vars": env}
        if self.working_dir:
            runtime_env["working_dir"] = self.working_dir
        if self.pip:
            runtime_env["pip"] = list(self.pip)
        return runtime_env


def jobs_address(given: str | None = None) -> str:
    """The Jobs API to use: as given, else Ray's own variables (RAY_API_SERVER_ADDRESS,
    then RAY_ADDRESS, as ``ray job submit`` reads them), else this machine's head."""
    return (given or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS")
            or DEFAULT_JOBS_ADDRESS)


class SearchJobs:
    """The Jobs API of one cluster."""

    def __init__(self, address: str) -> None:
        from ray.job_submission import JobSubmissionClient

        self.address = address
        try:
            self._client = JobSubmissionClient(address)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise JobError(f"cannot reach the Ray Jobs API at {address}: "
                           f"{first_line(exc)}") from exc

    def submit(self, spec: JobSpec, agent_wait_s: float = AGENT_WAIT_S) -> str:
        """Submit the search; its job id. A cluster whose job agent is not ready yet is
        tried again for up to `agent_wait_s` (such a refusal submitted nothing)."""
        import time

        started = time.monotonic()
        while True:
            try:
                return self._client.submit_job(entrypoint=spec.entrypoint(),
                                               runtime_env=spec.runtime_env(),
                                               submission_id=spec.submission_id)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                if _AGENT_NOT_READY in str(exc):
                    # Each refusal comes after Ray's own wait for an agent (10 s).
                    waited = time.monotonic() - started
                    if waited < agent_wait_s:
                        time.sleep(1.0)
                        continue
                    raise JobError(
                        f"the Ray head at {self.address} still had no job agent after "
                        f"{waited:.0f} s; if another Ray instance on its machine holds "
                        f"Ray's default agent port ({_RAY_AGENT_PORT}), start the head "
                        "with ray start --dashboard-agent-listen-port and a free port"
                    ) from exc
                raise JobError(f"the Ray Jobs API at {self.address} refused the search: "
                               f"{first_line(exc)}") from exc

    def status(self, job_id: str) -> str:
        """PENDING, RUNNING, STOPPED, SUCCEEDED or FAILED."""
        try:
            return str(self._client.get_job_status(job_id).value)
        except (ConnectionError, RuntimeError) as exc:
            raise JobError(f"cannot read job {job_id} at {self.address}: "
                           f"{first_line(exc)}") from exc

    def stop(self, job_id: str) -> None:
        """Ask the cluster to stop the job: its driver gets SIGTERM, checkpoints its
        running trials, closes its MLflow runs and exits (then it can be resumed)."""
        try:
            self._client.stop_job(job_id)
        except (ConnectionError, RuntimeError) as exc:
            raise JobError(f"cannot stop job {job_id} at {self.address}: "
                           f"{first_line(exc)}") from exc

    def logs(self, job_id: str) -> str:
        """Everything the job has printed so far."""
        try:
            return self._client.get_job_logs(job_id)
        except (ConnectionError, RuntimeError) as exc:
            raise JobError(f"cannot read the logs of job {job_id} at {self.address}: "
                           f"{first_line(exc)}") from exc

    def follow(self, job_id: str, write: Callable[[str], object] = sys.stdout.write) -> str:
        """Stream the job's logs to `write` until it ends; its final status."""
        async def tail() -> None:
            async for lines in self._client.tail_job_logs(job_id):
                write(lines)

        try:
            asyncio.run(tail())
        except (ConnectionError, RuntimeError) as exc:
            raise JobError(f"lost the logs of job {job_id} at {self.address}: "
                           f"{first_line(exc)}") from exc
        return self.wait(job_id)

    def wait(self, job_id: str, timeout_s: float = STOP_GRACE_S + 30) -> str:
        """Block until the job is over (the log stream can end a moment before the
        status says so); its final status."""
        import time

        deadline = time.monotonic() + timeout_s
        while True:
            status = self.status(job_id)
            if status in FINAL_STATUSES or time.monotonic() > deadline:
                return status
            time.sleep(0.5)


#: Job statuses after which nothing more happens.
FINAL_STATUSES = ("STOPPED", "SUCCEEDED", "FAILED")
