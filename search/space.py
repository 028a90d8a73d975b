"""Load a YAML search space file into a validated `SearchSpace`.

This is the first step of every search: `search.run` calls `load_space` before Ray,
TensorFlow or MLflow are touched, so a malformed file costs the user milliseconds and
one line naming ``file:line: key``. The file's keys are `TrialConfig`'s parameters (the
`augmentation` group is a nested mapping); a key the file leaves out keeps its default.

A parameter's value is either a plain value (fixed) or a mapping with one distribution:

    optimizer:      {choices: [adam, nadam]}
    learning_rate:  {loguniform: [1.0e-4, 1.0e-1]}
    dropout:        {uniform: [0.0, 0.5]}
    conv_blocks:    {int: [1, 3]}              # also: step: 2, or log: true
    batch_size:     64
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from search.config import default_params, parameter_domains
from search.distributions import Choice, Distribution, Fixed, IntRange, LogUniform, Uniform
from search.domains import Domain, Names, describe
from search.errors import SpaceError

#: The space used when the user names none.
DEFAULT_SPACE = "default"

#: Top-level keys that are not parameters.
_SETTINGS_KEYS = ("description",)

_RANGE_KEYS = ("uniform", "loguniform", "int")
_DISTRIBUTION_KEYS = ("choices", *_RANGE_KEYS)
_INT_OPTIONS = ("step", "log")


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space: one distribution for every `TrialConfig` parameter.

    Immutable and cheap to pickle, so it travels to Ray workers as it is.
    """

    distributions: Mapping[str, Distribution]
    description: str = ""
    path: Path | None = None
    #: Line of each parameter in the file, for errors found after loading.
    lines: Mapping[str, int] = field(default_factory=dict)

    def searched(self) -> dict[str, Distribution]:
        """The parameters the sampler chooses, in file order of the config's fields."""
        return {n: d for n, d in self.distributions.items() if not isinstance(d, Fixed)}

    def error(self, name: str, message: str) -> SpaceError:
        """A `SpaceError` pointing at parameter `name` in this space's file."""
        return SpaceError(message, path=self.path, line=self.lines.get(name), key=name)


def shipped_spaces_dir() -> Path:
    """Where the spaces that ship with convsearch live.

    Inside an installed wheel they are package data (``search/spaces``); in a checkout or
    an editable install they are the repository's ``spaces/`` folder.
    """
    packaged = Path(__file__).parent / "spaces"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "spaces"


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


class _Parser:
    """Walks the YAML node tree, so every message can carry the line of its key."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.domains = parameter_domains()
        self.lines: dict[str, int] = {}
        self._constructor = _Loader("")

    def fail(self, node: yaml.Node | None, key: str | None, message: str) -> SpaceError:
        line = node.start_mark.line + 1 if node is not None else None
        return SpaceError(message, path=self.path, line=line, key=key)

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

        distributions: dict[str, Distribution] = {
            name: Fixed(value) for name, value in default_params().items()
        }
        description = ""
        groups = {name.split(".")[0] for name in self.domains if "." in name}
        known = sorted(_SETTINGS_KEYS) + sorted({n.split(".")[0] for n in self.domains})
        for key, (key_node, value_node) in entries.items():
            if key == "description":
                description = self.scalar(value_node, key, str)
            elif key in groups:
                members = {n.split(".", 1)[1] for n in self.domains if n.startswith(key + ".")}
                group = self.mapping(value_node, key, what=f"a mapping of {key} settings")
                for sub, (sub_node, sub_value) in group.items():
                    name = f"{key}.{sub}"
                    if sub not in members:
                        raise self.fail(sub_node, name,
                                        f"unknown key (known: {', '.join(sorted(members))})")
                    distributions[name] = self.distribution(name, sub_node, sub_value)
            elif key in self.domains:
                distributions[key] = self.distribution(key, key_node, value_node)
            else:
                raise self.fail(key_node, key, f"unknown key (known: {', '.join(known)})")
        return SearchSpace(distributions=distributions, description=description,
                           path=self.path, lines=dict(self.lines))

    def mapping(self, node: yaml.Node, key: str | None, what: str
                ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, key, f"expected {what}, got {self.kind(node)}")
        entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
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

    def distribution(self, name: str, key_node: yaml.Node, node: yaml.Node) -> Distribution:
        self.lines[name] = key_node.start_mark.line + 1
        domain = self.domains[name]
        if isinstance(node, yaml.SequenceNode):
            raise self.fail(node, name, "a bare list is ambiguous; write {choices: [...]} "
                            "to search over these values")
        if isinstance(node, yaml.ScalarNode):
            value = self.value(node, name)
            self.check(domain, value, node, name)
            return Fixed(value)
        entries = self.mapping(node, name, what="a value or a distribution")
        kinds = [k for k in entries if k in _DISTRIBUTION_KEYS]
        for key, (k_node, _) in entries.items():
            if key not in _DISTRIBUTION_KEYS and key not in _INT_OPTIONS:
                raise self.fail(k_node, f"{name}.{key}", "unknown key (known: "
                                f"{', '.join(_DISTRIBUTION_KEYS + _INT_OPTIONS)})")
        if len(kinds) != 1:
            given = f"got {', '.join(kinds)}" if kinds else "got none"
            raise self.fail(node, name, "give exactly one of "
                            f"{', '.join(_DISTRIBUTION_KEYS)} ({given})")
        kind = kinds[0]
        k_node, v_node = entries[kind]
        path = f"{name}.{kind}"
        for option in _INT_OPTIONS:
            if option in entries and kind != "int":
                raise self.fail(entries[option][0], f"{name}.{option}",
                                f"'{option}' only applies to an int range")
        if kind == "choices":
            return self.choices(domain, v_node, path)
        if isinstance(domain, Names):
            raise self.fail(k_node, path, f"{name} takes names; use {{choices: [...]}}")
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

    def int_range(self, entries: dict[str, tuple[yaml.Node, yaml.Node]], low: int, high: int,
                  name: str) -> IntRange:
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

    def choices(self, domain: Domain, node: yaml.Node, path: str) -> Choice:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, path, f"expected a list of values, got {self.kind(node)}")
        if not node.value:
            raise self.fail(node, path, "empty list; give at least one value")
        values = []
        for item in node.value:
            value = self.value(item, path)
            self.check(domain, value, item, path)
            if value in values:
                raise self.fail(item, path, f"{value!r} is listed twice")
            values.append(value)
        return Choice(tuple(values))

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
