"""``python -m services.tracking``: a real `mlflow server` process on a loopback port, and
a real search recorded through it over HTTP."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from search.errors import TrackingError
from search.pipeline import execute, prepare
from search.request import DataRequest, SearchRequest
from search.settings import SearchSettings
from search.tracking.tracker import SearchTracker, using_tracking_store
from services.tracking import ADMIN_PASSWORD_ENV, ServiceError, parse_args, server_command
from tests.services.conftest import MlflowServer

SPACE = ("learning_rate: {loguniform: [3.0e-3, 1.0e-2]}\nconv_blocks: 1\nfilters: 4\n"
         "dense_units: 8\n")


@pytest.fixture
def tracking_server(postgres_uri, tmp_path):
    """The tracking service on a real PostgreSQL. (Its default SQLite store serves a whole
    search over HTTP in test_tracking_outage.py and the auth test here.)"""
    server = MlflowServer(tmp_path, "--backend-store-uri", postgres_uri)
    server.backend = postgres_uri
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.postgres
def test_a_search_recorded_through_the_tracking_server(tracking_server, small_digits,
                                                       write_space, tmp_path):
    url = tracking_server.url
    settings = SearchSettings(name="via-server", trials=2, max_epochs=2, cpus=2,
                              storage=tmp_path / "ray")
    prepared = prepare(SearchRequest(space=str(write_space(SPACE)),
                                     data=DataRequest(limit=300), settings=settings,
                                     tracking_uri=url, experiment="server-test",
                                     model_name="server-model"))
    report = execute(prepared)

    client = MlflowClient(url)
    experiment = client.get_experiment_by_name("server-test")
    (parent,) = client.search_runs([experiment.experiment_id],
                                   "tags.`convsearch.role` = 'search'")
    children = client.search_runs([experiment.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert parent.info.status == "FINISHED" and len(children) == 2
    for child in children:
        history = client.get_metric_history(child.info.run_id, "val_accuracy")
        assert [m.step for m in history] == [1, 2]
        assert [a.path for a in client.list_artifacts(child.info.run_id, "checkpoint")] == \
            ["checkpoint/model.keras"]
    champion = client.get_model_version_by_alias("server-model", "champion")
    assert champion.run_id == parent.info.run_id
    with using_tracking_store(url):
        loaded = mlflow.pyfunc.load_model("models:/server-model@champion")
    probabilities = loaded.predict(small_digits.x_test[:2])
    assert np.asarray(probabilities).shape == (2, 10)
    assert report.outcome.best.trial_id in {c.data.tags["convsearch.trial_id"]
                                            for c in children}
    import psycopg  # the runs really are in PostgreSQL

    with psycopg.connect(tracking_server.backend) as connection:
        (count,) = connection.execute("SELECT count(*) FROM runs").fetchone()
    assert count == 3


def test_auth_needs_an_admin_password_of_ones_own(tmp_path):
    args = parse_args(["--store", str(tmp_path), "--auth"])
    with pytest.raises(ServiceError, match=f"--auth needs an admin password of your own in "
                                           f"{ADMIN_PASSWORD_ENV}"):
        server_command(args, {})
    with pytest.raises(ServiceError, match="published default 'password1234' is refused"):
        server_command(args, {ADMIN_PASSWORD_ENV: "password1234"})
    with pytest.raises(ServiceError, match=f"^{ADMIN_PASSWORD_ENV} is 11 characters long; "
                                           "MLflow's auth needs at least 12$"):
        server_command(args, {ADMIN_PASSWORD_ENV: "short-pass1"})
    command, env = server_command(args, {ADMIN_PASSWORD_ENV: "s3cret-enough"})
    assert command[-2:] == ["--app-name", "basic-auth"]
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == str(tmp_path / "basic_auth.ini")
    assert "s3cret-enough" not in " ".join(command)  # never on the command line
    assert "admin_username = admin" in (tmp_path / "basic_auth.ini").read_text()


def test_defaults_bind_loopback_and_keep_everything_in_the_store(tmp_path):
    command, _ = server_command(parse_args(["--store", str(tmp_path)]), {})
    def option(name: str) -> str:
        return command[command.index(name) + 1]

    assert option("--host") == "127.0.0.1"
    assert option("--backend-store-uri") == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert option("--artifacts-destination") == str(tmp_path / "artifacts")
    assert "--serve-artifacts" in command


@pytest.mark.slow
def test_with_auth_a_wrong_password_is_a_one_line_error(tmp_path, monkeypatch, small_digits):
    server = MlflowServer(tmp_path, "--auth", env={ADMIN_PASSWORD_ENV: "right-password-1"})
    server.start()
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong-password")
        with pytest.raises(TrackingError) as raised:
            SearchTracker(server.url, "auth-test")
        message = str(raised.value)
        assert "\n" not in message
        assert "401" in message or "nauthorized" in message.lower()
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "right-password-1")
        tracker = SearchTracker(server.url, "auth-test")
        tracker.start_search(SearchSettings(name="with-auth"), _space(), small_digits)
        assert MlflowClient(server.url).get_run(tracker.parent_run_id).info.run_name == \
            "with-auth"
    finally:
        server.stop()


def _space():
    from search.space import parse_space

    return parse_space(SPACE)


@pytest.mark.slow
def test_artifacts_go_to_an_s3_compatible_store_through_the_server(tmp_path, monkeypatch):
    """moto's S3 server (a real S3 API on loopback) as the artifact store: the server holds
    the keys, the client logging and reading artifacts has none."""
    import boto3
    from moto.server import ThreadedMotoServer

    from tests.services.conftest import free_port

    port = free_port()
    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    s3.start()
    keys = {"AWS_ACCESS_KEY_ID": "server-key", "AWS_SECRET_ACCESS_KEY": "server-secret",
            "AWS_DEFAULT_REGION": "us-east-1"}
    endpoint = f"http://127.0.0.1:{port}"
    try:
        bucket = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"])
        bucket.create_bucket(Bucket="mlflow")
        server = MlflowServer(tmp_path, "--artifacts-destination", "s3://mlflow/artifacts",
                              env={**keys, "MLFLOW_S3_ENDPOINT_URL": endpoint})
        server.start()
        try:
            for name in (*keys, "MLFLOW_S3_ENDPOINT_URL"):
                monkeypatch.delenv(name, raising=False)  # the client has no storage keys
            client = MlflowClient(server.url)
            run = client.create_run(client.create_experiment("s3"))
            client.log_text(run.info.run_id, "what a search keeps", "summary.md")
            local = client.download_artifacts(run.info.run_id, "summary.md", str(tmp_path))
            assert Path(local).read_text() == "what a search keeps"
        finally:
            server.stop()
        stored = [o["Key"] for o in bucket.list_objects_v2(Bucket="mlflow")["Contents"]]
        assert any(key.endswith(f"{run.info.run_id}/artifacts/summary.md") for key in stored)
    finally:
        s3.stop()
