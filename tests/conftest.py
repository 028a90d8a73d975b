"""Shared fixtures: tiny seeded data, a throwaway MLflow store, space files on disk.

Everything here is real (scikit-learn's digits, a SQLite MLflow store); it is only small.
"""

from __future__ import annotations

import collections
import os
import shutil
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


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with MLflow's tables and no runs, made once per test
    process. MLflow creates a new store by running its schema migrations, 1.3-1.6 s of
    CPU on 2 CPUs where opening an existing one takes 0.1 s; tests about something else
    copy this one instead (`store_in`). The CLI's end-to-end tests still start from no
    store at all."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("empty-store") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store_in(empty_store: Path):
    """Put a copy of the empty MLflow store at ``folder/mlflow.db`` (the CLI's default
    store there) and return its URI."""

    def copy(folder: Path) -> str:
        shutil.copyfile(empty_store, folder / "mlflow.db")
        return f"sqlite:///{folder / 'mlflow.db'}"

    return copy


@pytest.fixture
def tracking_uri(tmp_path: Path, store_in) -> str:
    """An MLflow SQLite store of the test's own, in its temporary folder, with no runs."""
    return store_in(tmp_path)


@pytest.fixture
def write_space(tmp_path: Path):
    """Write a space file into the temporary folder and return its path."""

    def write(text: str, name: str = "space.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with the most tests marked slow first, each file still whole and in its
    order. The test processes take files in this order (``--dist loadfile``), so long
    files start early and the last ones are short: on 2 CPUs, files in path order left
    one process idle for up to 79 s while the other ran a long test last."""
    slow = collections.Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.path])  # stable: files stay whole


def pytest_unconfigure(config: pytest.Config) -> None:
    """Exit without the interpreter's last walk over TensorFlow's and Ray's objects (see
    `search.memory.exit_after_heavy_imports`)."""
    import gc

    gc.freeze()
