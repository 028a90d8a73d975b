"""The errors convsearch raises for problems a user can fix.

Every module below the CLI raises one of these; `search.run` catches `SearchError` once,
prints its message on one line and exits with status 2. Anything else that escapes is a
bug in convsearch and keeps its traceback. Errors from Ray, MLflow and TensorFlow are
turned into these at the module that talks to them (`raise ... from exc`), so the cause
stays attached for debugging.

Each subclass is also the matching builtin, so callers that already catch `ValueError`
or `RuntimeError` keep working.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (its type's name if it has none): the
    detail a one-line error quotes from a library's error."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class SearchError(Exception):
    """Root of every error that a user, not a bug, caused."""


class SpaceError(SearchError, ValueError):
    """A search space file is missing, is not valid YAML, or asks for something invalid.

    The message starts with ``file:line: key:`` so editors and terminals can jump to it.
    """

    def __init__(self, message: str, *, path: Path | str | None = None,
                 line: int | None = None, key: str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.line = line
        self.key = key
        self.reason = message
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        if key:
            where += f"{key}: "
        super().__init__(where + message)


class SettingsError(SearchError, ValueError):
    """A run setting (budget, resources, names) is out of range or cannot be met."""


class DataError(SearchError, ValueError):
    """The data set cannot be loaded or is unusable for classification."""


class ArchitectureError(SearchError, ValueError):
    """A configuration describes a CNN that cannot be built for the input images."""


class TrainingError(SearchError, RuntimeError):
    """A trial's training diverged (NaN loss) or otherwise could not produce a model."""


class TrackingError(SearchError, RuntimeError):
    """The MLflow tracking store or model registry refused or could not be reached."""


class SearchFailed(SearchError, RuntimeError):
    """The search ran but produced no usable trial (for example, every trial failed)."""


class SearchInterrupted(SearchError):
    """A signal (Ctrl+C's SIGINT, or SIGTERM from Ray Jobs, Kubernetes, systemd) stopped
    the search before its end. Its running trials were checkpointed; it can be resumed.

    Not a mistake of the user's: the CLI prints what finished and how to resume, and exits
    with 128 + the signal's number, as shells expect.
    """

    def __init__(self, signum: int, trials: Sequence[Any] = ()) -> None:
        self.signum = signum
        #: The trials that ended before the signal (`TrialResult`s).
        self.trials = list(trials)
        #: Trial events MLflow could not take, one line per trial (set by the pipeline).
        self.unrecorded: list[str] = []
        super().__init__(f"stopped by {signal.Signals(signum).name}")
