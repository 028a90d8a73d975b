"""Splitting a cluster's CPUs and GPUs between concurrent trials."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from search.engine.resources import (
    check_storage,
    cluster_address,
    plan_resources,
    ray_session,
)
from search.errors import SettingsError
from search.settings import SearchSettings


@pytest.mark.parametrize(("settings", "cluster", "expected"), [
    ({}, {"CPU": 2}, (1, 0.0, 2)),
    ({"concurrency": 1}, {"CPU": 2}, (2, 0.0, 1)),
    ({}, {"CPU": 16}, (1, 0.0, 16)),
    ({"trials": 3}, {"CPU": 16}, (5, 0.0, 3)),
    ({}, {"CPU": 16, "GPU": 1}, (16, 1.0, 1)),
    ({}, {"CPU": 16, "GPU": 4}, (4, 1.0, 4)),
    ({"gpus_per_trial": 0.5}, {"CPU": 16, "GPU": 1}, (8, 0.5, 2)),
    ({"gpus_per_trial": 0}, {"CPU": 8, "GPU": 1}, (1, 0.0, 8)),
])
def test_plan_resources(settings, cluster, expected):
    plan = plan_resources(SearchSettings(**settings), [cluster])
    assert (plan.cpus, plan.gpus, plan.concurrency) == expected


def test_more_gpus_than_the_cluster_has_is_a_settings_error():
    with pytest.raises(SettingsError, match=r"--gpus-per-trial 1 asks for more GPUs than "
                                            r"Ray sees \(0\)"):
        plan_resources(SearchSettings(gpus_per_trial=1), [{"CPU": 2}])


HEAD = {"CPU": 4}
GPU_WORKER = {"CPU": 8, "GPU": 1}


@pytest.mark.parametrize(("settings", "nodes", "expected"), [
    # A CPU head and two one-GPU workers: a trial per GPU, with its worker's CPUs (not
    # the cluster's 20 CPUs per 2 GPUs, which no node has).
    ({}, [HEAD, GPU_WORKER, GPU_WORKER], (8, 1.0, 2)),
    ({"gpus_per_trial": 0.5}, [HEAD, GPU_WORKER, GPU_WORKER], (4, 0.5, 4)),
    # CPU trials spread over all nodes; fewer trials get more CPUs, each on one node.
    ({"gpus_per_trial": 0}, [HEAD, GPU_WORKER], (1, 0.0, 12)),
    ({"gpus_per_trial": 0, "concurrency": 3}, [HEAD, GPU_WORKER], (4, 0.0, 3)),
    ({"gpus_per_trial": 0, "concurrency": 1}, [HEAD, GPU_WORKER], (8, 0.0, 1)),
])
def test_plan_resources_per_node_of_a_mixed_cluster(settings, nodes, expected):
    plan = plan_resources(SearchSettings(**settings), nodes)
    assert (plan.cpus, plan.gpus, plan.concurrency) == expected
    fits = sum(min(n["CPU"] // plan.cpus,
                   n.get("GPU", 0) // plan.gpus if plan.gpus else n["CPU"]) for n in nodes)
    assert fits >= plan.concurrency  # every planned trial fits on some node


def test_a_gpu_per_trial_must_fit_on_one_node():
    with pytest.raises(SettingsError, match=r"more GPUs than any one node of the cluster "
                                            r"has \(1\)"):
        plan_resources(SearchSettings(gpus_per_trial=2), [HEAD, GPU_WORKER, GPU_WORKER])


def test_several_nodes_need_storage_they_all_reach(tmp_path):
    nodes = [HEAD, GPU_WORKER]
    with pytest.raises(SettingsError, match=r"has 2 nodes, so trials need storage they all "
                                            r"reach: give --storage s3://"):
        check_storage(SearchSettings(), nodes)
    check_storage(SearchSettings(storage="s3://bucket/searches"), nodes)
    check_storage(SearchSettings(storage=tmp_path / "shared"), nodes)  # a shared mount
    check_storage(SearchSettings(), [HEAD])  # one machine: its own disk is fine


def test_joining_a_cluster_follows_ray_address(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert cluster_address(SearchSettings()) is None
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")  # as `ray job submit` sets it
    assert cluster_address(SearchSettings()) == "127.0.0.1:6379"
    assert cluster_address(SearchSettings(ray_address="ray://head:10001")) == \
        "ray://head:10001"
    assert cluster_address(SearchSettings(ray_address="local")) is None  # Ray's "new one"
    with (pytest.raises(SettingsError, match=r"--cpus sizes a local Ray instance; the "
                                             r"cluster at 127.0.0.1:6379"),
          ray_session(SearchSettings(cpus=2), verbose=False)):
        pass


def test_a_released_session_lets_ray_go_before_its_end_and_a_nested_one_cannot():
    import time

    import ray

    with ray_session(SearchSettings(cpus=1), verbose=False) as outer:
        with ray_session(SearchSettings(cpus=1), verbose=False) as nested:
            nested.release()  # Ray was running before it: not its to stop
        assert ray.is_initialized()
        outer.release()  # shuts down in the background, before the session's end
        deadline = time.monotonic() + 30
        while ray.is_initialized() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not ray.is_initialized()
    assert not ray.is_initialized()


def test_a_local_instance_leaves_rays_fixed_agent_port_to_others():
    """Ray's dashboard agent asks for 52365 on every node; a search's own instance takes
    any free port instead, so a second search, or a Ray head, on the machine gets it
    without waiting (see `_LOCAL_AGENT_PORT`). Ray's default is back after the start.

    The test holds 52365 itself where it is free: an agent that asked for it has no port
    (-1), and one that took any port cannot have taken this one by chance."""
    import inspect
    import socket

    import ray
    from ray._private.parameter import RayParams

    with socket.socket() as fixed_port:
        try:
            fixed_port.bind(("", 52365))
            fixed_port.listen()
        except OSError:
            pass  # another Ray instance holds it: the same for this test
        with ray_session(SearchSettings(cpus=1), verbose=False):
            (node,) = ray.nodes()
            port = node["DashboardAgentListenPort"]
    assert port > 0
    defaults = inspect.signature(RayParams.__init__).parameters
    assert defaults["dashboard_agent_listen_port"].default == 52365
    # The other start parameters a local instance sets are Ray's again too.
    assert (defaults["no_monitor"].default, defaults["include_log_monitor"].default) == \
        (False, None)


@pytest.mark.parametrize("verbose", [False, True])
def test_starting_ray_imports_nothing_after_import_ray_start_modules(verbose):
    """The search imports MLflow in a thread while a local Ray starts; that is safe only
    while Ray's start imports nothing itself (module locks), in the calling thread or
    in the threads Ray starts (``verbose`` starts its log printer). A Ray upgrade that
    imports more fails here: add its modules to `_RAY_START_MODULES`.

    Also: the instance runs a log monitor only when verbose (which prints the workers'
    output it forwards), and never the autoscaler's monitor (see `_local_node_params`)
    nor a dashboard process (see `_no_dashboard_process`); Ray's own start of the
    dashboard is back after the instance's."""
    import ast
    import subprocess
    import sys

    script = (
        "import sys, time\n"
        "import search.pipeline, search.engine.tuner  # what execute has imported\n"
        "from search.engine.resources import import_ray_start_modules, ray_session\n"
        "from search.settings import SearchSettings\n"
        "assert import_ray_start_modules()\n"
        "before = set(sys.modules)\n"
        f"with ray_session(SearchSettings(cpus=1), verbose={verbose}):\n"
        "    time.sleep(1)  # Ray's own threads at work\n"
        "    after = set(sys.modules)\n"
        "    import ray\n"
        "    print('processes:', sorted(ray._private.worker._global_node.all_processes))\n"
        "print('imported by ray.init:', sorted(after - before))\n"
        "from ray._private.node import Node\n"
        "print('start restored:', Node.start_api_server.__qualname__)\n")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "imported by ray.init: []" in done.stdout, done.stdout
    processes = ast.literal_eval(done.stdout.split("processes:")[1].splitlines()[0])
    assert "monitor" not in processes and ("log_monitor" in processes) == verbose, processes
    assert "dashboard" not in processes, processes
    assert "start restored: Node.start_api_server" in done.stdout, done.stdout


