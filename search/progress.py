"""Live progress of a search on the terminal: trials done, running, best so far.

A `SearchObserver` owned by the CLI (the CLI owns the console); the engine feeds it the
same events as the MLflow tracker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from search.observers import SearchObserver, TrialResult


class SearchProgress(SearchObserver):
    """A rich progress bar over the search's trials. Use as a context manager."""

    def __init__(self, console: Console, trials: int) -> None:
        self._progress = Progress(
            TextColumn("[bold]trials"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
            console=console, transient=False)
        self._task = self._progress.add_task("search", total=trials, status="starting Ray")
        self._running: set[str] = set()
        self._failed = 0
        self._best: float | None = None

    def __enter__(self) -> SearchProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def search_started(self, budget: int, ended: Sequence[TrialResult],
                       unfinished: Sequence[str]) -> None:
        self._progress.update(self._task, total=budget, completed=0)
        for result in ended:  # a resumed search's earlier trials count as done
            self._count(result)
        self._refresh()

    def trial_started(self, trial_id: str, params: dict[str, Any], number: int = 0) -> None:
        self._running.add(trial_id)
        self._refresh()

    def trial_ended(self, result: TrialResult) -> None:
        self._running.discard(result.trial_id)
        self._count(result)
        self._refresh()

    def _count(self, result: TrialResult) -> None:
        if result.status == "failed":
            self._failed += 1
        elif result.best_val_accuracy is not None:
            self._best = max(self._best or 0.0, result.best_val_accuracy)
        self._progress.advance(self._task)

    def _refresh(self) -> None:
        parts = [f"{len(self._running)} running"]
        if self._best is not None:
            parts.append(f"best val_accuracy {self._best:.4f}")
        if self._failed:
            parts.append(f"[red]{self._failed} failed[/red]")
        self._progress.update(self._task, status=", ".join(parts))
