"""`TrialConfig`: one sampled point of a search space, everything a trial needs to build
and train one CNN.

This is the single home of every tunable knob: its name, its default (used when a space
file leaves it out) and its valid domain. The space loader reads the fields to know which
keys a space file may contain; the model builder and trainer read the values. Parameters
are addressed by dotted names (``augmentation.rotation``) wherever they are flattened:
in the search algorithm, in Ray trial configs and in MLflow params.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from search.domains import Domain, Integers, Names, Reals
from search.vocabulary import (
    BIAS_INITIALIZERS,
    FLIP_MODES,
    KERNEL_INITIALIZERS,
    OPTIMIZERS,
    POOLINGS,
)


def _knob(default: Any, domain: Domain, help: str) -> Any:
    return field(default=default, metadata={"domain": domain, "help": help})


@dataclass(frozen=True)
class Augmentation:
    """Random image transforms applied in training only (Keras preprocessing layers)."""

    flip: str = _knob("none", Names(FLIP_MODES, "RandomFlip mode"),
                      "RandomFlip mode, or none")
    rotation: float = _knob(0.0, Reals(0.0, 0.5),
                            "RandomRotation factor, a fraction of a full turn; 0 is off")
    zoom: float = _knob(0.0, Reals(0.0, 0.9), "RandomZoom height/width factor; 0 is off")
    translation: float = _knob(0.0, Reals(0.0, 0.9),
                               "RandomTranslation height/width factor; 0 is off")


@dataclass(frozen=True)
class TrialConfig:
    """The hyperparameters of one trial. Frozen: a trial's identity never changes."""

    optimizer: str = _knob("adam", Names(OPTIMIZERS, "Keras optimizer"), "Keras optimizer name")
    learning_rate: float = _knob(1e-3, Reals(0.0, 10.0, low_open=True),
                                 "optimizer learning rate")
    kernel_initializer: str = _knob("glorot_uniform",
                                    Names(KERNEL_INITIALIZERS, "Keras kernel initializer"),
                                    "initializer of conv and dense kernels")
    bias_initializer: str = _knob("zeros", Names(BIAS_INITIALIZERS, "Keras bias initializer"),
                                  "initializer of conv and dense biases")
    conv_blocks: int = _knob(2, Integers(1, 8),
                             "number of conv blocks (conv, then pooling that halves the map)")
    filters: int = _knob(32, Integers(1, 4096), "filters of every conv layer")
    kernel_size: int = _knob(3, Integers(1, 15), "conv kernel size (square)")
    pooling: str = _knob("max", Names(POOLINGS, "pooling"), "pooling after each conv block")
    dense_units: int = _knob(64, Integers(1, 65536), "width of the dense layer before the output")
    dropout: float = _knob(0.0, Reals(0.0, 1.0, high_open=True),
                           "dropout rate before the output layer")
    batch_size: int = _knob(32, Integers(1, 65536), "training batch size")
    augmentation: Augmentation = field(default_factory=Augmentation)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TrialConfig:
        """Build a config from dotted parameter names; absent names take their default.

        Raises:
            KeyError: a name that is not a parameter (a bug in the caller, not user input:
                space files are validated before sampling).
        """
        unknown = set(params) - set(parameter_domains())
        if unknown:
            raise KeyError(f"not trial parameters: {sorted(unknown)}")
        return _build(cls, params, prefix="")

    def to_params(self) -> dict[str, Any]:
        """Flatten to dotted parameter names, the form logged to MLflow and Ray."""
        return dict(_flatten(self, prefix=""))


def parameter_domains() -> dict[str, Domain]:
    """Every parameter's dotted name and the domain its values must lie in."""
    return {name: f.metadata["domain"] for name, f in _leaf_fields(TrialConfig, prefix="")}


def parameter_help() -> dict[str, str]:
    """Every parameter's dotted name and its one-line description."""
    return {name: f.metadata["help"] for name, f in _leaf_fields(TrialConfig, prefix="")}


def default_params() -> dict[str, Any]:
    """Every parameter's dotted name and its default value."""
    return TrialConfig().to_params()


def _is_group(f: dataclasses.Field) -> bool:
    return "domain" not in f.metadata


def _group_type(f: dataclasses.Field) -> type:
    # Group fields are declared with default_factory=TheGroupClass.
    return f.default_factory  # type: ignore[return-value]


def _leaf_fields(owner: type, prefix: str) -> Iterator[tuple[str, dataclasses.Field]]:
    for f in dataclasses.fields(owner):
        name = prefix + f.name
        if _is_group(f):
            yield from _leaf_fields(_group_type(f), prefix=name + ".")
        else:
            yield name, f


def _build(owner: type, params: Mapping[str, Any], prefix: str) -> Any:
    kwargs = {}
    for f in dataclasses.fields(owner):
        name = prefix + f.name
        if _is_group(f):
            kwargs[f.name] = _build(_group_type(f), params, prefix=name + ".")
        elif name in params:
            kwargs[f.name] = params[name]
    return owner(**kwargs)


def _flatten(obj: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if _is_group(f):
            yield from _flatten(value, prefix=prefix + f.name + ".")
        else:
            yield prefix + f.name, value
