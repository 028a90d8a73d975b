"""The command line, run as users run it: ``python -m search.run`` in a subprocess."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from search.run import build_parser
from search.settings import SearchSettings
from search.tracking.tracker import CHAMPION_ALIAS, TAG_ROLE, TAG_STATUS, using_tracking_store
from tests.conftest import REPO


def run_cli(*args: str, cwd: Path, timeout: int = 120, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "search.run", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def search_run(uri: str) -> tuple[MlflowClient, object]:
    """A client of the store, and the one search (parent) run of its convsearch experiment."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("convsearch")
    (parent,) = client.search_runs([experiment.experiment_id], f"tags.`{TAG_ROLE}` = 'search'")
    return client, parent


def test_help_documents_every_flag(tmp_path):
    result = run_cli("--help", cwd=tmp_path, env={"COLUMNS": "200"})  # no flag split in two
    assert result.returncode == 0
    flags = {a for action in build_parser()._actions for a in action.option_strings
             if a.startswith("--")}
    for action in build_parser()._actions:
        assert action.help, action.option_strings
    assert set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", result.stdout)) == flags
    # Every run setting can be given on the command line.
    setting_flags = {"algorithm": "--algo", "time_budget_s": "--time-budget",
                     "checkpoint_interval_s": "--checkpoint-interval"}
    for field in dataclasses.fields(SearchSettings):
        flag = setting_flags.get(field.name, "--" + field.name.replace("_", "-"))
        assert flag in flags, field.name


