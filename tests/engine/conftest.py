"""Fixtures of the engine's tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for a module's searches (the engine joins a running one)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
