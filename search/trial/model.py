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

from typing import Any

import keras

from search.space.parameters import AUGMENTATIONS
from search.trial.architecture import POOL_SIZE, dense_layer_names, plan_architecture
from search.trial.config import Augmentation, TrialConfig

_POOLING_LAYERS = {"max": keras.layers.MaxPooling2D, "average": keras.layers.AveragePooling2D}


def build_model(config: TrialConfig, input_shape: tuple[int, ...], num_classes: int,
                value_scale: float = 1.0, *, training_steps: int | None = None,
                ) -> keras.Model:
    """A compiled classifier for `num_classes` classes, with softmax outputs.
    `training_steps` (batches in all of the training that follows) times a decaying
    learning-rate schedule.

    Raises:
        ArchitectureError: the config's layers do not fit `input_shape`.
    """
    plan_architecture(config, input_shape, num_classes)
    regularizer = keras.regularizers.L2(config.l2) if config.l2 > 0 else None
    inits = {"kernel_initializer": config.kernel_initializer,
             "bias_initializer": config.bias_initializer, "kernel_regularizer": regularizer}

    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Rescaling(1.0 / value_scale, name="rescale")(inputs)
    for layer in augmentation_layers(config.augmentation):
        x = layer(x)
    flat = False
    for number, block in enumerate(config.blocks, start=1):
        for conv in range(1, block.convs_per_block + 1):
            x = keras.layers.Conv2D(block.filters, block.kernel_size,
                                    strides=block.stride if conv == 1 else 1,
                                    padding=block.padding,
                                    activation=None if block.batchnorm else config.activation,
                                    name=f"block{number}_conv{conv}", **inits)(x)
            if block.batchnorm:
                x = keras.layers.BatchNormalization(name=f"block{number}_bn{conv}")(x)
                x = keras.layers.Activation(config.activation,
                                            name=f"block{number}_act{conv}")(x)
        if block.pooling == "global":
            x = keras.layers.GlobalAveragePooling2D(name=f"block{number}_pool")(x)
            flat = True
        elif block.pooling != "none":
            x = _POOLING_LAYERS[block.pooling](POOL_SIZE, name=f"block{number}_pool")(x)
    if not flat:
        x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x) \
            if config.head == "global_average" else keras.layers.Flatten(name="flatten")(x)
    for name in dense_layer_names(config):
        x = keras.layers.Dense(config.dense_units, activation=config.activation, name=name,
                               **inits)(x)
    if config.dropout > 0:
        x = keras.layers.Dropout(config.dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="classes",
                                 **inits)(x)

    model = keras.Model(inputs, outputs, name="convsearch_cnn")
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing) \
        if config.label_smoothing > 0 else "sparse_categorical_crossentropy"
    model.compile(optimizer=make_optimizer(config, training_steps), loss=loss,
                  metrics=["accuracy"])
    return model


def one_hot_labels(model: keras.Model) -> bool:
    """Whether `model`'s loss takes one-hot labels (label smoothing needs them)."""
    return isinstance(model.loss, keras.losses.CategoricalCrossentropy)


def make_optimizer(config: TrialConfig, total_steps: int | None = None,
                   ) -> keras.optimizers.Optimizer:
    """The config's Keras optimizer (by its Keras name) with its learning rate (or
    schedule over `total_steps` training steps), and its momentum and Nesterov switch
    where the optimizer has them."""
    optimizer_class = type(keras.optimizers.get(config.optimizer))
    options: dict = {"learning_rate": learning_rate(config, total_steps)}
    if config.optimizer in ("sgd", "rmsprop"):
        options["momentum"] = config.momentum
    if config.optimizer == "sgd":
        options["nesterov"] = config.nesterov
    return optimizer_class(**options)


def learning_rate(config: TrialConfig, total_steps: int | None) -> Any:
    """The constant rate, or Keras's schedule for `config.lr_schedule` over `total_steps`
    (plateau is a callback, `plateau_callback`, on a constant rate).

    Raises:
        ValueError: a decaying schedule without `total_steps` (a caller's bug).
    """
    if config.lr_schedule in ("cosine", "step") and total_steps is None:
        raise ValueError(f"the {config.lr_schedule} schedule needs the training's steps")
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(config.learning_rate,
                                                      decay_steps=max(1, total_steps))
    if config.lr_schedule == "step":
        return keras.optimizers.schedules.ExponentialDecay(
            config.learning_rate, decay_steps=max(1, total_steps // 4), decay_rate=0.5,
            staircase=True)
    return config.learning_rate


def plateau_callback(config: TrialConfig) -> keras.callbacks.Callback | None:
    """Keras's ReduceLROnPlateau for the plateau schedule (halve after 2 stalled epochs)."""
    if config.lr_schedule != "plateau":
        return None
    return keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2)


#: The Keras preprocessing layer of each augmentation knob (by its name in the group),
#: built for a value that is not the knob's off value. After Rescaling, pixels are in
#: [0, 1]; contrast and brightness are told so.
AUGMENTATION_LAYERS = {
    "flip": lambda v: keras.layers.RandomFlip(v, name="flip"),
    "rotation": lambda v: keras.layers.RandomRotation(v, fill_mode="constant",
                                                      name="rotation"),
    "zoom": lambda v: keras.layers.RandomZoom(v, fill_mode="constant", name="zoom"),
    "translation": lambda v: keras.layers.RandomTranslation(v, v, fill_mode="constant",
                                                            name="translation"),
    "contrast": lambda v: keras.layers.RandomContrast(v, value_range=(0, 1), name="contrast"),
    "brightness": lambda v: keras.layers.RandomBrightness(v, value_range=(0, 1),
                                                          name="brightness"),
}


def augmentation_layers(augmentation: Augmentation) -> list[keras.layers.Layer]:
    """The Keras preprocessing layers for the augmentations that are switched on, in the
    registry's order."""
    return [AUGMENTATION_LAYERS[name](getattr(augmentation, name))
            for name, knob in AUGMENTATIONS.items()
            if getattr(augmentation, name) != knob.off]


def carry_over(model: keras.Model, config: TrialConfig, input_shape: tuple[int, ...],
               num_classes: int, value_scale: float = 1.0, *,
               training_steps: int | None = None) -> keras.Model:
    """`config`'s model, compiled, continuing from `model`, a checkpoint of a config that
    differs from it only in knobs that hold no weights (population-based training changes
    the learning rate, dropout and augmentation of a trial it clones): every layer's
    weights and the optimizer's state are taken over, the learning rate is `config`'s."""
    fresh = build_model(config, input_shape, num_classes, value_scale,
                        training_steps=training_steps)
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
