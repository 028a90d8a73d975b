"""Load a YAML search space file into a validated `SearchSpace`.

This is the first step of every search: `search.run` calls `load_space` before Ray,
TensorFlow or MLflow are touched, so a malformed file costs the user milliseconds and
one line naming ``file:line: key``. The file's keys are the knobs of `search.space.parameters`
(groups such as ``augmentation`` and ``block2`` are nested mappings); a knob the file
leaves out keeps its default. A knob's value is a plain value (fixed) or a mapping with one
distribution, optionally with a condition:

    optimizer:      {choices: [adam, sgd]}
    learning_rate:  {loguniform: [1.0e-4, 1.0e-1]}
    dropout:        {uniform: [0.0, 0.5]}
    conv_blocks:    {int: [1, 3]}                # also: step: 2, or log: true
    batch_size:     {grid: [32, 64]}             # every value, under --algo grid
    momentum:       {uniform: [0.0, 0.9], when: {optimizer: sgd}}
    dense_units:    {value: 64, when: {conv_blocks: [1, 2]}}
    augmentation:
      rotation:     {uniform: [0.02, 0.2], optional: true}   # off (0) or an amount

Top-level settings: ``description`` (text), ``max_params`` (configs with more
parameters are rejected before training) and ``input_shape`` ([height, width, channels]
the space was written for; ``python -m search.space check`` uses it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from search.errors import SpaceError
from search.objectives import DEFAULT_OBJECTIVES, OBJECTIVES
from search.space.distributions import (
    FINITE,
    Choice,
    Distribution,
    Fixed,
    Grid,
    IntRange,
    LogUniform,
    Uniform,
)
from search.space.domains import Domain, describe
from search.space.parameters import KNOBS, Condition, Knob

#: The space used when the user names none.
DEFAULT_SPACE = "default"

#: Top-level keys that are settings, not knobs.
_SETTINGS_KEYS = ("description", "max_params", "input_shape", "objectives", "trade_off")

_RANGE_KEYS = ("uniform", "loguniform", "int")
_DISTRIBUTION_KEYS = ("value", "choices", "grid", *_RANGE_KEYS)
_INT_OPTIONS = ("step", "log")
_OPTIONS = (*_INT_OPTIONS, "when", "optional")


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space: a distribution for every knob that applies, and the
    conditions under which conditional knobs apply.

    Immutable and cheap to pickle, so it travels to Ray workers and searchers as it is.
    """

    distributions: Mapping[str, Distribution]
    #: Conditions of each conditional knob (the knob's own and the file's), all required.
    conditions: Mapping[str, tuple[Condition, ...]] = field(default_factory=dict)
    description: str = ""
    max_params: int | None = None
    #: The image shape (height, width, channels) the space was written for, if it says.
    input_shape: tuple[int, int, int] | None = None
    path: Path | None = None
    #: Knobs that a sampled switch turns on (sampled) or off (their default).
    optional: frozenset[str] = frozenset()
    #: What the search optimises (names in `search.objectives.OBJECTIVES`), first first.
    objectives: tuple[str, ...] = DEFAULT_OBJECTIVES
    #: Weights per objective that pick the registered model; empty: best by the first.
    trade_off: Mapping[str, float] = field(default_factory=dict)
    #: The YAML the space was read from, verbatim (logged with each search).
    text: str = ""
    #: Line of each knob in the file, for errors found after loading.
    lines: Mapping[str, int] = field(default_factory=dict)

    def searched(self) -> dict[str, Distribution]:
        """The knobs the sampler chooses (not fixed), in sampling order."""
        return {n: d for n, d in self.distributions.items() if not isinstance(d, Fixed)}

    def is_grid(self) -> bool:
        """Whether the file asks for a grid search: it has grid lists, and every searched
        knob has finitely many values."""
        searched = self.searched().values()
        return any(isinstance(d, Grid) for d in searched) and \
            all(isinstance(d, FINITE) for d in searched)

    def active(self, name: str, params: Mapping[str, Any]) -> bool:
        """Whether knob `name` applies, given the values sampled so far."""
        return all(condition.holds(params) for condition in self.conditions.get(name, ()))

    def error(self, name: str, message: str) -> SpaceError:
        """A `SpaceError` pointing at knob `name` in this space's file."""
        return SpaceError(message, path=self.path, line=self.lines.get(name), key=name)


