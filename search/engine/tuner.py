"""Run a search as Ray Tune trials, or resume one: an Optuna sampler (TPE by default) or a
grid proposes configs, ASHA stops laggards, every epoch is checkpointed.

The pipeline (`search.pipeline`) calls `run_search` once per driver run, in the driver.
Each trial is one call of `search.engine.trainable.run_trial` in a Ray worker. Tune
events reach `SearchObserver`s (the MLflow tracker, the progress display) through
`TrialEvents`, in the driver, so workers never talk to MLflow.

A search survives its driver: Tune saves the experiment (trials, their latest
checkpoints, the search algorithm's state) after every checkpoint, and
`run_search(..., resume=True)` restores it with `Tuner.restore`: finished trials stay
finished, unfinished ones continue from their latest epoch, the algorithm keeps its
history, and the trial budget may grow. Trial identities are Ray's trial ids, which
restores keep; trial folders are named by them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.logger import JsonLoggerCallback

from search.data import Dataset
from search.engine.callbacks import TrialEvents
from search.engine.control import SearchControl, controlling
from search.engine.experiment import experiment_path, saved_trial_count, storage_uri
from search.engine.resources import (
    check_storage,
    cluster_nodes,
    plan_resources,
    ray_session,
)
from search.engine.searchers import make_search_algorithm, rejected_configs
from search.engine.signals import graceful_stop
from search.engine.stopping import SearchStopper, make_scheduler
from search.engine.trainable import make_trainable
from search.errors import SearchError, SearchFailed, SearchInterrupted
from search.metrics import OBJECTIVE
from search.objectives import choose_best, pareto_front
from search.observers import SearchObserver, SearchOutcome, TrialResult
from search.settings import SearchSettings, choose_algorithm, choose_scheduler
from search.space import SearchSpace
from search.space.sampling import grid_points, sample_population

logger = logging.getLogger(__name__)

#: Environment of the driver's Tune loop when not verbose. Tune's newer console output
#: prints an experiment banner even at verbose=0; its classic reporter stays silent.
#: Forced snapshots after each checkpoint are what we want (nothing reported is lost on
#: a crash), so the warning about their frequency is noise.
_QUIET_TUNE_ENV = {"RAY_AIR_NEW_OUTPUT": "0",
                   "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0"}

#: Tune's default loggers write every result three times per trial (JSON, CSV and
#: TensorBoard files) on the driver's loop, which the trial waits for at each epoch's
#: report: the TensorBoard writer alone took about 4 ms a result (a report took 8.5 ms
#: with them, 4.4 ms without; 60 reports, measured side by side). MLflow holds the
#: search's metrics, so only the JSON log is kept (`_new_tuner`): Ray's own record of
#: each trial, result by result. (A search started by an earlier convsearch keeps the
#: callbacks it was started with: resumed, it writes no JSON log.)
_TUNE_ENV = {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}


def run_search(space: SearchSpace, data: Dataset, settings: SearchSettings,
               observers: Sequence[SearchObserver] = (), *, resume: bool = False,
               verbose: bool = False, warm_start: Sequence[dict[str, Any]] = (),
               ) -> SearchOutcome:
    """Run the search's trials over `space` on `data` and return the best; with `resume`,
    continue the search of this name that an earlier driver left in `settings.storage`.
    A new search tries the `warm_start` configs first.

    Configs whose model cannot take the data (or exceeds the space's ``max_params``) never
    start: they are rejected when sampled, told to the search algorithm as the worst
    result, and counted in `SearchOutcome.infeasible`. Starts a local Ray instance (or
    joins `settings.ray_address`) and shuts it down after. SIGINT and SIGTERM stop the
    search cleanly (`search.engine.signals`).

    Raises:
        SettingsError: the settings ask for resources the cluster does not have, or for an
            algorithm the space or the installation cannot serve.
        SearchInterrupted: a signal stopped the search; it can be resumed.
        SearchFailed: no trial produced a model (every trial failed, or every sampled
            config was infeasible), or too many trials failed in a row.
    """
    scheduler = choose_scheduler(settings.scheduler, space.objectives)
    settings = dataclasses.replace(
        settings, scheduler=scheduler,
        algorithm=choose_algorithm(settings.algorithm, space.is_grid(), scheduler))
    points = None
    grid_infeasible: Counter[str] = Counter()
    if settings.algorithm == "grid":
        points, grid_infeasible = grid_points(space, data.input_shape, data.num_classes)
        budget = settings.trial_budget(grid_points=len(points))
    else:
        budget = settings.trial_budget()
        if scheduler == "pbt" and not resume:
            points = sample_population(space, data.input_shape, data.num_classes, budget,
                                       settings.seed)
    for key, value in {**_TUNE_ENV, **({} if verbose else _QUIET_TUNE_ENV)}.items():
        os.environ.setdefault(key, value)
    control = SearchControl(settings=settings, observers=list(observers), budget=budget,
                            restoring=saved_trial_count(settings) if resume else 0)
    with ray_session(settings, verbose=verbose), controlling(control), graceful_stop(control):
        nodes = cluster_nodes()
        check_storage(settings, nodes)
        resources = plan_resources(settings, nodes, budget)
        control.concurrency = resources.concurrency
        logger.info("%s trials; each gets %s CPU(s), %s GPU(s); %s at a time", budget,
                    resources.cpus, resources.gpus, resources.concurrency)
        trainable = make_trainable(data, settings, resources.cpus, resources.gpus,
                                   space.objectives)
        if resume:
            tuner = tune.Tuner.restore(experiment_path(settings), trainable,
                                       resume_unfinished=True, resume_errored=False,
                                       restart_errored=False)
        else:
            search_alg, _ = make_search_algorithm(space, settings, data.input_shape,
                                                  data.num_classes, points,
                                                  control.concurrency, warm_start)
            tuner = _new_tuner(trainable, search_alg, settings, space, verbose)
        try:
            tuner.fit()
        except SearchError:
            raise
        except (ray.exceptions.RayError, tune.TuneError) as exc:
            raise SearchFailed(f"Ray Tune stopped the search: {exc}") from exc
    trials = sorted(control.ended.values(), key=lambda t: t.number)
    if control.interrupted is not None:
        raise SearchInterrupted(control.interrupted, trials)
    if control.stop_reason == "failures":
        error, count = control.most_common_failure()
        raise SearchFailed(f"{len(control.failure_streak)} trials in a row failed, so the "
                           f"search stopped; the most common error ({count}x): {error}")
    infeasible = grid_infeasible + rejected_configs(control.generator)
    return _outcome(control, trials, infeasible, space)


def _new_tuner(trainable: Any, search_alg: Any, settings: SearchSettings,
               space: SearchSpace, verbose: bool) -> tune.Tuner:
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            metric=OBJECTIVE,
            mode="max",
            search_alg=search_alg,
            scheduler=make_scheduler(settings, space),
            # The search algorithm ends the search at its budget (see TrialGenerator),
            # which a resumed search may raise; Tune's own count could not change.
            num_samples=-1,
            trial_dirname_creator=_trial_dirname,
            # A worker keeps TensorFlow loaded from trial to trial (each trial clears
            # the Keras session and reseeds): 9 short trials took 35.6 s instead of
            # 64.6 s on 2 CPUs, measured side by side.
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=settings.name,
            storage_path=storage_uri(settings.storage),
            callbacks=[TrialEvents(settings.name), JsonLoggerCallback()],
            # Every checkpoint holds the trial's best and latest epoch, so the newest is
            # enough; keeping two halves the experiment snapshots that Tune forces after
            # checkpoints (it forces one every num_to_keep of them). Under PBT a trial
            # restarts from another's checkpoint, which must not be deleted meanwhile by
            # that trial's newer ones: all are kept.
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=None if settings.scheduler == "pbt" else 2),
            # Retries restart a trial whose worker died from its latest checkpoint.
            failure_config=tune.FailureConfig(max_failures=settings.max_failures),
            stop=SearchStopper(settings.name),
            verbose=1 if verbose else 0,
        ),
    )


def _trial_dirname(trial: Any) -> str:
    return f"trial-{trial.trial_id}"


def _outcome(control: SearchControl, trials: list[TrialResult], infeasible: Counter[str],
             space: SearchSpace) -> SearchOutcome:
    # The best trial is chosen among those whose model was saved: a score without the
    # model that earned it is of no use to the search.
    scored = [t for t in trials if t.status != "failed" and t.best_val_accuracy is not None
              and t.trial_id in control.checkpoints]
    if not scored:
        errors = [t.error for t in trials if t.error]
        detail = f"; first error: {errors[0]}" if errors else ""
        raise SearchFailed(f"none of the {len(trials)} trials produced a model{detail}")
    best = choose_best(scored, space.objectives, space.trade_off)
    pareto = pareto_front(scored, space.objectives) if len(space.objectives) > 1 else []
    checkpoint = control.checkpoints[best.trial_id]
    # Local storage is read in place; remote storage (s3://...) is downloaded.
    remote = "://" in storage_uri(control.settings.storage)
    folder = checkpoint.to_directory() if remote else checkpoint.path
    return SearchOutcome(trials=trials, best=best, best_checkpoint=Path(folder),
                         experiment_path=experiment_path(control.settings),
                         infeasible=infeasible, pareto=pareto,
                         stop_reason=control.stop_reason, best_checkpoint_is_copy=remote)
