"""`SearchSettings`: how a search runs (budget, seed, machine), as opposed to what it
searches (the space).

The CLI builds one from its flags, taking its defaults from here; the engine runs by it;
the tracker logs it on the search's parent run. This is the one home of the default
budgets and output paths.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from search.errors import SettingsError

#: Where Ray Tune keeps trial results and checkpoints unless told otherwise.
DEFAULT_STORAGE = Path("ray_results")

#: Trials in a search unless told otherwise (a grid search runs every grid point instead).
DEFAULT_TRIALS = 24

#: Search algorithms by name: Optuna's samplers behind Ray Tune, or an exhaustive grid.
ALGORITHMS: dict[str, str] = {
    "tpe": "Optuna's tree-structured Parzen estimator",
    "random": "Optuna's random sampler",
    "grid": "every point of the space's grid lists, each once",
    "cmaes": "Optuna's CMA-ES sampler",
    "gp": "Optuna's Gaussian-process sampler (needs PyTorch: the gp extra)",
    "nsga2": "Optuna's NSGA-II genetic sampler",
}
DEFAULT_ALGORITHM = "tpe"

#: Trial schedulers by name: who may stop a trial before its own early stopping does.
SCHEDULERS: dict[str, str] = {
    "asha": "ASHA stops trials that lag behind the others at each rung (the default)",
    "none": "every trial trains until its own early stopping or --max-epochs",
}


def new_search_name() -> str:
    """A readable, sortable, unique-enough name for a search: ``search-20261125-143000``."""
    return datetime.now().strftime("search-%Y%m%d-%H%M%S")


@dataclass(frozen=True)
class SearchSettings:
    """Budget and execution settings of one search. Frozen: logged once, never changed."""

    #: Name of the search: the Ray experiment and the MLflow parent run.
    name: str = dataclasses.field(default_factory=new_search_name)
    #: Trials to run in all; None: DEFAULT_TRIALS, or every grid point for a grid search.
    trials: int | None = None
    #: Search algorithm, a key of ALGORITHMS.
    algorithm: str = DEFAULT_ALGORITHM
    #: Trial scheduler, a key of SCHEDULERS.
    scheduler: str = "asha"
    #: Stop the whole search once its trials have trained this many epochs in all.
    epoch_budget: int | None = None
    #: Most epochs one trial may train.
    max_epochs: int = 30
    #: Epochs without a better validation accuracy before a trial stops itself.
    patience: int = 5
    #: Epochs every trial gets before ASHA may stop it for being behind the others.
    grace_epochs: int = 4
    #: Seed of the search algorithm and of every trial's weight initialisation.
    seed: int = 0
    #: Trials at a time; None: as many as the CPUs/GPUs allow.
    concurrency: int | None = None
    #: CPUs Ray may use on this machine; None: all of them.
    cpus: int | None = None
    #: GPUs per trial (fractions share a GPU); None: 1 when there are GPUs, else 0.
    gpus_per_trial: float | None = None
    #: Ray Tune's results and checkpoints folder (or URI).
    storage: Path = DEFAULT_STORAGE
    #: Address of a running Ray cluster; None starts a local one.
    ray_address: str | None = None

    def __post_init__(self) -> None:
        """Raises:
            SettingsError: a setting out of range, named by its CLI flag.
        """
        at_least_one = ("trials", "max_epochs", "patience", "grace_epochs", "concurrency",
                        "cpus", "epoch_budget")
        for name in at_least_one:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SettingsError(f"{_flag(name)} must be at least 1, got {value}")
        if self.algorithm not in ALGORITHMS:
            raise SettingsError(f"--algo {self.algorithm!r} is not a search algorithm "
                                f"(known: {', '.join(ALGORITHMS)})")
        if self.scheduler not in SCHEDULERS:
            raise SettingsError(f"--scheduler {self.scheduler!r} is not a scheduler (known: "
                                f"{', '.join(SCHEDULERS)})")
        if self.grace_epochs > self.max_epochs:
            raise SettingsError(f"--grace-epochs ({self.grace_epochs}) cannot exceed "
                                f"--max-epochs ({self.max_epochs})")
        if self.gpus_per_trial is not None and self.gpus_per_trial < 0:
            raise SettingsError(f"--gpus-per-trial must be 0 or more, got {self.gpus_per_trial}")
        if not self.name or "/" in self.name or self.name.strip() != self.name:
            raise SettingsError(f"--name {self.name!r} must be a non-empty name without '/' "
                                "or surrounding spaces")

    def trial_budget(self, grid_points: int | None = None) -> int:
        """Trials to run: as asked, else every grid point of a grid search, else the
        default; a grid search never runs a point twice."""
        if grid_points is not None:
            return min(self.trials or grid_points, grid_points)
        return self.trials or DEFAULT_TRIALS

    def to_params(self) -> dict[str, Any]:
        """Flat, loggable form (for MLflow params)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _flag(setting: str) -> str:
    return "--" + setting.replace("_", "-")
