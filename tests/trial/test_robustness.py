"""FGSM accuracy of a real trained model."""

from __future__ import annotations

import keras

from search.trial.config import TrialConfig
from search.trial.model import build_model
from search.trial.robustness import EPSILONS, fgsm_accuracy, robustness_metrics


def test_stronger_attacks_cost_more_accuracy(small_digits):
    keras.utils.set_random_seed(0)
    config = TrialConfig.from_params({"conv_blocks": 1, "filters": 8, "dense_units": 16,
                                      "learning_rate": 0.01})
    model = build_model(config, small_digits.input_shape, 10, small_digits.value_scale)
    model.fit(small_digits.x_train, small_digits.y_train, epochs=5, verbose=0)
    x, y, scale = small_digits.x_test, small_digits.y_test, small_digits.value_scale
    clean = float((model.predict(x, verbose=0).argmax(-1) == y).mean())
    assert fgsm_accuracy(model, x, y, 0.0, scale) == clean
    strong = fgsm_accuracy(model, x, y, 0.2, scale)
    assert strong < clean - 0.2  # a visible attack hurts a plain CNN
    metrics = robustness_metrics(model, x, y, scale)
    assert list(metrics) == [f"fgsm_accuracy.{e * 16:g}" for e in EPSILONS]  # pixel units
    values = list(metrics.values())
    assert values[0] >= values[-1]
