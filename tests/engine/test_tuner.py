"""The Ray Tune engine: real searches on local Ray."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from search.engine.tuner import run_search
from search.errors import SearchFailed
from search.observers import SearchObserver
from search.settings import SearchSettings
from search.space import parse_space
from search.trial.train import CHECKPOINT_FILE


class Recorder(SearchObserver):
    """A SearchObserver that keeps every event, in order."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def search_started(self, budget, ended, unfinished):
        self.events.append(("search", budget, list(ended), list(unfinished)))

    def trial_started(self, trial_id, params, number=0):
        self.events.append(("started", trial_id, params))

    def epoch_ended(self, trial_id, epoch, metrics):
        self.events.append(("epoch", trial_id, epoch, metrics))

    def checkpoint_saved(self, trial_id, checkpoint_dir: Path):
        assert (checkpoint_dir / CHECKPOINT_FILE).is_file()
        self.events.append(("checkpoint", trial_id))

    def trial_mutated(self, trial_id, epoch, source, params):
        self.events.append(("mutated", trial_id, epoch, source, params))

    def trial_ended(self, result):
        self.events.append(("ended", result.trial_id, result))


MIXED_SPACE = """
optimizer: adam
learning_rate: {loguniform: [3.0e-3, 1.0e-2]}
conv_blocks: {choices: [1, 4]}   # 4 blocks cannot fit 8x8 images: rejected when sampled
filters: 8
dense_units: 16
batch_size: 32
"""


@pytest.mark.slow
def test_infeasible_configs_never_start_and_every_event_is_reported(small_digits, tmp_path,
                                                                  local_ray):
    space = parse_space(MIXED_SPACE)
    settings = SearchSettings(name="engine-test", trials=3, max_epochs=3, grace_epochs=3,
                              patience=3, cpus=2, seed=3, storage=tmp_path / "ray")
    recorder = Recorder()
    outcome = run_search(space, small_digits, settings, observers=[recorder])

    assert len(outcome.trials) == 3
    for trial in outcome.trials:
        assert trial.params["conv_blocks"] == 1
        assert trial.status == "completed" and trial.epochs == 3
    assert sum(outcome.infeasible.values()) >= 1  # seed 3 draws some 4-block configs
    assert all("block4_pool: 2x2 pooling needs" in reason for reason in outcome.infeasible)

    # Events: each trial starts once, before its epochs, and ends once, last.
    for trial in outcome.trials:
        mine = [e for e in recorder.events if e[1] == trial.trial_id]
        assert mine[0][0] == "started" and mine[-1][0] == "ended"
        assert sum(e[0] == "ended" for e in mine) == 1
        epochs = [e[2] for e in mine if e[0] == "epoch"]
        assert epochs == list(range(1, trial.epochs + 1))
        assert any(e[0] == "checkpoint" for e in mine)

    assert outcome.best.best_val_accuracy == max(t.best_val_accuracy for t in outcome.trials)
    assert (outcome.best_checkpoint / CHECKPOINT_FILE).is_file()


@pytest.mark.slow
def test_search_where_every_trial_fails_says_why(small_digits, tmp_path, local_ray):
    # Pixels near float32's limit overflow every model: each trial's loss diverges.
    overflowing = dataclasses.replace(small_digits,
                                      x_train=small_digits.x_train * np.float32(1e37))
    space = parse_space("conv_blocks: 1\nfilters: 4\n")
    settings = SearchSettings(name="all-fail", trials=2, max_epochs=2, grace_epochs=1,
                              cpus=2, storage=tmp_path / "ray")
    recorder = Recorder()
    with pytest.raises(SearchFailed, match=r"none of the 2 trials produced a model; first "
                                           r"error: TrainingError: loss became NaN"):
        run_search(space, overflowing, settings, observers=[recorder])
    ended = [e[2] for e in recorder.events if e[0] == "ended"]
    assert [r.status for r in ended] == ["failed", "failed"]


