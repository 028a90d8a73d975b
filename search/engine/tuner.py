"""Run a search as Ray Tune trials: an Optuna sampler (TPE by default) or a grid proposes
configs, ASHA stops laggards.

`search.run` calls `run_search` once per search, in the driver. This is the only module
that imports Ray. Each trial is one call of `_run_trial` in a Ray worker: it builds the
config's CNN, trains it, and reports every epoch to Tune (with a checkpoint whenever the
epoch is the trial's best). Tune events reach `SearchObserver`s (the MLflow tracker, the
progress display) through `_ObserverCallback`, in the driver, so workers never talk to
MLflow and the tracking store has a single writer.

Trial identities are Ray's trial ids, which Tune keeps when an experiment is restored;
trial folders are named by them too.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
import os
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch
from ray.tune.stopper import Stopper

from search.data import Dataset
from search.errors import SearchError, SearchFailed, SettingsError
from search.metrics import EPOCH_METRICS, LATENCY, MONITOR, OBJECTIVE, PARAMS
from search.objectives import OBJECTIVES, choose_best, pareto_front, worst_values
from search.observers import SearchObserver, SearchOutcome, TrialResult
from search.settings import SearchSettings
from search.space import SearchSpace
from search.space.sampling import grid_points, infeasibility, suggest_params
from search.trial.config import TrialConfig
from search.trial.train import EpochReport

logger = logging.getLogger(__name__)

#: ASHA keeps the top 1/REDUCTION_FACTOR of trials at each rung.
ASHA_REDUCTION_FACTOR = 3

#: Observers of the searches this driver process is running, by search name. Tune pickles
#: its callbacks into the experiment folder (so `Tuner.restore` can rebuild them); the
#: callback therefore holds only the search's name and looks its observers up here at each
#: event, so a restored search reports to the observers of the driver that restored it.
_ACTIVE_OBSERVERS: dict[str, list[SearchObserver]] = {}

#: Reported with every epoch: whether the trial ended there by its own rule.
_LAST_EPOCH = "last_epoch"

#: Environment for trial workers: TensorFlow's C++ start-up chatter off.
_WORKER_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}
#: Environment of the driver's Tune loop when not verbose. Tune's newer console output
#: prints an experiment banner even at verbose=0; its classic reporter stays silent.
#: Forced snapshots after each checkpoint are what we want (nothing reported is lost on
#: a crash), so the warning about their frequency is noise.
_QUIET_TUNE_ENV = {"RAY_AIR_NEW_OUTPUT": "0",
                   "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0"}


@dataclass(frozen=True)
class TrialResources:
    """What each trial gets, and how many run at once."""

    cpus: int
    gpus: float
    concurrency: int


def run_search(space: SearchSpace, data: Dataset, settings: SearchSettings,
               observers: Sequence[SearchObserver] = (), *, verbose: bool = False,
               ) -> SearchOutcome:
    """Run the search's trials over `space` on `data` and return the best.

    Configs whose model cannot take the data (or exceeds the space's ``max_params``) never
    start: they are rejected when sampled, told to the search algorithm as the worst
    result, and counted in `SearchOutcome.infeasible`. Starts a local Ray instance (or
    joins `settings.ray_address`) and shuts it down after.

    Raises:
        SettingsError: the settings ask for resources the cluster does not have, or for an
            algorithm the space or the installation cannot serve.
        SearchFailed: no trial produced a model (every trial failed, or every sampled
            config was infeasible).
    """
    if settings.algorithm == "grid":
        points, infeasible = grid_points(space, data.input_shape, data.num_classes)
        budget = settings.trial_budget(grid_points=len(points))
        search_alg: Any = _PointsSearcher(points[:budget])
    else:
        budget = settings.trial_budget()
        searcher = _FeasibleSearcher(_optuna_searcher(space, settings), space,
                                     data.input_shape, data.num_classes)
        search_alg, infeasible = searcher, searcher.rejected
    if not verbose:
        for key, value in _QUIET_TUNE_ENV.items():
            os.environ.setdefault(key, value)
    with _ray_session(settings, verbose=verbose):
        resources = plan_resources(settings, ray.cluster_resources(), budget)
        logger.info("%s trials; each gets %s CPU(s), %s GPU(s); %s at a time", budget,
                    resources.cpus, resources.gpus, resources.concurrency)
        trainable = tune.with_resources(
            tune.with_parameters(_run_trial, data=data, settings=settings,
                                 cpu_threads=resources.cpus, objectives=space.objectives),
            {"cpu": resources.cpus, "gpu": resources.gpus},
        )
        callback = _ObserverCallback(settings.name)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                metric=OBJECTIVE,
                mode="max",
                search_alg=search_alg,
                scheduler=_scheduler(settings),
                num_samples=budget,
                max_concurrent_trials=resources.concurrency,
                trial_dirname_creator=_trial_dirname,
                # A worker keeps TensorFlow loaded from trial to trial (each trial clears
                # the Keras session and reseeds): 9 short trials took 35.6 s instead of
                # 64.6 s on 2 CPUs, measured side by side.
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=settings.name,
                storage_path=_storage_uri(settings.storage),
                callbacks=[callback],
                # Trials report a checkpoint only when an epoch beats their best, so the
                # latest checkpoint is the best one: keep just that.
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                failure_config=tune.FailureConfig(max_failures=0),
                stop=_EpochBudget(settings.epoch_budget) if settings.epoch_budget else None,
                verbose=1 if verbose else 0,
            ),
        )
        _ACTIVE_OBSERVERS[settings.name] = list(observers)
        try:
            grid = tuner.fit()
        except SearchError:
            raise
        except (ray.exceptions.RayError, tune.TuneError) as exc:
            raise SearchFailed(f"Ray Tune stopped the search: {exc}") from exc
        finally:
            _ACTIVE_OBSERVERS.pop(settings.name, None)
        return _outcome(grid, callback.results(), infeasible, space)


def plan_resources(settings: SearchSettings, cluster: dict[str, float],
                   trials: int | None = None) -> TrialResources:
    """Split the cluster between trials: one GPU per trial when there are GPUs (or the
    fraction asked for), else one CPU per concurrent slot.

    Raises:
        SettingsError: more GPUs per trial than the cluster has.
    """
    total_cpus = int(cluster.get("CPU", 1))
    total_gpus = cluster.get("GPU", 0.0)
    gpus = settings.gpus_per_trial
    if gpus is None:
        gpus = 1.0 if total_gpus >= 1 else 0.0
    if gpus > total_gpus:
        raise SettingsError(f"--gpus-per-trial {gpus:g} asks for more GPUs than Ray sees "
                            f"({total_gpus:g})")
    slots = math.floor(total_gpus / gpus + 1e-9) if gpus else total_cpus
    trials = trials or settings.trial_budget()
    concurrency = max(1, min(settings.concurrency or slots, slots, trials))
    cpus = max(1, total_cpus // concurrency)
    return TrialResources(cpus=cpus, gpus=gpus, concurrency=concurrency)


def _run_trial(params: dict[str, Any], *, data: Dataset, settings: SearchSettings,
               cpu_threads: int, objectives: tuple[str, ...]) -> None:
    """One trial, inside a Ray worker: build, train, report each epoch to Tune.

    Reports, with every epoch, where the trial's own time went so far (``time_*``
    seconds): setup (TensorFlow start-up in a fresh worker), model build, and reporting
    (`tune.report`, which also persists checkpoints).
    """
    started = time.perf_counter()
    from search.trial.train import configure_tensorflow

    configure_tensorflow(cpu_threads)
    import keras

    from search.trial.model import build_model
    from search.trial.train import inference_latency_ms, train

    keras.backend.clear_session()
    keras.utils.set_random_seed(settings.seed)
    config = TrialConfig.from_params(params)
    timing = {"time_setup_s": time.perf_counter() - started, "time_report_s": 0.0}
    started = time.perf_counter()
    model = build_model(config, data.input_shape, data.num_classes, data.value_scale)
    timing["time_build_s"] = time.perf_counter() - started
    size: dict[str, float] = {PARAMS: float(model.count_params())}
    if "latency_ms" in objectives:  # timing costs a little; only when it is optimised
        size[LATENCY] = inference_latency_ms(model, data.x_val)

    def report(epoch: EpochReport) -> None:
        checkpoint = (tune.Checkpoint.from_directory(epoch.checkpoint_dir)
                      if epoch.checkpoint_dir else None)
        started = time.perf_counter()
        tune.report({**epoch.metrics, **size, **timing, "epoch": epoch.epoch,
                     _LAST_EPOCH: epoch.last}, checkpoint=checkpoint)
        timing["time_report_s"] += time.perf_counter() - started

    with tempfile.TemporaryDirectory(prefix="convsearch-trial-") as workdir:
        train(model, config, data, max_epochs=settings.max_epochs, patience=settings.patience,
              checkpoint_dir=Path(workdir), on_epoch=report, shuffle_seed=settings.seed)


def _optuna_searcher(space: SearchSpace, settings: SearchSettings) -> OptunaSearch:
    metrics = [OBJECTIVES[name].metric for name in space.objectives]
    modes = [OBJECTIVES[name].mode for name in space.objectives]
    if len(metrics) == 1:  # a single metric keeps Optuna's per-epoch reports
        metrics, modes = metrics[0], modes[0]
    return OptunaSearch(space=functools.partial(suggest_params, space), metric=metrics,
                        mode=modes, sampler=_sampler(settings.algorithm, settings.seed, space))


def _sampler(algorithm: str, seed: int, space: SearchSpace) -> optuna.samplers.BaseSampler:
    """Optuna's sampler for `algorithm`, seeded.

    Raises:
        SettingsError: the sampler needs a package that is not installed.
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
        return samplers.NSGAIISampler(seed=seed)
    needs = {"cmaes": ("cmaes", "pip install cmaes"), "gp": ("torch", "pip install -e '.[gp]'")}
    module, how = needs[algorithm]
    if importlib.util.find_spec(module) is None:
        raise SettingsError(f"--algo {algorithm} needs the {module} package ({how})")
    if algorithm == "cmaes":
        if len(space.objectives) > 1:
            raise SettingsError("--algo cmaes optimises one objective; this space has "
                                f"{len(space.objectives)} ({', '.join(space.objectives)})")
        # Categorical knobs fall back to independent sampling; that is expected here.
        return samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return samplers.GPSampler(seed=seed)


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
        with open(checkpoint_path, "wb") as file:
            ray.cloudpickle.dump({"points": self.points, "next": self.next}, file)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as file:
            state = ray.cloudpickle.load(file)
        self.points, self.next = state["points"], state["next"]


