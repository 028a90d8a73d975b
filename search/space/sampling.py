"""Sample one trial's knob values from a `SearchSpace`, and survey what a space produces.

`suggest_params` is the define-by-run function the engine gives Optuna (through Ray
Tune's `OptunaSearch`): knob by knob, in the space's sampling order, it asks the sampler
for a value, skipping knobs whose conditions do not hold, so an inactive knob (SGD's
momentum under Adam, block 3 of a two-block model) is neither sampled nor logged. Fixed
knobs are returned without asking, so they never clutter the study.

It is the one path from a space to a sample: a grid search enumerates the ways through
it (`grid_points`), and a finished trial's values are replayed through it
(`ReplaySuggester`), so grid, samplers and constraints cannot disagree on which knobs
apply.

`survey_space` samples a space many times at random and plans each config's model, to
tell before a search whether the space can produce a model for the data at all, and
which of its models are smallest and largest.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from search.errors import ArchitectureError, SettingsError, SpaceError
from search.space import SearchSpace
from search.space.distributions import FINITE, Suggester
from search.space.parameters import SWITCH_SUFFIX
from search.trial.architecture import Architecture, plan_architecture
from search.trial.config import TrialConfig


def suggest_params(space: SearchSpace, trial: Suggester) -> dict[str, Any]:
    """One value for every knob of `space` that applies, by dotted name."""
    params: dict[str, Any] = {}
    for name, distribution in space.distributions.items():
        if not space.active(name, params):
            continue
        if name in space.optional:
            switch = name + SWITCH_SUFFIX
            params[switch] = trial.suggest_categorical(switch, [False, True])
            if not params[switch]:
                continue  # off: the knob keeps its default, and its amount is not sampled
        params[name] = distribution.suggest(trial, name)
    return params


def infeasibility(space: SearchSpace, params: dict[str, Any], input_shape: tuple[int, ...],
                  num_classes: int) -> str | None:
    """Why these sampled values cannot be trained on this data, or None if they can."""
    try:
        plan_architecture(TrialConfig.from_params(params), input_shape, num_classes,
                          max_params=space.max_params)
    except ArchitectureError as exc:
        return str(exc)
    return None


def violation(space: SearchSpace, params: dict[str, Any], input_shape: tuple[int, ...],
              num_classes: int) -> float:
    """How far these values are from a model that can be trained on this data, for a
    sampler's constraint model: 0 when they can be; the fraction by which the model
    exceeds ``max_params`` (so the sampler learns which way is smaller); 1 for a model
    that cannot be built at all."""
    try:
        plan = plan_architecture(TrialConfig.from_params(params), input_shape, num_classes)
    except ArchitectureError:
        return 1.0
    if space.max_params is not None and plan.params > space.max_params:
        return plan.params / space.max_params - 1.0
    return 0.0


@dataclass
class SpaceSurvey:
    """What random samples of a space turned out to be, for one input shape."""

    samples: int = 0
    feasible: int = 0
    #: Infeasible samples by kind of reason (numbers blanked), with one example of each.
    reasons: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    smallest: tuple[dict[str, Any], Architecture] | None = None
    largest: tuple[dict[str, Any], Architecture] | None = None


def survey_space(space: SearchSpace, input_shape: tuple[int, ...], num_classes: int, *,
                 samples: int = 500, seed: int = 0) -> SpaceSurvey:
    """Sample `space` at random `samples` times and plan each config's model."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    survey = SpaceSurvey()
    for _ in range(samples):
        trial = study.ask()
        params = suggest_params(space, trial)
        survey.samples += 1
        try:
            plan = plan_architecture(TrialConfig.from_params(params), input_shape,
                                     num_classes, max_params=space.max_params)
        except ArchitectureError as exc:
            kind = _reason_kind(str(exc))
            survey.reasons[kind] += 1
            survey.examples.setdefault(kind, str(exc))
            continue
        survey.feasible += 1
        if survey.smallest is None or plan.params < survey.smallest[1].params:
            survey.smallest = (params, plan)
        if survey.largest is None or plan.params > survey.largest[1].params:
            survey.largest = (params, plan)
    return survey


