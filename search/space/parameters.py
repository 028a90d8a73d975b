"""Every tunable knob of a trial: its name, default, valid domain, meaning, and when it
applies. The one home of these facts.

The space loader reads `KNOBS` to know which keys a space file may hold and what values
they take; the sampler reads each knob's condition to skip knobs that do not apply (SGD's
momentum under Adam, block 3's overrides in a two-block model); `TrialConfig` resolves the
sampled knobs into a concrete CNN. Knobs are named by dotted paths where they belong to a
group (``augmentation.rotation``, ``block2.filters``).

Conv blocks are described twice over: shared knobs (``filters``, ``kernel_size``, ...)
apply to every block, with ``filters_growth`` as the rule for how filters change from
block to block, and per-block knobs (``block2.kernel_size``) override a shared one for one
block. A per-block knob applies only when the model has that many blocks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from search.space.domains import Booleans, Domain, Integers, Names, Reals
from search.space.vocabulary import (
    ACTIVATIONS,
    BIAS_INITIALIZERS,
    FLIP_MODES,
    HEADS,
    KERNEL_INITIALIZERS,
    LR_SCHEDULES,
    OPTIMIZERS,
    PADDINGS,
    POOLINGS,
)

#: The most conv blocks a model may have; per-block knobs exist for block1..block8.
MAX_CONV_BLOCKS = 8


@dataclass(frozen=True)
class Condition:
    """A knob applies only while another knob's value is one of `values` (or, for a
    whole-number knob, at least `at_least`)."""

    param: str
    values: tuple[Any, ...] = ()
    at_least: int | None = None

    def holds(self, params: Mapping[str, Any]) -> bool:
        """Whether the condition holds for sampled values; an absent knob never satisfies."""
        if self.param not in params:
            return False
        value = params[self.param]
        if self.at_least is not None:
            return value >= self.at_least
        return value in self.values

    def __str__(self) -> str:
        if self.at_least is not None:
            return f"{self.param} >= {self.at_least}"
        shown = " or ".join(str(v) for v in self.values)
        return f"{self.param} is {shown}"


@dataclass(frozen=True)
class Knob:
    """One tunable parameter."""

    name: str
    default: Any
    domain: Domain
    help: str
    #: Applies only when this holds (part of the knob's meaning, not the user's choice).
    when: Condition | None = None
    #: For an augmentation: the Keras layer class it adds, and the value that adds none.
    layer: str | None = None
    off: Any = None
    #: Holds no weights, so population-based training may change it in a running trial.
    mutable: bool = False

    @property
    def group(self) -> str | None:
        """``augmentation`` for ``augmentation.rotation``; None for a top-level knob."""
        return self.name.split(".", 1)[0] if "." in self.name else None


#: Knobs that describe one conv block, shared by every block or overridden per block.
BLOCK_KNOBS: tuple[str, ...] = ("filters", "kernel_size", "convs_per_block", "stride",
                                "padding", "pooling", "batchnorm")

#: Knobs that shape the conv blocks as a whole (how many, how filters grow); with the
#: block knobs, they resolve into a config's blocks rather than being fields of it.
STACK_KNOBS: tuple[str, ...] = ("conv_blocks", "filters_growth")

#: Group of the augmentation knobs.
AUGMENTATION = "augmentation"

_BLOCK_DOMAINS: dict[str, tuple[Any, Domain, str]] = {
    "filters": (32, Integers(1, 4096), "filters of the conv layers (block 1's, under "
                                       "filters_growth)"),
    "kernel_size": (3, Integers(1, 15), "square kernel size of the conv layers"),
    "convs_per_block": (1, Integers(1, 4), "conv layers in the block"),
    "stride": (1, Integers(1, 4), "stride of the block's first conv layer"),
    "padding": ("same", Names(PADDINGS, "Keras padding"), "padding of the conv layers"),
    "pooling": ("max", Names(POOLINGS, "pooling"),
                "pooling that ends the block: max or average (2x2, stride 2), none, or "
                "global (global average pooling; last block only)"),
    "batchnorm": (False, Booleans(), "batch normalization after each conv layer of the "
                                     "block (before its activation)"),
}


def _knobs() -> list[Knob]:
    knobs = [
        Knob("optimizer", "adam", Names(OPTIMIZERS, "Keras optimizer"), "Keras optimizer"),
        Knob("learning_rate", 1e-3, Reals(0.0, 10.0, low_open=True), "learning rate",
             mutable=True),
        Knob("momentum", 0.0, Reals(0.0, 1.0, high_open=True), "momentum of sgd and rmsprop",
             when=Condition("optimizer", ("sgd", "rmsprop"))),
        Knob("nesterov", False, Booleans(),
             "Nesterov momentum for sgd", when=Condition("optimizer", ("sgd",))),
        Knob("kernel_initializer", "glorot_uniform",
             Names(KERNEL_INITIALIZERS, "Keras kernel initializer"),
             "initializer of conv and dense kernels"),
        Knob("bias_initializer", "zeros", Names(BIAS_INITIALIZERS, "Keras bias initializer"),
             "initializer of conv and dense biases"),
        Knob("conv_blocks", 2, Integers(1, MAX_CONV_BLOCKS), "number of conv blocks"),
        Knob("filters_growth", 1.0, Reals(0.25, 4.0),
             "filters of block k are filters * filters_growth^(k-1), rounded (2 doubles)"),
    ]
    knobs += [Knob(name, default, domain, help)
              for name, (default, domain, help) in _BLOCK_DOMAINS.items()]
    knobs += [
        Knob("activation", "relu", Names(ACTIVATIONS, "activation"),
             "activation of the conv and dense layers"),
        Knob("head", "flatten", Names(HEADS, "head"),
             "how the conv stack's output becomes a vector: flatten or global_average "
             "(global average pooling)"),
        Knob("dense_layers", 1, Integers(1, 2), "dense layers before the output"),
        Knob("dense_units", 64, Integers(1, 65536), "width of the dense layers before the output"),
        Knob("dropout", 0.0, Reals(0.0, 1.0, high_open=True), "dropout before the output layer",
             mutable=True),
        Knob("l2", 0.0, Reals(0.0, 1.0), "L2 weight decay of the conv and dense kernels"),
        Knob("label_smoothing", 0.0, Reals(0.0, 0.5, high_open=True),
             "label smoothing of the cross-entropy loss"),
        Knob("lr_schedule", "constant", Names(LR_SCHEDULES, "learning-rate schedule"),
             "learning rate over training: constant, cosine (decay to 0 over --max-epochs), "
             "step (halved every quarter of --max-epochs), or plateau (halved when the "
             "validation loss stalls for 2 epochs)"),
        Knob("batch_size", 32, Integers(1, 65536), "training batch size"),
        Knob("augmentation.flip", "none", Names(FLIP_MODES, "RandomFlip mode"),
             "RandomFlip mode, or none", layer="RandomFlip", off="none"),
        Knob("augmentation.rotation", 0.0, Reals(0.0, 0.5),
             "RandomRotation factor, a fraction of a full turn; 0 is off",
             layer="RandomRotation", off=0.0,
             mutable=True),
        Knob("augmentation.zoom", 0.0, Reals(0.0, 0.9), "RandomZoom factor; 0 is off",
             layer="RandomZoom", off=0.0,
             mutable=True),
        Knob("augmentation.translation", 0.0, Reals(0.0, 0.9),
             "RandomTranslation factor of height and width; 0 is off",
             layer="RandomTranslation", off=0.0,
             mutable=True),
        Knob("augmentation.contrast", 0.0, Reals(0.0, 1.0), "RandomContrast factor; 0 is off",
             layer="RandomContrast", off=0.0,
             mutable=True),
        Knob("augmentation.brightness", 0.0, Reals(0.0, 1.0),
             "RandomBrightness factor, a fraction of full intensity; 0 is off",
             layer="RandomBrightness", off=0.0,
             mutable=True),
    ]
    for block in range(1, MAX_CONV_BLOCKS + 1):
        for name, (_, domain, help) in _BLOCK_DOMAINS.items():
            overriding = help.replace(" (block 1's, under filters_growth)", "")
            knobs.append(Knob(f"block{block}.{name}", None, domain,
                              f"block {block} only: {overriding}",
                              when=Condition("conv_blocks", at_least=block)))
    return knobs


#: Every knob by name, in sampling order (a knob comes after those its condition reads).
KNOBS: dict[str, Knob] = {knob.name: knob for knob in _knobs()}


#: Suffix of the switch an ``optional: true`` knob is sampled with: ``augmentation.rotation.on``
#: decides whether ``augmentation.rotation`` is on (sampled) or off (its default).
SWITCH_SUFFIX = ".on"


def switched_knob(name: str) -> str | None:
    """The knob that `name` switches on and off, if `name` is such a switch."""
    if name.endswith(SWITCH_SUFFIX) and name[: -len(SWITCH_SUFFIX)] in KNOBS:
        return name[: -len(SWITCH_SUFFIX)]
    return None


#: Augmentation knobs by their name in the group (``rotation``), in the model's order.
AUGMENTATIONS: dict[str, Knob] = {name.split(".", 1)[1]: knob for name, knob in KNOBS.items()
                                  if knob.group == AUGMENTATION}

#: Knobs that are plain fields of a trial's config (not blocks, not augmentation).
CONFIG_KNOBS: tuple[str, ...] = tuple(
    name for name, knob in KNOBS.items()
    if knob.group is None and name not in BLOCK_KNOBS and name not in STACK_KNOBS)


def default_params() -> dict[str, Any]:
    """The default value of every knob that has one (per-block overrides have none)."""
    return {name: knob.default for name, knob in KNOBS.items() if knob.default is not None}
