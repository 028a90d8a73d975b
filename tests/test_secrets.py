"""Secrets stay secret: the shown forms of URLs, and a real search given a password in its
tracking URI and a token in its webhook URL, which then appear nowhere it writes."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from search.request import SearchRequest
from search.secrets import (
    PASSWORD_ENV,
    USERNAME_ENV,
    redacted,
    redacted_args,
    redacted_webhook,
    take_credentials,
)
from services.tracking import ADMIN_PASSWORD_ENV
from tests.services.conftest import MlflowServer
from tests.test_notify import Webhook
from tests.test_run import TINY_SPACE, run_cli


@pytest.mark.parametrize(("url", "shown"), [
    ("http://alice:s3cret@mlflow:5000", "http://alice:***@mlflow:5000"),
    ("postgresql://mlflow:pw@db:5432/mlflow", "postgresql://mlflow:***@db:5432/mlflow"),
    ("postgresql://u:pa/ss?@[x@db/x", "postgresql://u:***@db/x"),  # what drivers allow
    ("https://token@mlflow.example", "https://token@mlflow.example"),  # no password
    ("http://mlflow:5000", "http://mlflow:5000"),
    ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
    ("not a url", "not a url"),
])
def test_a_url_is_shown_without_its_password(url, shown):
    assert redacted(url) == shown


@pytest.mark.parametrize(("url", "shown"), [
    ("https://hooks.slack.com/services/T0/B0/XYZ", "https://hooks.slack.com/***"),
    ("http://user:pw@hooks.local:8080/hook?token=abc", "http://hooks.local:8080/***"),
    ("nonsense", "***"),
])
def test_a_webhook_is_shown_as_its_host_only(url, shown):
    assert redacted_webhook(url) == shown


def test_arguments_are_shown_without_webhooks_or_passwords():
    assert redacted_args(["--trials", "3", "--notify", "https://h/T/B/X",
                          "--tracking-uri=http://a:pw@m:5000", "--notify=https://h/Y",
                          "--tracking-uri", "postgresql://u:pw@db/x"]) == \
        ["--trials", "3", "--notify", "https://h/***", "--tracking-uri=http://a:***@m:5000",
         "--notify=https://h/***", "--tracking-uri", "postgresql://u:***@db/x"]


def test_a_tracking_servers_credentials_move_into_mlflows_variables():
    environ: dict[str, str] = {}
    assert take_credentials("http://al%40ice:pa%2Fss@mlflow:5000/", environ) == \
        "http://mlflow:5000/"
    assert environ == {USERNAME_ENV: "al@ice", PASSWORD_ENV: "pa/ss"}
    untouched: dict[str, str] = {}
    for uri in ("postgresql://u:pw@db/x", "http://mlflow:5000", "sqlite:///x.db",
                "http://token@mlflow:5000"):  # a user alone: MLflow's variables need both
        assert take_credentials(uri, untouched) == uri
    assert untouched == {}


def test_the_record_holds_no_secret_and_a_resumed_search_is_told_them_again():
    request = SearchRequest(tracking_uri="postgresql://u:pw@db/x",
                            notify="https://hooks.slack.com/services/T0/B0/XYZ")
    record = request.to_record()
    assert record["tracking_uri"] == "postgresql://u:***@db/x"
    assert record["notify"] == "https://hooks.slack.com/***"
    assert "pw" not in str(record) and "XYZ" not in str(record)
    assert SearchRequest.from_record(record).notify is None


PASSWORD = "tracking-Passw0rd-4242"
TOKEN = "xoxb-WEBHOOK-TOKEN-1717"


@pytest.mark.slow
def test_a_search_given_secrets_writes_them_nowhere(tmp_path):
    (tmp_path / "server").mkdir()
    server = MlflowServer(tmp_path / "server", "--auth", env={ADMIN_PASSWORD_ENV: PASSWORD})
    webhook = Webhook()
    server.start()
    try:
        (tmp_path / "tiny.yaml").write_text(TINY_SPACE)
        host = server.url.split("://", 1)[1]
        result = run_cli("--space", "tiny.yaml", "--data-limit", "200", "--trials", "1",
                         "--max-epochs", "1", "--scheduler", "none", "--cpus", "2",
                         "--name", "secret", "--tracking-uri", f"http://admin:{PASSWORD}@{host}",
                         "--notify", f"{webhook.url}/{TOKEN}", cwd=tmp_path, timeout=480)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"--backend-store-uri {server.url} " in result.stdout  # shown without them
        client = MlflowClient(server.url)
        with pytest.MonkeyPatch.context() as env:
            env.setenv(USERNAME_ENV, "admin")
            env.setenv(PASSWORD_ENV, PASSWORD)
            runs = client.search_runs([client.get_experiment_by_name("convsearch")
                                       .experiment_id])
    finally:
        server.stop()
        webhook.close()
    assert len(runs) == 2  # the search and its trial, written with the URI's credentials
    (message,) = webhook.received
    assert message["status"] == "finished"
    written = {"stdout": result.stdout, "stderr": result.stderr, "webhook": str(message)}
    for run in runs:
        written[run.info.run_id] = str(run.data.params) + str(run.data.tags)
    # Every file the search and the server wrote: the request record and Tune's state
    # under ray_results/, the server's store (runs, params, tags, artifacts) and its log.
    for path in tmp_path.rglob("*"):
        if path.is_file():
            written[str(path.relative_to(tmp_path))] = path.read_bytes().decode("latin-1")
    assert any(name.endswith("convsearch-request.json") for name in written)
    assert any(name.endswith(".keras") for name in written)
    leaks = sorted(name for name, text in written.items() if PASSWORD in text or TOKEN in text)
    assert not leaks


def test_resuming_a_search_whose_password_was_masked_asks_for_the_uri(tmp_path):
    from search.engine.experiment import write_request
    from search.settings import SearchSettings

    settings = SearchSettings(name="db", storage=tmp_path / "ray_results")
    write_request(settings, SearchRequest(settings=settings,
                                          tracking_uri="postgresql://u:pw@db/x").to_record())
    result = run_cli("--resume", "db", "--storage", "ray_results", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "convsearch: error: search 'db' was recorded in postgresql://u:***@db/x, whose "
        "password is not recorded; give --tracking-uri again")