def _workers_of(raylet_pid: int) -> list[str]:
    """The command lines of the Python workers the raylet `raylet_pid` has started (not
    its agents, ``ray::DashboardAgent`` and ``ray::RuntimeEnvAgent``)."""
    workers = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue  # not a process, or gone
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        agent = cmdline.startswith("ray::") and cmdline.split()[0].endswith("Agent")
        if parent == raylet_pid and not agent and ("default_worker.py" in cmdline
                                                   or cmdline.startswith("ray::")):
            workers.append(cmdline.strip())
    return workers


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads Linux's /proc")
def test_a_local_instance_starts_no_idle_workers():
    """Ray would start one idle worker per CPU when the search's driver connects; no
    search work could use them (see `_LOCAL_RAY_CONFIG`), so a local instance starts
    none, and the first trial's worker does not share the CPUs with them."""
    import time

    import ray
    from ray._private import ray_constants

    with ray_session(SearchSettings(cpus=2), verbose=False):
        node = ray._private.worker._global_node
        raylet = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
        time.sleep(3)  # Ray starts them right after the driver connects
        idle = _workers_of(raylet)

        @ray.remote(num_cpus=1)
        def pid() -> int:
            return os.getpid()

        worker = ray.get(pid.remote())  # work still gets a worker, started for it
        started = _workers_of(raylet)
    assert idle == []
    assert started and worker > 0
