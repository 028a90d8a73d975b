"""A trial's checkpoint folder: its best epoch (the model a search may register) and its
latest epoch (what a restarted trial continues from).

The trainer rewrites the folder after every epoch; the engine hands it to Ray Tune, which
copies it into the search's storage, and gives the newest copy back to the trial when
Ray restarts it (a resumed search, a retried worker). The folder holds:

- ``model.keras``: the best epoch so far, the full Keras model (`BEST_FILE`);
- ``latest.keras``: the latest epoch with its optimizer state, written only when the
  latest epoch is not also the best (then ``model.keras`` serves both);
- ``state.json``: the epoch counter, early-stopping state and learning curve
  (`TrainingState`).

Nothing here knows about Ray or MLflow.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from search.errors import TrainingError

if TYPE_CHECKING:
    import keras

#: The best epoch's model: what the search evaluates, logs and registers.
BEST_FILE = "model.keras"
#: The latest epoch's model and optimizer state, when it is not the best epoch.
LATEST_FILE = "latest.keras"
#: Epoch counter and early-stopping state.
STATE_FILE = "state.json"


@dataclass(frozen=True)
class TrainingState:
    """Where a trial's training stands after its latest finished epoch."""

    #: The latest finished epoch, counted from 1.
    epoch: int
    #: The best validation accuracy so far, and the epoch that reached it.
    best: float
    best_epoch: int
    #: Epochs since the best one (early stopping's patience counter).
    wait: int
    #: True when training ended by its own rule (early stopping or the epoch limit): a
    #: restarted trial then only reports its result again.
    finished: bool
    #: The latest epoch's metrics, as reported.
    metrics: dict[str, float] = field(default_factory=dict)
    #: Every epoch's metrics from the first through `epoch`, as reported: the learning
    #: curve of the training this checkpoint continues (a restart trains the epochs after
    #: it again, so earlier reports of those epochs are not its history).
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def latest_file(self) -> str:
        """The file that holds the latest epoch's model and optimizer state."""
        return BEST_FILE if self.best_epoch == self.epoch else LATEST_FILE


def save_epoch(model: keras.Model, folder: Path, state: TrainingState) -> None:
    """Write the epoch that `state` describes into `folder`: the model into the best or
    the latest file, then the state, each atomically, so a folder copied at any moment
    holds a consistent pair."""
    target = folder / state.latest_file
    _atomic_save_model(model, target)
    if state.latest_file == BEST_FILE:
        (folder / LATEST_FILE).unlink(missing_ok=True)
    temporary = folder / f".{STATE_FILE}.tmp"
    temporary.write_text(json.dumps(asdict(state)), encoding="utf-8")
    os.replace(temporary, folder / STATE_FILE)


def read_state(folder: Path) -> TrainingState | None:
    """The state saved in `folder`, or None when it holds none (a fresh trial).

    Raises:
        TrainingError: the state file exists but cannot be read.
    """
    path = folder / STATE_FILE
    if not path.is_file():
        return None
    try:
        return TrainingState(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise TrainingError(f"cannot read checkpoint state {path}: {exc}") from exc


def load_latest(folder: Path, state: TrainingState) -> keras.Model:
    """The latest epoch's model, compiled, with its optimizer state, to continue training.

    Raises:
        TrainingError: the file is missing or unreadable.
    """
    return _load(folder / state.latest_file)


def load_best(folder: Path) -> keras.Model:
    """The model a trial saved as its best epoch.

    Raises:
        TrainingError: the checkpoint is missing or unreadable.
    """
    return _load(folder / BEST_FILE)


def _load(path: Path) -> keras.Model:
    import keras

    try:
        # safe_mode: a checkpoint is data, never code (no lambda layers are deserialised).
        return keras.models.load_model(path, safe_mode=True)
    except (OSError, ValueError) as exc:
        raise TrainingError(f"cannot load checkpoint {path}: {exc}") from exc


def _atomic_save_model(model: keras.Model, path: Path) -> None:
    temporary = path.with_name(f".{path.stem}.tmp.keras")
    model.save(temporary)
    os.replace(temporary, path)
