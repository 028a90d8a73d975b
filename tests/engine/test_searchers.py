"""The searchers: Optuna samplers by name, and searcher state saved in one file."""

from __future__ import annotations

import pytest

from search.errors import SettingsError
from search.space import parse_space


def test_gp_without_pytorch_is_a_clear_error(monkeypatch):
    import importlib.util

    from search.engine.searchers import make_sampler

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(SettingsError, match=r"--algo gp needs the torch package "
                                            r"\(pip install -e '.\[gp\]'\)"):
        make_sampler("gp", 0, parse_space("optimizer: adam\n"))


def test_cmaes_refuses_several_objectives():
    from search.engine.searchers import make_sampler

    space = parse_space("objectives: [val_accuracy, params]\n")
    with pytest.raises(SettingsError, match="--algo cmaes optimises one objective"):
        make_sampler("cmaes", 0, space)


def test_searcher_state_is_one_file_and_restores_the_algorithms_history(tmp_path):
    # Tune saves a searcher under a temporary name and renames the file: everything the
    # searcher needs must be in that one file, or a restored search loses its history.
    from search.engine.searchers import _FeasibleSearcher, _optuna_searcher
    from search.settings import SearchSettings

    space = parse_space("learning_rate: {loguniform: [1.0e-4, 1.0e-1]}\n"
                        "conv_blocks: {choices: [1, 4]}\nfilters: 4\n")
    settings = SearchSettings(algorithm="tpe", seed=1)

    def searcher():
        inner = _optuna_searcher(space, settings)
        inner.set_search_properties("best_val_accuracy", "max", {})
        return _FeasibleSearcher(inner, space, (8, 8, 1), 10)

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
