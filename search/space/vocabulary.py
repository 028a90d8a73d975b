"""Keras's own names for the things a space file can choose between.

Space files use these names verbatim (``nadam``, ``he_normal``), so users need no mapping
table. This module is the one list of them; it does not import Keras, so a space file can
be validated in milliseconds. `tests/space/test_vocabulary.py` checks that Keras resolves every
name here, so the lists cannot drift from the installed Keras.
"""

from __future__ import annotations

#: Optimizers Keras builds from a name; all take ``learning_rate``.
OPTIMIZERS: tuple[str, ...] = (
    "sgd",
    "rmsprop",
    "adagrad",
    "adadelta",
    "adam",
    "adamw",
    "adamax",
    "nadam",
    "ftrl",
    "lion",
)

#: Initializers Keras builds from a name with no arguments, for any weight of rank >= 2.
KERNEL_INITIALIZERS: tuple[str, ...] = (
    "glorot_uniform",
    "glorot_normal",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
    "orthogonal",
    "random_normal",
    "random_uniform",
    "truncated_normal",
    "variance_scaling",
    "zeros",
    "ones",
)

#: Initializers that also work on a bias vector (rank 1): everything above but orthogonal.
BIAS_INITIALIZERS: tuple[str, ...] = tuple(
    name for name in KERNEL_INITIALIZERS if name != "orthogonal"
)

#: Pooling that ends a conv block: MaxPooling2D, AveragePooling2D (2x2, stride 2), none,
#: or GlobalAveragePooling2D (which ends the conv stack, so only in the last block).
POOLINGS: tuple[str, ...] = ("max", "average", "none", "global")

#: Conv2D padding modes.
PADDINGS: tuple[str, ...] = ("same", "valid")

#: RandomFlip modes, plus "none" for no flipping.
FLIP_MODES: tuple[str, ...] = ("none", "horizontal", "vertical", "horizontal_and_vertical")

#: Activations of the conv and dense layers (Keras's names; swish is Keras's silu).
ACTIVATIONS: tuple[str, ...] = ("relu", "elu", "gelu", "swish", "leaky_relu")

#: How the learning rate changes over training: constant; cosine decay to 0 over
#: --max-epochs; step decay (halved every quarter of --max-epochs); or reduced (halved)
#: when the validation loss stops improving for two epochs.
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine", "step", "plateau")

#: How the conv stack's output becomes a vector: Flatten, or GlobalAveragePooling2D.
HEADS: tuple[str, ...] = ("flatten", "global_average")
