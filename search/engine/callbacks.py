"""Turns Ray Tune's trial events into convsearch's: `SearchObserver` calls and the trial
results the search ends with, in the driver.

`TrialEvents` is pickled into the experiment by Tune, so it holds only the search's name
and reaches the observers through the search's `SearchControl` (which the driver that
runs or resumes the search registers).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import ray.cloudpickle
from ray import tune

from search.engine.control import SearchControl, control_of
from search.engine.searchers import TRIAL_NUMBER
from search.engine.signals import forward_interrupt
from search.engine.stopping import EPOCH
from search.errors import SearchFailed
from search.metrics import (
    EPOCH_METRICS,
    LATENCY,
    MONITOR,
    OBJECTIVE,
    PARAMS,
    ROBUST_ACCURACY,
)
from search.observers import SearchObserver, TrialResult, TrialStatus
from search.trial.checkpoints import read_state

logger = logging.getLogger(__name__)

#: Reported with every epoch: whether the trial ended there by its own rule.
LAST_EPOCH = "last_epoch"
#: Reported when a trial's code raised: the one-line error, and its traceback.
ERROR = "error"
ERROR_DETAIL = "error_detail"
#: Reported by the trial: its worker process's resident memory, in MB.
WORKER_RSS = "worker_rss_mb"

#: Reported values that observers receive as metrics of an epoch, besides EPOCH_METRICS.
_REPORTED = (OBJECTIVE, PARAMS, LATENCY, ROBUST_ACCURACY, WORKER_RSS)


def trial_params(trial: Any) -> dict[str, Any]:
    """The knob values of a Tune trial, without the engine's own keys."""
    return {k: v for k, v in trial.config.items() if k != TRIAL_NUMBER}


def trial_result(trial: Any, status: TrialStatus | None = None) -> TrialResult:
    """What a Tune trial came to, from its last result (and its error, if it failed)."""
    last = trial.last_result or {}
    error = last.get(ERROR)
    if status is None:
        if error or trial.status == "ERROR":
            status = "failed"
        else:  # a trial the scheduler or a budget stopped lacks its own last-epoch mark
            status = "completed" if last.get(LAST_EPOCH) else "stopped"
    if status == "failed" and not error:
        error = _error_message(trial)
    return TrialResult(
        trial_id=trial.trial_id,
        number=int(trial.config.get(TRIAL_NUMBER, 0)),
        params=trial_params(trial),
        status=status,
        epochs=int(last.get(EPOCH, 0) or 0),
        best_val_accuracy=last.get(OBJECTIVE),
        error=error,
        error_detail=last.get(ERROR_DETAIL),
        values={k: float(last[k]) for k in (OBJECTIVE, PARAMS, LATENCY, ROBUST_ACCURACY)
                if k in last},
    )


class TrialEvents(tune.Callback):
    """Forwards Tune's trial events to the search's observers, in the driver."""

    def __init__(self, search_name: str) -> None:
        self.search_name = search_name

    @property
    def control(self) -> SearchControl | None:
        return control_of(self.search_name)

    @property
    def observers(self) -> list[SearchObserver]:
        control = self.control
        return list(control.observers) if control else []

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        control = self.control
        if control is None:
            return
        forward_interrupt(control)
        if control.started:
            return
        # The first step sees every trial Tune restored (a resumed search) or none.
        control.started = True
        if control.restoring and not trials:
            # Tune starts over, with a log line only, when it cannot read the state.
            raise SearchFailed(f"search {control.settings.name!r} could not be restored from "
                               "its saved state in Ray's storage; nothing was changed")
        unfinished = []
        for trial in trials:
            control.epochs[trial.trial_id] = int((trial.last_result or {}).get(EPOCH, 0))
            if trial.status in ("TERMINATED", "ERROR"):
                control.ended[trial.trial_id] = trial_result(trial)
            else:
                unfinished.append(trial.trial_id)
        for observer in control.observers:
            observer.search_started(control.budget, list(control.ended.values()), unfinished)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        for observer in self.observers:
            observer.trial_started(trial.trial_id, trial_params(trial),
                                   int(trial.config.get(TRIAL_NUMBER, 0)))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        metrics = {k: float(result[k]) for k in (*EPOCH_METRICS, *_REPORTED) if k in result}
        metrics.update({k: float(v) for k, v in result.items() if k.startswith("time_")})
        if MONITOR not in metrics:
            return  # not an epoch: a failed trial's final report, or a repeat
        for observer in self.observers:
            observer.epoch_ended(trial.trial_id, int(result[EPOCH]), metrics)

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any,
                      **info: Any) -> None:
        # Tune holds this checkpoint now (a restart continues from it): observers hear
        # which epochs it covers, and whether the best model changed. Nothing here may
        # raise: Tune would then drop the checkpoint itself, without a word.
        try:
            with checkpoint.as_directory() as directory:
                state = read_state(Path(directory))
                if state is None:
                    return
                for observer in self.observers:
                    observer.epochs_saved(trial.trial_id, state.epoch)
                    if state.best_epoch == state.epoch:
                        observer.checkpoint_saved(trial.trial_id, Path(directory))
        except Exception:
            logger.exception("trial %s: its checkpoint was kept, but observers could not "
                             "be told of it", trial.trial_id)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        error = _error_message(trial)
        if error.startswith("WorkerRecycled"):
            logger.info("trial %s: %s", trial.trial_id, error.split(": ", 1)[1])
        else:
            logger.warning("trial %s: its worker died (%s); restarting it from its latest "
                           "checkpoint", trial.trial_id, error)
        for observer in self.observers:
            observer.trial_restarted(trial.trial_id)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial_result(trial))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial_result(trial, "failed"))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        control = self.control
        if control is None:
            return
        for trial in trials:
            if trial.checkpoint is not None:
                control.checkpoints[trial.trial_id] = trial.checkpoint
        if control.interrupted is not None:
            return  # unfinished trials stay unfinished: a resumed search continues them
        for trial in trials:
            # Tune ends trials that are still running when the whole search ends
            # without a completion event; they end here, as stopped.
            if trial.trial_id not in control.ended and trial.last_result:
                self._end(trial_result(trial, "stopped"))

    def _end(self, result: TrialResult) -> None:
        control = self.control
        if control is None:
            return
        control.record_end(result)
        for observer in control.observers:
            observer.trial_ended(result)


def _error_message(trial: Any) -> str:
    """One line for a failed trial: the original exception, not Ray's wrapper. Never
    raises: a trial restored from an earlier driver run may have lost its error files.

    Tune writes the error into the trial's local folder before it calls callbacks (the
    copy in storage may come later), so read it from there first.
    """
    error: Any = None
    try:
        pickled = trial.pickled_error_file
        if pickled and Path(pickled).is_file():
            with open(pickled, "rb") as file:
                error = ray.cloudpickle.load(file)
        else:
            error = trial.get_pickled_error() or trial.get_error()
    except Exception:
        logger.debug("cannot read the error of trial %s", trial.trial_id, exc_info=True)
    if error is None:
        return "unknown error"
    cause = getattr(error, "cause", None) or error
    lines = [line for line in f"{type(cause).__name__}: {cause}".splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"
