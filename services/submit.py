"""``python -m services.submit [options] -- SEARCH FLAGS``: run a search as a Ray Job.

Submits ``python -m search.run SEARCH FLAGS`` to a Ray cluster's Jobs API, prints the
search's output as it runs, and exits with the search's outcome: 0 when it succeeded, 1
when it failed, 143 when it was stopped. Ctrl+C (or SIGTERM) here stops the job the way
``ray job stop`` does: the search checkpoints its running trials and can be resumed with
``python -m services.submit -- --resume NAME`` (plus the same --storage and
--tracking-uri flags).

The search's flags are checked here before anything is submitted. Give the cluster a
storage and tracking store every node reaches (``--storage s3://...``,
``--tracking-uri http://mlflow:5000``); credentials travel with ``--env NAME`` (copied
from this environment), never on the command line.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from search.engine.jobs import DEFAULT_JOBS_ADDRESS, JobSpec, SearchJobs, jobs_address
from search.errors import SearchError
from search.interrupts import signal_handlers

#: Exit statuses by the job's final status.
EXIT_STATUS = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": 128 + signal.SIGTERM}


class _Stop(Exception):
    """SIGTERM reached the submitting process."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m services.submit", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", default=None,
                        help="the cluster's Jobs API (default: $RAY_API_SERVER_ADDRESS, "
                             f"$RAY_ADDRESS, else {DEFAULT_JOBS_ADDRESS})")
    parser.add_argument("--working-dir", default=None, metavar="DIR",
                        help="upload this folder as the job's working directory (default: "
                             "run the convsearch installed on the cluster)")
    parser.add_argument("--pip", action="append", default=[], metavar="REQUIREMENT",
                        help="install this for the job (repeatable)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME",
                        help="copy this environment variable to the job (repeatable), e.g. "
                             "MLFLOW_TRACKING_PASSWORD")
    parser.add_argument("--submission-id", default=None, help="the job's id (default: Ray's)")
    parser.add_argument("--no-wait", action="store_true",
                        help="print the job id and return once it is submitted")
    parser.add_argument("search_args", nargs=argparse.REMAINDER,
                        help="the search's flags, after --")
    args = parser.parse_args(argv)
    if args.search_args[:1] == ["--"]:
        args.search_args = args.search_args[1:]
    missing = [name for name in args.env if name not in os.environ]
    if missing:
        parser.error(f"--env {missing[0]} is not set in this environment")
    # The search's own parser judges its flags here, before a job is spent on them.
    from search.run import build_parser

    try:
        build_parser().parse_args(args.search_args)
    except SearchError as exc:
        parser.error(f"the search's flags: {exc}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    spec = JobSpec(search_args=args.search_args, working_dir=args.working_dir, pip=args.pip,
                   env={name: os.environ[name] for name in args.env},
                   submission_id=args.submission_id)
    address = jobs_address(args.address)
    try:
        jobs = SearchJobs(address)
        job_id = jobs.submit(spec)
        print(f"submitted {spec.shown_entrypoint()} as job {job_id} to {address}", flush=True)
        if args.no_wait:
            return 0
        status = _follow(jobs, job_id)
    except SearchError as exc:
        print(f"convsearch: error: {exc}", file=sys.stderr)
        return 2
    print(f"job {job_id}: {status}", flush=True)
    return EXIT_STATUS.get(status, 1)


def _follow(jobs: SearchJobs, job_id: str) -> str:
    """Follow the job; on Ctrl+C or SIGTERM, stop it and follow it to its end."""
    def terminate(signum: int, frame: FrameType | None) -> None:
        raise _Stop

    printed = 0

    def write(text: str) -> None:
        nonlocal printed
        sys.stdout.write(text)
        sys.stdout.flush()
        printed += len(text)

    with signal_handlers({signal.SIGTERM: terminate,
                          signal.SIGINT: signal.default_int_handler}):
        try:
            return jobs.follow(job_id, write)
        except (KeyboardInterrupt, _Stop):
            print(f"\nstopping job {job_id}; its search checkpoints its running trials",
                  flush=True)
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl+C must not orphan it
            jobs.stop(job_id)
            status = jobs.wait(job_id)
            write(jobs.logs(job_id)[printed:])  # the search's summary and resume command
            return status


if __name__ == "__main__":
    sys.exit(main())
