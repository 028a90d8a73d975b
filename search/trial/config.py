"""`TrialConfig`: one sampled point of a search space, resolved into the concrete CNN and
training setup a trial builds.

The sampler produces knob values by dotted name (see `search.space.parameters`); `from_params`
applies the defaults, the block rules (``filters_growth``) and the per-block overrides,
so the model builder and the conv arithmetic read plain per-block values. Frozen: a
trial's identity never changes.

The three classes are made from the knob registry, so a new knob is a registry entry
(and the code that builds its layer), never a field added here: `ConvBlock` has a field
per block knob, `Augmentation` one per augmentation knob, and `TrialConfig` one per
other knob (`CONFIG_KNOBS`), plus its ``blocks`` and ``augmentation``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from search.space.parameters import (
    AUGMENTATION,
    AUGMENTATIONS,
    BLOCK_KNOBS,
    CONFIG_KNOBS,
    KNOBS,
    default_params,
    switched_knob,
)

_DEFAULTS = default_params()


def _fields(names: Any, default_of: Any) -> list[tuple[str, Any, Any]]:
    return [(name, Any, dataclasses.field(default=default_of(name))) for name in names]


#: One conv block: `convs_per_block` conv layers (the first with `stride`), each followed
#: by batch normalization when `batchnorm`, then the block's pooling.
ConvBlock = dataclasses.make_dataclass(
    "ConvBlock", _fields(BLOCK_KNOBS, lambda name: _DEFAULTS[name]), frozen=True)

#: Random image transforms applied in training only (Keras preprocessing layers).
Augmentation = dataclasses.make_dataclass(
    "Augmentation", _fields(AUGMENTATIONS, lambda name: AUGMENTATIONS[name].default),
    frozen=True)


def resolve_blocks(values: Mapping[str, Any]) -> tuple[Any, ...]:
    """The conv blocks that knob values describe: shared knobs, the filters rule, then
    per-block overrides. `values` must hold every shared knob."""
    blocks = []
    for number in range(1, values["conv_blocks"] + 1):
        settings = {name: values.get(f"block{number}.{name}", values[name])
                    for name in BLOCK_KNOBS}
        if f"block{number}.filters" not in values:
            grown = values["filters"] * values["filters_growth"] ** (number - 1)
            settings["filters"] = max(1, round(grown))
        blocks.append(ConvBlock(**settings))
    return tuple(blocks)


def _from_params(cls: type, params: Mapping[str, Any]) -> Any:
    """Resolve knob values by dotted name; absent knobs take their defaults.

    Raises:
        KeyError: a name that is not a knob (a bug in the caller, not user input:
            space files are validated before sampling).
    """
    # Switches of optional knobs travel with the sample (the sampler saw them) but
    # configure nothing themselves: an off knob is simply absent.
    params = {k: v for k, v in params.items() if switched_knob(k) is None}
    unknown = set(params) - set(KNOBS)
    if unknown:
        raise KeyError(f"not trial parameters: {sorted(unknown)}")
    values = {**_DEFAULTS, **params}
    augmentation = Augmentation(**{name: values[f"{AUGMENTATION}.{name}"]
                                   for name in AUGMENTATIONS})
    return cls(**{name: values[name] for name in CONFIG_KNOBS},
               blocks=resolve_blocks(values), augmentation=augmentation)


def _to_params(self: Any) -> dict[str, Any]:
    """The knob values that give exactly this config: every block spelled out, and only
    the knobs that apply (no momentum under adam)."""
    params: dict[str, Any] = {name: getattr(self, name) for name in CONFIG_KNOBS}
    params["conv_blocks"] = len(self.blocks)
    for number, block in enumerate(self.blocks, start=1):
        for name in BLOCK_KNOBS:
            params[f"block{number}.{name}"] = getattr(block, name)
    for name in AUGMENTATIONS:
        params[f"{AUGMENTATION}.{name}"] = getattr(self.augmentation, name)
    return {name: value for name, value in params.items()
            if KNOBS[name].when is None or KNOBS[name].when.holds(params)}


#: The hyperparameters of one trial, resolved.
TrialConfig = dataclasses.make_dataclass(
    "TrialConfig",
    [*_fields(CONFIG_KNOBS, lambda name: _DEFAULTS[name]),
     ("blocks", tuple, dataclasses.field(default_factory=lambda: resolve_blocks(_DEFAULTS))),
     ("augmentation", Any, dataclasses.field(default_factory=Augmentation))],
    frozen=True,
    namespace={"from_params": classmethod(_from_params), "to_params": _to_params})

# Made classes live in this module, so configs pickle (to Ray workers) by their name.
for _made in (ConvBlock, Augmentation, TrialConfig):
    _made.__module__ = __name__
