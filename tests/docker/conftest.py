"""The images, built once per test run by ``docker/build`` (from a base made of Debian's
packages; Docker's layer cache makes a rebuild of an unchanged tree take seconds).

Where no Docker daemon answers, the container tests skip with the reason; under .ci/run
(CONVSEARCH_REQUIRE_DOCKER) they fail instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from services.schedule import DEFAULT_IMAGE
from tests.conftest import REPO

#: Set by .ci/run: there a missing Docker daemon fails the container tests.
REQUIRE_DOCKER_ENV = "CONVSEARCH_REQUIRE_DOCKER"
#: The CPU image every container test runs: the one the k8s manifests and schedules name,
#: as docker/build tags it by default.
IMAGE = DEFAULT_IMAGE
#: The base docker/build makes from Debian's packages when it is missing: the
#: Dockerfile's default BASE.
BASE_IMAGE = re.search(r"^ARG BASE=(\S+)$", (REPO / "docker" / "Dockerfile").read_text(),
                       re.MULTILINE).group(1)


def docker(*args: str, timeout: float = 120, check: bool = True,
           ) -> subprocess.CompletedProcess:
    """Run the docker CLI; with `check`, fail the test with its output on an error."""
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} exited {done.returncode}: "
                    f"{done.stdout}{done.stderr}")
    return done


def _docker_problem() -> str | None:
    """Why the images cannot be built here, or None."""
    try:
        done = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no Docker daemon answers ({exc})"
    if done.returncode != 0 or not done.stdout.strip():
        return f"no Docker daemon answers ({done.stderr.strip()[:200]})"
    base = subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True)
    if base.returncode != 0 and shutil.which("mmdebstrap") is None:
        return f"no {BASE_IMAGE} image and no mmdebstrap to build it (apt-get install mmdebstrap)"
    return None


@pytest.fixture(scope="session")
def image() -> str:
    """convsearch's CPU image, built (or found up to date) by docker/build."""
    problem = _docker_problem()
    if problem:
        if os.environ.get(REQUIRE_DOCKER_ENV):
            pytest.fail(problem)
        pytest.skip(problem)
    done = subprocess.run([str(REPO / "docker" / "build"), IMAGE], capture_output=True,
                          text=True, timeout=1800)
    if done.returncode != 0:
        pytest.fail(f"docker/build failed: {done.stdout}{done.stderr}")
    return IMAGE
