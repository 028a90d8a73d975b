"""Load an image classification data set once, in the driver, check it, and split it.

`search.run` calls `load_dataset` before the search starts; the resulting `Dataset` is
handed to every trial through Ray's object store, so trials never read from disk. Images
are kept as float32 in their original value range (``value_scale`` is full intensity):
the model rescales them itself, so the registered model takes raw images.

``--data`` names the source: ``digits`` (embedded, the default), ``keras:NAME`` (a
`keras.datasets` set), a ``.npz`` file, or an image folder (see `search.data.sources`).
Splits a source does not have are made here: stratified and seeded with `SPLIT_SEED`, so
every search on the same data scores its models on the same test images. Any problem
with the data is a one-line `DataError` before a trial starts.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search.data.sources import (
    COLOR_MODES,
    KERAS_DATASETS,
    RawData,
    read_digits,
    read_image_folder,
    read_keras,
    read_npz,
)
from search.errors import DataError

#: The data set used when the user names none.
DEFAULT_DATA = "digits"

#: Seed of the splits this module makes. Fixed, not the search seed.
SPLIT_SEED = 0

#: Fractions of the examples held out for validation and for test, when a source has no
#: such split of its own.
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

    @functools.cached_property
    def value_range(self) -> tuple[float, float]:
        """The pixel values an image of this data can hold: 0 to full intensity, widened
        to the lowest and highest values of any split (standardized `.npz` arrays hold
        negative ones)."""
        splits = (self.x_train, self.x_val, self.x_test)
        lowest = min(float(np.min(x)) for x in splits if x.size)
        highest = max(float(np.max(x)) for x in splits if x.size)
        return min(0.0, lowest), max(self.value_scale, highest)

    def sizes(self) -> dict[str, int]:
        """Examples per split, for logging."""
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}

    def fingerprint(self) -> str:
        """A digest of every split's images and labels: a resumed search checks that its
        data is still what it started with."""
        digest = hashlib.sha256()
        for array in (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test,
                      self.y_test):
            digest.update(str(array.shape).encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()[:16]

    @property
    def slug(self) -> str:
        """The name in a form fit for registry and file names: ``keras-mnist``."""
        return re.sub(r"[^A-Za-z0-9_-]+", "-", self.name).strip("-") or "data"


def load_dataset(source: str = DEFAULT_DATA, *, limit: int | None = None,
                 image_size: tuple[int, int] | None = None, color_mode: str = "rgb",
                 ) -> Dataset:
    """Load, check and split the data set `source` names.

    Args:
        source: ``digits``, ``keras:NAME``, a ``.npz`` file or an image folder.
        limit: keep only this many examples in all (stratified), for quick runs.
        image_size: (height, width) to resize an image folder's images to.
        color_mode: ``rgb`` or ``grayscale``, for an image folder.

    Raises:
        DataError: the source is missing or unreadable, or its images or labels are not
            a usable classification data set.
    """
    if color_mode not in COLOR_MODES:
        raise DataError(f"--color-mode {color_mode!r} is not one of {', '.join(COLOR_MODES)}")
    folder_options = image_size is not None or color_mode != "rgb"
    if source == "digits":
        name, raw = "digits", read_digits()
    elif source.startswith("keras:"):
        name, raw = source, read_keras(source.split(":", 1)[1])
    else:
        path = Path(source)
        if not path.exists():
            raise DataError(f"data not found: {source} (use digits, keras:NAME with NAME one "
                            f"of {', '.join(KERAS_DATASETS)}, a .npz file or an image folder)")
        if path.is_dir():
            name, raw = path.resolve().name, read_image_folder(path, image_size, color_mode)
            folder_options = False
        elif path.suffix.lower() == ".npz":
            name, raw = path.stem, read_npz(path)
        else:
            raise DataError(f"{source} is neither an image folder nor a .npz file")
    if folder_options:
        raise DataError("--image-size and --color-mode apply to image folders only")
    return split_dataset(name, raw, limit=limit)


def split_dataset(name: str, raw: RawData, *, limit: int | None = None) -> Dataset:
    """Check a source's arrays and make the splits it lacks.

    Raises:
        DataError: bad ranks, shapes, lengths or labels, fewer than two classes, or too
            few examples to split.
    """
    splits = {split: _checked(name, split, x, y) for split, (x, y) in raw.splits.items()}
    shapes = {split: x.shape[1:] for split, (x, _) in splits.items()}
    for split, shape in shapes.items():
        if shape != shapes["train"]:
            raise DataError(f"{name}: x_{split} images are {_size(shape)} but x_train images "
                            f"are {_size(shapes['train'])}")
    train_labels = splits["train"][1]
    num_classes = len(raw.class_names) if raw.class_names else int(train_labels.max()) + 1
    for split, (_, y) in splits.items():
        if y.max() >= num_classes:
            raise DataError(f"{name}: y_{split} has label {int(y.max())}, but there are "
                            f"{num_classes} classes (labels 0 to {num_classes - 1})")
    present = np.unique(train_labels)
    if len(present) < 2:
        raise DataError(f"{name}: the training labels hold one class ({int(present[0])}); a "
                        "classifier needs at least two")
    class_names = raw.class_names or tuple(str(i) for i in range(num_classes))

    if limit is not None:
        total = sum(len(y) for _, y in splits.values())
        if limit < 3 * len(present):
            raise DataError(f"--data-limit {limit} is too small: keep at least "
                            f"{3 * len(present)} examples (3 per class) to split")
        if limit < total:
            splits = {split: _subsample(name, split, x, y, limit / total)
                      for split, (x, y) in splits.items()}

    x, y = splits["train"]
    if "test" not in splits:
        x, y, x_test, y_test = _hold_out(name, "test", x, y, TEST_FRACTION)
        splits["test"] = (x_test, y_test)
    if "val" not in splits:
        fraction = VALIDATION_FRACTION / (1 - TEST_FRACTION) if "test" not in raw.splits \
            else VALIDATION_FRACTION
        x, y, x_val, y_val = _hold_out(name, "validation", x, y, fraction)
        splits["val"] = (x_val, y_val)
    return Dataset(name=name, x_train=x, y_train=y, x_val=splits["val"][0],
                   y_val=splits["val"][1], x_test=splits["test"][0], y_test=splits["test"][1],
                   class_names=class_names, value_scale=raw.value_scale)


def _checked(name: str, split: str, x: np.ndarray, y: np.ndarray,
             ) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 3:
        x = x[..., np.newaxis]  # (N, H, W): one channel
    if x.ndim != 4:
        raise DataError(f"{name}: x_{split} has shape {x.shape}; expected images "
                        "(N, height, width) or (N, height, width, channels)")
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{name}: x_{split} holds {x.dtype} values, not numbers")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{name}: y_{split} has shape {y.shape}; expected one integer label "
                        "per image (not one-hot)")
    if len(x) != len(y):
        raise DataError(f"{name}: x_{split} has {len(x)} images but y_{split} has {len(y)} "
                        "labels")
    if len(y) == 0:
        raise DataError(f"{name}: x_{split} is empty")
    whole = np.issubdtype(y.dtype, np.integer) or (
        np.issubdtype(y.dtype, np.number) and bool(np.all(np.mod(y, 1) == 0)))
    if not whole:
        raise DataError(f"{name}: y_{split} labels must be whole numbers, got {y.dtype}")
    if y.min() < 0:
        raise DataError(f"{name}: y_{split} has label {int(y.min())}; labels start at 0")
    if not np.all(np.isfinite(x)):
        raise DataError(f"{name}: x_{split} holds NaN or infinite pixel values")
    return x.astype("float32", copy=False), y.astype("int64", copy=False)


def _subsample(name: str, split: str, x: np.ndarray, y: np.ndarray, fraction: float,
               ) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    keep = max(len(np.unique(y)), round(len(y) * fraction))
    if keep >= len(y):
        return x, y
    try:
        x, _, y, _ = train_test_split(x, y, train_size=keep, stratify=y,
                                      random_state=SPLIT_SEED)
    except ValueError as exc:
        raise DataError(f"cannot take a stratified sample of {keep} from {name}'s {split} "
                        f"split: {exc}") from exc
    return x, y


def _hold_out(name: str, what: str, x: np.ndarray, y: np.ndarray, fraction: float,
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    try:
        x_keep, x_out, y_keep, y_out = train_test_split(
            x, y, test_size=fraction, stratify=y, random_state=SPLIT_SEED)
    except ValueError as exc:
        raise DataError(f"cannot split a {what} set off {name} ({len(y)} examples, "
                        f"{len(np.unique(y))} classes): {exc}") from exc
    return x_keep, y_keep, x_out, y_out


def _size(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))
