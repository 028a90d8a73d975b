"""Run a search from a `SearchRequest` to a `SearchReport`: the one entry point that the
CLI, ``--resume``, the benchmarks and Ray Jobs or schedules call.

Two steps, so callers can report between them: `prepare` checks everything that is cheap
to check (the space file, the data, whether the space's models fit the data) and resolves
the request (algorithm, trial budget, tracking store, model name); `execute` runs the
prepared search under the search's driver lock, with the MLflow tracker fed off the
trials' event loop, evaluates the best model on the test split and registers it. With
``resume``, `execute` continues the search of that name instead (`load_request` reads
back what it recorded). A search stopped by a signal raises `SearchInterrupted` after
closing its MLflow runs as KILLED; it never moves the ``champion`` alias. A finished
search's best model takes that alias only if it beats the champion on the same test split
(`search.champion`).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from search.champion import ChampionDecision, PromotionPolicy, decide
from search.data import Dataset, load_dataset
from search.errors import (
    DataError,
    SearchInterrupted,
    SettingsError,
    TrackingError,
    first_line,
)
from search.notify import Notifier, search_message
from search.observers import SearchObserver, SearchOutcome
from search.request import SearchRequest
from search.settings import choose_algorithm, choose_scheduler, require_algorithm_packages
from search.space import SearchSpace, load_space, parse_space
from search.space.sampling import SpaceSurvey, grid_points, require_feasible

if TYPE_CHECKING:
    from search.tracking.tracker import RegisteredModel

logger = logging.getLogger(__name__)

#: Seconds the end of a search waits for queued MLflow writes (a store that is down);
#: shorter when a signal stopped it (Kubernetes allows 30 s after SIGTERM by default).
TRACKING_DRAIN_TIMEOUT_S = 120.0
INTERRUPTED_DRAIN_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class PreparedSearch:
    """A request checked and resolved, with its space and data loaded."""

    #: The resolved request (algorithm, budget, tracking store, model name, space text
    #: and data fingerprint filled in): what the search records.
    request: SearchRequest
    space: SearchSpace
    data: Dataset
    survey: SpaceSurvey

    @property
    def settings(self) -> Any:
        return self.request.settings


@dataclass(frozen=True)
class SearchReport:
    """What a finished search produced, and where it is recorded."""

    outcome: SearchOutcome
    test_metrics: dict[str, float]
    registered: RegisteredModel
    tracking_uri: str
    #: The parent run's page in the MLflow UI (after the UI's address).
    run_url: str
    #: Trial events MLflow could not take before the search ended, one line per trial.
    unrecorded: list[str] = field(default_factory=list)


def prepare(request: SearchRequest) -> PreparedSearch:
    """Load and check the space and the data, and resolve the request.

    Raises:
        SpaceError: the space file is invalid, or none of its models fits the data.
        DataError: the data cannot be loaded, or it changed since a resumed search began.
        SettingsError: the settings do not fit the space, or need a package that is not
            installed.
    """
    from search.tracking.uri import resolve_tracking_uri

    if request.space_text is not None:
        space = parse_space(request.space_text, path=request.space)
    else:
        space = load_space(request.space)
    spec = request.data
    data = load_dataset(spec.source, limit=spec.limit, image_size=spec.image_size,
                        color_mode=spec.color_mode)
    fingerprint = data.fingerprint()
    if request.data_fingerprint not in (None, fingerprint):
        raise DataError(f"the data of search {request.settings.name!r} changed since it "
                        f"started ({spec.source}: digest {fingerprint}, was "
                        f"{request.data_fingerprint}); a resumed search needs the same data")
    survey = require_feasible(space, data.input_shape, data.num_classes)
    settings = request.settings
    scheduler = choose_scheduler(settings.scheduler, space.objectives)
    algorithm = choose_algorithm(settings.algorithm, space.is_grid(), scheduler)
    require_algorithm_packages(algorithm)
    if request.warm_start and (algorithm == "grid" or scheduler == "pbt"):
        raise SettingsError(f"--warm-start seeds an Optuna sampler; --algo {algorithm} with "
                            f"--scheduler {scheduler} fixes every config up front")
    grid_size = len(grid_points(space, data.input_shape, data.num_classes)[0]) \
        if algorithm == "grid" else None
    storage = settings.storage if "://" in str(settings.storage) \
        else Path(settings.storage).resolve()  # recorded so, it is found from anywhere
    settings = dataclasses.replace(settings, algorithm=algorithm, storage=storage,
                                   scheduler=scheduler,
                                   trials=settings.trial_budget(grid_size))
    resolved = dataclasses.replace(
        request, settings=settings, space=str(space.path or request.space),
        space_text=space.text, data_fingerprint=fingerprint,
        tracking_uri=resolve_tracking_uri(request.tracking_uri),
        model_name=request.model_name or f"convsearch-{data.slug}")
    return PreparedSearch(request=resolved, space=space, data=data, survey=survey)


def load_request(name: str, storage: Path | str) -> SearchRequest:
    """What the search `name` recorded in `storage` when it started.

    Raises:
        SettingsError: no such search, or its record cannot be read.
    """
    from search.engine.experiment import read_request

    record = read_request(name, storage)
    try:
        return SearchRequest.from_record(record)
    except (KeyError, TypeError, ValueError) as exc:
        raise SettingsError(f"the record of search {name!r} cannot be read: {exc}") from exc


def execute(prepared: PreparedSearch, observers: Sequence[SearchObserver] = (), *,
            resume: bool = False, verbose: bool = False) -> SearchReport:
    """Run (or with `resume`, continue) the prepared search to its registered model.

    Raises:
        SettingsError: the search's name is taken (or, resuming, unknown), or another
            driver runs it.
        TrackingError: the MLflow store cannot be used.
        SearchInterrupted: a signal stopped the search; MLflow's runs are closed KILLED.
        SearchFailed: no trial produced a model, or too many failed in a row.
    """
    from search.engine.experiment import (
        driver_lock,
        has_experiment_state,
        mark_finished,
        write_request,
    )
    from search.engine.tuner import run_search

    request, settings, space, data = (prepared.request, prepared.settings, prepared.space,
                                      prepared.data)
    with driver_lock(settings):
        previous = _check_name_and_budget(settings, resume)
        with _tracker_and_ray(request, settings, verbose) as (tracker, ray_up):
            from search.tracking.writer import BackgroundWriter

            warm_source, warm_start = None, []
            if request.warm_start and not resume:
                warm_source, warm_start = tracker.warm_start_configs(request.warm_start,
                                                                     space)
            tracker.start_search(settings, space, data, resume=resume)
            notifier = Notifier(request.notify)
            writer: BackgroundWriter | None = None
            try:
                write_request(settings, request.to_record())
                tracker.note_budget(settings.trials, extended_from=previous)
                if warm_source:
                    tracker.note_warm_start(warm_source)
                writer = BackgroundWriter(tracker)
                outcome = run_search(space, data, settings, [writer, *observers],
                                     resume=resume and has_experiment_state(settings),
                                     verbose=verbose, warm_start=warm_start)
                unrecorded = writer.close(TRACKING_DRAIN_TIMEOUT_S)
                ray_up.release()  # Ray goes down while the best model is evaluated
                test_metrics, registered = _evaluate_and_register(tracker, prepared,
                                                                  outcome)
                if outcome.stop_reason is None:  # a budget that ran out can be resumed
                    mark_finished(settings)
            except BaseException as exc:
                _close_after_failure(tracker, writer, exc)
                stopped = isinstance(exc, SearchInterrupted | KeyboardInterrupt)
                notifier.send(search_message(
                    settings.name, "stopped" if stopped else "failed",
                    detail=str(exc) or type(exc).__name__,
                    run_link=_run_link(request.tracking_uri, tracker.run_url())))
                notifier.wait()
                raise
            notifier.send(search_message(
                settings.name, "finished", test_accuracy=test_metrics.get("test_accuracy"),
                champion={"changed": registered.champion, "version": registered.version,
                          "reason": registered.decision, "model": registered.name},
                run_link=_run_link(request.tracking_uri, tracker.run_url())))
            notifier.wait()
    return SearchReport(outcome=outcome, test_metrics=test_metrics, registered=registered,
                        tracking_uri=request.tracking_uri, run_url=tracker.run_url(),
                        unrecorded=unrecorded)


def _evaluate_and_register(tracker: Any, prepared: PreparedSearch,
                           outcome: SearchOutcome) -> tuple[dict[str, float], Any]:
    """The best model's test metrics, the search's report and figures, and the model
    registered as challenger (and champion, if it beats the champion)."""
    from search.tracking.tracker import INSIGHT_DIR
    from search.trial.robustness import robustness_metrics
    from search.trial.train import evaluate, load_checkpoint, predict_classes

    request, space, data = prepared.request, prepared.space, prepared.data
    model = load_checkpoint(outcome.best_checkpoint)
    if outcome.best_checkpoint_is_copy:
        shutil.rmtree(outcome.best_checkpoint, ignore_errors=True)
    test_metrics = {**evaluate(model, data), **robustness_metrics(
        model, data.x_test, data.y_test, data.value_scale, data.value_range)}
    predicted = predict_classes(model, data.x_test)
    tracker.log_search_report(outcome, space, prepared.settings.seed, test_metrics,
                              data.y_test, predicted, data.class_names)
    tracker.log_figures(_insight(model, data), INSIGHT_DIR)
    decision = _challenge(tracker, request.model_name, predicted, data, request.promotion)
    registered = tracker.finish_search(outcome, space, test_metrics, model, data.x_test[:5],
                                       request.model_name, decision)
    return test_metrics, registered


def _check_name_and_budget(settings: Any, resume: bool) -> int | None:
    """A new search needs a new name; a resumed one an existing name and a budget that
    grows or is not finished yet. Returns the budget the search had recorded.

    Raises:
        SettingsError: the name is taken (or, resuming, unknown), or the budget cannot be.
    """
    from search.engine.experiment import finished_budget, has_request

    started_before = has_request(settings)
    if resume and not started_before:
        raise SettingsError(f"no search named {settings.name!r} in {settings.storage}; "
                            "give the --storage it ran with")
    if started_before and not resume:
        raise SettingsError(f"a search named {settings.name!r} already exists in "
                            f"{settings.storage}; resume it with --resume "
                            f"{settings.name}, or choose another --name")
    previous = _recorded_budget(settings) if resume and started_before else None
    if resume and previous is not None and settings.trials < previous:
        raise SettingsError(f"--trials {settings.trials} would shrink search "
                            f"{settings.name!r} ({previous} trials); --resume can only "
                            "extend a search")
    done = finished_budget(settings) if resume else None
    if done is not None and settings.trials <= done:
        raise SettingsError(f"search {settings.name!r} already finished its {done} "
                            f"trials; give --trials N (more than {done}) to extend it")
    return previous


@contextmanager
def _tracker_and_ray(request: SearchRequest, settings: Any,
                     verbose: bool) -> Iterator[tuple[Any, Any]]:
    """The MLflow tracker and the Ray session. Starting a local Ray instance mostly waits
    for its processes (2.3 s here, 2 CPUs); MLflow's import (about 1 s) and a new SQLite
    store's tables (0.7 s) fit in that wait, so a thread imports MLflow and opens the
    store meanwhile. This thread first imports what Ray's start would, so that the two
    threads never import at the same time (see `import_ray_start_modules`); where it
    cannot (another Ray version), or when joining a cluster (quick), the store is
    opened first, here.

    Raises:
        TrackingError: the MLflow store cannot be used.
        SettingsError: Ray cannot be started or reached.
    """
    # Importing search.tracking sets MLflow's environment: here, in this thread, since
    # Ray's start reads the environment from its own threads.
    import search.tracking  # noqa: F401
    from search.engine.resources import (
        import_ray_start_modules,
        ray_session,
        starts_local_instance,
    )

    if not (starts_local_instance(settings) and import_ray_start_modules()):
        tracker = _open_tracker(request.tracking_uri, request.experiment)
        with ray_session(settings, verbose=verbose) as ray_up:
            yield tracker, ray_up
        return
    opening: Future[Any] = Future()
    # A daemon thread: a stopped search's process may exit while a tracking server
    # that does not answer keeps the thread waiting.
    thread = threading.Thread(target=_open_tracker_into, name="convsearch-mlflow",
                              args=(opening, request.tracking_uri, request.experiment),
                              daemon=True)
    thread.start()
    try:
        with ray_session(settings, verbose=verbose) as ray_up:
            yield opening.result(), ray_up
    except (KeyboardInterrupt, SearchInterrupted):
        raise  # Ctrl+C or SIGTERM does not wait for the store
    except BaseException:
        thread.join()  # no other import while the thread's may still run
        raise


def _open_tracker(tracking_uri: str, experiment: str | None) -> Any:
    from search.tracking.tracker import DEFAULT_EXPERIMENT, SearchTracker

    return SearchTracker(tracking_uri, experiment or DEFAULT_EXPERIMENT)


def _open_tracker_into(opening: Future[Any], tracking_uri: str,
                       experiment: str | None) -> None:
    try:
        opening.set_result(_open_tracker(tracking_uri, experiment))
    except BaseException as exc:
        opening.set_exception(exc)


def _challenge(tracker: Any, model_name: str, predicted: Any, data: Dataset,
               policy: PromotionPolicy) -> ChampionDecision:
    """Score the registered champion on this search's test split beside the new best
    model (its `predicted` classes) and decide which is champion."""
    from search.trial.train import predict_classes

    found = tracker.champion(model_name)
    if found is None:
        return decide(data.y_test, predicted, None, policy)
    version, champion = found
    if champion is None:
        return decide(data.y_test, predicted, None, policy, version,
                      champion_unusable="its model cannot be loaded")
    try:
        theirs = predict_classes(champion, data.x_test)
    except Exception as exc:  # another input shape, another number of classes
        return decide(data.y_test, predicted, None, policy, version,
                      champion_unusable=first_line(exc))
    if int(np.max(theirs, initial=0)) >= data.num_classes:
        return decide(data.y_test, predicted, None, policy, version,
                      champion_unusable="it predicts other classes")
    return decide(data.y_test, predicted, theirs, policy, version)


def _run_link(tracking_uri: str, run_url: str) -> str | None:
    """A link to the parent run for a server store; a file store has no address."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"{tracking_uri.rstrip('/')}/{run_url}"
    return None


