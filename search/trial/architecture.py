"""Shape and size arithmetic of the CNNs convsearch builds, without building a TensorFlow
graph: every layer's output shape and parameter count, and why a config is impossible.

Conv layers: ``same`` padding gives ceil(i / s), ``valid`` gives floor((i - k) / s) + 1,
each side on its own. Pooling is 2x2 with stride 2 and valid padding: floor((i - 2) / 2)
+ 1. A conv layer has (k*k*c_in + 1) * filters parameters, a dense layer (n_in + 1) *
units. Layer names here are the names the model builder gives its Keras layers, which is
how `tests/trial/test_architecture.py` checks every figure against Keras itself.

Called at sampling time (so an impossible or oversized config never reaches a worker),
by the model builder (as a last guard), and by ``python -m search.space check``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from search.errors import ArchitectureError
from search.space.parameters import AUGMENTATIONS
from search.trial.config import TrialConfig

#: Pool size and stride of the max/average pooling that can end a conv block.
POOL_SIZE = 2


@dataclass(frozen=True)
class Layer:
    """One layer of a planned model."""

    name: str
    kind: str  # the Keras layer class
    output_shape: tuple[int, ...]  # without the batch dimension
    params: int


@dataclass(frozen=True)
class Architecture:
    """The planned layers of one config's model, in order."""

    layers: tuple[Layer, ...]

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.layers[-1].output_shape


def plan_architecture(config: TrialConfig, input_shape: tuple[int, ...], num_classes: int,
                      max_params: int | None = None) -> Architecture:
    """Every layer of the model `config` describes for images of `input_shape`.

    Raises:
        ArchitectureError: a layer would get a feature map it cannot take, global pooling
            is not in the last block, or the model has more than `max_params` parameters.
    """
    height, width, channels = input_shape
    layers = [Layer("rescale", "Rescaling", tuple(input_shape), 0)]
    layers += [Layer(name, knob.layer, tuple(input_shape), 0)
               for name, knob in AUGMENTATIONS.items()
               if getattr(config.augmentation, name) != knob.off]

    flat = False
    for number, block in enumerate(config.blocks, start=1):
        for conv in range(1, block.convs_per_block + 1):
            name = f"block{number}_conv{conv}"
            stride = block.stride if conv == 1 else 1
            height = _conv_side(height, block.kernel_size, stride, block.padding, name)
            width = _conv_side(width, block.kernel_size, stride, block.padding, name)
            params = (block.kernel_size ** 2 * channels + 1) * block.filters
            channels = block.filters
            layers.append(Layer(name, "Conv2D", (height, width, channels), params))
            if block.batchnorm:  # scale, offset, moving mean and variance per channel
                layers.append(Layer(f"block{number}_bn{conv}", "BatchNormalization",
                                    (height, width, channels), 4 * channels))
                layers.append(Layer(f"block{number}_act{conv}", "Activation",
                                    (height, width, channels), 0))
        name = f"block{number}_pool"
        if block.pooling == "global":
            if number != len(config.blocks):
                raise ArchitectureError(
                    f"block{number}: global pooling ends the conv stack, so only the last "
                    f"block ({len(config.blocks)}) may use it")
            layers.append(Layer(name, "GlobalAveragePooling2D", (channels,), 0))
            flat = True
        elif block.pooling != "none":
            if min(height, width) < POOL_SIZE:
                raise ArchitectureError(
                    f"{name}: {POOL_SIZE}x{POOL_SIZE} pooling needs a feature map of at least "
                    f"{POOL_SIZE}x{POOL_SIZE}, but block {number} gets {height}x{width} "
                    f"(from {input_shape[0]}x{input_shape[1]} images)")
            height = (height - POOL_SIZE) // POOL_SIZE + 1
            width = (width - POOL_SIZE) // POOL_SIZE + 1
            kind = "MaxPooling2D" if block.pooling == "max" else "AveragePooling2D"
            layers.append(Layer(name, kind, (height, width, channels), 0))

    if flat:  # the last block's global pooling already made a vector
        features = channels
    elif config.head == "global_average":
        features = channels
        layers.append(Layer("head_pool", "GlobalAveragePooling2D", (features,), 0))
    else:
        features = height * width * channels
        layers.append(Layer("flatten", "Flatten", (features,), 0))
    for name in dense_layer_names(config):
        layers.append(Layer(name, "Dense", (config.dense_units,),
                            (features + 1) * config.dense_units))
        features = config.dense_units
    if config.dropout > 0:
        layers.append(Layer("dropout", "Dropout", (config.dense_units,), 0))
    layers.append(Layer("classes", "Dense", (num_classes,),
                        (config.dense_units + 1) * num_classes))
    architecture = Architecture(tuple(layers))
    if max_params is not None and architecture.params > max_params:
        raise ArchitectureError(f"{architecture.params:,} parameters, more than max_params "
                                f"{max_params:,}")
    return architecture


def dense_layer_names(config: TrialConfig) -> list[str]:
    """Names of the hidden dense layers: ``dense``, then ``dense2``."""
    return ["dense" if n == 1 else f"dense{n}" for n in range(1, config.dense_layers + 1)]


def _conv_side(size: int, kernel: int, stride: int, padding: str, name: str) -> int:
    if padding == "same":
        return math.ceil(size / stride)
    if size < kernel:
        raise ArchitectureError(f"{name}: a {kernel}x{kernel} kernel with valid padding needs "
                                f"a feature map of at least {kernel}x{kernel}, got a side of "
                                f"{size}")
    return (size - kernel) // stride + 1
