"""Build and compile the Keras CNN that a `TrialConfig` describes.

Called by a trial (inside a Ray worker) once per trial, after
`keras.backend.clear_session()`. The model owns its input handling: a Rescaling layer
maps raw pixel values to [0, 1], and augmentation layers are part of the graph (so they
run on the accelerator and are inactive at inference). A saved or registered model
therefore takes raw images and needs no preprocessing code next to it.

Layer names match `search.trial.architecture`'s plan, which predicts every layer's shape and
parameter count; the builder checks the plan first, so an impossible config fails with
our message rather than a TensorFlow shape error.
"""

from __future__ import annotations

import keras

from search.trial.architecture import POOL_SIZE, plan_architecture
from search.trial.config import Augmentation, TrialConfig

_POOLING_LAYERS = {"max": keras.layers.MaxPooling2D, "average": keras.layers.AveragePooling2D}


def build_model(config: TrialConfig, input_shape: tuple[int, ...], num_classes: int,
                value_scale: float = 1.0) -> keras.Model:
    """A compiled classifier for `num_classes` classes, with softmax outputs.

    Raises:
        ArchitectureError: the config's layers do not fit `input_shape`.
    """
    plan_architecture(config, input_shape, num_classes)
    inits = {"kernel_initializer": config.kernel_initializer,
             "bias_initializer": config.bias_initializer}

    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Rescaling(1.0 / value_scale, name="rescale")(inputs)
    for layer in augmentation_layers(config.augmentation):
        x = layer(x)
    flat = False
    for number, block in enumerate(config.blocks, start=1):
        for conv in range(1, block.convs_per_block + 1):
            x = keras.layers.Conv2D(block.filters, block.kernel_size,
                                    strides=block.stride if conv == 1 else 1,
                                    padding=block.padding, activation="relu",
                                    name=f"block{number}_conv{conv}", **inits)(x)
        if block.pooling == "global":
            x = keras.layers.GlobalAveragePooling2D(name=f"block{number}_pool")(x)
            flat = True
        elif block.pooling != "none":
            x = _POOLING_LAYERS[block.pooling](POOL_SIZE, name=f"block{number}_pool")(x)
    if not flat:
        x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(config.dense_units, activation="relu", name="dense", **inits)(x)
    if config.dropout > 0:
        x = keras.layers.Dropout(config.dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="classes", **inits)(x)

    model = keras.Model(inputs, outputs, name="convsearch_cnn")
    model.compile(optimizer=make_optimizer(config), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def make_optimizer(config: TrialConfig) -> keras.optimizers.Optimizer:
    """The config's Keras optimizer (by its Keras name) with its learning rate, and its
    momentum and Nesterov switch where the optimizer has them."""
    optimizer_class = type(keras.optimizers.get(config.optimizer))
    options = {"learning_rate": config.learning_rate}
    if config.optimizer in ("sgd", "rmsprop"):
        options["momentum"] = config.momentum
    if config.optimizer == "sgd":
        options["nesterov"] = config.nesterov
    return optimizer_class(**options)


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
    # After Rescaling, pixels are in [0, 1]; these two layers must be told so.
    if augmentation.contrast > 0:
        layers.append(keras.layers.RandomContrast(augmentation.contrast, value_range=(0, 1),
                                                  name="contrast"))
    if augmentation.brightness > 0:
        layers.append(keras.layers.RandomBrightness(augmentation.brightness,
                                                    value_range=(0, 1), name="brightness"))
    return layers


def carry_over(model: keras.Model, config: TrialConfig, input_shape: tuple[int, ...],
               num_classes: int, value_scale: float = 1.0) -> keras.Model:
    """`config`'s model, compiled, continuing from `model`, a checkpoint of a config that
    differs from it only in knobs that hold no weights (population-based training changes
    the learning rate, dropout and augmentation of a trial it clones): every layer's
    weights and the optimizer's state are taken over, the learning rate is `config`'s."""
    fresh = build_model(config, input_shape, num_classes, value_scale)
    layers = {layer.name: layer for layer in model.layers}
    for layer in fresh.layers:
        source = layers.get(layer.name)
        if layer.weights and source is not None and type(source) is type(layer):
            layer.set_weights(source.get_weights())
    fresh.optimizer.build(fresh.trainable_variables)
    # Optimizer variables are named <optimizer instance>/<variable>; the instance differs.
    state = {variable.path.split("/", 1)[-1]: variable for variable in model.optimizer.variables}
    for variable in fresh.optimizer.variables:
        name = variable.path.split("/", 1)[-1]
        source = state.get(name)
        if name != "learning_rate" and source is not None and source.shape == variable.shape:
            variable.assign(source)
    return fresh