@pytest.mark.slow
def test_grid_search_runs_each_feasible_point_once(small_digits, tmp_path, local_ray):
    space = parse_space("conv_blocks: {grid: [1, 4]}\nfilters: 4\ndense_units: 8\n"
                        "batch_size: {grid: [32, 64]}\nlearning_rate: 0.01\n")
    assert space.is_grid()
    settings = SearchSettings(name="grid", algorithm="grid", max_epochs=1, grace_epochs=1,
                              cpus=2, storage=tmp_path / "ray")
    outcome = run_search(space, small_digits, settings)
    visited = sorted((t.params["conv_blocks"], t.params["batch_size"]) for t in outcome.trials)
    assert visited == [(1, 32), (1, 64)]  # the two 4-block points cannot fit 8x8
    assert sum(outcome.infeasible.values()) == 2


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["tpe", "random", "cmaes", "nsga2", "gp"])
def test_every_algorithm_runs_a_real_search(algorithm, small_digits, tmp_path, local_ray):
    if algorithm == "gp":
        pytest.importorskip("torch", reason="--algo gp needs the gp extra (PyTorch)")
    space = parse_space("learning_rate: {loguniform: [1.0e-3, 1.0e-2]}\n"
                        "filters: {int: [4, 8]}\nconv_blocks: 1\ndense_units: 8\n")
    settings = SearchSettings(name=f"algo-{algorithm}", algorithm=algorithm, trials=3,
                              max_epochs=1, grace_epochs=1, cpus=2, storage=tmp_path / "ray")
    outcome = run_search(space, small_digits, settings)
    assert len(outcome.trials) == 3
    assert all(t.status == "completed" for t in outcome.trials)
    assert len({t.params["learning_rate"] for t in outcome.trials}) == 3


@pytest.mark.slow
def test_a_resumed_nsga2_search_continues_its_history(small_digits, tmp_path, local_ray):
    # Tune saves the searcher when the search starts and in every snapshot, and a resumed
    # search restores it from there: NSGA-II's sampler must survive both.
    space = parse_space("learning_rate: {loguniform: [1.0e-3, 1.0e-2]}\n"
                        "filters: {int: [4, 8]}\nconv_blocks: 1\ndense_units: 8\n")
    settings = SearchSettings(name="nsga2-resumed", algorithm="nsga2", trials=1, max_epochs=1,
                              grace_epochs=1, concurrency=1, cpus=2, storage=tmp_path / "ray")
    first = run_search(space, small_digits, settings)
    extended = run_search(space, small_digits, dataclasses.replace(settings, trials=3),
                          resume=True)
    assert [t.number for t in extended.trials] == [1, 2, 3]
    assert extended.trials[0].params == first.trials[0].params
    rates = {t.params["learning_rate"] for t in extended.trials}
    assert len(rates) == 3  # the sampler went on instead of starting over


@pytest.mark.slow
def test_no_scheduler_and_an_epoch_budget(small_digits, tmp_path, local_ray):
    space = parse_space("learning_rate: {loguniform: [1.0e-3, 1.0e-2]}\nconv_blocks: 1\n"
                        "filters: 4\ndense_units: 8\n")
    # Without a scheduler, every trial trains all its epochs (patience never runs out).
    settings = SearchSettings(name="fifo", scheduler="none", trials=3, max_epochs=3,
                              grace_epochs=1, patience=3, cpus=2, storage=tmp_path / "ray")
    outcome = run_search(space, small_digits, settings)
    assert [(t.status, t.epochs) for t in outcome.trials] == [("completed", 3)] * 3

    # A budget of 5 epochs in all ends the search long before 20 trials of 3 epochs.
    settings = SearchSettings(name="budget", scheduler="none", trials=20, max_epochs=3,
                              grace_epochs=1, patience=3, cpus=2, epoch_budget=5,
                              storage=tmp_path / "ray")
    outcome = run_search(space, small_digits, settings)
    total = sum(t.epochs for t in outcome.trials)
    assert 5 <= total <= 5 + 2  # trials running when the budget is reached finish an epoch
    assert len(outcome.trials) < 20


@pytest.mark.slow
def test_robust_accuracy_is_an_objective_reported_every_epoch(small_digits, tmp_path,
                                                               local_ray):
    space = parse_space("objectives: [val_accuracy, robust_accuracy]\n"
                        "learning_rate: {loguniform: [3.0e-3, 3.0e-2]}\nconv_blocks: 1\n"
                        "filters: 4\ndense_units: 8\n")
    settings = SearchSettings(name="robust", trials=2, max_epochs=2, grace_epochs=2,
                              cpus=2, storage=tmp_path / "ray")
    recorder = Recorder()
    outcome = run_search(space, small_digits, settings, observers=[recorder])
    assert all(0 <= t.values["robust_accuracy"] <= 1 for t in outcome.trials)
    epochs = [e[3] for e in recorder.events if e[0] == "epoch"]
    assert len(epochs) == 4 and all("robust_accuracy" in m for m in epochs)
    assert outcome.pareto  # a front over both objectives
