"""Where trials run: the Ray instance a search uses, and how its CPUs and GPUs are
split between concurrent trials."""

from __future__ import annotations

import importlib
import inspect
import logging
import math
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from search.errors import SettingsError
from search.interrupts import handlers_kept
from search.settings import DEFAULT_STORAGE, SearchSettings

logger = logging.getLogger(__name__)

#: Environment for trial workers: TensorFlow's C++ start-up chatter off; and more time
#: than Tune's default 2 s for a finished trial's thread to end before its worker is
#: reused (Tune counts a worker whose thread is late as failed to reset).
_WORKER_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "TUNE_FUNCTION_THREAD_TIMEOUT_S": "30"}


#: Ray's system config for a local instance it starts. The raylet connects to its own
#: object store while the store is still starting, and retries only after
#: ``raylet_client_connect_timeout_milliseconds`` (1000 by default): that wait was on
#: the path of every search's start (seen as a 1 s gap in raylet.out, and ``ray.init``
#: taking 2.3 s or 3.3 s by whether its 1 s poll for the node met it). 100 attempts of
#: 100 ms keep Ray's default 10 s before it gives up.
#:
#: ``prestart_worker_first_driver`` off: when the driver connects, Ray starts one idle
#: Python worker per CPU for work without a runtime environment of its own. A search
#: has no such work (Tune gives every trial actor its own environment, so trials always
#: get new workers), and the idle workers' start (importing Ray: 1.1-1.4 s of CPU for
#: two on 2 CPUs) ran beside the trial worker's start and TensorFlow's import.
_LOCAL_RAY_CONFIG = {"raylet_client_connect_timeout_milliseconds": 100,
                     "raylet_client_num_connect_attempts": 100,
                     "prestart_worker_first_driver": False}

#: What ``ray.init`` imports on its first call beyond ``import ray`` and Ray Tune (the
#: top of ``python -X importtime`` within the call, Ray 2.60): importing them first
#: lets another thread import (MLflow) while Ray starts, with no import of this thread
#: to collide with. Two threads importing the same packages at once (click and
#: opentelemetry are in both) can deadlock on Python's module locks, which Python
#: breaks by handing one of them a half-initialised module.
#: tests/engine/test_resources.py checks that ``ray.init`` imports nothing more.
_RAY_START_MODULES = ("ray._private.runtime_env.uv_runtime_env_hook",
                      "ray._private.thirdparty.pynvml",
                      "ray.dashboard.optional_deps")


#: What a local instance's dashboard agent listens on: any free port, where ray.init()
#: would ask for Ray's fixed one (52365) and has no argument to say otherwise (Ray's
#: answer is `ray start --dashboard-agent-listen-port`). Every Ray instance on a machine
#: asks for that port: the agent of a second one retries binding it for about 3 s, and
#: ray.init() waits for it (its raylet took 4.3 s to start instead of 1.0 s, medians of
#: 21 and 19 starts in a test suite run), and a Ray head started later on the machine
#: gets no job agent and refuses every job.
_LOCAL_AGENT_PORT = 0


def _local_node_params(verbose: bool) -> dict[str, Any]:
    """What a local instance starts with beyond ray.init()'s arguments, which have none
    for these: the dashboard agent's port (`_LOCAL_AGENT_PORT`); no autoscaler monitor,
    since a single machine's instance has no nodes to add (the monitor took 0.65-0.74 s
    of CPU a search on 2 CPUs); and, unless `verbose`, no log monitor, which only
    forwards the workers' output to a driver that prints it (0.88-0.97 s)."""
    params: dict[str, Any] = {"dashboard_agent_listen_port": _LOCAL_AGENT_PORT,
                              "no_monitor": True}
    if not verbose:
        params["include_log_monitor"] = False
    return params


@contextmanager
def _local_node_defaults(params: Mapping[str, Any]) -> Iterator[None]:
    """While a local instance starts, make `params` the defaults of the one place
    ray.init() takes them from (``RayParams``); Ray as it was after. One that is not
    found (another Ray version) keeps Ray's default; the others still apply."""
    try:
        from ray._private.parameter import RayParams

        init = RayParams.__init__
        positional = [p.name for p in inspect.signature(init).parameters.values()
                      if p.kind is p.POSITIONAL_OR_KEYWORD and p.default is not p.empty]
        fixed = init.__defaults__ or ()
        if len(fixed) != len(positional):
            raise ValueError(f"RayParams has {len(fixed)} defaults for {positional}")
    except (ImportError, AttributeError, ValueError) as exc:
        logger.debug("cannot set the local instance's start parameters: %s", exc)
        yield
        return
    chosen = list(fixed)
    for name, value in params.items():
        if name in positional:
            chosen[positional.index(name)] = value
        else:
            logger.debug("Ray has no start parameter %s; it keeps its default", name)
    init.__defaults__ = tuple(chosen)
    try:
        yield
    finally:
        init.__defaults__ = fixed


