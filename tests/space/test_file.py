"""Space files: the shipped ones load; each kind of mistake gets its own one-line message
that names the file, the line and the key."""

from __future__ import annotations

import re

import pytest

from search.errors import SearchError, SpaceError
from search.space import (
    DEFAULT_SPACE,
    load_space,
    parse_space,
    resolve_space_path,
    shipped_spaces_dir,
)
from search.space.distributions import Choice, Fixed, IntRange, LogUniform, Uniform
from tests.conftest import REPO

# (file text, line, key, message pattern)
MALFORMED = [
    ("optimizer: {choices: [adam, adamw2]}\n", 1, "optimizer.choices",
     r"'adamw2' is not a Keras optimizer \(known: sgd, .*nadam"),
    ("optimizer: adam\nlearning_rat: 0.1\n", 2, "learning_rat",
     r"unknown key \(known: description, max_params, input_shape, objectives, trade_off, "
     r"augmentation, block1..block8, "
     r"optimizer, learning_rate"),
    ("augmentation:\n  flip: none\n  spin: 0.1\n", 3, "augmentation.spin",
     r"unknown key \(known: brightness, contrast, flip, rotation, translation, zoom\)"),
    ("batch_size: sixteen\n", 1, "batch_size", r"expected a whole number, got 'sixteen' \(str\)"),
    ("batch_size: true\n", 1, "batch_size", r"expected a whole number, got True \(bool\)"),
    ("dropout: high\n", 1, "dropout", r"expected a number, got 'high' \(str\)"),
    ("optimizer: {choices: []}\n", 1, "optimizer.choices", r"empty list"),
    ("learning_rate: {loguniform: [0.1, 1.0e-4]}\n", 1, "learning_rate.loguniform",
     r"reversed range: low 0.1 is greater than high 0.0001"),
    ("conv_blocks: {int: [3, 1]}\n", 1, "conv_blocks.int", r"reversed range"),
    ("learning_rate: {loguniform: [0, 0.1]}\n", 1, "learning_rate.loguniform",
     r"out of range \(0, 10\]"),
    ("dropout: {uniform: [0.0, 1.5]}\n", 1, "dropout.uniform", r"1.5 is out of range \[0, 1\)"),
    ("conv_blocks: {uniform: [1, 3]}\n", 1, "conv_blocks.uniform",
     r"takes whole numbers; use \{int: \[low, high\]\}"),
    ("dropout: {int: [0, 1]}\n", 1, "dropout.int", r"takes real numbers"),
    ("pooling: {uniform: [0, 1]}\n", 1, "pooling.uniform", r"takes names"),
    ("pooling: {choices: [max, median]}\n", 1, "pooling.choices",
     r"'median' is not a pooling \(known: max, average, none, global\)"),
    ("filters: [16, 32]\n", 1, "filters",
     r"bare list is ambiguous; write \{choices: \[...\]\} .* or \{grid: \[...\]\}"),
    ("filters: {choices: [16, 32], uniform: [1, 2]}\n", 1, "filters",
     r"exactly one of value, choices, grid, uniform, loguniform, int \(got choices, "
     r"uniform\)"),
    ("filters: {}\n", 1, "filters", r"exactly one of .* \(got none\)"),
    ("filters: {choice: [16]}\n", 1, "filters.choice",
     r"unknown key \(known: value, choices, grid, .*when, optional\)"),
    ("filters: {choices: [16, 16]}\n", 1, "filters.choices", r"16 is listed twice"),
    ("filters: {choices: 16}\n", 1, "filters.choices", r"expected a list of values"),
    ("filters: {int: [16]}\n", 1, "filters.int", r"expected \[low, high\], two whole numbers"),
    ("filters: {int: [16, 64.5]}\n", 1, "filters.int", r"expected whole numbers .* 64.5"),
    ("filters: {int: [16, 64], step: 10}\n", 1, "filters.step",
     r"high - low \(48\) is not a multiple of step 10"),
    ("filters: {int: [16, 64], step: 16, log: true}\n", 1, "filters.log",
     r"cannot also have a step"),
    ("dropout: {uniform: [0, 0.5], step: 0.1}\n", 1, "dropout.step",
     r"only applies to an int range"),
    ("optimizer: adam\noptimizer: sgd\n", 2, "optimizer",
     r"duplicate key \(first given on line 1\)"),
    ("optimizer: [adam\n", None, None, r"not valid YAML"),
    ("- optimizer\n", 1, None, r"expected a mapping of parameter names, got a list"),
    ("", 1, None, r"the file is empty"),
    ("augmentation: on\n", 1, "augmentation", r"expected a mapping of augmentation settings"),
    ("description: [a, b]\n", 1, "description", r"expected a plain value, got a list"),
    ("description: 42\n", 1, "description", r"expected str, got 42 \(int\)"),
    ("kernel_initializer: {choices: [he_normal, he_normall]}\n", 1,
     "kernel_initializer.choices", r"'he_normall' is not a Keras kernel initializer"),
    ("bias_initializer: orthogonal\n", 1, "bias_initializer",
     r"'orthogonal' is not a Keras bias initializer"),
    ("augmentation:\n  rotation: {uniform: [0.0, 0.9]}\n", 2, "augmentation.rotation.uniform",
     r"0.9 is out of range \[0, 0.5\]"),
    # Conditions: the knob's own, and the file's `when`.
    ("momentum: {uniform: [0.0, 0.9]}\n", 1, "momentum",
     r"applies only when optimizer is sgd or rmsprop, and this space's optimizer is 'adam'"),
    ("conv_blocks: {int: [1, 2]}\nblock3:\n  filters: 64\n", 3, "block3.filters",
     r"applies only when conv_blocks >= 3, and this space's conv_blocks is int \[1, 2\]"),
    ("block9:\n  filters: 64\n", 1, "block9", r"unknown key \(known: .*block1..block8"),
    ("block2:\n  depth: 3\n", 2, "block2.depth",
     r"unknown key \(known: batchnorm, convs_per_block, filters, kernel_size, padding, "
     r"pooling, stride\)"),
    ("dropout: {uniform: [0.0, 0.5], when: {optimiser: sgd}}\n", 1, "dropout.when.optimiser",
     r"unknown parameter"),
    ("dropout: {uniform: [0.0, 0.5], when: {optimizer: adamw2}}\n", 1,
     "dropout.when.optimizer", r"'adamw2' is not a Keras optimizer"),
    ("optimizer: {choices: [adam, sgd]}\ndropout: {uniform: [0.0, 0.5], when: "
     "{optimizer: nadam}}\n", 2, "dropout.when",
     r"applies only when optimizer is nadam, and this space's optimizer is choice of "
     r"'adam', 'sgd'"),
    ("dropout: {uniform: [0.0, 0.5], when: {}}\n", 1, "dropout.when", r"empty; name at least"),
    ("dropout: {uniform: [0.0, 0.5], when: [sgd]}\n", 1, "dropout.when",
     r"expected a mapping of parameter: value\(s\), got a list"),
    ("dropout: {uniform: [0.0, 0.5], when: {dropout: 0.1}}\n", 1, "dropout.when.dropout",
     r"cannot depend on itself"),
    ("dropout: {uniform: [0.0, 0.5], when: {batch_size: 32}}\n"
     "batch_size: {choices: [32, 64], when: {dropout: 0.1}}\n", 1, "dropout.when",
     r"conditions form a cycle"),
    ("dense_units: {int: [8, 64], when: {block2.filters: 32}}\n", 1, "dense_units.when",
     r"block2.filters is not set in this space"),
    # Settings and the other distribution kinds.
    ("max_params: 0\n", 1, "max_params", r"must be at least 1, got 0"),
    ("input_shape: 28x28x1\n", 1, "input_shape", r"expected \[height, width, channels\]"),
    ("objectives: val_accuracy\n", 1, "objectives", r"expected a list of objectives"),
    ("objectives: [val_accuracy, size]\n", 1, "objectives",
     r"'size' is not an objective \(known: val_accuracy, params, latency_ms, "
     r"robust_accuracy\)"),
    ("objectives: [params, params]\n", 1, "objectives", r"'params' is listed twice"),
    ("objectives: [val_accuracy]\ntrade_off: {params: -1.0}\n", 2, "trade_off.params",
     r"not one of this space's objectives \(val_accuracy\)"),
    ("objectives: [val_accuracy, params]\ntrade_off: {params: lots}\n", 2, "trade_off.params",
     r"expected a number, got 'lots' \(str\)"),
    ("input_shape: [28, 0, 1]\n", 1, "input_shape", r"sides must be at least 1, got \[28, 0, 1\]"),
    ("max_params: lots\n", 1, "max_params", r"expected int, got 'lots' \(str\)"),
    ("nesterov: maybe\n", 1, "nesterov", r"expected true or false, got 'maybe' \(str\)"),
    ("nesterov: {uniform: [0, 1]}\n", 1, "nesterov.uniform",
     r"nesterov takes true or false; use \{choices: \[...\]\}"),
    ("dense_units: {value: [1]}\n", 1, "dense_units.value", r"expected a plain value"),
    ("batch_size: {grid: [32, 64, 32]}\n", 1, "batch_size.grid", r"32 is listed twice"),
    ("block2:\n  filters: {choices: [8, 16], optional: true}\n", 2, "block2.filters.optional",
     r"only a knob with a default \(its off value\) can be optional"),
    ("dropout: {value: 0.1, optional: true}\n", 1, "dropout.optional",
     r"an optional knob needs a distribution"),
    ("dropout: {uniform: [0.0, 0.5], optional: maybe}\n", 1, "dropout.optional",
     r"expected bool, got 'maybe' \(str\)"),
    ("block1:\n  padding: {choices: [same, full]}\n", 2, "block1.padding.choices",
     r"'full' is not a Keras padding \(known: same, valid\)"),
]