@pytest.mark.parametrize(("args", "space", "pattern"), [
    (["--trials", "many"], None, "argument --trials: invalid int value: 'many' (see --help)"),
    (["--bogus"], None, "unrecognized arguments: --bogus (see --help)"),
    (["--data", "cifar"], None, "data not found: cifar (use digits, keras:NAME"),
    (["--image-size", "8x8"], None, "--image-size and --color-mode apply to image folders"),
    (["--image-size", "big"], None, "--image-size 'big' is not a size like 32x32"),
    (["--trials", "0"], None, "--trials must be at least 1, got 0"),
    (["--grace-epochs", "9", "--max-epochs", "3"], None, "--grace-epochs (9) cannot exceed"),
    (["--space", "nope.yaml"], None, "space file not found: nope.yaml"),
    (["--space", "s.yaml"], "optimizer: {choices: [adamw2]}\n",
     "s.yaml:1: optimizer.choices: 'adamw2' is not a Keras optimizer"),
    (["--space", "s.yaml"], "description: x\nconv_blocks: {int: [4, 6]}\n",
     "s.yaml: none of 500 sampled configs can be trained on 8x8x1 images; most often: "
     "block4_pool: 2x2 pooling needs a feature map of at least 2x2"),
    (["--space", "s.yaml", "--algo", "grid"], "learning_rate: {loguniform: [0.001, 0.1]}\n",
     "--algo grid needs finitely many values, but learning_rate is a range"),
    (["--data-limit", "5"], None, "--data-limit 5 is too small"),
    pytest.param(["--algo", "gp"], None, "--algo gp needs PyTorch, which is not installed: "
                 "install convsearch's gp extra (uv pip install -e '.[gp]' -c "
                 "requirements.lock)",
                 marks=pytest.mark.skipif(importlib.util.find_spec("torch") is not None,
                                          reason="PyTorch is installed (the gp extra)")),
])
def test_user_errors_are_one_line_without_traceback(tmp_path, args, space, pattern):
    if space is not None:
        (tmp_path / "s.yaml").write_text(space)
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("convsearch: error: ")
    assert pattern in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_images_too_small_for_every_model_of_the_space_is_one_line(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "tiny.npz", x_train=rng.integers(0, 255, (60, 1, 1)).astype("uint8"),
             y_train=np.tile([0, 1, 2], 20))
    result = run_cli("--data", "tiny.npz", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "none of 500 sampled configs can be trained on 1x1x1 images" in lines[0]


def test_unusable_tracking_store_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    result = run_cli("--tracking-uri", f"sqlite:///{tmp_path / 'file' / 'x.db'}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("convsearch: error: cannot use MLflow tracking store sqlite:///")


TINY_SPACE = """\
description: A tiny space that learns digits in a few epochs.
optimizer: {choices: [adam, nadam]}
learning_rate: {loguniform: [3.0e-3, 1.0e-2]}
conv_blocks: {int: [1, 2]}
filters: {choices: [8, 16]}
dense_units: 32
batch_size: 32
augmentation:
  rotation: {uniform: [0.02, 0.05], optional: true}
"""


@pytest.mark.slow
def test_three_trial_search_end_to_end(tmp_path, digits):
    (tmp_path / "tiny.yaml").write_text(TINY_SPACE)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_cli("--space", "tiny.yaml", "--data-limit", "600", "--trials", "3",
                     "--max-epochs", "6", "--grace-epochs", "6", "--cpus", "2",
                     "--tracking-uri", uri, "--name", "e2e", "--model-name", "e2e-digits",
                     "--deterministic", cwd=tmp_path, timeout=480)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Best trials (3 run)" in result.stdout
    assert "best model: test accuracy" in result.stdout
    assert "mlflow ui --backend-store-uri" in result.stdout
    assert "models:/e2e-digits@champion" in result.stdout
    assert "Traceback" not in result.stderr

    client, parent = search_run(uri)
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == "e2e"
    assert parent.data.params["settings.trials"] == "3"
    assert parent.data.params["settings.deterministic"] == "true"
    assert "test_accuracy" in parent.data.metrics
    assert "best_val_accuracy" in parent.data.metrics
    assert parent.data.tags["best.optimizer"] in ("adam", "nadam")
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "space")] == \
        ["space/tiny.yaml"]
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "insight")] == [
        f"insight/{name}.png" for name in ("feature_maps", "first_layer_filters",
                                           "most_confidently_wrong", "saliency")]
    # FGSM at 0.01, 0.03 and 0.1 of digits' pixel scale (16), named in pixel units.
    robust = {k: v for k, v in parent.data.metrics.items() if k.startswith("fgsm_accuracy.")}
    assert sorted(robust) == ["fgsm_accuracy.0.16", "fgsm_accuracy.0.48", "fgsm_accuracy.1.6"]
    assert all(0 <= v <= parent.data.metrics["test_accuracy"] for v in robust.values())
    summary = Path(client.download_artifacts(parent.info.run_id, "summary.md", str(tmp_path)))
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()
    assert f"convsearch commit | {commit}" in summary.read_text()

    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert len(children) == 3
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags[TAG_STATUS] == "completed"
        assert child.data.params["optimizer"] in ("adam", "nadam")
        switch = child.data.params["augmentation.rotation.on"]
        assert switch in ("true", "false", "True", "False")
        assert ("augmentation.rotation" in child.data.params) == (switch.lower() == "true")
        epochs = int(child.data.metrics["epochs"])
        assert 1 <= epochs <= 6
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            history = client.get_metric_history(child.info.run_id, key)
            assert [m.step for m in history] == list(range(1, epochs + 1)), key
        checkpoint = [a.path for a in client.list_artifacts(child.info.run_id, "checkpoint")]
        assert checkpoint == ["checkpoint/model.keras"]

    with using_tracking_store(uri):
        champion = mlflow.pyfunc.load_model(f"models:/e2e-digits@{CHAMPION_ALIAS}")
    predictions = np.asarray(champion.predict(digits.x_test)).argmax(axis=1)
    accuracy = float((predictions == digits.y_test).mean())
    assert accuracy > 0.6, accuracy  # chance is 0.1

    # Run outputs land in the working folder, where .gitignore expects them.
    assert (tmp_path / "ray_results" / "e2e").is_dir()
    assert (tmp_path / "mlartifacts").is_dir()


