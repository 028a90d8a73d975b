"""Trial events reach MLflow off Ray Tune's event loop, in order, retried until the store
takes them: MLflow trouble never stops or slows training.

`BackgroundWriter` is the `SearchObserver` the engine calls; it queues each event and
returns at once, and one thread writes the queue through the `SearchTracker`. An event
the store refuses (a tracking server that is down, a locked SQLite file) is retried with
growing pauses, holding back the events behind it so runs stay consistent, until the
store takes it or `close` gives up; what was not written is then described, trial by
trial, for the search's summary. A checkpoint is copied when it is queued (its folder
is only valid during the call); while a trial's checkpoint waits, a newer one replaces
it.
"""

from __future__ import annotations

import logging
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search.errors import TrackingError
from search.observers import SearchObserver, TrialResult
from search.tracking.tracker import SearchTracker
from search.workdirs import new_workdir, remove_workdir

logger = logging.getLogger(__name__)

#: Pauses between attempts at an event the store refused: doubling up to the last.
RETRY_PAUSES_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
#: Longest pause between attempts once the search has ended and waits for the writes.
CLOSING_RETRY_PAUSE_S = 1.0
#: Seconds `close` waits for the thread once it gives up (it may be inside a request).
_GIVE_UP_WAIT_S = 5.0
#: MLflow error codes that a retry would only repeat (a run deleted meanwhile, a value
#: the store rejects).
_PERMANENT_ERRORS = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE",
                               "RESOURCE_ALREADY_EXISTS", "PERMISSION_DENIED"})


@dataclass
class _Event:
    trial_id: str
    #: What the event records, for the summary of what was not recorded.
    what: str
    write: Callable[[], None]


