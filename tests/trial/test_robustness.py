"""FGSM accuracy of a real trained model."""

from __future__ import annotations

import keras
import numpy as np

from search.data import load_dataset
from search.trial.config import TrialConfig
from search.trial.model import build_model
from search.trial.robustness import (
    EPSILONS,
    fgsm_accuracy,
    fgsm_images,
    robustness_metrics,
)


def test_stronger_attacks_cost_more_accuracy(small_digits):
    keras.utils.set_random_seed(0)
    config = TrialConfig.from_params({"conv_blocks": 1, "filters": 8, "dense_units": 16,
                                      "learning_rate": 0.01})
    model = build_model(config, small_digits.input_shape, 10, small_digits.value_scale)
    model.fit(small_digits.x_train, small_digits.y_train, epochs=5, verbose=0)
    x, y, scale = small_digits.x_test, small_digits.y_test, small_digits.value_scale
    span = small_digits.value_range
    assert span == (0.0, 16.0)
    clean = float((model.predict(x, verbose=0).argmax(-1) == y).mean())
    assert fgsm_accuracy(model, x, y, 0.0, scale, span) == clean
    strong = fgsm_accuracy(model, x, y, 0.2, scale, span)
    assert strong < clean - 0.2  # a visible attack hurts a plain CNN
    metrics = robustness_metrics(model, x, y, scale, span)
    assert list(metrics) == [f"fgsm_accuracy.{e * 16:g}" for e in EPSILONS]  # pixel units
    values = list(metrics.values())
    assert values[0] >= values[-1]


def test_attacked_pixels_stay_within_the_datas_own_range(tmp_path):
    # Standardized images hold negative values: clipping them at 0 would change the
    # images far more than epsilon, and turn an attack into something else.
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 1.0, (90, 8, 8, 1)).astype("float32")
    np.savez(tmp_path / "standard.npz", x_train=x, y_train=np.tile([0, 1, 2], 30))
    data = load_dataset(str(tmp_path / "standard.npz"))
    lowest, highest = data.value_range
    assert lowest < -2.0 and highest > 2.0
    assert lowest == min(float(a.min()) for a in (data.x_train, data.x_val, data.x_test))

    model = build_model(TrialConfig.from_params({"conv_blocks": 1, "filters": 4,
                                                 "dense_units": 8}),
                        data.input_shape, data.num_classes, data.value_scale)
    x, y = data.x_test, data.y_test
    unmoved = fgsm_images(model, x, y, 0.0, data.value_scale, data.value_range)
    np.testing.assert_array_equal(unmoved, x)  # no clipping of pixels the data holds
    moved = fgsm_images(model, x, y, 0.1, data.value_scale, data.value_range)
    assert moved.min() >= lowest and moved.max() <= highest
    assert np.abs(moved - x).max() <= 0.1 * data.value_scale + 1e-6
    assert (moved < 0).mean() > 0.3  # negative pixels stay negative