@pytest.mark.parametrize(("text", "line", "key", "pattern"), MALFORMED,
                         ids=[f"{i:02d}" for i in range(len(MALFORMED))])
def test_malformed_space_names_file_line_and_key(write_space, text, line, key, pattern):
    path = write_space(text)
    with pytest.raises(SpaceError, match=pattern) as caught:
        load_space(path)
    error = caught.value
    message = str(error)
    assert "\n" not in message
    assert message.startswith(str(path))
    if line is not None:
        assert error.line == line
        assert message.startswith(f"{path}:{line}: ")
    assert error.key == key
    if key:
        assert f": {key}: " in message


def test_malformed_messages_are_distinct(write_space):
    reasons = set()
    for i, (text, *_rest) in enumerate(MALFORMED):
        with pytest.raises(SpaceError) as caught:
            load_space(write_space(text, name=f"s{i}.yaml"))
        reasons.add((caught.value.key, caught.value.reason))
    assert len(reasons) == len(MALFORMED)


def test_space_error_is_a_search_error_and_a_value_error():
    with pytest.raises(SearchError):
        parse_space("foo: 1")
    with pytest.raises(ValueError):
        parse_space("foo: 1")


def test_default_space_covers_the_documented_knobs():
    space = load_space(DEFAULT_SPACE)
    d = space.distributions
    assert set(d["optimizer"].values) == {"sgd", "rmsprop", "adagrad", "adadelta", "adam",
                                          "adamax", "nadam"}
    assert isinstance(d["learning_rate"], LogUniform)
    assert {"glorot_uniform", "he_normal"} <= set(d["kernel_initializer"].values)
    assert "zeros" in d["bias_initializer"].values
    assert isinstance(d["conv_blocks"], IntRange)
    for name in ("filters", "kernel_size", "pooling", "dense_units", "batch_size",
                 "augmentation.flip", "augmentation.rotation", "augmentation.zoom",
                 "augmentation.translation"):
        assert isinstance(d[name], Choice) and len(d[name].values) > 1, name
    assert isinstance(d["dropout"], Uniform)
    # Each augmentation can be switched off.
    assert "none" in d["augmentation.flip"].values
    for name in ("rotation", "zoom", "translation"):
        assert 0.0 in d[f"augmentation.{name}"].values
    assert space.description


