"""The names space files may use are names the installed Keras resolves."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from search.space.vocabulary import (
    ACTIVATIONS,
    BIAS_INITIALIZERS,
    FLIP_MODES,
    KERNEL_INITIALIZERS,
    OPTIMIZERS,
)


def test_seven_classic_optimizers_are_all_there():
    for name in ("sgd", "rmsprop", "adagrad", "adadelta", "adam", "adamax", "nadam"):
        assert name in OPTIMIZERS


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_name_resolves_in_keras(name):
    optimizer = keras.optimizers.get(name)
    assert isinstance(optimizer, keras.optimizers.Optimizer)


@pytest.mark.parametrize("name", KERNEL_INITIALIZERS)
def test_kernel_initializer_builds_a_conv_kernel(name):
    values = keras.initializers.get(name)((3, 3, 1, 4))
    assert tuple(values.shape) == (3, 3, 1, 4)


@pytest.mark.parametrize("name", BIAS_INITIALIZERS)
def test_bias_initializer_builds_a_vector(name):
    values = keras.initializers.get(name)((4,))
    assert tuple(values.shape) == (4,)


@pytest.mark.parametrize("mode", [m for m in FLIP_MODES if m != "none"])
def test_flip_mode_is_a_random_flip_mode(mode):
    out = keras.layers.RandomFlip(mode)(np.zeros((1, 4, 4, 1), "float32"), training=True)
    assert tuple(out.shape) == (1, 4, 4, 1)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_name_resolves_in_keras(name):
    assert callable(keras.activations.get(name))
