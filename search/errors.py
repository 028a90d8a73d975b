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

from pathlib import Path


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
