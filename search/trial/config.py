"""`TrialConfig`: one sampled point of a search space, resolved into the concrete CNN and
training setup a trial builds.

The sampler produces knob values by dotted name (see `search.space.parameters`); `from_params`
applies the defaults, the block rules (``filters_growth``) and the per-block overrides,
so the model builder and the conv arithmetic read plain per-block values. Frozen: a
trial's identity never changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from search.space.parameters import BLOCK_KNOBS, KNOBS, default_params, switched_knob

_DEFAULTS = default_params()


@dataclass(frozen=True)
class ConvBlock:
    """One conv block: `convs_per_block` conv layers (the first with `stride`), then the
    block's pooling."""

    filters: int = _DEFAULTS["filters"]
    kernel_size: int = _DEFAULTS["kernel_size"]
    convs_per_block: int = _DEFAULTS["convs_per_block"]
    stride: int = _DEFAULTS["stride"]
    padding: str = _DEFAULTS["padding"]
    pooling: str = _DEFAULTS["pooling"]


@dataclass(frozen=True)
class Augmentation:
    """Random image transforms applied in training only (Keras preprocessing layers)."""

    flip: str = _DEFAULTS["augmentation.flip"]
    rotation: float = _DEFAULTS["augmentation.rotation"]
    zoom: float = _DEFAULTS["augmentation.zoom"]
    translation: float = _DEFAULTS["augmentation.translation"]
    contrast: float = _DEFAULTS["augmentation.contrast"]
    brightness: float = _DEFAULTS["augmentation.brightness"]


def _default_blocks() -> tuple[ConvBlock, ...]:
    return resolve_blocks(_DEFAULTS)


@dataclass(frozen=True)
class TrialConfig:
    """The hyperparameters of one trial, resolved."""

    optimizer: str = _DEFAULTS["optimizer"]
    learning_rate: float = _DEFAULTS["learning_rate"]
    momentum: float = _DEFAULTS["momentum"]
    nesterov: bool = _DEFAULTS["nesterov"]
    kernel_initializer: str = _DEFAULTS["kernel_initializer"]
    bias_initializer: str = _DEFAULTS["bias_initializer"]
    blocks: tuple[ConvBlock, ...] = field(default_factory=_default_blocks)
    dense_units: int = _DEFAULTS["dense_units"]
    dropout: float = _DEFAULTS["dropout"]
    batch_size: int = _DEFAULTS["batch_size"]
    augmentation: Augmentation = field(default_factory=Augmentation)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TrialConfig:
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
        augmentation = Augmentation(**{
            name.split(".", 1)[1]: value for name, value in values.items()
            if name.startswith("augmentation.")})
        return cls(
            optimizer=values["optimizer"], learning_rate=values["learning_rate"],
            momentum=values["momentum"], nesterov=values["nesterov"],
            kernel_initializer=values["kernel_initializer"],
            bias_initializer=values["bias_initializer"], blocks=resolve_blocks(values),
            dense_units=values["dense_units"], dropout=values["dropout"],
            batch_size=values["batch_size"], augmentation=augmentation)

    def to_params(self) -> dict[str, Any]:
        """The knob values that give exactly this config: every block spelled out, and
        only the knobs that apply (no momentum under adam)."""
        params: dict[str, Any] = {
            "optimizer": self.optimizer, "learning_rate": self.learning_rate,
            "momentum": self.momentum, "nesterov": self.nesterov,
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer, "conv_blocks": len(self.blocks),
        }
        for number, block in enumerate(self.blocks, start=1):
            for name in BLOCK_KNOBS:
                params[f"block{number}.{name}"] = getattr(block, name)
        params.update({"dense_units": self.dense_units, "dropout": self.dropout,
                       "batch_size": self.batch_size})
        for name in ("flip", "rotation", "zoom", "translation", "contrast", "brightness"):
            params[f"augmentation.{name}"] = getattr(self.augmentation, name)
        return {name: value for name, value in params.items()
                if KNOBS[name].when is None or KNOBS[name].when.holds(params)}


def resolve_blocks(values: Mapping[str, Any]) -> tuple[ConvBlock, ...]:
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
