"""Fixtures of the engine's tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from search.engine.resources import ray_session
from search.settings import SearchSettings


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for a module's searches (the engine joins a running one),
    started as a search starts its own."""
    with ray_session(SearchSettings(cpus=2), verbose=False):
        yield


@pytest.fixture
def ray_with_worker_env(monkeypatch):
    """A local Ray instance of the test's own whose workers get `env` (a local
    instance's workers inherit the driver's environment)."""
    @contextmanager
    def start(env: dict[str, str]) -> Iterator[None]:
        import ray

        assert not ray.is_initialized(), "a running Ray instance would not see `env`"
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        with ray_session(SearchSettings(cpus=2), verbose=False):
            yield

    return start
