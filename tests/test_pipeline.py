"""The pipeline's entry point: requests recorded and read back, prepared searches, and
MLflow runs closed whatever stops a search."""

from __future__ import annotations

import dataclasses
import tempfile

import pytest
from mlflow.tracking import MlflowClient

from search.errors import DataError, SettingsError
from search.observers import SearchObserver
from search.pipeline import execute, load_request, prepare
from search.request import DataRequest, SearchRequest
from search.settings import SearchSettings

SPACE = "optimizer: adam\nlearning_rate: 0.01\nconv_blocks: 1\nfilters: 4\ndense_units: 8\n"


def test_a_request_survives_its_record(tmp_path):
    request = SearchRequest(space="s.yaml", space_text=SPACE,
                            data=DataRequest(source="x.npz", limit=50, image_size=(9, 7)),
                            settings=SearchSettings(name="r", trials=3, storage=tmp_path),
                            tracking_uri="sqlite:///m.db", model_name="m",
                            data_fingerprint="abc")
    assert SearchRequest.from_record(request.to_record()) == request


def test_prepare_resolves_the_request(write_space, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    space = write_space(SPACE.replace("learning_rate: 0.01", "batch_size: {grid: [16, 32]}"))
    prepared = prepare(SearchRequest(space=str(space), data=DataRequest(limit=100)))
    request = prepared.request
    assert request.settings.algorithm == "grid" and request.settings.trials == 2
    assert request.space_text == space.read_text()
    assert request.model_name == "convsearch-digits"
    assert request.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert request.data_fingerprint == prepared.data.fingerprint()


def test_a_resumed_search_refuses_changed_data(write_space):
    space = write_space(SPACE)
    request = prepare(SearchRequest(space=str(space), data=DataRequest(limit=100))).request
    changed = dataclasses.replace(request, data=DataRequest(limit=120))
    with pytest.raises(DataError, match=r"the data of search .* changed since it started"):
        prepare(changed)


def test_a_warm_start_needs_a_sampler(write_space):
    space = write_space(SPACE.replace("learning_rate: 0.01", "batch_size: {grid: [16, 32]}"))
    with pytest.raises(SettingsError, match=r"--warm-start seeds an Optuna sampler; --algo "
                                            r"grid with --scheduler asha fixes every config"):
        prepare(SearchRequest(space=str(space), data=DataRequest(limit=100),
                              warm_start="latest"))


def test_resuming_an_unknown_search_names_the_ones_there(tmp_path):
    (tmp_path / "known" ).mkdir()
    (tmp_path / "known" / "convsearch-request.json").write_text("{}")
    with pytest.raises(SettingsError, match=r"no search named 'lost' in .* \(searches there: "
                                            r"known\); give the --storage it ran with"):
        load_request("lost", tmp_path)


class _Bug(RuntimeError):
    pass


class _BuggyObserver(SearchObserver):
    """An observer with a bug: it raises as the search's trials begin."""

    def search_started(self, budget, ended, unfinished):
        raise _Bug("a bug in an observer")


@pytest.mark.slow
def test_a_bug_ends_the_parent_run_failed_and_keeps_its_traceback(write_space, tmp_path,
                                                                  tracking_uri):
    space = write_space(SPACE)
    settings = SearchSettings(name="buggy", trials=2, max_epochs=1, cpus=2,
                              storage=tmp_path / "ray")
    prepared = prepare(SearchRequest(space=str(space), data=DataRequest(limit=100),
                                     settings=settings, tracking_uri=tracking_uri))
    with pytest.raises(Exception) as raised:
        execute(prepared, [_BuggyObserver()])
    assert "a bug in an observer" in str(raised.value) + repr(raised.value.__cause__)
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("convsearch")
    (parent,) = client.search_runs([experiment.experiment_id])
    assert parent.info.status == "FAILED"
    assert parent.data.tags["convsearch.error"] == "a bug in an observer"


@pytest.mark.slow
def test_consecutive_searches_challenge_the_champion_warm_start_and_notify(
        write_space, tmp_path, tracking_uri):
    """Two real searches of one space in one experiment, as a schedule runs them: the
    second starts from the first's best configs, its best model is registered as
    challenger and takes the champion alias only by beating the champion on its own test
    split, and a webhook hears of both."""
    from search.champion import PromotionPolicy
    from search.engine.resources import ray_session
    from search.tracking.tracker import (
        CHALLENGER_ALIAS,
        CHAMPION_ALIAS,
        TAG_CHAMPION_DECISION,
        TAG_CHAMPION_REASON,
        TAG_WARM_START,
    )
    from tests.test_notify import Webhook

    space = write_space("learning_rate: {loguniform: [1.0e-3, 3.0e-2]}\n"
                        "dropout: {uniform: [0.0, 0.3]}\nconv_blocks: 1\nfilters: 4\n"
                        "dense_units: 8\n")
    hook = Webhook()

    def search(name: str, **changes) -> object:
        settings = SearchSettings(name=name, trials=1, max_epochs=2, cpus=2, concurrency=1,
                                  scheduler="none", storage=tmp_path / "ray")
        request = SearchRequest(space=str(space), data=DataRequest(limit=300),
                                settings=settings, tracking_uri=tracking_uri, experiment="nightly",
                                model_name="nightly-model", notify=hook.url, **changes)
        return execute(prepare(request))

    # One local Ray instance for both searches (each would otherwise start its own).
    try:
        with ray_session(SearchSettings(cpus=2), verbose=False):
            first = search("monday")
            assert first.registered.champion and \
                first.registered.decision == "no champion yet"
            # An unreachable margin: the second search's model is kept as challenger only.
            second = search("tuesday", warm_start="latest",
                            promotion=PromotionPolicy(margin=1.0))
    finally:
        hook.close()

    client = MlflowClient(tracking_uri)
    def version(alias: str) -> str:
        return str(client.get_model_version_by_alias("nightly-model", alias).version)

    assert version(CHAMPION_ALIAS) == first.registered.version
    assert version(CHALLENGER_ALIAS) == second.registered.version
    assert not second.registered.champion
    assert second.registered.uri == f"models:/nightly-model/{second.registered.version}"
    parent = client.get_run(second.run_url.rsplit("/", 1)[-1])
    assert parent.data.tags[TAG_CHAMPION_DECISION] == "kept"
    assert "not better by more than the margin 1" in parent.data.tags[TAG_CHAMPION_REASON]
    assert {"champion.test_accuracy", "challenger.test_accuracy", "mcnemar.p_value"} <= \
        set(parent.data.metrics)
    assert parent.data.metrics["challenger.test_accuracy"] == \
        pytest.approx(second.test_metrics["test_accuracy"])

    # Warm start: the second search's (only) trial is the first search's best config.
    assert parent.data.tags[TAG_WARM_START] == "monday"
    best = first.outcome.best.params
    opening = min(second.outcome.trials, key=lambda t: t.number).params
    assert opening["learning_rate"] == pytest.approx(best["learning_rate"])
    assert opening["dropout"] == pytest.approx(best["dropout"])

    assert [(m["search"], m["status"], m["champion"]["changed"]) for m in hook.received] == \
        [("monday", "finished", True), ("tuesday", "finished", False)]


@pytest.mark.slow
def test_a_search_keeps_its_state_in_s3_compatible_storage(write_space, tracking_uri,
                                                           monkeypatch):
    """--storage s3://... (what a cluster of several nodes needs), on moto's S3 server on
    loopback: the record, Tune's state and the checkpoints land in the bucket, and the
    driver reads the best model back from it."""
    import boto3
    from moto.server import ThreadedMotoServer

    from search.trial.checkpoints import BEST_FILE
    from tests.services.conftest import free_port

    port = free_port()
    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    s3.start()
    try:
        for name, value in {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
                            "AWS_DEFAULT_REGION": "us-east-1",
                            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}.items():
            monkeypatch.setenv(name, value)  # Ray's workers start with this environment
        bucket = boto3.client("s3")
        bucket.create_bucket(Bucket="searches")
        settings = SearchSettings(name="in-s3", trials=2, max_epochs=2, cpus=2,
                                  scheduler="none", storage="s3://searches/ray")
        report = execute(prepare(SearchRequest(
            space=str(write_space(SPACE.replace("0.01", "{loguniform: [0.003, 0.03]}"))),
            data=DataRequest(limit=300), settings=settings,
            tracking_uri=tracking_uri)))
        keys = [o["Key"] for o in bucket.list_objects_v2(Bucket="searches")["Contents"]]
    finally:
        s3.stop()
    assert report.test_metrics["test_accuracy"] > 0
    assert "ray/in-s3/convsearch-request.json" in keys
    assert "ray/in-s3/convsearch-finished.json" in keys
    assert any(k.startswith("ray/in-s3/experiment_state") for k in keys)
    assert any("/checkpoint_" in k and k.endswith(f"/{BEST_FILE}") for k in keys)
    # The best model was read from a downloaded copy, removed once read.
    assert str(report.outcome.best_checkpoint).startswith(tempfile.gettempdir())
    assert report.outcome.best_checkpoint_is_copy
    assert not report.outcome.best_checkpoint.exists()