def _insight(model: Any, data: Dataset) -> dict[str, Any]:
    """What the best model learned, as figures; none if they cannot be drawn (they never
    cost the search its result)."""
    from search.trial.insight import insight_figures

    try:
        return insight_figures(model, data)
    except Exception:
        logger.warning("the figures of what the best model learned could not be drawn",
                       exc_info=True)
        return {}


def run(request: SearchRequest, observers: Sequence[SearchObserver] = (), *,
        verbose: bool = False) -> SearchReport:
    """`prepare` then `execute` a new search: the whole pipeline in one call."""
    return execute(prepare(request), observers, verbose=verbose)


def _close_after_failure(tracker: Any, writer: Any, exc: BaseException) -> None:
    """End the search's MLflow runs after `exc` stopped it: KILLED for a signal, FAILED
    otherwise. Never raises: `exc` is what the caller must see."""
    interrupted = isinstance(exc, SearchInterrupted | KeyboardInterrupt)
    try:
        if writer is not None:
            unrecorded = writer.close(INTERRUPTED_DRAIN_TIMEOUT_S if interrupted
                                      else TRACKING_DRAIN_TIMEOUT_S)
            if isinstance(exc, SearchInterrupted):
                exc.unrecorded = unrecorded
        tracker.end_search("KILLED" if interrupted else "FAILED",
                           str(exc) or type(exc).__name__)
    except (TrackingError, KeyboardInterrupt, SearchInterrupted) as closing:
        logger.warning("the search's MLflow runs could not be closed (%s); resuming the "
                       "search closes them", closing)


def _recorded_budget(settings: Any) -> int | None:
    from search.engine.experiment import read_request

    try:
        return int(read_request(settings.name, settings.storage)["settings"]["trials"])
    except (KeyError, TypeError, ValueError, SettingsError):
        return None
