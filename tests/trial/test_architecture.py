"""Conv arithmetic: shapes and parameter counts agree exactly with Keras, and impossible
configs are named before any graph is built."""

from __future__ import annotations

import keras
import optuna
import pytest

from search.errors import ArchitectureError
from search.space import parse_space
from search.space.sampling import suggest_params
from search.trial.architecture import plan_architecture
from search.trial.config import TrialConfig
from search.trial.model import build_model

optuna.logging.set_verbosity(optuna.logging.WARNING)

# Wider than any shipped space on purpose: every block knob varies, per block too.
STRESS_SPACE = """
conv_blocks: {int: [1, 4]}
filters: {choices: [4, 6, 8]}
filters_growth: {choices: [1.0, 1.5, 2.0]}
kernel_size: {choices: [1, 2, 3, 5]}
convs_per_block: {int: [1, 3]}
stride: {choices: [1, 2, 3]}
padding: {choices: [same, valid]}
pooling: {choices: [max, average, none, global]}
batchnorm: {choices: [false, true]}
block2:
  kernel_size: {choices: [3, 7]}
  padding: {choices: [same, valid]}
  batchnorm: {choices: [false, true]}
block4:
  pooling: {choices: [global, none]}
activation: {choices: [relu, elu, gelu, swish, leaky_relu]}
head: {choices: [flatten, global_average]}
dense_layers: {int: [1, 2]}
dense_units: {int: [3, 17]}
dropout: {choices: [0.0, 0.3]}
l2: {choices: [0.0, 1.0e-4]}
augmentation:
  flip: {choices: [none, horizontal]}
  rotation: {choices: [0.0, 0.1]}
  zoom: {choices: [0.0, 0.1]}
  translation: {choices: [0.0, 0.1]}
  contrast: {choices: [0.0, 0.2]}
  brightness: {choices: [0.0, 0.1]}
"""

SHAPES = [(8, 8, 1), (28, 28, 1), (32, 32, 3), (20, 13, 2)]


def _random_configs(seed: int, count: int):
    space = parse_space(STRESS_SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for _ in range(count):
        yield TrialConfig.from_params(suggest_params(space, study.ask()))


@pytest.mark.parametrize("input_shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
def test_plan_matches_keras_layer_by_layer(input_shape):
    checked = impossible = 0
    for config in _random_configs(seed=sum(input_shape), count=60):
        try:
            plan = plan_architecture(config, input_shape, num_classes=7)
        except ArchitectureError:
            impossible += 1
            continue
        keras.backend.clear_session(free_memory=False)  # a full collection per model is slow
        model = build_model(config, input_shape, 7)
        keras_layers = {layer.name: layer for layer in model.layers}
        assert [layer.name for layer in plan.layers] == \
            [layer.name for layer in model.layers[1:]]  # [0] is the Input
        for layer in plan.layers:
            actual = keras_layers[layer.name]
            assert tuple(actual.output.shape[1:]) == layer.output_shape, (layer, config)
            assert actual.count_params() == layer.params, (layer, config)
            assert type(actual).__name__ == layer.kind
        assert model.count_params() == plan.params
        _check_activations(model, config)
        checked += 1
    assert checked >= 15, (checked, impossible)  # the test really compared models


def _check_activations(model, config) -> None:
    """Every hidden layer applies the config's activation (a conv followed by batch
    normalization applies none itself: its Activation layer does)."""
    chosen = keras.activations.get(config.activation)
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Conv2D | keras.layers.Dense |
                          keras.layers.Activation) or layer.name == "classes":
            continue
        normalized = layer.name.replace("_conv", "_bn") in {x.name for x in model.layers}
        expected = keras.activations.linear if normalized and \
            isinstance(layer, keras.layers.Conv2D) else chosen
        assert layer.activation is expected, (layer.name, config.activation)


def test_impossible_configs_are_the_ones_keras_rejects():
    # Without our check, Keras fails on exactly these (negative or zero dimensions).
    cases = [
        ({"conv_blocks": 4}, (8, 8, 1), r"block4_pool: 2x2 pooling needs a feature map of at "
                                        r"least 2x2, but block 4 gets 1x1"),
        ({"conv_blocks": 1, "padding": "valid", "kernel_size": 9}, (8, 8, 1),
         r"block1_conv1: a 9x9 kernel with valid padding needs a feature map of at least 9x9"),
        ({"conv_blocks": 2, "pooling": "global"}, (8, 8, 1),
         r"block1: global pooling ends the conv stack, so only the last block \(2\)"),
    ]
    for params, shape, message in cases:
        with pytest.raises(ArchitectureError, match=message):
            plan_architecture(TrialConfig.from_params(params), shape, 10)


def test_parameter_counts_by_hand():
    # 8x8x1 -> conv 3x3x1x4 (40) -> pool 4x4x4 -> flatten 64 -> dense 5 (325) -> 10 (60)
    config = TrialConfig.from_params({"conv_blocks": 1, "filters": 4, "dense_units": 5})
    plan = plan_architecture(config, (8, 8, 1), 10)
    assert [(layer.name, layer.output_shape, layer.params) for layer in plan.layers] == [
        ("rescale", (8, 8, 1), 0), ("block1_conv1", (8, 8, 4), 40),
        ("block1_pool", (4, 4, 4), 0), ("flatten", (64,), 0), ("dense", (5,), 325),
        ("classes", (10,), 60)]
    assert plan.params == 425


def test_same_padding_rounds_up_and_valid_rounds_down():
    same = TrialConfig.from_params({"conv_blocks": 1, "stride": 2, "pooling": "none"})
    assert plan_architecture(same, (9, 9, 1), 2).layers[1].output_shape[:2] == (5, 5)
    valid = TrialConfig.from_params({"conv_blocks": 1, "stride": 2, "padding": "valid",
                                     "pooling": "none"})
    assert plan_architecture(valid, (9, 9, 1), 2).layers[1].output_shape[:2] == (4, 4)


def test_max_params_rejects_big_models():
    config = TrialConfig.from_params({"conv_blocks": 1, "filters": 64, "dense_units": 512})
    size = plan_architecture(config, (8, 8, 1), 10).params
    plan_architecture(config, (8, 8, 1), 10, max_params=size)
    with pytest.raises(ArchitectureError, match=f"{size:,} parameters, more than max_params"):
        plan_architecture(config, (8, 8, 1), 10, max_params=size - 1)