def shipped_spaces_dir() -> Path:
    """Where the spaces that ship with convsearch live.

    Inside an installed wheel they are package data (``search/spaces``); in a checkout or
    an editable install they are the repository's ``spaces/`` folder.
    """
    package = Path(__file__).resolve().parents[1]
    packaged = package / "spaces"
    return packaged if packaged.is_dir() else package.parent / "spaces"


def resolve_space_path(name_or_path: str | Path) -> Path:
    """Turn ``--space`` into a file: an existing path, or the name of a shipped space.

    Raises:
        SpaceError: neither a file nor a shipped space's name.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = shipped_spaces_dir() / f"{name_or_path}.yaml"
    if path.suffix == "" and len(path.parts) == 1 and shipped.is_file():
        return shipped
    if path.is_dir():
        raise SpaceError(f"space file is a directory: {path}")
    known = ", ".join(sorted(p.stem for p in shipped_spaces_dir().glob("*.yaml")))
    raise SpaceError(f"space file not found: {path} (shipped spaces: {known})")


def load_space(name_or_path: str | Path) -> SearchSpace:
    """Read and validate a space file (or a shipped space by name).

    Raises:
        SpaceError: the file is missing, unreadable, not YAML, or not a valid space.
    """
    path = resolve_space_path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpaceError(f"cannot read space file: {exc}", path=path) from exc
    return parse_space(text, path=path)


def parse_space(text: str, path: Path | str | None = None) -> SearchSpace:
    """Validate a space given as YAML text; `path` is only used in messages.

    Raises:
        SpaceError: the text is not YAML or not a valid space.
    """
    return _Parser(Path(path) if path is not None else None).parse(text)


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-4`` as a string; users mean a number, so resolve it as one."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)

_Entries = dict[str, tuple[yaml.Node, yaml.Node]]


class _Parser:
    """Walks the YAML node tree, so every message can carry the line of its key."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.lines: dict[str, int] = {}
        self.when_nodes: dict[str, yaml.Node] = {}
        self.user_conditions: dict[str, list[Condition]] = {}
        self.optional: set[str] = set()
        self._constructor = _Loader("")

    def fail(self, node: yaml.Node | None, key: str | None, message: str) -> SpaceError:
        line = node.start_mark.line + 1 if node is not None else None
        return SpaceError(message, path=self.path, line=line, key=key)

    # -- the document --------------------------------------------------------------------

    def parse(self, text: str) -> SearchSpace:
        try:
            root = yaml.compose(text, Loader=_Loader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise SpaceError(f"not valid YAML: {problem}", path=self.path, line=line) from exc
        if root is None:
            raise SpaceError("the file is empty; it must map parameter names to values",
                             path=self.path, line=1)
        entries = self.mapping(root, key=None, what="a mapping of parameter names")

        given: dict[str, Distribution] = {}
        settings: dict[str, Any] = {}
        groups = {k.group for k in KNOBS.values() if k.group}
        top = [name for name, knob in KNOBS.items() if knob.group is None]
        known = ", ".join([*_SETTINGS_KEYS, "augmentation", "block1..block8", *top])
        for key, (key_node, value_node) in entries.items():
            if key in _SETTINGS_KEYS:
                settings[key] = self.setting(key, value_node)
            elif key in groups:
                members = sorted(n.split(".", 1)[1] for n in KNOBS if n.startswith(key + "."))
                group = self.mapping(value_node, key, what=f"a mapping of {key} settings")
                for sub, (sub_node, sub_value) in group.items():
                    name = f"{key}.{sub}"
                    if name not in KNOBS:
                        raise self.fail(sub_node, name,
                                        f"unknown key (known: {', '.join(members)})")
                    given[name] = self.distribution(KNOBS[name], sub_node, sub_value)
            elif key in KNOBS:
                given[key] = self.distribution(KNOBS[key], key_node, value_node)
            else:
                raise self.fail(key_node, key, f"unknown key (known: {known})")

        distributions: dict[str, Distribution] = {}
        for name, knob in KNOBS.items():  # sampling order
            if name in given:
                distributions[name] = given[name]
            elif knob.default is not None:
                distributions[name] = Fixed(knob.default)
        conditions = self.conditions(distributions, given)
        if "trade_off" in settings:
            objectives = settings.get("objectives", DEFAULT_OBJECTIVES)
            node = entries["trade_off"][1]
            for name in settings["trade_off"]:
                if name not in objectives:
                    raise self.fail(node, f"trade_off.{name}", "not one of this space's "
                                    f"objectives ({', '.join(objectives)})")
        return SearchSpace(distributions=_in_sampling_order(distributions, conditions),
                           conditions=conditions,
                           description=settings.get("description", ""),
                           max_params=settings.get("max_params"),
                           input_shape=settings.get("input_shape"),
                           objectives=settings.get("objectives", DEFAULT_OBJECTIVES),
                           trade_off=settings.get("trade_off", {}),
                           optional=frozenset(self.optional), text=text, path=self.path,
                           lines=dict(self.lines))

    def setting(self, key: str, node: yaml.Node) -> Any:
        if key == "description":
            return self.scalar(node, key, str)
        if key == "objectives":
            if not isinstance(node, yaml.SequenceNode) or not node.value:
                raise self.fail(node, key, "expected a list of objectives, e.g. "
                                "[val_accuracy, params]")
            names = []
            for item in node.value:
                name = self.scalar(item, key, str)
                if name not in OBJECTIVES:
                    raise self.fail(item, key, f"{name!r} is not an objective (known: "
                                    f"{', '.join(OBJECTIVES)})")
                if name in names:
                    raise self.fail(item, key, f"{name!r} is listed twice")
                names.append(name)
            return tuple(names)
        if key == "trade_off":
            entries = self.mapping(node, key, what="a mapping of objective: weight")
            weights = {}
            for name, (_, v_node) in entries.items():
                weight = self.value(v_node, f"{key}.{name}")
                if isinstance(weight, bool) or not isinstance(weight, int | float):
                    raise self.fail(v_node, f"{key}.{name}", f"expected a number, got "
                                    f"{describe(weight)}")
                weights[name] = float(weight)
            if not weights:
                raise self.fail(node, key, "empty; give a weight per objective")
            return weights
        if key == "input_shape":
            if not isinstance(node, yaml.SequenceNode) or len(node.value) != 3:
                raise self.fail(node, key, "expected [height, width, channels]")
            sides = tuple(self.scalar(item, key, int) for item in node.value)
            if min(sides) < 1:
                raise self.fail(node, key, f"sides must be at least 1, got {list(sides)}")
            return sides
        value = self.scalar(node, key, int)
        if value < 1:
            raise self.fail(node, key, f"must be at least 1, got {value}")
        return value

    # -- conditions ----------------------------------------------------------------------

    def conditions(self, distributions: dict[str, Distribution],
                   given: dict[str, Distribution]) -> dict[str, tuple[Condition, ...]]:
        result: dict[str, tuple[Condition, ...]] = {}
        for name in distributions:
            own = KNOBS[name].when
            user = self.user_conditions.get(name, [])
            if own is not None and name in given:
                self.reachable(own, distributions, name, self.lines[name], None)
            for condition in user:
                node = self.when_nodes[name]
                target = distributions.get(condition.param)
                if target is None:  # a per-block knob the file does not set
                    raise self.fail(node, f"{name}.when",
                                    f"{condition.param} is not set in this space")
                self.reachable(condition, distributions, name, None, node)
            combined = ([own] if own is not None else []) + user
            if combined:
                result[name] = tuple(combined)
        # A condition may read a conditional knob, but never (through others) itself.
        for name in result:
            seen, stack = set(), [c.param for c in result[name]]
            while stack:
                param = stack.pop()
                if param == name:
                    raise self.fail(self.when_nodes.get(name), f"{name}.when",
                                    "conditions form a cycle")
                if param not in seen:
                    seen.add(param)
                    stack.extend(c.param for c in result.get(param, ()))
        return result

    def reachable(self, condition: Condition, distributions: dict[str, Distribution],
                  name: str, line: int | None, node: yaml.Node | None) -> None:
        """Reject a condition that no sampled value of its knob can satisfy."""
        target = distributions[condition.param]
        values = target.extremes()
        if condition.at_least is not None:
            ok = max(values) >= condition.at_least
        elif isinstance(target, FINITE):
            ok = any(v in condition.values for v in values)
        else:  # a range: any listed value inside it can occur
            low, high = values
            ok = any(low <= v <= high for v in condition.values)
        if not ok:
            where = f"{name}.when" if node is not None else name
            message = (f"applies only when {condition}, and this space's "
                       f"{condition.param} is {target}")
            if node is not None:
                raise self.fail(node, where, message)
            raise SpaceError(message, path=self.path, line=line, key=where)

    def when(self, name: str, node: yaml.Node) -> list[Condition]:
        path = f"{name}.when"
        entries = self.mapping(node, path, what="a mapping of parameter: value(s)")
        if not entries:
            raise self.fail(node, path, "empty; name at least one parameter")
        conditions = []
        for param, (p_node, v_node) in entries.items():
            if param not in KNOBS:
                raise self.fail(p_node, f"{path}.{param}", "unknown parameter")
            if param == name:
                raise self.fail(p_node, f"{path}.{param}", "a parameter cannot depend on "
                                "itself")
            if isinstance(v_node, yaml.SequenceNode):
                values = tuple(self.value(item, f"{path}.{param}") for item in v_node.value)
                if not values:
                    raise self.fail(v_node, f"{path}.{param}", "empty list")
            else:
                values = (self.value(v_node, f"{path}.{param}"),)
            for value, item in zip(values, v_node.value if isinstance(
                    v_node, yaml.SequenceNode) else [v_node], strict=True):
                self.check(KNOBS[param].domain, value, item, f"{path}.{param}")
            conditions.append(Condition(param, values))
        return conditions

    # -- one knob ------------------------------------------------------------------------

    def distribution(self, knob: Knob, key_node: yaml.Node, node: yaml.Node) -> Distribution:
        name = knob.name
        self.lines[name] = key_node.start_mark.line + 1
        domain = knob.domain
        if isinstance(node, yaml.SequenceNode):
            raise self.fail(node, name, "a bare list is ambiguous; write {choices: [...]} "
                            "to search over these values, or {grid: [...]} to try each")
        if isinstance(node, yaml.ScalarNode):
            value = self.value(node, name)
            self.check(domain, value, node, name)
            return Fixed(value)
        entries = self.mapping(node, name, what="a value or a distribution")
        for key, (k_node, _) in entries.items():
            if key not in _DISTRIBUTION_KEYS and key not in _OPTIONS:
                raise self.fail(k_node, f"{name}.{key}", "unknown key (known: "
                                f"{', '.join(_DISTRIBUTION_KEYS + _OPTIONS)})")
        kinds = [k for k in entries if k in _DISTRIBUTION_KEYS]
        if len(kinds) != 1:
            given = f"got {', '.join(kinds)}" if kinds else "got none"
            raise self.fail(node, name, "give exactly one of "
                            f"{', '.join(_DISTRIBUTION_KEYS)} ({given})")
        if "when" in entries:
            self.when_nodes[name] = entries["when"][1]
            self.user_conditions[name] = self.when(name, entries["when"][1])
        kind = kinds[0]
        k_node, v_node = entries[kind]
        path = f"{name}.{kind}"
        if "optional" in entries:
            o_node = entries["optional"][1]
            if self.scalar(o_node, f"{name}.optional", bool):
                if knob.default is None:
                    raise self.fail(o_node, f"{name}.optional", "only a knob with a default "
                                    "(its off value) can be optional")
                if kind == "value":
                    raise self.fail(o_node, f"{name}.optional", "an optional knob needs a "
                                    "distribution to sample when it is on")
                self.optional.add(name)
        for option in _INT_OPTIONS:
            if option in entries and kind != "int":
                raise self.fail(entries[option][0], f"{name}.{option}",
                                f"'{option}' only applies to an int range")
        if kind == "value":
            value = self.value(v_node, path)
            self.check(domain, value, v_node, path)
            return Fixed(value)
        if kind in ("choices", "grid"):
            values = self.choices(domain, v_node, path)
            return Choice(values) if kind == "choices" else Grid(values)
        if not domain.numeric:
            raise self.fail(k_node, path, f"{name} takes {_kind_of(domain)}; use "
                            "{choices: [...]}")
        if kind == "int" and not domain.integral:
            raise self.fail(k_node, path, f"{name} takes real numbers; use "
                            "{uniform: [low, high]} or {loguniform: [low, high]}")
        if kind != "int" and domain.integral:
            raise self.fail(k_node, path, f"{name} takes whole numbers; use {{int: [low, high]}}")
        low, high = self.bounds(v_node, path, integral=domain.integral)
        for bound, bound_node in zip((low, high), v_node.value, strict=True):
            self.check(domain, bound, bound_node, path)
        if kind == "uniform":
            return Uniform(float(low), float(high))
        if kind == "loguniform":
            if low <= 0:
                raise self.fail(v_node, path, f"low must be above 0 on a log scale, got {low}")
            return LogUniform(float(low), float(high))
        return self.int_range(entries, low, high, name)

    def int_range(self, entries: _Entries, low: int, high: int, name: str) -> IntRange:
        step, log = 1, False
        if "step" in entries:
            step_node = entries["step"][1]
            step = self.scalar(step_node, f"{name}.step", int)
            if step < 1:
                raise self.fail(step_node, f"{name}.step", f"must be at least 1, got {step}")
            if (high - low) % step:
                raise self.fail(step_node, f"{name}.step",
                                f"high - low ({high - low}) is not a multiple of step {step}")
        if "log" in entries:
            log = self.scalar(entries["log"][1], f"{name}.log", bool)
            if log and step != 1:
                raise self.fail(entries["log"][1], f"{name}.log",
                                "a log-scale int range cannot also have a step")
            if log and low < 1:
                raise self.fail(entries["log"][1], f"{name}.log",
                                f"low must be at least 1 on a log scale, got {low}")
        return IntRange(low, high, step=step, log=log)

    def choices(self, domain: Domain, node: yaml.Node, path: str) -> tuple[Any, ...]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, path, f"expected a list of values, got {self.kind(node)}")
        if not node.value:
            raise self.fail(node, path, "empty list; give at least one value")
        values: list[Any] = []
        for item in node.value:
            value = self.value(item, path)
            self.check(domain, value, item, path)
            if any(value == v and type(value) is type(v) for v in values):
                raise self.fail(item, path, f"{value!r} is listed twice")
            values.append(value)
        return tuple(values)

    def bounds(self, node: yaml.Node, path: str, integral: bool) -> tuple[Any, Any]:
        number = "whole numbers" if integral else "numbers"
        if not isinstance(node, yaml.SequenceNode) or len(node.value) != 2:
            shown = self.kind(node) if not isinstance(node, yaml.SequenceNode) \
                else f"a list of {len(node.value)}"
            raise self.fail(node, path, f"expected [low, high], two {number}; got {shown}")
        low, high = (self.value(n, path) for n in node.value)
        for value, item in ((low, node.value[0]), (high, node.value[1])):
            wrong = isinstance(value, bool) or not isinstance(value, int | float)
            if wrong or (integral and not isinstance(value, int)) or \
                    (isinstance(value, float) and not math.isfinite(value)):
                raise self.fail(item, path, f"expected {number} for [low, high], "
                                f"got {describe(value)}")
        if low > high:
            raise self.fail(node, path, f"reversed range: low {low} is greater than high {high}")
        return low, high

    # -- plain values --------------------------------------------------------------------

    def mapping(self, node: yaml.Node, key: str | None, what: str) -> _Entries:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, key, f"expected {what}, got {self.kind(node)}")
        entries: _Entries = {}
        for key_node, value_node in node.value:
            name = self.value(key_node, key)
            path = f"{key}.{name}" if key else str(name)
            if not isinstance(name, str):
                raise self.fail(key_node, path, f"keys must be names, got {describe(name)}")
            if name in entries:
                first = entries[name][0].start_mark.line + 1
                raise self.fail(key_node, path, f"duplicate key (first given on line {first})")
            entries[name] = (key_node, value_node)
        return entries

    def scalar(self, node: yaml.Node, path: str, kind: type) -> Any:
        value = self.value(node, path)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise self.fail(node, path, f"expected {kind.__name__}, got {describe(value)}")
        return value

    def check(self, domain: Domain, value: Any, node: yaml.Node, path: str) -> None:
        problem = domain.problem(value)
        if problem:
            raise self.fail(node, path, problem)

    def value(self, node: yaml.Node, path: str | None) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, path, f"expected a plain value, got {self.kind(node)}")
        return self._constructor.construct_object(node, deep=True)

    @staticmethod
    def kind(node: yaml.Node) -> str:
        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        return "a value"


def _kind_of(domain: Domain) -> str:
    return "names" if hasattr(domain, "names") else "true or false"


def _in_sampling_order(distributions: dict[str, Distribution],
                       conditions: dict[str, tuple[Condition, ...]]) -> dict[str, Distribution]:
    """Knobs ordered so each comes after every knob its conditions read (stable otherwise)."""
    ordered: dict[str, Distribution] = {}
    pending = list(distributions)
    while pending:
        ready = [n for n in pending
                 if all(c.param in ordered or c.param not in distributions
                        for c in conditions.get(n, ()))]
        for name in ready:
            ordered[name] = distributions[name]
        pending = [n for n in pending if n not in ordered]
    return ordered