@contextmanager
def _no_dashboard_process() -> Iterator[None]:
    """While a local instance starts, start no dashboard process. With
    ``include_dashboard=False`` Ray still starts one, which then serves only Ray's usage
    statistics (a search turns them off), and ray.init() waits until it has imported its
    web stack and registered: ray.init() took 4.1-4.3 s with it and 2.6-2.7 s without
    on 2 CPUs, and the process used 1.5 s of CPU. Nothing a search runs needs it (Tune
    reads the cluster's state from Ray's GCS). One trace is left: Ray's dashboard agent
    looks for the dashboard's address once a second and logs each miss to its own log
    in the instance's session folder (about 400 bytes a second). A Ray version without
    the method starts the dashboard as before."""
    try:
        from ray._private.node import Node

        start = Node.start_api_server
    except (ImportError, AttributeError) as exc:
        logger.debug("cannot leave out the dashboard process: %s", exc)
        yield
        return

    def start_unless_left_out(node: Any, *, include_dashboard: bool | None,
                              **kwargs: Any) -> None:
        if include_dashboard is not False:
            start(node, include_dashboard=include_dashboard, **kwargs)

    Node.start_api_server = start_unless_left_out
    try:
        yield
    finally:
        Node.start_api_server = start


@contextmanager
def _local_start(verbose: bool) -> Iterator[None]:
    """How a local instance starts beyond what ray.init()'s arguments say."""
    with _local_node_defaults(_local_node_params(verbose)), _no_dashboard_process():
        yield


def import_ray_start_modules() -> bool:
    """Import now what starting Ray would import (see `_RAY_START_MODULES`); False if
    one of them is missing (another Ray version), when Ray's start would still import."""
    try:
        for name in _RAY_START_MODULES:
            importlib.import_module(name)
    except ImportError as exc:
        logger.debug("cannot import what Ray's start imports: %s", exc)
        return False
    return True


@dataclass(frozen=True)
class TrialResources:
    """What each trial gets, and how many run at once."""

    cpus: int
    gpus: float
    concurrency: int


def plan_resources(settings: SearchSettings, nodes: Sequence[Mapping[str, float]],
                   trials: int | None = None) -> TrialResources:
    """Split the cluster's nodes between trials: one GPU per trial when there are GPUs
    (or the fraction asked for), else one CPU per concurrent slot; then as many CPUs per
    trial as lets that many trials run at once, each on one node.

    Planning per node matters on a cluster of mixed nodes (a CPU head, GPU workers): a
    trial asking for the cluster's CPUs per GPU could fit on no single node, and would
    wait for ever.

    Raises:
        SettingsError: more GPUs per trial than any one node has.
    """
    most_gpus = max((node.get("GPU", 0.0) for node in nodes), default=0.0)
    gpus = settings.gpus_per_trial
    if gpus is None:
        gpus = 1.0 if most_gpus >= 1 else 0.0
    if gpus > most_gpus:
        where = "Ray sees" if len(nodes) <= 1 else "any one node of the cluster has"
        raise SettingsError(f"--gpus-per-trial {gpus:g} asks for more GPUs than {where} "
                            f"({most_gpus:g})")

    def slots(cpus_per_trial: int) -> int:
        """Trials that fit at once with this many CPUs each."""
        fits = 0
        for node in nodes:
            by_cpu = math.floor(node.get("CPU", 0.0) / cpus_per_trial + 1e-9)
            by_gpu = math.floor(node.get("GPU", 0.0) / gpus + 1e-9) if gpus else by_cpu
            fits += min(by_cpu, by_gpu)
        return fits

    most = max(1, slots(1))
    trials = trials or settings.trial_budget()
    concurrency = max(1, min(settings.concurrency or most, most, trials))
    biggest_node = int(max((node.get("CPU", 1.0) for node in nodes), default=1.0))
    cpus = max([c for c in range(1, biggest_node + 1) if slots(c) >= concurrency],
               default=1)
    return TrialResources(cpus=cpus, gpus=gpus, concurrency=concurrency)


