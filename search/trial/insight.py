"""What the best CNN learned, as figures a user opens first: its first conv layer's
filters, each conv block's feature maps for a few test images, saliency maps (the
gradient of the predicted class's probability with respect to each pixel), and the test
images it gets most confidently wrong.

From "visualizing what CNNs learn": filters show what the first layer looks for, feature
maps what each block passes on, saliency which pixels decide. Computed with Keras and
TensorFlow on the model as trained; drawn with matplotlib; nothing here knows MLflow.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from search.data import Dataset

#: Test images shown in the feature-map and saliency figures, and wrong ones shown.
EXAMPLES = 4
WRONG = 12
#: Channels shown per block's feature maps, and most first-layer filters shown.
CHANNELS = 8
MAX_FILTERS = 32


def insight_figures(model: keras.Model, data: Dataset) -> dict[str, Any]:
    """The figures, by file name."""
    import matplotlib

    matplotlib.use("Agg")
    images = data.x_test[:EXAMPLES].astype("float32")
    probabilities = model.predict(data.x_test, verbose=0)
    return {"first_layer_filters.png": filters_figure(model),
            "feature_maps.png": feature_maps_figure(model, images, data),
            "saliency.png": saliency_figure(model, images, data, probabilities[:EXAMPLES]),
            "most_confidently_wrong.png": wrong_figure(data, probabilities)}


def _conv_layers(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def _show(axes: Any, image: np.ndarray, title: str = "", cmap: str = "gray") -> None:
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 3:  # colour: scale into [0, 1] for imshow
        low, high = image.min(), image.max()
        image = (image - low) / (high - low or 1.0)
    axes.imshow(image, cmap=None if image.ndim == 3 else cmap, interpolation="nearest")
    axes.set_title(title, fontsize=8)
    axes.axis("off")


def _grid(count: int, columns: int, size: float = 1.6, title_lines: int = 1,
          ) -> tuple[Any, Any]:
    """A grid of image panels with room for the figure's title and each panel's
    (`title_lines` lines). Laid out by fixed margins: matplotlib's tight layout measured
    every panel's text and took most of the time of drawing these figures."""
    from matplotlib.figure import Figure

    rows = max(1, -(-count // columns))
    header = 0.6  # inches for the figure's title
    height = rows * size + header
    figure = Figure(figsize=(columns * size, height))
    axes = figure.subplots(rows, columns, squeeze=False)
    figure.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=1 - header / height,
                           wspace=0.1, hspace=0.12 + 0.14 * title_lines * 1.6 / size)
    for extra in axes.flat[count:]:
        extra.axis("off")
    return figure, axes


def filters_figure(model: keras.Model) -> Any:
    """Each filter of the first conv layer, as an image (colour when the input is)."""
    first = _conv_layers(model)[0]
    kernel = keras.ops.convert_to_numpy(first.kernel)  # (k, k, channels, filters)
    count = min(kernel.shape[-1], MAX_FILTERS)
    figure, axes = _grid(count, min(8, count))
    for index in range(count):
        weights = kernel[..., index]
        _show(axes.flat[index], weights if weights.shape[-1] == 3 else weights.mean(axis=-1),
              f"filter {index}", cmap="RdBu_r")
    shown = f", the first {count} shown" if count < kernel.shape[-1] else ""
    figure.suptitle(f"First conv layer ({first.name}): {kernel.shape[-1]} filters of "
                    f"{kernel.shape[0]}x{kernel.shape[1]}{shown}")
    return figure


def feature_maps_figure(model: keras.Model, images: np.ndarray, data: Dataset) -> Any:
    """For each example image, the first channels of each conv block's output."""
    blocks = sorted({layer.name.split("_")[0] for layer in _conv_layers(model)})
    outputs = []
    for block in blocks:
        last = [layer for layer in model.layers if layer.name.startswith(block + "_")][-1]
        if len(last.output.shape) == 4:  # a global-pooled block has no map to show
            outputs.append(last)
    probe = keras.Model(model.input, [layer.output for layer in outputs])
    maps = probe(images, training=False)
    maps = maps if isinstance(maps, list | tuple) else [maps]
    columns = 1 + sum(min(CHANNELS, m.shape[-1]) for m in maps)
    figure, axes = _grid(len(images) * columns, columns, size=1.3)
    for row, image in enumerate(images):
        _show(axes[row, 0], image, f"test image: {data.class_names[data.y_test[row]]}")
        column = 1
        for layer, batch in zip(outputs, maps, strict=True):
            values = keras.ops.convert_to_numpy(batch[row])
            for channel in range(min(CHANNELS, values.shape[-1])):
                _show(axes[row, column], values[..., channel],
                      f"{layer.name} #{channel}", cmap="viridis")
                column += 1
    figure.suptitle("Feature maps: what each conv block passes on (first channels)")
    return figure


def saliency_maps(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """|d p(predicted class) / d pixel|, the largest over channels, per image."""
    import tensorflow as tf

    inputs = tf.convert_to_tensor(images)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        probabilities = model(inputs, training=False)
        chosen = tf.reduce_max(probabilities, axis=-1)
    gradients = tape.gradient(chosen, inputs).numpy()
    return np.abs(gradients).max(axis=-1)


def saliency_figure(model: keras.Model, images: np.ndarray, data: Dataset,
                    probabilities: np.ndarray) -> Any:
    """Each example image beside its saliency map, titled with the prediction."""
    maps = saliency_maps(model, images)
    figure, axes = _grid(2 * len(images), 2, size=2.2)
    for row, image in enumerate(images):
        predicted = int(probabilities[row].argmax())
        _show(axes[row, 0], image, f"true {data.class_names[data.y_test[row]]}, predicted "
                                   f"{data.class_names[predicted]} "
                                   f"({probabilities[row, predicted]:.0%})")
        _show(axes[row, 1], maps[row], "saliency: pixels that decide", cmap="hot")
    figure.suptitle("Saliency maps of the best model")
    return figure


def wrong_figure(data: Dataset, probabilities: np.ndarray) -> Any:
    """The test images predicted wrong with the highest confidence."""
    predicted = probabilities.argmax(axis=-1)
    wrong = np.flatnonzero(predicted != data.y_test)
    order = wrong[np.argsort(-probabilities[wrong, predicted[wrong]])][:WRONG]
    figure, axes = _grid(max(1, len(order)), min(6, max(1, len(order))), size=1.8,
                         title_lines=2)
    for slot, index in enumerate(order):
        _show(axes.flat[slot], data.x_test[index],
              f"true {data.class_names[data.y_test[index]]}\npredicted "
              f"{data.class_names[predicted[index]]} "
              f"({probabilities[index, predicted[index]]:.0%})")
    if len(order) == 0:
        axes.flat[0].text(0.5, 0.5, "no test image is predicted wrong", ha="center")
    figure.suptitle(f"Most confidently wrong test images ({len(wrong)} wrong of "
                    f"{len(data.y_test)})")
    return figure
