"""Build and compile the Keras CNN that a `TrialConfig` describes.

Called by a trial (inside a Ray worker) once per trial, after
`keras.backend.clear_session()`. The model owns its input handling: a Rescaling layer
maps raw pixel values to [0, 1], and augmentation layers are part of the graph (so they
run on the accelerator and are inactive at inference). A saved or registered model
therefore takes raw images and needs no preprocessing code next to it.
"""

from __future__ import annotations

import keras

from search.architecture import POOL_SIZE, check_config_fits
from search.config import Augmentation, TrialConfig

_POOLING_LAYERS = {"max": keras.layers.MaxPooling2D, "average": keras.layers.AveragePooling2D}


def build_model(config: TrialConfig, input_shape: tuple[int, ...], num_classes: int,
                value_scale: float = 1.0) -> keras.Model:
    """A compiled classifier for `num_classes` classes, with softmax outputs.

    Raises:
        ArchitectureError: the config's conv blocks do not fit `input_shape`.
    """
    check_config_fits(config, input_shape)
    inits = {"kernel_initializer": config.kernel_initializer,
             "bias_initializer": config.bias_initializer}

    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Rescaling(1.0 / value_scale, name="rescale")(inputs)
    for layer in augmentation_layers(config.augmentation):
        x = layer(x)
    for block in range(config.conv_blocks):
        x = keras.layers.Conv2D(config.filters, config.kernel_size, padding="same",
                                activation="relu", name=f"conv{block + 1}", **inits)(x)
        x = _POOLING_LAYERS[config.pooling](POOL_SIZE, name=f"pool{block + 1}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(config.dense_units, activation="relu", name="dense", **inits)(x)
    if config.dropout > 0:
        x = keras.layers.Dropout(config.dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="classes", **inits)(x)

    model = keras.Model(inputs, outputs, name="convsearch_cnn")
    model.compile(optimizer=make_optimizer(config.optimizer, config.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """A Keras optimizer from its Keras name (``nadam``) with the given learning rate."""
    optimizer_class = type(keras.optimizers.get(name))
    return optimizer_class(learning_rate=learning_rate)


def augmentation_layers(augmentation: Augmentation) -> list[keras.layers.Layer]:
    """The Keras preprocessing layers for the augmentations that are switched on."""
    layers: list[keras.layers.Layer] = []
    if augmentation.flip != "none":
        layers.append(keras.layers.RandomFlip(augmentation.flip, name="flip"))
    if augmentation.rotation > 0:
        layers.append(keras.layers.RandomRotation(augmentation.rotation, fill_mode="constant",
                                                  name="rotation"))
    if augmentation.zoom > 0:
        layers.append(keras.layers.RandomZoom(augmentation.zoom, fill_mode="constant",
                                              name="zoom"))
    if augmentation.translation > 0:
        layers.append(keras.layers.RandomTranslation(
            augmentation.translation, augmentation.translation, fill_mode="constant",
            name="translation"))
    return layers
