#!/usr/bin/env bash
# An MLflow tracking server for a team's convsearch searches: SQLite runs and registry,
# artifacts stored under the same folder and served (proxied) by the server, so clients
# need no direct access to the artifact store. Point searches at it with
#   python -m search.run --tracking-uri http://HOST:PORT
#
# Settings (environment):
#   CONVSEARCH_MLFLOW_DIR  folder for the database and artifacts   (default ./mlflow-server)
#   MLFLOW_HOST            address to listen on                    (default 127.0.0.1)
#   MLFLOW_PORT            port                                    (default 5000)
#   PYTHON                 interpreter with convsearch installed   (default python3)
set -euo pipefail
dir=${CONVSEARCH_MLFLOW_DIR:-./mlflow-server}
mkdir -p "$dir/artifacts"
dir=$(cd "$dir" && pwd)
exec "${PYTHON:-python3}" -m mlflow server \
    --backend-store-uri "sqlite:///$dir/mlflow.db" \
    --artifacts-destination "$dir/artifacts" \
    --host "${MLFLOW_HOST:-127.0.0.1}" \
    --port "${MLFLOW_PORT:-5000}"
