"""Which MLflow store a search records in, and the environment MLflow is to find when it
is imported. Kept apart from the tracker so both are settled without importing MLflow."""

from __future__ import annotations

import os
from pathlib import Path

#: Tracking store used when neither --tracking-uri nor MLFLOW_TRACKING_URI is given:
#: a SQLite file in the working directory.
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"

#: MLflow's settings unless the user set them. MLflow 3 sends usage telemetry unless told
#: not to; convsearch runs where there may be no network at all, and users did not ask
#: for it. MLflow's HTTP client retries a failed request for minutes by default; trial
#: events are retried by `search.tracking.writer` with its own backoff, and a tracking
#: server that is down at the start should be a quick one-line error, so its own
#: retries are kept short.
MLFLOW_ENVIRONMENT = {"MLFLOW_DISABLE_TELEMETRY": "true",
                      "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
                      "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                      "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


def set_mlflow_environment() -> None:
    """Put `MLFLOW_ENVIRONMENT` into this process's environment where unset (importing
    `search.tracking` does, before any of its modules imports MLflow)."""
    for key, value in MLFLOW_ENVIRONMENT.items():
        os.environ.setdefault(key, value)


def resolve_tracking_uri(flag: str | None) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else the local SQLite default; a SQLite
    file is named by its absolute path, so a search recorded with it can be resumed from
    another folder. A tracking server's ``user:password@`` moves into MLflow's variables
    (`search.secrets.take_credentials`), so no URI the search shows or stores holds it."""
    from search.secrets import take_credentials

    uri = take_credentials(flag or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI)
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri[len(prefix):]).resolve())
    return uri