def sample_population(space: SearchSpace, input_shape: tuple[int, ...], num_classes: int,
                      size: int, seed: int) -> list[dict[str, Any]]:
    """`size` feasible configs drawn at random (seeded): population-based training's
    first generation.

    Raises:
        SpaceError: a thousand draws per config found too few feasible ones.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    population: list[dict[str, Any]] = []
    for _ in range(1000 * size):
        params = suggest_params(space, study.ask())
        if infeasibility(space, params, input_shape, num_classes) is None:
            population.append(params)
            if len(population) == size:
                return population
    raise SpaceError(f"only {len(population)} of {1000 * size} sampled configs can be "
                     f"trained on {'x'.join(map(str, input_shape))} images; a population "
                     f"of {size} needs more", path=space.path)


def _reason_kind(message: str) -> str:
    """Group messages that differ only in numbers (layer sizes, parameter counts)."""
    return re.sub(r"\d[\d,]*", "N", message)


def require_feasible(space: SearchSpace, input_shape: tuple[int, ...], num_classes: int,
                     ) -> SpaceSurvey:
    """Survey `space` for this data and reject it if no sample could be trained.

    Raises:
        SpaceError: every sampled config is infeasible (names the most common reason).
    """
    survey = survey_space(space, input_shape, num_classes)
    if survey.feasible == 0:
        kind, _ = survey.reasons.most_common(1)[0]
        shape = "x".join(map(str, input_shape))
        raise SpaceError(f"none of {survey.samples} sampled configs can be trained on "
                         f"{shape} images; most often: {survey.examples[kind]}",
                         path=space.path)
    return survey


def grid_points(space: SearchSpace, input_shape: tuple[int, ...], num_classes: int,
                ) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Every feasible point of a grid search over `space`, in a fixed order, and the
    infeasible ones counted by reason.

    The points are every distinct way through `suggest_params`, the walk a sampler takes:
    a grid and a sampler build configs by the same code, so they cannot disagree about
    which knobs apply. Conditional and optional knobs branch only where they apply.

    Raises:
        SettingsError: the space has ranges, which a grid cannot enumerate.
    """
    ranges = [name for name, d in space.searched().items() if not isinstance(d, FINITE)]
    if ranges:
        raise SettingsError(f"--algo grid needs finitely many values, but {', '.join(ranges)} "
                            "is a range; use {grid: [...]} or {choices: [...]}")
    points, infeasible = [], Counter()
    for params in enumerate_params(space):
        problem = infeasibility(space, params, input_shape, num_classes)
        if problem:
            infeasible[problem] += 1
        else:
            points.append(params)
    return points, infeasible


def enumerate_params(space: SearchSpace) -> Iterator[dict[str, Any]]:
    """Every distinct sample `suggest_params` can return for a space of finite choices, in
    depth-first order of the space's knobs (the file's first knob varies slowest)."""
    path: list[int] = []
    while True:
        walker = _PathSuggester(path)
        yield suggest_params(space, walker)
        # The next path: advance the deepest decision that has options left.
        for depth in reversed(range(len(walker.taken))):
            if walker.taken[depth] + 1 < walker.widths[depth]:
                path = [*walker.taken[:depth], walker.taken[depth] + 1]
                break
        else:
            return


class _PathSuggester:
    """Answers each categorical question of one walk through the space with the option
    its path names (the first option past the path's end), recording what it took."""

    def __init__(self, path: list[int]) -> None:
        self.path = path
        self.taken: list[int] = []
        self.widths: list[int] = []

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        depth = len(self.taken)
        index = self.path[depth] if depth < len(self.path) else 0
        self.taken.append(index)
        self.widths.append(len(choices))
        return choices[index]

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False
                      ) -> float:
        raise SettingsError(f"{name} is a range, which a grid cannot enumerate")

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1,
                    log: bool = False) -> int:
        raise SettingsError(f"{name} is a range, which a grid cannot enumerate")


class ReplaySuggester:
    """Answers every question with a value already chosen (a grid point, or a finished
    Optuna trial's params), so the walk rebuilds the full sample they stand for."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = values

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        return self.values[name]

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False
                      ) -> float:
        return self.values[name]

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1,
                    log: bool = False) -> int:
        return self.values[name]


class _RecordedSuggester:
    """Answers the walk's questions from a past trial's logged params (MLflow keeps them
    as text), refusing any value this space would not propose."""

    def __init__(self, recorded: Mapping[str, str]) -> None:
        self.recorded = recorded
        self.asked: dict[str, Any] = {}

    def _value(self, name: str) -> Any:
        text = self.recorded[name]
        try:
            return json.loads(text)
        except ValueError:
            return text  # a string choice is logged as it is

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        text = self.recorded[name]
        for choice in choices:
            if choice == self._value(name) or str(choice) == text:
                self.asked[name] = choice
                return choice
        raise ValueError(f"{name}: {text} is not among {choices}")

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False
                      ) -> float:
        value = float(self._value(name))
        if not low <= value <= high:
            raise ValueError(f"{name}: {value} is outside [{low}, {high}]")
        self.asked[name] = value
        return value

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1,
                    log: bool = False) -> int:
        value = self._value(name)
        if not isinstance(value, int) or not low <= value <= high or (value - low) % step:
            raise ValueError(f"{name}: {value} is not an int in [{low}, {high}] step {step}")
        self.asked[name] = value
        return value


def recorded_params(space: SearchSpace, recorded: Mapping[str, str]) -> dict[str, Any] | None:
    """The values a past trial (params as MLflow logged them) gave this space's searched
    knobs, as a sampler would propose them; None if the space no longer allows them."""
    suggester = _RecordedSuggester(recorded)
    try:
        suggest_params(space, suggester)
    except (KeyError, ValueError, TypeError):
        return None
    return suggester.asked
