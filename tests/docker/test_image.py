"""The CPU image, run as a user runs it: a real search inside a container with no network,
from what the lock pins and nothing of the build machine's configuration."""

from __future__ import annotations

import json

import pytest
from packaging.markers import Marker

from tests.docker.conftest import docker
from tests.test_lock import IMAGE_LOCK, pins

pytestmark = pytest.mark.containers


def test_the_image_runs_a_search_with_no_network(image):
    done = docker("run", "--rm", "--network", "none", "--shm-size", "512m", image,
                  "python", "-m", "search.run", "--trials", "1", "--max-epochs", "1",
                  "--data-limit", "200", "--scheduler", "none", timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "trials: 1 completed, 0 stopped, 0 failed" in done.stdout
    assert "registered as models:/convsearch-digits@champion" in done.stdout


PROBE = """
import importlib.metadata, importlib.util, json, os, pathlib
names = json.loads(os.environ["NAMES"])
tf = importlib.util.find_spec("tensorflow").origin
print(json.dumps({
    "versions": {n: importlib.metadata.version(n) for n in names},
    "uid": os.getuid(),
    "bytecode": pathlib.Path(importlib.util.cache_from_source(tf)).is_file(),
    "machine": [str(p) for p in map(pathlib.Path, ["/machine", "/machine.env", "/opt/uv",
                                                  "/etc/pip.conf",
                                                  "/etc/apt/apt.conf.d/99mmdebstrap"])
                if p.exists()],
    "writable": os.access(tf, os.W_OK),
}))
"""


def test_the_image_holds_the_lock_and_nothing_of_the_build_machine(image):
    locked = {name: version for name, version, marker in pins(IMAGE_LOCK)
              if marker is None or Marker(marker).evaluate()}
    assert {"tensorflow", "ray", "mlflow", "psycopg", "boto3"} <= set(locked)
    done = docker("run", "--rm", "--network", "none", "-e", f"NAMES={json.dumps(list(locked))}",
                  image, "python", "-c", PROBE)
    probe = json.loads(done.stdout.splitlines()[-1])
    wrong = {name: (got, locked[name]) for name, got in probe["versions"].items()
             if got != locked[name]}
    assert not wrong, f"installed, locked: {wrong}"
    assert probe["uid"] != 0
    assert probe["bytecode"] and not probe["writable"]
    assert probe["machine"] == []
