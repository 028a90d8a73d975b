"""The model builder: shapes, and that every configured choice is really applied."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from search.errors import ArchitectureError
from search.space.vocabulary import OPTIMIZERS
from search.trial.config import Augmentation, TrialConfig
from search.trial.model import augmentation_layers, build_model, dense_layer_names

SHAPE = (8, 8, 1)


def _build(**params) -> keras.Model:
    keras.utils.set_random_seed(0)
    return build_model(TrialConfig.from_params(params), SHAPE, 10, value_scale=16.0)


def _layers(model, kind):
    return [layer for layer in model.layers if isinstance(layer, kind)]


def test_outputs_one_probability_per_class():
    model = _build(conv_blocks=2)
    out = model.predict(np.random.default_rng(0).uniform(0, 16, (5, *SHAPE)), verbose=0)
    assert out.shape == (5, 10)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("blocks", [1, 2, 3])
def test_conv_blocks_filters_kernel_and_pooling(blocks):
    model = _build(conv_blocks=blocks, filters=8, kernel_size=5, pooling="average",
                   convs_per_block=2)
    convs = _layers(model, keras.layers.Conv2D)
    assert len(convs) == 2 * blocks
    assert all(c.filters == 8 and c.kernel_size == (5, 5) for c in convs)
    assert len(_layers(model, keras.layers.AveragePooling2D)) == blocks
    assert not _layers(model, keras.layers.MaxPooling2D)
    assert model.get_layer("flatten").output.shape[1] == 8 * (8 // 2 ** blocks) ** 2


def test_dense_width_and_dropout():
    model = _build(dense_units=48, dropout=0.3)
    assert model.get_layer("dense").units == 48
    assert model.get_layer("dropout").rate == pytest.approx(0.3)
    assert not _layers(_build(dropout=0.0), keras.layers.Dropout)


def test_initializers_are_applied_to_every_weight_layer():
    model = _build(conv_blocks=2, convs_per_block=2, dense_layers=2,
                   kernel_initializer="ones", bias_initializer="ones")
    weighted = [layer for layer in model.layers if getattr(layer, "kernel", None) is not None]
    assert [layer.name for layer in weighted] == [
        "block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2",
        *dense_layer_names(TrialConfig.from_params({"dense_layers": 2})), "classes"]
    for layer in weighted:  # the weights themselves, as built
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.kernel), 1.0)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.bias), 1.0)


def test_kernel_initializer_changes_the_weights():
    zeros = _build(kernel_initializer="zeros")
    assert not np.any(keras.ops.convert_to_numpy(zeros.get_layer("block1_conv1").kernel))
    he = _build(kernel_initializer="he_normal")
    assert np.std(keras.ops.convert_to_numpy(he.get_layer("block1_conv1").kernel)) > 0.1


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_and_learning_rate_are_applied(name):
    model = _build(optimizer=name, learning_rate=0.0123)
    assert type(model.optimizer).__name__.lower() == name
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == \
        pytest.approx(0.0123)


def test_model_rescales_raw_pixels_itself():
    model = _build()
    assert model.get_layer("rescale").scale == pytest.approx(1 / 16)


def test_sgd_momentum_and_nesterov_are_applied():
    model = _build(optimizer="sgd", learning_rate=0.1, momentum=0.8, nesterov=True)
    assert model.optimizer.momentum == pytest.approx(0.8)
    assert model.optimizer.nesterov is True
    assert _build(optimizer="rmsprop", momentum=0.5).optimizer.momentum == pytest.approx(0.5)


def test_strides_padding_global_pooling_and_per_block_overrides():
    model = _build(conv_blocks=2, filters=6, filters_growth=2.0, stride=2, padding="valid",
                   kernel_size=2, pooling="none", **{"block2.pooling": "global"})
    assert model.get_layer("block1_conv1").strides == (2, 2)
    assert model.get_layer("block1_conv1").padding == "valid"
    assert model.get_layer("block2_conv1").filters == 12
    assert isinstance(model.get_layer("block2_pool"), keras.layers.GlobalAveragePooling2D)
    assert "block1_pool" not in {layer.name for layer in model.layers}
    assert "flatten" not in {layer.name for layer in model.layers}


def test_too_deep_for_the_image_is_an_architecture_error():
    with pytest.raises(ArchitectureError, match="block4_pool: 2x2 pooling"):
        _build(conv_blocks=4)


def test_no_augmentation_layers_when_all_off():
    assert augmentation_layers(Augmentation()) == []


def test_augmentation_changes_training_batches_not_inference():
    model = _build(**{"augmentation.flip": "horizontal", "augmentation.rotation": 0.1,
                      "augmentation.zoom": 0.2, "augmentation.translation": 0.2,
                      "augmentation.contrast": 0.3, "augmentation.brightness": 0.2})
    names = {layer.name for layer in model.layers}
    assert {"flip", "rotation", "zoom", "translation", "contrast", "brightness"} <= names

    augmented = keras.Model(model.input, model.get_layer("brightness").output)
    rescaled = keras.Model(model.input, model.get_layer("rescale").output)
    images = np.random.default_rng(1).uniform(0, 16, (16, *SHAPE)).astype("float32")
    train_view = keras.ops.convert_to_numpy(augmented(images, training=True))
    infer_view = keras.ops.convert_to_numpy(augmented(images, training=False))
    plain = keras.ops.convert_to_numpy(rescaled(images, training=False))
    assert not np.allclose(train_view, plain)
    np.testing.assert_array_equal(infer_view, plain)
    np.testing.assert_array_equal(model.predict(images, verbose=0),
                                  model.predict(images, verbose=0))


def test_every_augmentation_knob_has_its_layer():
    from search.space.parameters import AUGMENTATIONS
    from search.trial.model import AUGMENTATION_LAYERS

    assert list(AUGMENTATION_LAYERS) == list(AUGMENTATIONS)
    for name, knob in AUGMENTATIONS.items():
        on = "horizontal" if knob.off == "none" else 0.1
        assert type(AUGMENTATION_LAYERS[name](on)).__name__ == knob.layer
