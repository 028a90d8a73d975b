"""Test-only fault injection fires for the chosen trial and epoch, once when asked."""

from __future__ import annotations

import json

import pytest

from search.errors import TrainingError
from search.trial.faults import FAULTS_ENV, inject


def test_a_fault_fires_for_its_trial_and_epoch_only(monkeypatch, tmp_path):
    monkeypatch.setenv(FAULTS_ENV, json.dumps([
        {"trial": 2, "epoch": 3, "action": "raise"},
        {"trial": 3, "epoch": 1, "action": "nan", "once": str(tmp_path / "fired")}]))
    inject(1, 3)
    inject(2, 2)
    with pytest.raises(RuntimeError, match="injected fault in trial 2 at epoch 3"):
        inject(2, 3)
    with pytest.raises(TrainingError, match="loss became NaN"):
        inject(3, 1)
    inject(3, 1)  # once: the marker file exists now
    assert (tmp_path / "fired").is_file()


def test_no_environment_variable_no_fault(monkeypatch):
    monkeypatch.setenv(FAULTS_ENV, json.dumps([{"trial": 1, "epoch": 1, "action": "raise"}]))
    with pytest.raises(RuntimeError, match="injected fault"):
        inject(1, 1)
    monkeypatch.delenv(FAULTS_ENV)  # the same trial and epoch, as every real search runs
    inject(1, 1)
