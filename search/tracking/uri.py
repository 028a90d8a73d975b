"""Which MLflow store a search records in. Kept apart from the tracker so the CLI can
resolve it without importing MLflow."""

from __future__ import annotations

import os

#: Tracking store used when neither --tracking-uri nor MLFLOW_TRACKING_URI is given:
#: a SQLite file in the working directory.
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def resolve_tracking_uri(flag: str | None) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else the local SQLite default."""
    return flag or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