def cluster_nodes() -> list[dict[str, float]]:
    """The CPUs and GPUs of each live node of the Ray instance this process is on."""
    return [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]


def starts_local_instance(settings: SearchSettings) -> bool:
    """Whether `ray_session` will start a Ray instance of its own on this machine."""
    return not ray.is_initialized() and cluster_address(settings) is None


def cluster_address(settings: SearchSettings) -> str | None:
    """The Ray cluster to join: ``--ray-address``, else RAY_ADDRESS (what ``ray job
    submit`` sets for the job's driver); None starts a local instance, as Ray's own
    address "local" asks."""
    address = settings.ray_address or os.environ.get("RAY_ADDRESS") or None
    return None if address == "local" else address


def check_storage(settings: SearchSettings, nodes: Sequence[Mapping[str, float]]) -> None:
    """On a cluster of several nodes every node writes checkpoints, and the driver reads
    them back: the default folder on the driver's own disk cannot serve that.

    Raises:
        SettingsError: several nodes and the default local storage.
    """
    if len(nodes) > 1 and Path(str(settings.storage)) == DEFAULT_STORAGE:
        raise SettingsError(
            f"this Ray cluster has {len(nodes)} nodes, so trials need storage they all "
            f"reach: give --storage s3://bucket/path, gs://bucket/path, or a folder every "
            f"node mounts (not the default ./{DEFAULT_STORAGE} on this machine's disk)")


class RaySession:
    """A search's hold on the Ray instance it runs on.

    A session that started Ray (or joined a cluster) can let it go before its end:
    `release` shuts Ray down in a thread, because stopping a local instance's processes
    one after another is 1.1-1.4 s of waiting that the search's evaluation and
    registering of its best model can overlap. The session's end waits for that thread,
    so nothing starts a new instance while the old one is going down.
    """

    def __init__(self, *, owned: bool) -> None:
        self.owned = owned
        self._stopping: threading.Thread | None = None

    def release(self) -> None:
        """Shut Ray down in the background if this session started it; nothing for an
        instance that was already running in this process."""
        if self.owned and self._stopping is None:
            self._stopping = threading.Thread(target=ray.shutdown,
                                              name="convsearch-ray-shutdown")
            self._stopping.start()

    def end(self) -> None:
        """Shut down the instance this session started, or wait for `release` to have."""
        if not self.owned:
            return
        if self._stopping is None:
            ray.shutdown()
        else:
            self._stopping.join()


@contextmanager
def ray_session(settings: SearchSettings, *, verbose: bool) -> Iterator[RaySession]:
    """Use the Ray instance already running in this process, join the cluster the
    settings or RAY_ADDRESS name, or start a local instance for the search.

    Raises:
        SettingsError: Ray cannot be started or reached, or ``--cpus`` is given for a
            cluster (its nodes say what they have).
    """
    if ray.is_initialized():
        yield RaySession(owned=False)
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    options: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": verbose,
        "logging_level": logging.INFO if verbose else logging.ERROR,
        "runtime_env": {"env_vars": _WORKER_ENV},
    }
    address = cluster_address(settings)
    if address:
        if settings.cpus:
            raise SettingsError(f"--cpus sizes a local Ray instance; the cluster at "
                                f"{address} has the CPUs its nodes have")
        options["address"] = address
    else:
        # "local": a new instance of our own, even where `ray start` left a cluster that
        # ray.init() would otherwise join.
        options["address"] = "local"
        # A RAY_<name> setting of the user's wins (Ray would let ours override it).
        options["_system_config"] = {key: value for key, value in _LOCAL_RAY_CONFIG.items()
                                     if f"RAY_{key}" not in os.environ}
        if settings.cpus:  # else Ray counts the CPUs itself, within a container's limit
            options["num_cpus"] = settings.cpus
    try:
        # The caller's handlers stay, not ray.init's.
        with handlers_kept(), (nullcontext() if address else _local_start(verbose)):
            ray.init(**options)
    except (ConnectionError, ray.exceptions.RayError, ValueError) as exc:
        raise SettingsError(f"cannot start or reach Ray ({address or 'local'}): "
                            f"{exc}") from exc
    session = RaySession(owned=True)
    try:
        yield session
    finally:
        with handlers_kept():
            session.end()

