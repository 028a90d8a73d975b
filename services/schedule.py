"""``python -m services.schedule FILE crontab|cronjob``: one schedule file, two schedulers.

A schedule file says when a search runs and with which flags::

    cron: "0 2 * * *"               # minute hour day-of-month month day-of-week (UTC)
    jobs_address: http://127.0.0.1:8265   # optional: submit it as a Ray Job there
    search:                         # python -m search.run's own flags, without the --
      space: default
      data: digits
      trials: 20
      time-budget: 2h
      experiment: nightly-digits
      tracking-uri: http://127.0.0.1:5000
      notify: https://hooks.slack.com/services/...

``crontab`` prints the line for ``crontab -e``; ``cronjob`` prints a Kubernetes CronJob
that runs the same command in the worker image, with MLflow's URI and credentials from a
Secret. Each run is a new search (named by its start time) in the schedule's experiment.
The flags are checked by the search's own parser, so a schedule that would fail at 2 am
fails now.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

#: Seconds Kubernetes waits between SIGTERM and SIGKILL: time for a search to checkpoint
#: its running trials and close its MLflow runs (see search.engine.jobs.STOP_GRACE_S).
TERMINATION_GRACE_S = 150
DEFAULT_IMAGE = "convsearch-worker:cpu"
#: What the CronJob's Secret holds: where MLflow is and how to log in. A search submitted
#: as a Ray Job runs on the cluster, so these travel with it (``services.submit --env``).
SECRET_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME",
                    "MLFLOW_TRACKING_PASSWORD")
DEFAULT_SECRET = "convsearch-mlflow"
_CRON_VALUE = r"(\d+|[a-zA-Z]{3})"
_CRON_ITEM = rf"(\*|{_CRON_VALUE}(-{_CRON_VALUE})?)(/\d+)?"
_CRON_FIELD = re.compile(rf"^{_CRON_ITEM}(,{_CRON_ITEM})*$")


class ScheduleError(Exception):
    """A schedule file that cannot be used; the CLI prints it as one line."""


def load_schedule(path: Path) -> dict[str, Any]:
    """Read and check a schedule file.

    Raises:
        ScheduleError: missing, not YAML, no valid cron expression, unknown keys, or
            search flags the search would refuse.
    """
    try:
        schedule = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScheduleError(f"cannot read schedule {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ScheduleError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(schedule, dict):
        raise ScheduleError(f"{path}: expected a mapping with cron: and search:")
    unknown = set(schedule) - {"cron", "search", "jobs_address"}
    if unknown:
        raise ScheduleError(f"{path}: unknown key {sorted(unknown)[0]!r} (known: cron, "
                            f"search, jobs_address)")
    cron = str(schedule.get("cron", ""))
    fields = cron.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise ScheduleError(f"{path}: cron: {cron!r} is not a cron expression of five "
                            f"fields (minute hour day-of-month month day-of-week)")
    flags = search_flags(schedule.get("search") or {}, path)
    return {"cron": cron, "flags": flags, "jobs_address": schedule.get("jobs_address")}


def search_flags(search: dict[str, Any], path: Path) -> list[str]:
    """The ``search:`` mapping as command-line flags, checked by the search's parser."""
    if not isinstance(search, dict):
        raise ScheduleError(f"{path}: search: expected a mapping of the search's flags")
    if "resume" in search or "name" in search:
        raise ScheduleError(f"{path}: search: each scheduled run is a new search; give "
                            f"experiment: to group them, not name: or resume:")
    flags: list[str] = []
    for key, value in search.items():
        if value is False or value is None:
            continue
        flags.append(f"--{key}")
        if value is not True:
            flags.append(str(value))
    from search.run import build_parser

    def refuse(message: str) -> None:
        raise ScheduleError(f"{path}: search: {message}")

    parser = build_parser()
    parser.error = refuse  # type: ignore[method-assign]  # one line, not usage and exit
    parser.parse_args(flags)
    return flags


