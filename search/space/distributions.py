"""How one parameter is searched: a fixed value, a choice, or a range.

A distribution knows how to ask a sampler for a value (`suggest`) and which values it can
produce at its extremes (`extremes`, used to check domains and feasibility before the
search starts). Samplers are duck-typed as `Suggester`, the suggest_* part of
`optuna.Trial`, so this module needs neither Optuna nor Ray to be imported or tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class Suggester(Protocol):
    """What a distribution needs from a sampler: Optuna's `Trial.suggest_*` methods."""

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any: ...

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False
                      ) -> float: ...

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1,
                    log: bool = False) -> int: ...


@dataclass(frozen=True)
class Fixed:
    """Always the same value; never shown to the sampler."""

    value: Any

    def suggest(self, trial: Suggester, name: str) -> Any:
        return self.value

    def extremes(self) -> tuple[Any, ...]:
        return (self.value,)

    def __str__(self) -> str:
        return repr(self.value)


@dataclass(frozen=True)
class Choice:
    """One of a list of values, unordered (Optuna's categorical distribution)."""

    values: tuple[Any, ...]

    def suggest(self, trial: Suggester, name: str) -> Any:
        if len(self.values) == 1:
            return self.values[0]
        return trial.suggest_categorical(name, list(self.values))

    def extremes(self) -> tuple[Any, ...]:
        return self.values

    def __str__(self) -> str:
        return "choice of " + ", ".join(repr(v) for v in self.values)


@dataclass(frozen=True)
class Grid:
    """A list of values to try every one of: `--algo grid` enumerates the product of all
    grid lists; other algorithms treat it as a choice."""

    values: tuple[Any, ...]

    def suggest(self, trial: Suggester, name: str) -> Any:
        if len(self.values) == 1:
            return self.values[0]
        return trial.suggest_categorical(name, list(self.values))

    def extremes(self) -> tuple[Any, ...]:
        return self.values

    def __str__(self) -> str:
        return "grid of " + ", ".join(repr(v) for v in self.values)


@dataclass(frozen=True)
class Uniform:
    """A real number drawn uniformly from ``[low, high]``."""

    low: float
    high: float

    def suggest(self, trial: Suggester, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high)

    def extremes(self) -> tuple[float, float]:
        return (self.low, self.high)

    def __str__(self) -> str:
        return f"uniform [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class LogUniform:
    """A positive real number drawn uniformly in log space from ``[low, high]``."""

    low: float
    high: float

    def suggest(self, trial: Suggester, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=True)

    def extremes(self) -> tuple[float, float]:
        return (self.low, self.high)

    def __str__(self) -> str:
        return f"log-uniform [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class IntRange:
    """A whole number in ``[low, high]``, in steps of ``step`` or uniform in log space."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    def suggest(self, trial: Suggester, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)

    def extremes(self) -> tuple[int, int]:
        return (self.low, self.high)

    def __str__(self) -> str:
        extra = " (log)" if self.log else (f" step {self.step}" if self.step != 1 else "")
        return f"int [{self.low}, {self.high}]{extra}"


Distribution = Fixed | Choice | Grid | Uniform | LogUniform | IntRange

#: Distributions with finitely many values (enumerable by a grid search).
FINITE = (Fixed, Choice, Grid)
