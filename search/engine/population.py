"""Population-based training (Ray Tune's PBT) over a convsearch space.

PBT starts a population of configs and, every `perturbation_interval` epochs, has a
trial in the bottom quarter continue from a top-quarter trial's latest checkpoint with
that trial's config, its learning rate, dropout and augmentation amounts mutated (scaled
by 0.8 or 1.2, or resampled) and clipped to the space file's ranges. Only knobs that the
space searches, unconditionally, are mutated: the model's layers stay those of the
cloned checkpoint, so the trial can take its weights.

Ray refuses PBT beside a search algorithm, because PBT changes configs under the
algorithm's feet and the algorithm would learn from results its proposals did not earn.
A convsearch population is drawn up front (`search.space.sampling.sample_population`)
and handed out by a searcher that learns nothing, so that objection does not apply, and
the search keeps its trial budget, numbering and resume.
"""

from __future__ import annotations

from typing import Any

from ray import tune
from ray.tune.schedulers import PopulationBasedTraining

from search.engine.control import control_of
from search.engine.searchers import TRIAL_NUMBER
from search.engine.stopping import EPOCH
from search.errors import SettingsError
from search.settings import SearchSettings
from search.space import SearchSpace
from search.space.distributions import Choice, Grid, LogUniform, Uniform
from search.space.parameters import KNOBS

#: Knobs PBT may change in a running trial: none of them changes the model's weights.
MUTABLE_KNOBS = tuple(name for name, knob in KNOBS.items() if knob.mutable)


def make_population_training(settings: SearchSettings, space: SearchSpace,
                             ) -> PopulationBasedTraining:
    """PBT over the mutable knobs `space` searches.

    Raises:
        SettingsError: the space searches none of them.
    """
    mutations: dict[str, Any] = {}
    ranges: dict[str, tuple[float, float]] = {}
    for name in MUTABLE_KNOBS:
        distribution = space.distributions.get(name)
        if name in space.conditions or name in space.optional:
            continue
        if isinstance(distribution, Uniform | LogUniform):
            sample = tune.loguniform if isinstance(distribution, LogUniform) else tune.uniform
            mutations[name] = sample(distribution.low, distribution.high)
            ranges[name] = (distribution.low, distribution.high)
        elif isinstance(distribution, Choice | Grid) and len(distribution.values) > 1:
            mutations[name] = sorted(distribution.values)
    if not mutations:
        raise SettingsError("--scheduler pbt mutates " + ", ".join(MUTABLE_KNOBS)
                            + "; this space searches none of them (unconditionally)")
    return _PopulationTraining(
        settings.name, ranges, time_attr=EPOCH,
        perturbation_interval=settings.perturbation_interval,
        hyperparam_mutations=mutations, log_config=False)


class _PopulationTraining(PopulationBasedTraining):
    """Ray's PBT, keeping each trial's own number and telling the search's observers what
    each exploitation changed."""

    def __init__(self, search_name: str, ranges: dict[str, tuple[float, float]],
                 **options: Any) -> None:
        super().__init__(custom_explore_fn=self._clip, **options)
        self.search_name = search_name
        self.ranges = ranges

    def _clip(self, config: dict[str, Any]) -> dict[str, Any]:
        for name, (low, high) in self.ranges.items():
            config[name] = min(max(config[name], low), high)
        return config

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        # Ray's check against search algorithms; see the module's doc for why it does
        # not apply to a population drawn up front.
        super().on_trial_add(_WithoutSearchAlgorithm(tune_controller), trial)

    def _get_new_config(self, trial: Any, trial_to_clone: Any) -> tuple[dict, dict]:
        config, operations = super()._get_new_config(trial, trial_to_clone)
        config[TRIAL_NUMBER] = trial.config.get(TRIAL_NUMBER, 0)
        control = control_of(self.search_name)
        if control is not None:
            epoch = int((trial_to_clone.last_result or {}).get(EPOCH, 0))
            changes = {name: config[name] for name in self._hyperparam_mutations}
            source = int(trial_to_clone.config.get(TRIAL_NUMBER, 0))
            for observer in control.observers:
                observer.trial_mutated(trial.trial_id, epoch, source, changes)
        return config, operations


class _WithoutSearchAlgorithm:
    """A view of Tune's controller that shows no search algorithm."""

    search_alg = None

    def __init__(self, controller: Any) -> None:
        self._controller = controller

    def __getattr__(self, name: str) -> Any:
        return getattr(self._controller, name)
