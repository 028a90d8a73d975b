"""The install: the committed locks agree with pyproject.toml's ranges and with each other,
CI installs what the README says, and what is installed is what the lock pins.

`.ci/compat` runs the suite outside the lock (at either end of the ranges) and sets
COMPAT_ENV_VAR there, where only the check of the installed versions does not apply.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO

#: Set by `.ci/compat` to the end of the ranges it installed (latest or lowest).
COMPAT_ENV_VAR = "CONVSEARCH_COMPAT"

BASE_LOCK = REPO / "requirements.lock"
TEST_LOCK = REPO / "requirements-test.lock"
#: What the images install: the base install and the tracking service's backends.
IMAGE_LOCK = REPO / "docker" / "requirements.lock"

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)(?:\s*;\s*([^\\]+?))?\s*\\?$")


def pins(lock: Path) -> list[tuple[str, str, str | None]]:
    """(normalized name, version, marker or None) for every pin of a uv-compiled lock."""
    found = []
    for line in lock.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            name, version, marker = match.groups()
            found.append((canonicalize_name(name), version, marker))
    return found


def declared(*extras: str) -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    return [Requirement(text) for text in requirements]


def readme_command(heading: str) -> str:
    """The shell command in the README's code block after the paragraph `heading`."""
    text = (REPO / "README.md").read_text()
    after = text[text.index(heading):]
    return re.search(r"```sh\n(.+?)\n```", after, re.DOTALL).group(1)


def test_ci_runs_the_readmes_test_command():
    command = readme_command("**Run the tests**")
    assert "requirements-test.lock" in command
    assert command in (REPO / ".ci" / "run").read_text().splitlines()


def test_the_search_command_installs_the_base_lock():
    command = readme_command("**Run a real search**")
    assert "-r requirements.lock " in command and command.endswith("-m search.run")


@pytest.mark.parametrize(("lock", "extras"), [(BASE_LOCK, ()), (TEST_LOCK, ("test",)),
                                              (IMAGE_LOCK, ("auth", "postgres", "s3"))])
def test_the_lock_pins_every_dependency_within_its_range(lock, extras):
    pinned: dict[str, list[str]] = {}
    for name, version, _marker in pins(lock):
        pinned.setdefault(name, []).append(version)
    for requirement in declared(*extras):
        versions = pinned.get(canonicalize_name(requirement.name))
        assert versions, f"{requirement.name} is not in {lock.name}"
        for version in versions:
            assert requirement.specifier.contains(version, prereleases=True), \
                f"{lock.name} pins {requirement.name}=={version}, outside {requirement}"


def test_the_base_lock_is_the_test_lock_without_the_test_tools():
    base, test = set(pins(BASE_LOCK)), set(pins(TEST_LOCK))
    assert len(base) > 100
    assert base <= test
    names = {name for name, _, _ in base}
    assert "pytest" not in names and "moto" not in names


def test_the_image_lock_is_the_test_locks_versions():
    image, test = set(pins(IMAGE_LOCK)), set(pins(TEST_LOCK))
    assert image <= test
    assert {"psycopg", "boto3"} <= {name for name, _, _ in image}


@pytest.mark.skipif(COMPAT_ENV_VAR in os.environ, reason="not installed from the lock")
def test_the_installed_versions_are_the_locks():
    installed = {}
    for name, version, marker in pins(TEST_LOCK):
        if marker is None or Marker(marker).evaluate():
            installed[name] = (importlib.metadata.version(name), version)
    assert {"tensorflow", "keras", "optuna", "ray", "mlflow", "scikit-learn"} <= set(installed)
    wrong = {name: got for name, got in installed.items() if got[0] != got[1]}
    assert not wrong, f"installed, locked: {wrong}"


@pytest.mark.parametrize("module", ["tensorflow", "ray", "mlflow", "keras"])
def test_the_install_leaves_compiled_bytecode(module):
    # Every search and trial worker is a new interpreter; where bytecode is neither
    # installed nor writable (PYTHONDONTWRITEBYTECODE, a read-only image), each one
    # compiles these packages again: `import tensorflow` took 11.6 s instead of 4.7 s.
    import importlib.util

    origin = Path(importlib.util.find_spec(module).origin)
    assert Path(importlib.util.cache_from_source(str(origin))).is_file(), \
        f"{module} was installed without bytecode (uv pip install --compile-bytecode)"