def final_metrics(uri: str) -> dict[str, dict[str, float]]:
    """The search's parent and trial runs' last value of every metric that training
    decides (not timings nor memory), by trial number ("search" for the parent)."""
    client, parent = search_run(uri)
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    runs = {"search": parent, **{c.data.tags["convsearch.trial_number"]: c for c in children}}
    return {key: {name: value for name, value in run.data.metrics.items()
                  if not name.startswith("time_") and not name.endswith("_rss_mb")}
            for key, run in runs.items()}


@pytest.mark.slow
def test_the_same_seed_repeats_every_trials_metrics(tmp_path):
    # One trial at a time, so the sampler sees the same results in the same order; on
    # CPUs TensorFlow's kernels repeat by themselves (GPUs need --deterministic).
    (tmp_path / "tiny.yaml").write_text(TINY_SPACE)
    metrics = []
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        result = run_cli("--space", str(tmp_path / "tiny.yaml"), "--data-limit", "200",
                         "--trials", "3", "--max-epochs", "2", "--grace-epochs", "1",
                         "--concurrency", "1", "--cpus", "2", "--seed", "7",
                         "--tracking-uri", uri, cwd=folder, timeout=480)
        assert result.returncode == 0, result.stdout + result.stderr
        metrics.append(final_metrics(uri))
    first, second = metrics
    assert sorted(first) == ["1", "2", "3", "search"]
    assert {"val_accuracy", "loss", "best_val_accuracy"} <= set(first["1"])
    assert {"test_accuracy", "test_loss", "best_val_accuracy"} <= set(first["search"])
    assert second == first


@pytest.mark.slow
def test_multi_objective_search_logs_its_pareto_front(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_cli("--space", "multi_objective", "--data-limit", "400", "--trials", "5",
                     "--max-epochs", "3", "--grace-epochs", "3", "--cpus", "2",
                     "--tracking-uri", uri, "--name", "mo", cwd=tmp_path, timeout=480)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Pareto front (" in result.stdout
    assert "registered model: highest 1*val_accuracy + -1e-07*params" in result.stdout

    client, parent = search_run(uri)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert "pareto_front.json" in artifacts
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {"plots/pareto_front.png", "plots/pareto_front.html"} <= plots
    front = parent.data.tags["convsearch.pareto_front"].split(",")
    assert front and parent.data.tags["convsearch.best_trial_id"] in front
    assert parent.data.metrics["best_params"] > 0
    path = client.download_artifacts(parent.info.run_id, "pareto_front.json", str(tmp_path))
    table = json.loads(Path(path).read_text())
    assert table["columns"][:2] == ["trial_id", "run_id"]
    assert {"val_accuracy", "params"} <= set(table["columns"])
    assert [row[0] for row in table["data"]] == front


@pytest.mark.slow
def test_search_on_an_image_folder_logs_its_classes(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, name in enumerate(["circle", "square", "stripe"]):
        (tmp_path / "shapes" / name).mkdir(parents=True)
        for i in range(24):
            image = rng.integers(0, 40, (12, 12, 3))
            image[2 + label * 3:5 + label * 3, :, :] = 255  # a bright band per class
            Image.fromarray(image.astype("uint8")).save(tmp_path / "shapes" / name / f"{i}.png")
    (tmp_path / "tiny.yaml").write_text(TINY_SPACE)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_cli("--data", "shapes", "--space", "tiny.yaml", "--trials", "2",
                     "--max-epochs", "4", "--grace-epochs", "4", "--cpus", "2",
                     "--tracking-uri", uri, "--name", "folder", cwd=tmp_path, timeout=480)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "data shapes (train/val/test" in result.stdout
    assert "models:/convsearch-shapes@champion" in result.stdout

    client, parent = search_run(uri)
    assert parent.data.params["data.input_shape"] == "12x12x3"
    path = client.download_artifacts(parent.info.run_id, "data/classes.json", str(tmp_path))
    assert json.loads(Path(path).read_text()) == {"classes": ["circle", "square", "stripe"]}