class BackgroundWriter(SearchObserver):
    """Queues trial events for a `SearchTracker` and writes them from one thread.

    Call `close` when the search's trials are done: it waits for the queue to drain (up
    to a timeout) and returns what could not be recorded. The tracker must not be used
    by anyone else until then.
    """

    def __init__(self, tracker: SearchTracker) -> None:
        self.tracker = tracker
        self._queue: queue.Queue[_Event | None] = queue.Queue()
        self._spool = new_workdir("checkpoints")
        #: Trials whose checkpoint waits to be written, with a version that grows with
        #: each newer copy.
        self._pending_checkpoints: dict[str, int] = {}
        self._lock = threading.Lock()
        self._giving_up = threading.Event()
        self._unwritten: list[_Event] = []
        self._outage_logged = False
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="convsearch-mlflow-writer",
                                        daemon=True)
        self._thread.start()

    # -- SearchObserver ------------------------------------------------------------------

    def search_started(self, budget: int, ended: Sequence[TrialResult],
                       unfinished: Sequence[str]) -> None:
        self._put("", "the search's trial list",
                  lambda: self.tracker.search_started(budget, ended, unfinished))

    def trial_started(self, trial_id: str, params: dict[str, Any], number: int = 0) -> None:
        self._put(trial_id, "start",
                  lambda: self.tracker.trial_started(trial_id, params, number))

    def epoch_ended(self, trial_id: str, epoch: int, metrics: dict[str, float]) -> None:
        stamp = int(time.time() * 1000)  # fixed now, so a retried write is the same write
        self._put(trial_id, f"epoch {epoch}", lambda: self.tracker.epoch_ended(
            trial_id, epoch, metrics, timestamp_ms=stamp))

    def epochs_saved(self, trial_id: str, epoch: int) -> None:
        self._put(trial_id, f"epochs through {epoch}",
                  lambda: self.tracker.epochs_saved(trial_id, epoch))

    def trial_restarted(self, trial_id: str) -> None:
        self._put(trial_id, "restart", lambda: self.tracker.trial_restarted(trial_id))

    def checkpoint_saved(self, trial_id: str, checkpoint_dir: Path) -> None:
        from search.trial.checkpoints import BEST_FILE

        with self._lock:
            waiting = trial_id in self._pending_checkpoints
            folder = self._spool / trial_id
            folder.mkdir(exist_ok=True)
            shutil.copy2(checkpoint_dir / BEST_FILE, folder / BEST_FILE)
            self._pending_checkpoints[trial_id] = self._pending_checkpoints.get(trial_id, 0) + 1
        if not waiting:  # else the queued event will write this newer copy
            self._put(trial_id, "checkpoint", lambda: self._write_checkpoint(trial_id))

    def trial_mutated(self, trial_id: str, epoch: int, source: int,
                      params: dict[str, Any]) -> None:
        stamp = int(time.time() * 1000)
        self._put(trial_id, f"mutation at epoch {epoch}", lambda: self.tracker.trial_mutated(
            trial_id, epoch, source, params, timestamp_ms=stamp))

    def trial_ended(self, result: TrialResult) -> None:
        stamp = int(time.time() * 1000)
        self._put(result.trial_id, "end", lambda: self.tracker.trial_ended(
            result, timestamp_ms=stamp))

    # -- the end -------------------------------------------------------------------------

    def close(self, timeout_s: float = 60.0) -> list[str]:
        """Wait up to `timeout_s` for every queued event to be written, then stop. Safe to
        call again (after an interrupted call, say).

        Returns what could not be recorded, one line per trial (empty when all was)."""
        if not self._closing.is_set():
            self._closing.set()  # also cuts short the writer's pause before a retry
            self._queue.put(None)
        try:
            self._thread.join(timeout_s)
        finally:
            if self._thread.is_alive():
                self._giving_up.set()
                # The thread stops at its next pause; a store that hangs is not waited for.
                self._thread.join(_GIVE_UP_WAIT_S)
        while True:  # what the thread never took
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                break
            if event is not None:
                self._unwritten.append(event)
        if not self._thread.is_alive():
            remove_workdir(self._spool)
        return _describe(self._unwritten)

    # -- the writing thread --------------------------------------------------------------

    def _put(self, trial_id: str, what: str, write: Callable[[], None]) -> None:
        self._queue.put(_Event(trial_id, what, write))

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            try:
                written = not self._giving_up.is_set() and self._write(event)
            except Exception:  # a bug, or an error the store will repeat: skip the event
                logger.exception("cannot record %s of trial %s in MLflow", event.what,
                                 event.trial_id)
                written = False
            if not written:
                self._unwritten.append(event)

    def _write(self, event: _Event) -> bool:
        attempt = 0
        while True:
            try:
                event.write()
            except TrackingError as exc:
                if _permanent(exc):
                    logger.warning("MLflow refused %s of trial %s for good: %s", event.what,
                                   event.trial_id, exc)
                    return False
                if not self._outage_logged:
                    logger.warning("MLflow refused a write (%s); trials go on, and the "
                                   "writes wait until it takes them", exc)
                    self._outage_logged = True
                pause = RETRY_PAUSES_S[min(attempt, len(RETRY_PAUSES_S) - 1)]
                attempt += 1
                # Once the search has ended, its user waits for these writes: a store that
                # came back is not left waiting out a long pause.
                closing = self._closing.wait(pause)  # close() ends the pause early
                if closing and self._giving_up.wait(CLOSING_RETRY_PAUSE_S):
                    return False
                continue
            if self._outage_logged:
                logger.warning("MLflow takes writes again")
                self._outage_logged = False
            return True

    def _write_checkpoint(self, trial_id: str) -> None:
        while True:
            with self._lock:
                version = self._pending_checkpoints[trial_id]
                # Copied under the lock, so a newer checkpoint cannot half-replace it.
                staged = Path(tempfile.mkdtemp(dir=self._spool))
                shutil.copytree(self._spool / trial_id, staged, dirs_exist_ok=True)
            try:
                self.tracker.checkpoint_saved(trial_id, staged)
            finally:
                shutil.rmtree(staged, ignore_errors=True)
            with self._lock:
                if self._pending_checkpoints[trial_id] == version:
                    del self._pending_checkpoints[trial_id]
                    return
            # A newer checkpoint arrived while this one was written: write it too.


def _permanent(exc: TrackingError) -> bool:
    return getattr(exc.__cause__, "error_code", None) in _PERMANENT_ERRORS


def _describe(events: list[_Event]) -> list[str]:
    by_trial: dict[str, list[str]] = {}
    for event in events:
        by_trial.setdefault(event.trial_id, []).append(event.what)
    lines = []
    for trial_id, whats in by_trial.items():
        epochs = [int(w.split()[1]) for w in whats if w.startswith("epoch ")]
        others = [w for w in whats if not w.startswith("epoch ")]
        parts = []
        if epochs:
            span = f"{min(epochs)}-{max(epochs)}" if len(epochs) > 1 else str(epochs[0])
            parts.append(f"epoch{'s' if len(epochs) > 1 else ''} {span}")
        parts.extend(dict.fromkeys(others))
        lines.append(f"trial {trial_id}: {', '.join(parts)}" if trial_id
                     else ", ".join(parts))
    return lines
