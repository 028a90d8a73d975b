"""Load an image classification data set once, in the driver, and split it.

`search.run` calls `load_dataset` before the search starts; the resulting `Dataset` is
handed to every trial through Ray's object store, so trials never read from disk. Images
are kept as float32 in their original value range (``value_scale`` is the maximum): the
model rescales them itself, so the registered model takes raw images.

The embedded default is scikit-learn's digits (1,797 8x8 grayscale images), which ships
inside scikit-learn: no download, ever.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from search.errors import DataError

#: The data set used when the user names none.
DEFAULT_DATA = "digits"

#: Seed of the train/validation/test split. Fixed, not the search seed, so every search
#: on the same data scores its models on the same test images.
SPLIT_SEED = 0

#: Fractions of the examples held out for validation and for test.
VALIDATION_FRACTION = 0.15
TEST_FRACTION = 0.15


@dataclass(frozen=True)
class Dataset:
    """Images (N, height, width, channels) float32 and integer labels, already split."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    value_scale: float

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def sizes(self) -> dict[str, int]:
        """Examples per split, for logging."""
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


def load_dataset(source: str = DEFAULT_DATA, *, limit: int | None = None) -> Dataset:
    """Load a data set by name and split it train/validation/test.

    Args:
        source: the data set's name; see `SOURCES`.
        limit: keep only this many examples in all (a stratified sample), for quick runs.

    Raises:
        DataError: unknown source, or too few examples to split.
    """
    loader = SOURCES.get(source)
    if loader is None:
        raise DataError(f"unknown data source {source!r} (known: {', '.join(SOURCES)})")
    x, y, class_names, value_scale = loader()
    return split_dataset(source, x, y, class_names, value_scale, limit=limit)


def split_dataset(name: str, x: np.ndarray, y: np.ndarray, class_names: tuple[str, ...],
                  value_scale: float, *, limit: int | None = None) -> Dataset:
    """Stratified, seeded train/validation/test split of labelled images.

    Raises:
        DataError: fewer examples than the split needs, or a class too small to stratify.
    """
    from sklearn.model_selection import train_test_split

    num_classes = len(class_names)
    if limit is not None:
        if limit < 3 * num_classes:
            raise DataError(f"--data-limit {limit} is too small: keep at least "
                            f"{3 * num_classes} examples (3 per class) to split")
        if limit < len(y):
            x, _, y, _ = train_test_split(x, y, train_size=limit, stratify=y,
                                          random_state=SPLIT_SEED)
    held_out = VALIDATION_FRACTION + TEST_FRACTION
    try:
        x_train, x_rest, y_train, y_rest = train_test_split(
            x, y, test_size=held_out, stratify=y, random_state=SPLIT_SEED)
        x_val, x_test, y_val, y_test = train_test_split(
            x_rest, y_rest, test_size=TEST_FRACTION / held_out, stratify=y_rest,
            random_state=SPLIT_SEED)
    except ValueError as exc:
        raise DataError(f"cannot split {name} ({len(y)} examples, {num_classes} classes) "
                        f"into train/validation/test: {exc}") from exc
    return Dataset(name=name, x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val,
                   x_test=x_test, y_test=y_test, class_names=class_names,
                   value_scale=value_scale)


def _digits() -> tuple[np.ndarray, np.ndarray, tuple[str, ...], float]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = digits.images.astype("float32")[..., np.newaxis]
    y = digits.target.astype("int32")
    return x, y, tuple(str(c) for c in digits.target_names), 16.0


#: Data sets by name. Each loader returns images, labels, class names and the pixel maximum.
SOURCES: dict[str, Callable[[], tuple[np.ndarray, np.ndarray, tuple[str, ...], float]]] = {
    "digits": _digits,
}
