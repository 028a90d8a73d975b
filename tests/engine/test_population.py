"""Population-based training continuing a laggard from a better trial's checkpoint, on
real Ray, Keras and digits."""

from __future__ import annotations

import json

import pytest

from search.engine.tuner import run_search
from search.metrics import OBJECTIVE
from search.settings import SearchSettings
from search.space import parse_space
from search.trial.faults import FAULTS_ENV
from tests.engine.test_tuner import Recorder

#: Each trial pauses after its first epoch. PBT compares only trials that hold a score
#: and are still running, and these trials are tiny (6 epochs in about 1.5 s) while a new
#: worker first spends about 4 s importing TensorFlow: without the pause, a trial in a
#: warm worker could finish before its partner reported once, and PBT would never act.
PAUSES = [{"trial": n, "epoch": 1, "action": "sleep:3"} for n in (1, 2, 3, 4)]


@pytest.fixture
def overlapping_ray(ray_with_worker_env):
    """A local Ray instance of the test's own, its workers told to pause (`PAUSES`)."""
    with ray_with_worker_env({FAULTS_ENV: json.dumps(PAUSES)}):
        yield


@pytest.mark.slow
def test_pbt_continues_a_laggard_from_a_better_trials_checkpoint(small_digits, tmp_path,
                                                                 overlapping_ray):
    space = parse_space("learning_rate: {loguniform: [1.0e-6, 0.05]}\n"
                        "dropout: {uniform: [0.0, 0.3]}\n"
                        "conv_blocks: 1\nfilters: 4\ndense_units: 8\n")
    settings = SearchSettings(name="pbt", scheduler="pbt", trials=4, concurrency=2,
                              max_epochs=6, patience=10, perturbation_interval=1, seed=1,
                              storage=tmp_path / "ray")
    recorder = Recorder()
    outcome = run_search(space, small_digits, settings, observers=[recorder])
    assert len(outcome.trials) == 4

    events = recorder.events
    mutations = [i for i, e in enumerate(events) if e[0] == "mutated"]
    assert mutations, "PBT never continued a trial from another"
    numbers = {t.trial_id: t.number for t in outcome.trials}
    continued = 0
    for index in mutations:
        _, trial_id, epoch, source, params = events[index]
        assert source != numbers[trial_id]
        assert 1e-6 <= params["learning_rate"] <= 0.05 and 0 <= params["dropout"] <= 0.3
        # The clone carries on from the source's epoch, with its weights and best score.
        # Events are read in order: a source that was itself cloned earlier reported
        # some epoch numbers twice, and only its latest report before this clone counts.
        source_id = next(i for i, n in numbers.items() if n == source)
        source_best = _objective_before(events[:index], source_id, epoch)
        # Until the clone is cloned again, its reports of the source's next epoch: results
        # its old run had in flight can come among them (events carry no run), so the
        # restored run's is the best of them. It may also have been cloned at its last
        # epoch, or cloned again before it reported.
        later = next((i for i in mutations if i > index and events[i][1] == trial_id),
                     len(events))
        after = [e[3][OBJECTIVE] for e in events[index + 1:later]
                 if e[0] == "epoch" and e[1] == trial_id and e[2] == epoch + 1]
        if after and max(after) >= source_best:
            continued += 1
    assert continued, "no clone went on from its source's epoch with the source's best"
    assert all(t.number in (1, 2, 3, 4) for t in outcome.trials)  # numbers kept


def _objective_before(events: list, trial_id: str, epoch: int) -> float:
    return next(e[3][OBJECTIVE] for e in reversed(events)
                if e[0] == "epoch" and e[1] == trial_id and e[2] == epoch)
