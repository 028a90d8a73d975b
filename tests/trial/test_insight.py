"""What the best CNN learned: filters, feature maps, saliency and confident mistakes,
drawn from a real trained model."""

from __future__ import annotations

import keras
import numpy as np

from search.trial.config import TrialConfig
from search.trial.insight import insight_figures, saliency_maps
from search.trial.model import build_model


def _trained(data):
    keras.utils.set_random_seed(0)
    config = TrialConfig.from_params({"conv_blocks": 2, "filters": 6, "dense_units": 16,
                                      "learning_rate": 0.01})
    model = build_model(config, data.input_shape, data.num_classes, data.value_scale)
    model.fit(data.x_train, data.y_train, epochs=2, verbose=0)
    return model


def test_insight_figures_of_a_trained_model(small_digits):
    import matplotlib.pyplot as plt

    model = _trained(small_digits)
    figures = insight_figures(model, small_digits)
    assert set(figures) == {"first_layer_filters.png", "feature_maps.png", "saliency.png",
                            "most_confidently_wrong.png"}
    titles = [axes.get_title() for axes in figures["first_layer_filters.png"].axes]
    assert titles[:6] == [f"filter {i}" for i in range(6)]  # one panel per filter
    maps = [axes.get_title() for axes in figures["feature_maps.png"].axes if axes.get_title()]
    assert any(t.startswith("block1_pool") for t in maps) and \
        any(t.startswith("block2_pool") for t in maps)
    wrong = [axes.get_title() for axes in figures["most_confidently_wrong.png"].axes
             if axes.get_title()]
    assert wrong and all(t.startswith("true ") and "predicted" in t for t in wrong)
    for figure in figures.values():
        plt.close(figure)


def test_saliency_is_per_pixel_and_not_blank(small_digits):
    model = _trained(small_digits)
    maps = saliency_maps(model, small_digits.x_test[:3].astype("float32"))
    assert maps.shape == (3, 8, 8)
    assert np.all(maps >= 0) and np.all(maps.max(axis=(1, 2)) > 0)
