"""Who proposes the next trial's config: Optuna's samplers behind Ray Tune's
`OptunaSearch`, or an enumerated grid; and the generator that numbers the trials and
keeps them within the search's budget.

`TrialGenerator` is what Tune is given. It wraps a `ConcurrencyLimiter` around one of the
searchers here, asks its `SearchControl` (by search name) whether the budget allows
another trial, so a resumed search can be given a larger budget than it started with,
and numbers trials 1, 2, ... in their config under `TRIAL_NUMBER`.

Every searcher's state is saved in one file per experiment snapshot (Tune's
``searcher-state-*.pkl``), which Tune writes under a temporary name and renames; the
file holds the wrapped searcher's state too, so a restored search keeps its algorithm's
whole history.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
import threading
import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any

import optuna
import ray.cloudpickle
from ray.tune.search import ConcurrencyLimiter, Searcher, SearchGenerator
from ray.tune.search.optuna import OptunaSearch

from search.engine.control import control_of
from search.errors import SearchFailed, SettingsError
from search.metrics import OBJECTIVE
from search.objectives import OBJECTIVES, worst_values
from search.settings import SearchSettings, require_algorithm_packages
from search.space import SearchSpace
from search.space.sampling import infeasibility, suggest_params, violation

#: Config key of a trial's number in its search (1, 2, ...): not a knob.
TRIAL_NUMBER = "trial_number"

#: Algorithms whose Optuna sampler models constraints (`optuna.Trial.set_constraint`):
#: they are told that an infeasible config is infeasible, and by how much. The others
#: are told that it failed, which they ignore.
CONSTRAINED_ALGORITHMS = ("tpe", "nsga2", "gp")

#: Name of the constraint an infeasible config violates, in the Optuna study.
ARCHITECTURE_CONSTRAINT = "architecture"


def make_search_algorithm(space: SearchSpace, settings: SearchSettings,
                          input_shape: tuple[int, ...], num_classes: int,
                          points: list[dict[str, Any]] | None, concurrency: int,
                          warm_start: Sequence[dict[str, Any]] = (),
                          ) -> tuple[TrialGenerator, Counter[str]]:
    """The search algorithm Tune runs, and the counter of configs it rejects unseen.

    `points` are a grid search's enumerated configs; otherwise an Optuna sampler proposes,
    starting with the `warm_start` configs (an earlier search's best).

    Raises:
        SettingsError: a warm start for a search whose configs are fixed up front.
    """
    if points is not None:
        if warm_start:
            raise SettingsError(f"--warm-start seeds Optuna's samplers; --algo "
                                f"{settings.algorithm} fixes its configs up front")
        searcher: Searcher = _PointsSearcher(points)
        rejected: Counter[str] = Counter()
    else:
        feasible = feasible_optuna_searcher(space, settings, input_shape, num_classes,
                                            warm_start)
        searcher, rejected = feasible, feasible.rejected
    limited = ConcurrencyLimiter(searcher, max_concurrent=concurrency)
    return TrialGenerator(limited, settings.name), rejected


def feasible_optuna_searcher(space: SearchSpace, settings: SearchSettings,
                             input_shape: tuple[int, ...], num_classes: int,
                             warm_start: Sequence[dict[str, Any]] = ()) -> Searcher:
    """The algorithm's Optuna sampler behind Tune's `OptunaSearch`, proposing only configs
    that can be trained on this data (see `_FeasibleSearcher`), `warm_start` first."""
    constrained = settings.algorithm in CONSTRAINED_ALGORITHMS
    inner = _optuna_searcher(space, settings, _Proposal(space, input_shape, num_classes,
                                                        constrained), warm_start)
    return _FeasibleSearcher(inner, space, input_shape, num_classes, constrained)


def rejected_configs(generator: Any) -> Counter[str]:
    """The infeasible-config counts of a (possibly restored) `TrialGenerator`."""
    if generator is None:
        return Counter()
    searcher = generator.searcher
    while hasattr(searcher, "searcher"):
        searcher = searcher.searcher
    return getattr(searcher, "rejected", Counter())


class TrialGenerator(SearchGenerator):
    """Tune's search algorithm for one search: creates trials while the search's budget
    (read from its `SearchControl`, so a resuming driver may raise it) allows, and
    numbers them in their config."""

    def __init__(self, searcher: Searcher, search_name: str) -> None:
        super().__init__(searcher)
        self.search_name = search_name

    @property
    def total_samples(self) -> int:
        control = control_of(self.search_name)
        return control.budget if control else self._total_samples

    def is_finished(self) -> bool:
        # `_finished`: the searcher has nothing more (a grid is exhausted). A spent
        # budget is not remembered as finished, so that a resumed search can extend it.
        if self._finished:
            return True
        control = control_of(self.search_name)
        if control is None:  # read back outside a running search
            return True
        if control.generator is not self:
            # This instance, restored or new, is the one Tune runs; a restored one gets
            # this driver run's concurrency, not the one it was saved with.
            control.generator = self
            self.searcher.max_concurrent = control.concurrency
        return self._counter >= control.budget or control.stopping()

    def create_trial_if_possible(self, experiment_spec: dict) -> Any:
        spec = dict(experiment_spec)
        spec["config"] = {**spec.get("config", {}), TRIAL_NUMBER: self._counter + 1}
        return super().create_trial_if_possible(spec)


def _optuna_searcher(space: SearchSpace, settings: SearchSettings, proposal: Any,
                     warm_start: Sequence[dict[str, Any]] = ()) -> OptunaSearch:
    metrics = [OBJECTIVES[name].metric for name in space.objectives]
    modes = [OBJECTIVES[name].mode for name in space.objectives]
    if len(metrics) == 1:  # a single metric keeps Optuna's per-epoch reports
        metrics, modes = metrics[0], modes[0]
    # Optuna enqueues these: the proposal's first questions get their values.
    return OptunaSearch(space=proposal, metric=metrics, mode=modes,
                        sampler=make_sampler(settings.algorithm, settings.seed, space),
                        points_to_evaluate=[dict(p) for p in warm_start] or None)


class _Proposal:
    """The define-by-run function Optuna samples through: the space's knobs, and, for a
    sampler that models constraints, how far the config is from a trainable one (0 when
    it is trainable; every trial must carry the constraint)."""

    def __init__(self, space: SearchSpace, input_shape: tuple[int, ...], num_classes: int,
                 constrained: bool) -> None:
        self.space = space
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.constrained = constrained

    def __call__(self, trial: Any) -> dict[str, Any]:
        params = suggest_params(self.space, trial)
        if self.constrained:
            trial.set_constraint(ARCHITECTURE_CONSTRAINT, violation(
                self.space, params, self.input_shape, self.num_classes))
        return params


def make_sampler(algorithm: str, seed: int, space: SearchSpace) -> optuna.samplers.BaseSampler:
    """Optuna's sampler for `algorithm`, seeded.

    Raises:
        SettingsError: the sampler needs a package that is not installed, or cannot serve
            the space's objectives.
    """
    samplers = optuna.samplers
    if algorithm == "tpe":
        # constant_liar: running trials count as bad guesses, so parallel workers are not
        # all sent to the same point. group: conditional knobs get their own models.
        # Optuna flags these options experimental on every construction; users need not
        # see that.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True,
                                       group=bool(space.conditions or space.optional))
    if algorithm == "random":
        return samplers.RandomSampler(seed=seed)
    if algorithm == "nsga2":
        return _SavableNSGAIISampler(seed=seed)
    require_algorithm_packages(algorithm)
    if algorithm == "cmaes":
        if len(space.objectives) > 1:
            raise SettingsError("--algo cmaes optimises one objective; this space has "
                                f"{len(space.objectives)} ({', '.join(space.objectives)})")
        # Categorical knobs fall back to independent sampling; that is expected here.
        return samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return samplers.GPSampler(seed=seed)


_LOCK = type(threading.Lock())


class _SavableNSGAIISampler(optuna.samplers.NSGAIISampler):
    """Optuna's NSGA-II sampler, as Tune must save it with the searcher (at the start of
    every search and in each snapshot): Optuna 5.1 gives its genetic samplers a thread
    lock, which pickle cannot copy. The copy leaves the locks out and makes new ones."""

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if not isinstance(v, _LOCK)}
        state["_convsearch_locks"] = [k for k in self.__dict__ if k not in state]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        locks = state.pop("_convsearch_locks", [])
        self.__dict__.update(state)
        for name in locks:
            setattr(self, name, threading.Lock())


class _PointsSearcher(Searcher):
    """Hands out a fixed list of configs, each once, in order: a grid search whose points
    were enumerated (and infeasible ones dropped) before the search."""

    def __init__(self, points: list[dict[str, Any]]) -> None:
        super().__init__(metric=OBJECTIVE, mode="max")
        self.points = points
        self.next = 0

    def suggest(self, trial_id: str) -> dict | None:
        if self.next >= len(self.points):
            return Searcher.FINISHED
        self.next += 1
        return dict(self.points[self.next - 1])

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        pass

    def save(self, checkpoint_path: str) -> None:
        _dump({"points": self.points, "next": self.next}, checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        state = _load(checkpoint_path)
        self.points, self.next = state["points"], state["next"]


class _FeasibleSearcher(Searcher):
    """Wraps a Ray Tune searcher so that configs that cannot be trained never start.

    For each trial Tune asks for, it draws configs from the wrapped searcher under probe
    ids until one is feasible for the data, and counts each infeasible one by reason in
    `rejected`. An infeasible config is completed at once: as a COMPLETE trial that
    violates its constraint when the sampler models constraints (`_Proposal` recorded
    the violation; the objective value told with it is the mean of the feasible results
    so far, which neither rewards nor punishes the region in a model that reads values
    of infeasible trials, as GP's does), else as a FAILED one, which the sampler ignores
    rather than learning a made-up score. Tune's results for the trial are forwarded
    under its probe id.
    """

    #: Draws per trial before the space is declared to produce nothing trainable.
    MAX_DRAWS = 1000

    def __init__(self, inner: Searcher, space: SearchSpace, input_shape: tuple[int, ...],
                 num_classes: int, constrained: bool) -> None:
        super().__init__(metric=inner.metric, mode=inner.mode)
        self.inner = inner
        self.space = space
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.constrained = constrained
        self.rejected: Counter[str] = Counter()
        self._probe: dict[str, str] = {}
        self._draws = 0
        self._metrics = [OBJECTIVES[name].metric for name in space.objectives]
        #: Sums of the feasible trials' final values, and how many there were.
        self._sums = dict.fromkeys(self._metrics, 0.0)
        self._results = 0

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict,
                              **spec: Any) -> bool:
        return self.inner.set_search_properties(metric, mode, config, **spec)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return self.inner.set_max_concurrency(max_concurrent)

    def suggest(self, trial_id: str) -> dict | None:
        for _ in range(self.MAX_DRAWS):
            self._draws += 1
            probe = f"{trial_id}-{self._draws}"
            params = self.inner.suggest(probe)
            if params is None or not isinstance(params, dict):
                return params  # the inner searcher is finished or waiting
            problem = infeasibility(self.space, params, self.input_shape, self.num_classes)
            if problem is None:
                self._probe[trial_id] = probe
                return params
            self.rejected[problem] += 1
            if self.constrained:
                self.inner.on_trial_complete(probe, result=self.neutral_values())
            else:
                self.inner.on_trial_complete(probe, result=None, error=True)
        raise SearchFailed(f"{self.MAX_DRAWS} configs in a row could not be trained on "
                           f"{'x'.join(map(str, self.input_shape))} images; the last: "
                           f"{problem}")

    def neutral_values(self) -> dict[str, float]:
        """The mean final value of each objective over the feasible trials so far (the
        worst possible values before any finished)."""
        if not self._results:
            return worst_values(self.space.objectives)
        return {metric: total / self._results for metric, total in self._sums.items()}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self._probe:
            self.inner.on_trial_result(self._probe[trial_id], result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        if trial_id not in self._probe:
            return
        values = [(result or {}).get(metric) for metric in self._metrics]
        if all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            for metric, value in zip(self._metrics, values, strict=True):
                self._sums[metric] += float(value)
            self._results += 1
        self.inner.on_trial_complete(self._probe.pop(trial_id), result=result, error=error)

    def save(self, checkpoint_path: str) -> None:
        # One file: Tune writes it under a temporary name and renames it, so a side file
        # beside that name would be lost (and a restore would not find it).
        _dump({"rejected": self.rejected, "probe": self._probe, "draws": self._draws,
               "sums": self._sums, "results": self._results,
               "inner": _searcher_state(self.inner)}, checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        state = _load(checkpoint_path)
        _restore_searcher(self.inner, state["inner"])
        self.rejected, self._probe, self._draws = \
            state["rejected"], state["probe"], state["draws"]
        self._sums, self._results = state["sums"], state["results"]


def _searcher_state(searcher: Searcher) -> bytes:
    """A searcher's saved state as bytes (searchers only save to a path)."""
    with tempfile.TemporaryDirectory(prefix="convsearch-searcher-") as folder:
        path = os.path.join(folder, "state.pkl")
        searcher.save(path)
        with open(path, "rb") as file:
            return file.read()


def _restore_searcher(searcher: Searcher, state: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="convsearch-searcher-") as folder:
        path = os.path.join(folder, "state.pkl")
        with open(path, "wb") as file:
            file.write(state)
        searcher.restore(path)


def _dump(state: dict[str, Any], path: str) -> None:
    buffer = io.BytesIO()
    ray.cloudpickle.dump(state, buffer)
    with open(path, "wb") as file:
        file.write(buffer.getvalue())


def _load(path: str) -> dict[str, Any]:
    with open(path, "rb") as file:
        return ray.cloudpickle.load(file)