def test_every_shipped_space_loads():
    shipped = sorted(shipped_spaces_dir().glob("*.yaml"))
    assert shipped, "no shipped spaces found"
    for path in shipped:
        load_space(path)


def test_shipped_space_found_by_name_and_repo_folder_used_in_a_checkout():
    assert resolve_space_path("default") == REPO / "spaces" / "default.yaml"


def test_objectives_default_to_validation_accuracy_and_can_be_several():
    assert parse_space("optimizer: adam\n").objectives == ("val_accuracy",)
    space = load_space("multi_objective")
    assert space.objectives == ("val_accuracy", "params")
    assert space.trade_off == {"val_accuracy": 1.0, "params": -1e-7}


def test_omitted_parameters_are_fixed_at_their_defaults():
    space = parse_space("optimizer: {choices: [adam, sgd]}\n")
    assert space.distributions["batch_size"] == Fixed(32)
    assert set(space.searched()) == {"optimizer"}


def test_scientific_notation_without_a_dot_is_a_number():
    # Plain YAML 1.1 reads 1e-4 as a string; users mean a number.
    space = parse_space("learning_rate: {loguniform: [1e-4, 1e-1]}\n")
    assert space.distributions["learning_rate"] == LogUniform(1e-4, 1e-1)


def test_int_range_with_step_and_log():
    space = parse_space("filters: {int: [16, 64], step: 16}\ndense_units: {int: [8, 256], "
                        "log: true}\n")
    assert space.distributions["filters"] == IntRange(16, 64, step=16)
    assert space.distributions["dense_units"] == IntRange(8, 256, log=True)


def test_lines_are_recorded_for_later_errors():
    space = parse_space("description: x\n\nconv_blocks: {int: [1, 3]}\n", path="s.yaml")
    assert space.lines["conv_blocks"] == 3
    assert re.match(r"s.yaml:3: conv_blocks: boom", str(space.error("conv_blocks", "boom")))


def test_missing_file_names_it_and_the_shipped_spaces(tmp_path):
    with pytest.raises(SpaceError, match=r"space file not found: .*nope.yaml \(shipped "
                                         r"spaces: .*default"):
        load_space(tmp_path / "nope.yaml")


def test_directory_is_not_a_space_file(tmp_path):
    with pytest.raises(SpaceError, match="is a directory"):
        load_space(tmp_path)
