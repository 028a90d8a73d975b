"""The embedded digits data set: shipped with scikit-learn, split the same way every time."""

from __future__ import annotations

import numpy as np
import pytest

from search.data import load_dataset, split_dataset
from search.errors import DataError


def test_digits_shapes_and_split_sizes(digits):
    assert digits.input_shape == (8, 8, 1)
    assert digits.num_classes == 10
    assert digits.x_train.dtype == np.float32
    sizes = digits.sizes()
    assert sum(sizes.values()) == 1797
    assert sizes["val"] == pytest.approx(0.15 * 1797, abs=2)
    assert sizes["test"] == pytest.approx(0.15 * 1797, abs=2)
    assert digits.value_scale == 16.0
    assert digits.x_train.max() <= 16.0


def test_splits_are_disjoint(digits):
    def rows(x):
        return {row.tobytes() for row in x.reshape(len(x), -1)}

    train, val, test = rows(digits.x_train), rows(digits.x_val), rows(digits.x_test)
    # digits has a few duplicate images; the splits must share (almost) none.
    assert len(train & test) <= 3 and len(train & val) <= 3 and len(val & test) <= 3


def test_split_is_stratified(digits):
    for labels in (digits.y_train, digits.y_val, digits.y_test):
        counts = np.bincount(labels, minlength=10)
        assert counts.min() >= 0.8 * counts.mean()


def test_split_is_deterministic(digits):
    again = load_dataset("digits")
    np.testing.assert_array_equal(digits.x_test, again.x_test)
    np.testing.assert_array_equal(digits.y_train, again.y_train)


def test_limit_takes_a_stratified_subset(small_digits):
    assert sum(small_digits.sizes().values()) == 300
    assert set(np.unique(small_digits.y_train)) == set(range(10))


def test_limit_too_small_is_a_clear_error():
    with pytest.raises(DataError, match=r"--data-limit 12 is too small: keep at least 30"):
        load_dataset("digits", limit=12)


def test_unknown_source_lists_the_known_ones():
    with pytest.raises(DataError, match=r"unknown data source 'mnist2' \(known: digits"):
        load_dataset("mnist2")


def test_a_class_too_small_to_stratify_is_a_data_error():
    x = np.zeros((12, 4, 4, 1), "float32")
    y = np.array([0] * 11 + [1])
    with pytest.raises(DataError, match="cannot split tiny"):
        split_dataset("tiny", x, y, ("a", "b"), 1.0)
