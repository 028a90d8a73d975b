"""How robust a model is: its accuracy under the fast gradient sign method (FGSM).

FGSM moves every pixel by epsilon in the direction that increases the model's loss
(Goodfellow et al., 2015): x' = clip(x + epsilon * sign(d loss / d x)). Epsilons are
fractions of the input's own pixel scale (`Dataset.value_scale`: 16 for digits, 255 for
8-bit images), so the same setting means the same visible change on any data; the
moved pixels are clipped to the values the data can hold (`Dataset.value_range`).
"""

from __future__ import annotations

import keras
import numpy as np

#: Attack strengths the best model is measured at, as fractions of the pixel scale.
EPSILONS = (0.01, 0.03, 0.1)
#: The strength behind the ``robust_accuracy`` objective.
OBJECTIVE_EPSILON = 0.03
#: Images attacked per batch.
_BATCH = 256


def fgsm_images(model: keras.Model, images: np.ndarray, labels: np.ndarray,
                epsilon: float, value_scale: float,
                value_range: tuple[float, float]) -> np.ndarray:
    """`images` moved by FGSM at `epsilon` x `value_scale` against `model`, clipped to
    `value_range` (lowest, highest pixel value)."""
    import tensorflow as tf

    step = epsilon * value_scale
    lowest, highest = value_range
    attacked = []
    for start in range(0, len(images), _BATCH):
        batch = tf.convert_to_tensor(images[start:start + _BATCH].astype("float32"))
        truth = tf.convert_to_tensor(labels[start:start + _BATCH])
        with tf.GradientTape() as tape:
            tape.watch(batch)
            loss = keras.losses.sparse_categorical_crossentropy(
                truth, model(batch, training=False))
        moved = batch + step * tf.sign(tape.gradient(loss, batch))
        attacked.append(tf.clip_by_value(moved, lowest, highest).numpy())
    return np.concatenate(attacked) if attacked else images.astype("float32")


def fgsm_accuracy(model: keras.Model, images: np.ndarray, labels: np.ndarray,
                  epsilon: float, value_scale: float,
                  value_range: tuple[float, float]) -> float:
    """Accuracy on `images` moved by FGSM (`fgsm_images`)."""
    attacked = fgsm_images(model, images, labels, epsilon, value_scale, value_range)
    correct = 0
    for start in range(0, len(attacked), _BATCH):
        predicted = np.argmax(model(attacked[start:start + _BATCH], training=False).numpy(),
                              axis=-1)
        correct += int(np.sum(predicted == labels[start:start + _BATCH]))
    return correct / max(1, len(images))


def robustness_metrics(model: keras.Model, images: np.ndarray, labels: np.ndarray,
                       value_scale: float, value_range: tuple[float, float],
                       ) -> dict[str, float]:
    """``fgsm_accuracy.<epsilon>`` at each of EPSILONS (epsilon in pixel units)."""
    return {f"fgsm_accuracy.{epsilon * value_scale:g}": fgsm_accuracy(
        model, images, labels, epsilon, value_scale, value_range) for epsilon in EPSILONS}
