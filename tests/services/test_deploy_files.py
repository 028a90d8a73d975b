"""docker/ and services/k8s/, checked as far as can be done without a container engine or
a cluster: they parse; they validate against the Compose specification, Kubernetes' own
schemas (kubernetes-validate, offline) and KubeRay's RayCluster CRD schema (shipped in
services/k8s/schemas/); every command they run exists here; versions agree with
pyproject. Nothing here builds an image or starts a container."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from packaging.requirements import Requirement

from services.schedule import cronjob, load_schedule
from tests.conftest import REPO
from tests.test_lock import IMAGE_LOCK, pins

DOCKER = REPO / "docker"
K8S = REPO / "services" / "k8s"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
COMPOSE = yaml.safe_load((DOCKER / "compose.yaml").read_text())
DOCKERFILE = (DOCKER / "Dockerfile").read_text()


def requirement(name: str) -> Requirement:
    return next(Requirement(r) for r in PYPROJECT["project"]["dependencies"]
                if Requirement(r).name == name)


def locked_ray() -> str:
    """The Ray version the image installs (docker/requirements.lock's pin)."""
    return next(version for name, version, _ in pins(IMAGE_LOCK) if name == "ray")


def test_the_image_installs_its_lock_and_what_it_copies_exists():
    assert "-r /src/docker/requirements.lock" in DOCKERFILE
    assert requirement("ray").specifier.contains(locked_ray())
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE, re.MULTILINE):
        for path in source.split():
            assert (REPO / path).exists(), path
    # Debian 12's Python, which the default base has, is one convsearch supports.
    assert "3.11" in PYPROJECT["project"]["requires-python"].replace(">=", "")


def test_compose_follows_the_compose_specification():
    schema = json.loads((DOCKER / "schemas" / "compose-spec.json").read_text())
    jsonschema.validate(COMPOSE, schema)
    broken = copy.deepcopy(COMPOSE)
    broken["services"]["mlflow"]["helthcheck"] = broken["services"]["mlflow"].pop("healthcheck")
    with pytest.raises(jsonschema.ValidationError):  # the check can fail
        jsonschema.validate(broken, schema)


def test_compose_keeps_ports_on_loopback_state_in_named_volumes_and_secrets_out_of_git():
    services = COMPOSE["services"]
    assert {"postgres", "minio", "mlflow", "ray-head", "ray-gpu-worker"} <= set(services)
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in COMPOSE["volumes"], (name, volume)
        if service.get("restart") != "no":  # every long-running service says it is up
            assert "healthcheck" in service, name
    gpu = services["ray-gpu-worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    # Every ${VARIABLE} comes from the env file, whose committed example holds no secret.
    text = (DOCKER / "compose.yaml").read_text()
    used = set(re.findall(r"\$\{([A-Z_]+)", text))
    example = dict(line.split("=", 1) for line in (DOCKER / "env.example").read_text()
                   .splitlines() if line and not line.startswith("#"))
    assert used <= set(example)
    for key, value in example.items():
        if "PASSWORD" in key or "TOKEN" in key:
            assert value.startswith("change-me"), key
    assert "docker/.env" in (REPO / ".gitignore").read_text()


def test_what_compose_runs_exists_here():
    services = COMPOSE["services"]
    mlflow = services["mlflow"]["command"]
    assert mlflow[:3] == ["python", "-m", "services.tracking"]
    from services.tracking import parse_args

    parse_args(mlflow[3:])  # the tracking service takes these flags
    ray = str(Path(sys.executable).parent / "ray")
    start_help = subprocess.run([ray, "start", "--help"], capture_output=True, text=True,
                                check=True).stdout
    for name in ("ray-head", "ray-gpu-worker"):
        command = services[name]["command"]
        assert command[:2] == ["ray", "start"]
        for flag in (w for w in command[2:] if w.startswith("--")):
            assert flag in start_help, (name, flag)
        health = services[name]["healthcheck"]["test"][1:]
        subprocess.run([ray, health[1], "--help"], capture_output=True, check=True)
    for service in services.values():
        build = service.get("build")
        if build:
            assert (DOCKER / build["context"] / build["dockerfile"]).is_file()


@pytest.mark.parametrize("module", ["search.run", "services.tracking", "services.submit",
                                    "services.schedule"])
def test_every_entry_point_the_files_name_answers_help(module):
    done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


def test_kubernetes_resources_validate_against_kubernetes_schemas():
    for path in (K8S / "cronjob.yaml", K8S / "secret.example.yaml"):
        for resource in yaml.safe_load_all(path.read_text()):
            kubernetes_validate.validate(resource, "1.33", strict=True)
    job = yaml.safe_load((K8S / "cronjob.yaml").read_text())
    job["spec"]["concurencyPolicy"] = job["spec"].pop("concurrencyPolicy")
    with pytest.raises(kubernetes_validate.ValidationError):  # the check can fail
        kubernetes_validate.validate(job, "1.33", strict=True)


def _strict(schema: object) -> object:
    """The CRD's schema with unknown fields refused, as the API server prunes them (a
    misspelt field would otherwise pass unnoticed)."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema and \
                not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def test_the_ray_cluster_validates_against_kuberays_crd_schema():
    schema = _strict(json.loads((K8S / "schemas" / "raycluster-ray.io-v1.json").read_text()))
    cluster = yaml.safe_load((K8S / "raycluster.yaml").read_text())
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    jsonschema.validate(cluster, schema)
    assert cluster["spec"]["rayVersion"] == locked_ray()
    workers = cluster["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert workers["resources"]["limits"]["nvidia.com/gpu"] == "1"
    broken = copy.deepcopy(cluster)
    broken["spec"]["headGroupSpec"]["rayStartParms"] = {}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_the_committed_cronjob_is_what_its_schedule_makes():
    schedule = load_schedule(REPO / "services" / "schedules" / "nightly-cluster.yaml")
    made = cronjob(schedule, "nightly-cluster", "convsearch-worker:cpu", "convsearch-mlflow",
                   None)
    assert yaml.safe_load((K8S / "cronjob.yaml").read_text()) == made
    cluster = yaml.safe_load((K8S / "raycluster.yaml").read_text())
    # The CronJob submits to the head service KubeRay makes for this cluster.
    assert schedule["jobs_address"] == f"http://{cluster['metadata']['name']}-head-svc:8265"
