"""``python -m services.schedule``: one schedule file as a crontab line and as a
Kubernetes CronJob, its flags checked by the search's own parser."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest
import yaml

from services.schedule import ScheduleError, load_schedule, main
from tests.conftest import REPO

SHIPPED = REPO / "services" / "schedules" / "nightly-digits.yaml"


def write(tmp_path, text):
    path = tmp_path / "nightly.yaml"
    path.write_text(text)
    return path


def test_the_shipped_schedule_is_valid():
    schedule = load_schedule(SHIPPED)
    assert schedule["cron"] == "0 2 * * *"
    assert schedule["flags"][:2] == ["--space", "default"]


def test_a_crontab_line_runs_the_search_in_its_folder(tmp_path, capsys):
    path = write(tmp_path, 'cron: "*/30 1-5 * * mon-fri"\nsearch:\n  trials: 4\n'
                           '  time-budget: 90s\n  experiment: "nightly %d"\n')
    assert main([str(path), "crontab", "--workdir", str(tmp_path), "--python", "/v/python"]) == 0
    line = capsys.readouterr().out.strip()
    cron, rest = line[:len("*/30 1-5 * * mon-fri")], line[len("*/30 1-5 * * mon-fri") + 1:]
    assert cron == "*/30 1-5 * * mon-fri"
    assert rest.startswith(f"cd {tmp_path} && /v/python -m search.run --trials 4 "
                           "--time-budget 90s --experiment 'nightly \\%d'")
    assert rest.endswith(f">> {tmp_path / 'nightly.log'} 2>&1")
    # What cron runs (after it turns \% back into %) is a command the search accepts.
    words = shlex.split(rest.replace("\\%", "%").split(" && ", 1)[1].split(" >> ")[0])
    assert words[3:] == ["--trials", "4", "--time-budget", "90s", "--experiment",
                         "nightly %d"]


def test_a_cronjob_runs_one_search_at_a_time_with_credentials_from_a_secret(tmp_path):
    path = write(tmp_path, 'cron: "0 3 * * *"\njobs_address: http://ray-head:8265\n'
                           'search:\n  trials: 8\n  storage: s3://bucket/searches\n')
    out = subprocess.run([sys.executable, "-m", "services.schedule", str(path), "cronjob",
                          "--image", "registry/convsearch-worker:gpu", "--secret", "mlflow"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    job = yaml.safe_load(out)
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "CronJob")
    assert job["spec"]["schedule"] == "0 3 * * *"
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "registry/convsearch-worker:gpu"
    assert container["command"] == [
        "python", "-m", "services.submit", "--address", "http://ray-head:8265",
        "--env", "MLFLOW_TRACKING_URI", "--env", "MLFLOW_TRACKING_USERNAME",
        "--env", "MLFLOW_TRACKING_PASSWORD", "--", "--trials", "8",
        "--storage", "s3://bucket/searches"]
    assert container["envFrom"] == [{"secretRef": {"name": "mlflow"}}]
    assert pod["terminationGracePeriodSeconds"] >= 120 and pod["restartPolicy"] == "Never"


@pytest.mark.parametrize(("text", "message"), [
    ('cron: "0 2 * *"\nsearch: {}\n', r"cron: '0 2 \* \*' is not a cron expression"),
    ('cron: "0 2 * * *"\nsearch:\n  trails: 3\n', r"search: unrecognized arguments: "
                                                  r"--trails 3"),
    ('cron: "0 2 * * *"\nsearch:\n  trials: many\n', r"search: argument --trials: invalid"),
    ('cron: "0 2 * * *"\nsearch:\n  name: fixed\n', r"each scheduled run is a new search"),
    ('cron: "0 2 * * *"\nwhen: daily\n', r"unknown key 'when'"),
    ("cron: [", r"not valid YAML"),
])
def test_a_bad_schedule_is_a_one_line_error(tmp_path, text, message):
    with pytest.raises(ScheduleError, match=message):
        load_schedule(write(tmp_path, text))


def test_the_cli_prints_one_line_for_a_bad_schedule(tmp_path):
    done = subprocess.run([sys.executable, "-m", "services.schedule",
                           str(tmp_path / "missing.yaml"), "crontab"], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "cannot read schedule" in done.stderr
