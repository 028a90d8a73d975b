"""The set of values each trial parameter may take, independent of how it is searched.

`search.trial.config` attaches one domain to each `TrialConfig` field; `search.space` checks
every value a space file could produce against it, so a bad value is reported with its
file and line before any trial starts. A domain answers one question, `problem(value)`:
``None`` when the value is fine, otherwise a short reason for the user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def describe(value: Any) -> str:
    """Render a value and its type the way error messages quote it: ``'adamw2' (str)``."""
    return f"{value!r} ({type(value).__name__})"


@dataclass(frozen=True)
class Names:
    """One of a fixed list of names, e.g. the Keras optimizers."""

    names: tuple[str, ...]
    what: str

    numeric = False

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, str):
            return f"expected a {self.what} name, got {describe(value)}"
        if value not in self.names:
            return f"{value!r} is not a {self.what} (known: {', '.join(self.names)})"
        return None


@dataclass(frozen=True)
class Integers:
    """Whole numbers in ``[low, high]``."""

    low: int
    high: int

    numeric = True
    integral = True

    def problem(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected a whole number, got {describe(value)}"
        if not self.low <= value <= self.high:
            return f"{value} is out of range [{self.low}, {self.high}]"
        return None


@dataclass(frozen=True)
class Reals:
    """Real numbers between ``low`` and ``high``; either end may be open."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    numeric = True
    integral = False

    def problem(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected a number, got {describe(value)}"
        below = value <= self.low if self.low_open else value < self.low
        above = value >= self.high if self.high_open else value > self.high
        if below or above or value != value:  # value != value: NaN
            return f"{value} is out of range {self}"
        return None

    def __str__(self) -> str:
        left = "(" if self.low_open else "["
        right = ")" if self.high_open else "]"
        return f"{left}{self.low:g}, {self.high:g}{right}"


@dataclass(frozen=True)
class Booleans:
    """true or false."""

    numeric = False

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, bool):
            return f"expected true or false, got {describe(value)}"
        return None


Domain = Names | Integers | Reals | Booleans
