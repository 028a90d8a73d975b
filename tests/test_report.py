"""``python -m search.report``: a past search read back from a real MLflow store."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from search.observers import SearchOutcome, TrialResult
from search.report import main
from search.settings import SearchSettings
from search.space import load_space
from search.tracking.tracker import SearchTracker
from search.trial.config import TrialConfig
from search.trial.model import build_model


@pytest.fixture
def past_search(tracking_uri, small_digits, tmp_path) -> keras.Model:
    """A finished search of two trials, the better one registered as champion."""
    tracker = SearchTracker(tracking_uri)
    space = load_space("default")
    tracker.start_search(SearchSettings(name="past", trials=2, algorithm="tpe"), space,
                         small_digits)
    config = TrialConfig.from_params({"conv_blocks": 1, "filters": 4, "dense_units": 8})
    model = build_model(config, small_digits.input_shape, 10, small_digits.value_scale)
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    model.save(checkpoint / "model.keras")
    results = []
    for number, (trial_id, accuracy) in enumerate((("weak", 0.4), ("strong", 0.9)), 1):
        tracker.trial_started(trial_id, config.to_params(), number)
        tracker.epoch_ended(trial_id, 1, {"val_accuracy": accuracy,
                                          "best_val_accuracy": accuracy})
        tracker.checkpoint_saved(trial_id, checkpoint)
        result = TrialResult(trial_id, config.to_params(), "completed", 1, accuracy,
                             number=number)
        tracker.trial_ended(result)
        results.append(result)
    outcome = SearchOutcome(trials=results, best=results[1], best_checkpoint=checkpoint,
                            experiment_path="")
    tracker.finish_search(outcome, space, {"test_accuracy": 0.85}, model,
                          small_digits.x_test[:4], "past-model")
    return model


def test_report_prints_settings_top_trials_and_the_champion(past_search, tracking_uri,
                                                            capsys, tmp_path, small_digits):
    exported = tmp_path / "out" / "best.keras"
    code = main(["past", "--tracking-uri", tracking_uri, "--export", str(exported)])
    out = capsys.readouterr().out
    assert code == 0
    assert "past" in out and "algorithm" in out and "tpe" in out
    lines = out.splitlines()
    strong = next(i for i, line in enumerate(lines) if "0.9000" in line)
    weak = next(i for i, line in enumerate(lines) if "0.4000" in line)
    assert strong < weak  # best first
    assert "registered: models:/past-model/1 (challenger, champion)" in out
    loaded = keras.saving.load_model(exported, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(small_digits.x_test[:2], verbose=0),
                               past_search.predict(small_digits.x_test[:2], verbose=0),
                               rtol=1e-5)


@pytest.mark.parametrize(("args", "message"), [
    (["nope"], "no search named 'nope' in experiment 'convsearch' (latest searches there: "
               "past)"),
    (["past", "--export", "model.h5"], "--export needs a .keras file name, got model.h5"),
])
def test_report_errors_are_one_line(past_search, tracking_uri, capsys, args, message):
    code = main([*args, "--tracking-uri", tracking_uri])
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"convsearch: error: {message}\n"


def test_report_of_a_path_that_is_not_a_store(tmp_path: Path, capsys):
    code = main(["x", "--tracking-uri", f"sqlite:///{tmp_path / 'empty.db'}"])
    assert code == 2
    assert "no experiment named 'convsearch'" in capsys.readouterr().err
