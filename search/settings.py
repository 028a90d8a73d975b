"""`SearchSettings`: how a search runs (budget, seed, machine), as opposed to what it
searches (the space).

The CLI builds one from its flags, taking its defaults from here; the engine runs by it;
the tracker logs it on the search's parent run. This is the one home of the default
budgets and output paths.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from search.errors import SettingsError

#: Where Ray Tune keeps trial results and checkpoints unless told otherwise.
DEFAULT_STORAGE = Path("ray_results")

#: Trials in a search unless told otherwise (a grid search runs every grid point instead).
DEFAULT_TRIALS = 24

#: Epochs every trial gets before ASHA may stop it, unless told otherwise; never more
#: than the trials' own epoch limit.
DEFAULT_GRACE_EPOCHS = 4

#: Search algorithms by name: Optuna's samplers behind Ray Tune, or an exhaustive grid.
ALGORITHMS: dict[str, str] = {
    "tpe": "Optuna's tree-structured Parzen estimator",
    "random": "Optuna's random sampler",
    "grid": ("every combination of the space's grid and choice lists, each once (a conditional "
             "knob branches only where it applies)"),
    "cmaes": "Optuna's CMA-ES sampler",
    "gp": "Optuna's Gaussian-process sampler (needs PyTorch: the gp extra)",
    "nsga2": "Optuna's NSGA-II genetic sampler",
}
DEFAULT_ALGORITHM = "tpe"

#: Algorithms that need a package the base install leaves out: the module, what it is,
#: and convsearch's extra that installs it.
ALGORITHM_PACKAGES: dict[str, tuple[str, str, str]] = {"gp": ("torch", "PyTorch", "gp")}

#: Trial schedulers by name: who may stop (or, for pbt, replace) a trial before its own
#: early stopping does. All but mo-asha are Ray Tune's own.
SCHEDULERS: dict[str, str] = {
    "asha": "ASHA stops trials that lag behind the others at each rung (the default for "
            "one objective)",
    "mo-asha": "ASHA that ranks trials by every objective (Pareto fronts) at each rung "
               "(the default for several objectives)",
    "hyperband": "asynchronous HyperBand: ASHA over several brackets, whose first cuts come "
                 "after more and more epochs, so slow starters get a chance",
    "median": "stops a trial whose best result is below the median of the others' "
              "running averages at the same epoch",
    "pbt": "population-based training: a lagging trial continues from a better trial's "
           "checkpoint with its learning rate, dropout and augmentation amounts mutated "
           "within the space's ranges",
    "none": "every trial trains until its own early stopping or --max-epochs",
}

#: Schedulers that continue one trial from another's checkpoint: their trials checkpoint
#: every epoch unless --checkpoint-interval says otherwise, so that a clone starts from
#: the epoch it was judged on.
CHECKPOINTING_SCHEDULERS = ("pbt",)

#: ASHA, MO-ASHA and HyperBand keep the top 1/REDUCTION_FACTOR of trials at each rung.
DEFAULT_REDUCTION_FACTOR = 3

#: Seconds of training a restarted trial may lose, unless a scheduler needs less.
DEFAULT_CHECKPOINT_INTERVAL_S = 10.0


#: Algorithms that can draw PBT's population up front (nothing learns from its results).
POPULATION_ALGORITHMS = ("random", "grid")


def choose_scheduler(requested: str | None, objectives: tuple[str, ...]) -> str:
    """The trial scheduler to use: as requested, else mo-asha for several objectives,
    else asha."""
    return requested or ("mo-asha" if len(objectives) > 1 else "asha")


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
    #: Search algorithm, a key of ALGORITHMS; None: `choose_algorithm`'s choice.
    algorithm: str | None = None
    #: Trial scheduler, a key of SCHEDULERS; None: `choose_scheduler`'s choice.
    scheduler: str | None = None
    #: ASHA, MO-ASHA and HyperBand keep the top 1/reduction_factor of trials per rung.
    reduction_factor: int = DEFAULT_REDUCTION_FACTOR
    #: Epochs between PBT's decisions to replace a lagging trial.
    perturbation_interval: int = 4
    #: Stop the whole search once its trials have trained this many epochs in all.
    epoch_budget: int | None = None
    #: Most epochs one trial may train.
    max_epochs: int = 30
    #: Epochs without a better validation accuracy before a trial stops itself.
    patience: int = 5
    #: Epochs every trial gets before ASHA may stop it for being behind the others;
    #: None: DEFAULT_GRACE_EPOCHS, or max_epochs if that is smaller.
    grace_epochs: int | None = None
    #: Seconds after which the search ends as if its trial budget were spent.
    time_budget_s: float | None = None
    #: Seed of the search algorithm and of every trial's weight initialisation.
    seed: int = 0
    #: TensorFlow's deterministic ops in every trial and in the driver's evaluation: the
    #: same seed trains the same weights on GPUs too (CPU kernels are deterministic
    #: already), at a cost in speed, and ops without a deterministic kernel raise.
    deterministic: bool = False
    #: Trials at a time; None: as many as the CPUs/GPUs allow.
    concurrency: int | None = None
    #: CPUs Ray may use on this machine; None: all of them.
    cpus: int | None = None
    #: GPUs per trial (fractions share a GPU); None: 1 when there are GPUs, else 0.
    gpus_per_trial: float | None = None
    #: Ray Tune's results and checkpoints folder (or URI).
    storage: Path | str = DEFAULT_STORAGE
    #: Address of a running Ray cluster; None starts a local one.
    ray_address: str | None = None
    #: Times a trial whose worker died (killed, out of memory, lost node) is restarted
    #: from its latest checkpoint. Trials that raise are not retried: they would again.
    max_failures: int = 2
    #: Failed trials in a row after which the search gives up.
    max_consecutive_failures: int = 5
    #: Most seconds of training a restarted trial may lose: an epoch that is neither
    #: the best so far nor the last is checkpointed once this long has passed since the
    #: trial's last checkpoint (0: every epoch); None: see `checkpoint_interval`.
    checkpoint_interval_s: float | None = None

    def __post_init__(self) -> None:
        """Raises:
            SettingsError: a setting out of range, named by its CLI flag.
        """
        at_least_one = ("trials", "max_epochs", "patience", "grace_epochs", "concurrency",
                        "cpus", "epoch_budget", "max_consecutive_failures",
                        "perturbation_interval")
        for name in at_least_one:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SettingsError(f"{_flag(name)} must be at least 1, got {value}")
        if self.algorithm is not None and self.algorithm not in ALGORITHMS:
            raise SettingsError(f"--algo {self.algorithm!r} is not a search algorithm "
                                f"(known: {', '.join(ALGORITHMS)})")
        if self.scheduler is not None and self.scheduler not in SCHEDULERS:
            raise SettingsError(f"--scheduler {self.scheduler!r} is not a scheduler (known: "
                                f"{', '.join(SCHEDULERS)})")
        if self.scheduler == "pbt" and self.algorithm not in (None, *POPULATION_ALGORITHMS):
            raise SettingsError(f"--scheduler pbt evolves a population drawn up front, which "
                                f"--algo {self.algorithm} cannot propose; use --algo "
                                f"{' or '.join(POPULATION_ALGORITHMS)}")
        if self.reduction_factor < 2:
            raise SettingsError(f"--reduction-factor must be at least 2, got "
                                f"{self.reduction_factor}")
        if self.checkpoint_interval_s is not None and self.checkpoint_interval_s < 0:
            raise SettingsError("--checkpoint-interval must be 0 or more, got "
                                f"{self.checkpoint_interval_s:g}")
        if self.max_failures < 0:
            raise SettingsError(f"--max-failures must be 0 or more, got {self.max_failures}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise SettingsError(f"--time-budget must be positive, got {self.time_budget_s:g}s")
        if self.grace_epochs is not None and self.grace_epochs > self.max_epochs:
            raise SettingsError(f"--grace-epochs ({self.grace_epochs}) cannot exceed "
                                f"--max-epochs ({self.max_epochs})")
        if self.gpus_per_trial is not None and self.gpus_per_trial < 0:
            raise SettingsError(f"--gpus-per-trial must be 0 or more, got {self.gpus_per_trial}")
        if not self.name or "/" in self.name or self.name.strip() != self.name:
            raise SettingsError(f"--name {self.name!r} must be a non-empty name without '/' "
                                "or surrounding spaces")

    @property
    def grace(self) -> int:
        """Epochs every trial gets before ASHA may stop it: as given, else the default
        capped at max_epochs (so a quick ``--max-epochs 3`` needs no other flag)."""
        if self.grace_epochs is not None:
            return self.grace_epochs
        return min(DEFAULT_GRACE_EPOCHS, self.max_epochs)

    @property
    def checkpoint_interval(self) -> float:
        """Seconds between a trial's periodic checkpoints: as given, else 0 (every epoch)
        under a scheduler that pauses or clones trials, else the default."""
        if self.checkpoint_interval_s is not None:
            return self.checkpoint_interval_s
        if self.scheduler in CHECKPOINTING_SCHEDULERS:
            return 0.0
        return DEFAULT_CHECKPOINT_INTERVAL_S

    def trial_budget(self, grid_points: int | None = None) -> int:
        """Trials to run: as asked, else every grid point of a grid search, else the
        default; a grid search never runs a point twice."""
        if grid_points is not None:
            return min(self.trials or grid_points, grid_points)
        return self.trials or DEFAULT_TRIALS

    def to_params(self) -> dict[str, Any]:
        """Flat, loggable form (for MLflow params)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_record(self) -> dict[str, Any]:
        """JSON-able form, read back by `from_record` (a resumed search's settings)."""
        return {**self.to_params(), "storage": str(self.storage)}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> SearchSettings:
        """Settings from `to_record`'s form; names it does not know are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in record.items() if k in known}
        if "://" not in str(values.get("storage", "://")):
            values["storage"] = Path(values["storage"])
        return cls(**values)


def choose_algorithm(requested: str | None, grid_space: bool, scheduler: str | None = None,
                     ) -> str:
    """The search algorithm to use: as requested, else grid for a space with grid lists,
    else random under PBT (its population is drawn up front), else DEFAULT_ALGORITHM."""
    if requested:
        return requested
    if grid_space:
        return "grid"
    return "random" if scheduler == "pbt" else DEFAULT_ALGORITHM


def require_algorithm_packages(algorithm: str) -> None:
    """Refuse an algorithm whose package is missing before anything starts, naming the
    extra that installs it (the base install leaves out PyTorch, a few GB).

    Raises:
        SettingsError: the algorithm's package is not installed.
    """
    if algorithm not in ALGORITHM_PACKAGES:
        return
    module, what, extra = ALGORITHM_PACKAGES[algorithm]
    if importlib.util.find_spec(module) is None:
        raise SettingsError(f"--algo {algorithm} needs {what}, which is not installed: "
                            f"install convsearch's {extra} extra (uv pip install -e "
                            f"'.[{extra}]' -c requirements.lock)")


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``2h`` or a plain number of seconds -> seconds.

    Raises:
        SettingsError: not a positive number with an optional s, m or h.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise SettingsError(f"--time-budget {text!r} is not a duration like 90s, 30m or 2h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def _flag(setting: str) -> str:
    return "--" + setting.replace("_", "-")