def command(schedule: dict[str, Any], python: str = "python",
            forward: Sequence[str] = ()) -> list[str]:
    """What runs at each tick: the search itself, or its submission as a Ray Job (which
    takes the `forward` environment variables along to the search's driver)."""
    if schedule["jobs_address"]:
        passed = [word for name in forward for word in ("--env", name)]
        return [python, "-m", "services.submit", "--address", schedule["jobs_address"],
                *passed, "--", *schedule["flags"]]
    return [python, "-m", "search.run", *schedule["flags"]]


def crontab_line(schedule: dict[str, Any], workdir: Path, python: str, log: Path) -> str:
    """One crontab line; ``%`` is cron's newline, so it is escaped."""
    line = (f"cd {shlex.quote(str(workdir))} && {shlex.join(command(schedule, python))} "
            f">> {shlex.quote(str(log))} 2>&1")
    return f"{schedule['cron']} {line.replace('%', chr(92) + '%')}"


def cronjob(schedule: dict[str, Any], name: str, image: str, secret: str,
            namespace: str | None) -> dict[str, Any]:
    """A batch/v1 CronJob: one search at a time (a run still going when the next is due
    makes that one skip), never retried by Kubernetes (a stopped search is resumed, not
    started over), time to stop cleanly on SIGTERM."""
    labels = {"app.kubernetes.io/name": "convsearch", "app.kubernetes.io/component": "search"}
    metadata: dict[str, Any] = {"name": name, "labels": dict(labels)}
    if namespace:
        metadata["namespace"] = namespace
    container: dict[str, Any] = {
        "name": "search", "image": image,
        "command": command(schedule, forward=SECRET_VARIABLES),
        "envFrom": [{"secretRef": {"name": secret}}],
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}
    if schedule["jobs_address"]:  # the head's Jobs API wants Ray's token (in the Secret)
        container["env"] = [{"name": "RAY_AUTH_MODE", "value": "token"}]
    return {
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": metadata,
        "spec": {
            "schedule": schedule["cron"], "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid", "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 3,
            "jobTemplate": {"spec": {"backoffLimit": 0, "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"restartPolicy": "Never",
                         "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
                         "containers": [container]}}}},
        },
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m services.schedule", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path, help="the schedule file (YAML)")
    sub = parser.add_subparsers(dest="target", required=True)
    cron = sub.add_parser("crontab", help="print a crontab line")
    cron.add_argument("--workdir", type=Path, default=Path.cwd(),
                      help="folder the search runs in (default: this one)")
    cron.add_argument("--python", default=sys.executable,
                      help="the Python with convsearch installed (default: this one)")
    cron.add_argument("--log", type=Path, default=None,
                      help="file the runs append to (default: WORKDIR/<schedule>.log)")
    job = sub.add_parser("cronjob", help="print a Kubernetes CronJob")
    job.add_argument("--image", default=DEFAULT_IMAGE,
                     help=f"worker image (default: {DEFAULT_IMAGE}; see docker/)")
    job.add_argument("--secret", default=DEFAULT_SECRET,
                     help=f"Secret with {', '.join(SECRET_VARIABLES)} (default: "
                          f"{DEFAULT_SECRET})")
    job.add_argument("--namespace", default=None)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        schedule = load_schedule(args.file)
    except ScheduleError as exc:
        print(f"convsearch: error: {exc}", file=sys.stderr)
        return 2
    name = re.sub(r"[^a-z0-9-]+", "-", args.file.stem.lower()).strip("-") or "search"
    if args.target == "crontab":
        workdir = args.workdir.resolve()
        log = args.log or workdir / f"{name}.log"
        print(crontab_line(schedule, workdir, args.python, log))
    else:
        print(yaml.safe_dump(cronjob(schedule, name, args.image, args.secret,
                                     args.namespace), sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
