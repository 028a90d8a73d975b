"""``python -m services.tracking``: the MLflow tracking server a team's searches share.

Runs and the Model Registry go to SQLite in ``--store`` by default, or to the database
that ``--backend-store-uri`` names (``postgresql://user@host/db``). Artifacts go under
``--store`` by default, or to ``--artifacts-destination`` (``s3://bucket/prefix``, with
the usual AWS_* variables and MLFLOW_S3_ENDPOINT_URL for an S3-compatible store); either
way the server proxies them, so search workers need no storage credentials. The server
listens on 127.0.0.1 unless ``--host`` says otherwise.

``--auth`` turns on MLflow's basic-auth app. Its admin password comes from
MLFLOW_AUTH_ADMIN_PASSWORD (never from the command line), and the server refuses to
start without one, or with MLflow's old published default. Searches then authenticate
with MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD.

Searches use it with ``python -m search.run --tracking-uri http://127.0.0.1:PORT``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

#: MLflow's environment variable for the basic-auth admin password, and the default it
#: once shipped with (public, so never acceptable).
ADMIN_PASSWORD_ENV = "MLFLOW_AUTH_ADMIN_PASSWORD"
PUBLISHED_DEFAULT_PASSWORD = "password1234"
#: The shortest password MLflow's auth app takes (mlflow.utils.validation); shorter, it
#: dies at start-up with a traceback.
MIN_PASSWORD_LENGTH = 12
#: The auth app's CSRF secret (MLflow's variable); made and kept in the store if unset.
SECRET_KEY_ENV = "MLFLOW_FLASK_SERVER_SECRET_KEY"

#: MLflow's switch for its server-side job runner.
JOB_EXECUTION_ENV = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"

DEFAULT_STORE = Path("mlflow-server")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000


class ServiceError(Exception):
    """A setting the server cannot start with; the CLI prints it as one line."""


def server_command(args: argparse.Namespace, environ: dict[str, str]) -> tuple[list[str],
                                                                                dict[str, str]]:
    """The ``mlflow server`` command line and environment for these arguments.

    Raises:
        ServiceError: auth is asked for without a usable admin password.
    """
    store = Path(args.store).resolve()
    store.mkdir(parents=True, exist_ok=True)
    backend = args.backend_store_uri or f"sqlite:///{store / 'mlflow.db'}"
    artifacts = args.artifacts_destination or str(store / "artifacts")
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
               "--artifacts-destination", artifacts, "--serve-artifacts",
               "--host", args.host, "--port", str(args.port)]
    env = dict(environ)
    # MLflow's job runner serves its GenAI features (judges, prompt optimisation), which
    # searches never use; left on, it starts a pool of consumer processes (nine here,
    # about 240 MB each) with the server. A user may still turn it on.
    env.setdefault(JOB_EXECUTION_ENV, "false")
    if args.workers is not None:
        command += ["--workers", str(args.workers)]
    if args.auth:
        password = environ.get(ADMIN_PASSWORD_ENV, "")
        if not password or password == PUBLISHED_DEFAULT_PASSWORD:
            raise ServiceError(f"--auth needs an admin password of your own in "
                               f"{ADMIN_PASSWORD_ENV} (MLflow's published default "
                               f"{PUBLISHED_DEFAULT_PASSWORD!r} is refused)")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise ServiceError(f"{ADMIN_PASSWORD_ENV} is {len(password)} characters long; "
                               f"MLflow's auth needs at least {MIN_PASSWORD_LENGTH}")
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(_auth_config(store, args.admin_username))
        env.setdefault(SECRET_KEY_ENV, _secret_key(store))
        command += ["--app-name", "basic-auth"]
    return command, env


def _secret_key(store: Path) -> str:
    """The auth app's CSRF key: made once per store and kept there (readable by its owner
    only), so a restarted server accepts the sessions of the one before."""
    path = store / "flask_secret_key"
    if not path.is_file():
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32), encoding="utf-8")
    return path.read_text(encoding="utf-8").strip()


def _auth_config(store: Path, admin: str) -> Path:
    """The basic-auth app's settings: users in SQLite beside the runs, new users may read
    everything, the admin named here (its password comes from the environment)."""
    path = store / "basic_auth.ini"
    path.write_text("[mlflow]\n"
                    "default_permission = READ\n"
                    f"database_uri = sqlite:///{store / 'basic_auth.db'}\n"
                    f"admin_username = {admin}\n"
                    "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
                    encoding="utf-8")
    return path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m services.tracking", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default=str(DEFAULT_STORE), metavar="DIR",
                        help="folder of the SQLite database and local artifacts "
                             f"(default: ./{DEFAULT_STORE})")
    parser.add_argument("--backend-store-uri", default=None, metavar="URI",
                        help="database of runs and registry, e.g. postgresql://user@host/db "
                             "(default: SQLite in --store)")
    parser.add_argument("--artifacts-destination", default=None, metavar="URI",
                        help="where artifacts are kept, e.g. s3://bucket/prefix (default: "
                             "--store/artifacts); the server proxies them")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default: {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port (default: {DEFAULT_PORT})")
    parser.add_argument("--workers", type=int, default=None,
                        help="server worker processes (default: MLflow's)")
    parser.add_argument("--auth", action="store_true",
                        help=f"MLflow's basic-auth app (admin password from "
                             f"{ADMIN_PASSWORD_ENV})")
    parser.add_argument("--admin-username", default="admin",
                        help="the basic-auth admin's name (default: admin)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        command, env = server_command(args, dict(os.environ))
    except ServiceError as exc:
        print(f"convsearch: error: {exc}", file=sys.stderr)
        return 2
    os.execvpe(command[0], command, env)  # the server replaces this process
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
