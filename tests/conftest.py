"""Shared fixtures: tiny seeded data, a throwaway MLflow store, space files on disk.

Everything here is real (scikit-learn's digits, a SQLite MLflow store); it is only small.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Before anything imports TensorFlow: keep its C++ start-up banners out of test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from search.data import Dataset, load_dataset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def digits() -> Dataset:
    """The full embedded digits data set, split (1,797 images)."""
    return load_dataset("digits")


@pytest.fixture(scope="session")
def small_digits() -> Dataset:
    """A stratified 300-image subset of digits: enough to learn, quick to train."""
    return load_dataset("digits", limit=300)


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    """A fresh MLflow SQLite store in the test's temporary folder."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def write_space(tmp_path: Path):
    """Write a space file into the temporary folder and return its path."""

    def write(text: str, name: str = "space.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


def pytest_unconfigure(config: pytest.Config) -> None:
    """Exit without the interpreter's last walk over TensorFlow's and Ray's objects (see
    `search.memory.exit_after_heavy_imports`)."""
    import gc

    gc.freeze()
