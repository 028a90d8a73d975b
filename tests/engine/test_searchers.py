"""The searchers: Optuna samplers by name, and searcher state saved in one file."""

from __future__ import annotations

import pytest

from search.errors import SettingsError
from search.settings import ALGORITHMS
from search.space import parse_space

#: The algorithms whose configs an Optuna sampler proposes (all but the enumerated grid).
SAMPLED = [name for name in ALGORITHMS if name != "grid"]


def test_cmaes_refuses_several_objectives():
    from search.engine.searchers import make_sampler

    space = parse_space("objectives: [val_accuracy, params]\n")
    with pytest.raises(SettingsError, match="--algo cmaes optimises one objective"):
        make_sampler("cmaes", 0, space)


@pytest.mark.parametrize("algorithm", SAMPLED)
def test_searcher_state_is_one_file_and_restores_the_algorithms_history(algorithm, tmp_path):
    # Tune saves a searcher under a temporary name and renames the file: everything the
    # searcher needs must be in that one file, or a restored search loses its history.
    from search.settings import SearchSettings

    if algorithm == "gp":
        pytest.importorskip("torch", reason="--algo gp needs the gp extra (PyTorch)")
    space = parse_space("learning_rate: {loguniform: [1.0e-4, 1.0e-1]}\n"
                        "conv_blocks: {choices: [1, 4]}\nfilters: 4\n")
    settings = SearchSettings(algorithm=algorithm, seed=1)

    def searcher():
        return _feasible_searcher(space, settings)

    first = searcher()
    for number in range(4):  # some draws are infeasible (4 blocks on 8x8) and rejected
        params = first.suggest(f"t{number}")
        first.on_trial_complete(f"t{number}", {"best_val_accuracy": params["learning_rate"]})
    first.save_to_dir(str(tmp_path), session_str="s1")
    assert [p.name for p in tmp_path.iterdir()] == ["searcher-state-s1.pkl"]

    restored = searcher()
    restored.restore_from_dir(str(tmp_path))
    assert restored.rejected == first.rejected and sum(first.rejected.values()) > 0
    # The same history and sampler state propose the same next config.
    assert restored.suggest("next") == first.suggest("next")


@pytest.mark.parametrize("algorithm", [a for a in SAMPLED if a != "gp"])
def test_the_seed_decides_the_configs(algorithm):
    # The same seed repeating a whole search is tests/test_run.py's; a seed must matter.
    from search.settings import SearchSettings

    space = parse_space("learning_rate: {loguniform: [1.0e-4, 1.0e-1]}\n"
                        "filters: {int: [4, 32]}\n")

    def proposed(seed: int) -> list[dict]:
        searcher = _feasible_searcher(space, SearchSettings(algorithm=algorithm, seed=seed))
        return [searcher.suggest(f"t{n}") for n in range(3)]

    assert proposed(5) == proposed(5)
    assert proposed(6) != proposed(5)


def _feasible_searcher(space, settings, shape=(8, 8, 1)):
    from search.engine.searchers import feasible_optuna_searcher

    searcher = feasible_optuna_searcher(space, settings, shape, 10)
    searcher.set_search_properties("best_val_accuracy", "max", {})
    return searcher


def _run(searcher, trials: int) -> list:
    """Ask and finish `trials` trials; the Optuna study's trials, infeasible ones too."""
    for number in range(trials):
        searcher.suggest(f"t{number}")
        searcher.on_trial_complete(f"t{number}", {"best_val_accuracy": 0.5 + 0.01 * number})
    return searcher.inner._ot_study.trials


# 4 blocks of 2x2 pooling cannot fit 8x8 images; 64 filters exceed max_params.
_PARTLY_FEASIBLE = ("conv_blocks: {choices: [1, 4]}\nfilters: {choices: [4, 64]}\n"
                    "dense_units: 8\nmax_params: 2000\n")


@pytest.mark.parametrize("algorithm", ["tpe", "nsga2"])
def test_infeasible_configs_are_constraint_violations_for_samplers_that_model_them(algorithm):
    import optuna

    from search.settings import SearchSettings

    space = parse_space(_PARTLY_FEASIBLE)
    # Seed 2 draws both kinds of infeasible config, and some after a feasible one, for
    # both samplers (seed 3 drew none over max_params under NSGA-II).
    searcher = _feasible_searcher(space, SearchSettings(algorithm=algorithm, seed=2))
    studied = _run(searcher, 6)
    infeasible = [t for t in studied if t.constraints["architecture"] > 0]
    feasible = [t for t in studied if t.constraints["architecture"] <= 0]
    assert sum(searcher.rejected.values()) == len(infeasible) > 0
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in studied)
    assert len(feasible) == 6 and all(t.params["conv_blocks"] == 1 for t in feasible)
    # Over max_params is a violation by degree; a model that cannot be built, a full one.
    over = [t for t in infeasible if t.params["conv_blocks"] == 1]
    unbuildable = [t for t in infeasible if t not in over]
    assert over and all(0 < t.constraints["architecture"] < 4 for t in over)
    assert unbuildable and all(t.constraints["architecture"] == 1 for t in unbuildable)
    # Told after some feasible result: the mean of those, not a made-up worst value.
    later = [t for t in infeasible if t.number > feasible[0].number]
    assert later and all(0.5 <= t.value <= 0.6 for t in later)


def test_samplers_without_constraints_are_told_infeasible_configs_failed():
    import optuna

    from search.settings import SearchSettings

    space = parse_space(_PARTLY_FEASIBLE)
    searcher = _feasible_searcher(space, SearchSettings(algorithm="random", seed=3))
    studied = _run(searcher, 6)
    failed = [t for t in studied if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) == sum(searcher.rejected.values()) > 0
    assert all(t.values is None and not t.constraints for t in failed)
    assert len([t for t in studied if t.state == optuna.trial.TrialState.COMPLETE]) == 6