class _FeasibleSearcher(Searcher):
    """Wraps a Ray Tune searcher so that configs that cannot be trained never start.

    For each trial Tune asks for, it draws configs from the wrapped searcher under probe
    ids until one is feasible for the data. Each infeasible one is completed at once with
    the worst possible score, so the algorithm learns to avoid that region, and counted by
    reason in `rejected`. Tune's results for the trial are forwarded under its probe id.
    """

    #: Draws per trial before the space is declared to produce nothing trainable.
    MAX_DRAWS = 1000

    def __init__(self, inner: Searcher, space: SearchSpace, input_shape: tuple[int, ...],
                 num_classes: int) -> None:
        super().__init__(metric=inner.metric, mode=inner.mode)
        self.inner = inner
        self.space = space
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.rejected: Counter[str] = Counter()
        self._probe: dict[str, str] = {}
        self._draws = 0

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
            self.inner.on_trial_complete(probe, result=worst_values(self.space.objectives))
        raise SearchFailed(f"{self.MAX_DRAWS} configs in a row could not be trained on "
                           f"{'x'.join(map(str, self.input_shape))} images; the last: "
                           f"{problem}")

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self._probe:
            self.inner.on_trial_result(self._probe[trial_id], result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        if trial_id in self._probe:
            self.inner.on_trial_complete(self._probe.pop(trial_id), result=result, error=error)

    def save(self, checkpoint_path: str) -> None:
        self.inner.save(checkpoint_path + ".inner")
        with open(checkpoint_path, "wb") as file:
            ray.cloudpickle.dump({"rejected": self.rejected, "probe": self._probe,
                                  "draws": self._draws}, file)

    def restore(self, checkpoint_path: str) -> None:
        self.inner.restore(checkpoint_path + ".inner")
        with open(checkpoint_path, "rb") as file:
            state = ray.cloudpickle.load(file)
        self.rejected, self._probe, self._draws = \
            state["rejected"], state["probe"], state["draws"]


def _scheduler(settings: SearchSettings) -> Any:
    if settings.scheduler == "none":
        return FIFOScheduler()
    return ASHAScheduler(time_attr="training_iteration", max_t=settings.max_epochs,
                         grace_period=settings.grace_epochs,
                         reduction_factor=ASHA_REDUCTION_FACTOR)


class _EpochBudget(Stopper):
    """Stops the whole search once its trials have reported `budget` epochs in all, so
    searches can be compared at the same training cost. Trials running then stop after
    their current epoch."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.epochs: dict[str, int] = {}

    def __call__(self, trial_id: str, result: dict) -> bool:
        # Epochs, not results: Tune repeats a trial's last result when its function ends.
        self.epochs[trial_id] = int(result.get("training_iteration", 0))
        return False

    def stop_all(self) -> bool:
        return sum(self.epochs.values()) >= self.budget


def _trial_dirname(trial: Any) -> str:
    return f"trial-{trial.trial_id}"


def _storage_uri(storage: Path | str) -> str:
    text = str(storage)
    return text if "://" in text else str(Path(text).resolve())


@contextmanager
def _ray_session(settings: SearchSettings, *, verbose: bool) -> Iterator[None]:
    """Use the Ray instance already running in this process, or start one for the search."""
    if ray.is_initialized():
        yield
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    options: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": verbose,
        "logging_level": logging.INFO if verbose else logging.ERROR,
        "runtime_env": {"env_vars": _WORKER_ENV},
    }
    if settings.ray_address:
        options["address"] = settings.ray_address
    else:
        options["num_cpus"] = settings.cpus or os.cpu_count() or 1
    try:
        ray.init(**options)
    except (ConnectionError, ray.exceptions.RayError, ValueError) as exc:
        raise SettingsError(f"cannot start or reach Ray ({settings.ray_address or 'local'}): "
                            f"{exc}") from exc
    try:
        yield
    finally:
        ray.shutdown()


def _outcome(grid: tune.ResultGrid, trials: list[TrialResult], infeasible: Counter[str],
             space: SearchSpace) -> SearchOutcome:
    scored = [t for t in trials if t.status != "failed" and t.best_val_accuracy is not None]
    if not scored:
        errors = [t.error for t in trials if t.error]
        detail = f"; first error: {errors[0]}" if errors else ""
        raise SearchFailed(f"none of the {len(trials)} trials produced a model{detail}")
    best = choose_best(scored, space.objectives, space.trade_off)
    pareto = pareto_front(scored, space.objectives) if len(space.objectives) > 1 else []
    checkpoints = {r.metrics.get("trial_id"): r.checkpoint for r in grid if r.metrics}
    checkpoint = checkpoints.get(best.trial_id)
    if checkpoint is None:
        raise SearchFailed(f"best trial {best.trial_id} left no checkpoint")
    # Storage is a local folder today (`--storage`); remote storage will need
    # `checkpoint.to_directory()` here.
    return SearchOutcome(trials=trials, best=best, best_checkpoint=Path(checkpoint.path),
                         experiment_path=grid.experiment_path, infeasible=infeasible,
                         pareto=pareto)


def _error_message(trial: Any) -> str:
    """One line for a failed trial: the original exception, not Ray's wrapper.

    Tune writes the error into the trial's local folder before it calls callbacks (the
    copy in storage may come later), so read it from there.
    """
    pickled = trial.pickled_error_file
    if pickled and Path(pickled).is_file():
        with open(pickled, "rb") as file:
            error = ray.cloudpickle.load(file)
        cause = getattr(error, "cause", None) or error
        return f"{type(cause).__name__}: {cause}".strip().splitlines()[0]
    text = Path(trial.error_file).read_text() if trial.error_file else ""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


class _ObserverCallback(tune.Callback):
    """Forwards Tune's trial events to convsearch observers, in the driver."""

    def __init__(self, search_name: str) -> None:
        self.search_name = search_name
        self._results: dict[str, TrialResult] = {}
        self._params: dict[str, dict[str, Any]] = {}

    @property
    def observers(self) -> list[SearchObserver]:
        return _ACTIVE_OBSERVERS.get(self.search_name, [])

    def results(self) -> list[TrialResult]:
        return list(self._results.values())

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        params = dict(trial.config)
        self._params[trial.trial_id] = params
        for observer in self.observers:
            observer.trial_started(trial.trial_id, params)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        metrics = {k: float(result[k]) for k in (*EPOCH_METRICS, OBJECTIVE, PARAMS, LATENCY)
                   if k in result}
        metrics.update({k: float(v) for k, v in result.items() if k.startswith("time_")})
        if MONITOR not in metrics:
            return
        for observer in self.observers:
            observer.epoch_ended(trial.trial_id, int(result["training_iteration"]), metrics)

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any,
                      **info: Any) -> None:
        with checkpoint.as_directory() as directory:
            for observer in self.observers:
                observer.checkpoint_saved(trial.trial_id, Path(directory))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # Tune marks a scheduler-stopped trial's last result done too, so ask the trial.
        last = trial.last_result or {}
        status = "completed" if last.get(_LAST_EPOCH) else "stopped"
        self._end(trial, status, error=None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, "failed", error=_error_message(trial))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        # Tune stops the trials still running when the whole search stops (an epoch
        # budget, say) without a completion event; they end here, as stopped.
        for trial in trials:
            if trial.trial_id in self._params and trial.trial_id not in self._results:
                self._end(trial, "stopped", error=None)

    def _end(self, trial: Any, status: str, error: str | None) -> None:
        last = trial.last_result or {}
        result = TrialResult(
            trial_id=trial.trial_id,
            params=self._params.get(trial.trial_id, dict(trial.config)),
            status=status,  # type: ignore[arg-type]
            epochs=int(last.get("training_iteration", 0) or 0),
            best_val_accuracy=last.get(OBJECTIVE),
            error=error,
            values={k: float(last[k]) for k in (OBJECTIVE, PARAMS, LATENCY) if k in last},
        )
        self._results[trial.trial_id] = result
        for observer in self.observers:
            observer.trial_ended(result)
