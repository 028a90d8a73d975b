"""Which MLflow store a search records in. Kept apart from the tracker so the CLI can
resolve it without importing MLflow."""

from __future__ import annotations

import os
from pathlib import Path

#: Tracking store used when neither --tracking-uri nor MLFLOW_TRACKING_URI is given:
#: a SQLite file in the working directory.
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def resolve_tracking_uri(flag: str | None) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else the local SQLite default; a SQLite
    file is named by its absolute path, so a search recorded with it can be resumed from
    another folder."""
    uri = flag or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri[len(prefix):]).resolve())
    return uri
