"""Where trials run: the Ray instance a search uses, and how its CPUs and GPUs are
split between concurrent trials."""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import ray

from search.errors import SettingsError
from search.settings import SearchSettings

#: Environment for trial workers: TensorFlow's C++ start-up chatter off; and more time
#: than Tune's default 2 s for a finished trial's thread to end before its worker is
#: reused (Tune counts a worker whose thread is late as failed to reset).
_WORKER_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "TUNE_FUNCTION_THREAD_TIMEOUT_S": "30"}


@dataclass(frozen=True)
class TrialResources:
    """What each trial gets, and how many run at once."""

    cpus: int
    gpus: float
    concurrency: int


def plan_resources(settings: SearchSettings, cluster: dict[str, float],
                   trials: int | None = None) -> TrialResources:
    """Split the cluster between trials: one GPU per trial when there are GPUs (or the
    fraction asked for), else one CPU per concurrent slot.

    Raises:
        SettingsError: more GPUs per trial than the cluster has.
    """
    total_cpus = int(cluster.get("CPU", 1))
    total_gpus = cluster.get("GPU", 0.0)
    gpus = settings.gpus_per_trial
    if gpus is None:
        gpus = 1.0 if total_gpus >= 1 else 0.0
    if gpus > total_gpus:
        raise SettingsError(f"--gpus-per-trial {gpus:g} asks for more GPUs than Ray sees "
                            f"({total_gpus:g})")
    slots = math.floor(total_gpus / gpus + 1e-9) if gpus else total_cpus
    trials = trials or settings.trial_budget()
    concurrency = max(1, min(settings.concurrency or slots, slots, trials))
    cpus = max(1, total_cpus // concurrency)
    return TrialResources(cpus=cpus, gpus=gpus, concurrency=concurrency)


def cluster_resources() -> dict[str, float]:
    """CPUs and GPUs of the Ray instance this process is connected to."""
    return dict(ray.cluster_resources())


@contextmanager
def ray_session(settings: SearchSettings, *, verbose: bool) -> Iterator[None]:
    """Use the Ray instance already running in this process, or start one for the search.

    Raises:
        SettingsError: Ray cannot be started or reached.
    """
    if ray.is_initialized():
        yield
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    options: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": verbose,
        "logging_level": logging.INFO if verbose else logging.ERROR,
        "runtime_env": {"env_vars": _WORKER_ENV},
    }
    if settings.ray_address:
        options["address"] = settings.ray_address
    else:
        options["num_cpus"] = settings.cpus or os.cpu_count() or 1
    # ray.init installs SIGTERM handlers that exit the process; the caller's own stay.
    handlers = _signal_handlers()
    try:
        ray.init(**options)
    except (ConnectionError, ray.exceptions.RayError, ValueError) as exc:
        raise SettingsError(f"cannot start or reach Ray ({settings.ray_address or 'local'}): "
                            f"{exc}") from exc
    finally:
        _restore(handlers)
    try:
        yield
    finally:
        ray.shutdown()
        _restore(handlers)


def _signal_handlers() -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}


def _restore(handlers: dict[int, Any]) -> None:
    for signum, handler in handlers.items():
        if handler is not None:
            signal.signal(signum, handler)
