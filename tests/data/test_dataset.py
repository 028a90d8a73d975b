"""Data sets: the embedded digits, .npz files and image folders the tests make themselves,
the splits made where a source has none, and a one-line error for each kind of bad data."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from search.data import load_dataset, split_dataset
from search.data.sources import RawData
from search.errors import DataError


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def _images(n: int, size=(6, 5), channels=1, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, *size, channels)).astype("uint8")


def _folder(root, classes: dict[str, int], size=(10, 12), mode="RGB"):
    rng = np.random.default_rng(0)
    for name, count in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            shape = (*size, 3) if mode == "RGB" else size
            Image.fromarray(rng.integers(0, 256, shape).astype("uint8"), mode).save(
                root / name / f"{i}.png")
    return root


# -- digits --------------------------------------------------------------------------


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


# -- .npz ----------------------------------------------------------------------------


def test_npz_with_every_split_keeps_them(tmp_path):
    y = np.tile([0, 1, 2], 10)
    path = _npz(tmp_path / "full.npz", x_train=_images(30), y_train=y, x_val=_images(6),
                y_val=y[:6], x_test=_images(9), y_test=y[:9],
                class_names=np.array(["cat", "dog", "eel"]))
    data = load_dataset(path)
    assert data.name == "full"
    assert data.sizes() == {"train": 30, "val": 6, "test": 9}
    assert data.class_names == ("cat", "dog", "eel")
    assert data.input_shape == (6, 5, 1)
    assert data.value_scale == 255.0


def test_npz_with_train_only_is_split_three_ways(tmp_path):
    x = _images(60).squeeze(-1)  # (N, H, W): a channel is added
    path = _npz(tmp_path / "train_only.npz", x_train=x, y_train=np.tile([0, 1, 2], 20))
    data = load_dataset(path)
    assert data.input_shape == (6, 5, 1)
    assert sum(data.sizes().values()) == 60
    assert data.sizes()["test"] == 9 and data.sizes()["val"] == 9
    assert data.class_names == ("0", "1", "2")


def test_npz_with_a_test_split_gets_validation_from_train(tmp_path):
    y = np.tile([0, 1], 20)
    path = _npz(tmp_path / "t.npz", x_train=_images(40), y_train=y, x_test=_images(10),
                y_test=y[:10])
    data = load_dataset(path)
    assert data.sizes() == {"train": 34, "val": 6, "test": 10}


def test_npz_in_unit_range_keeps_scale_one(tmp_path):
    path = _npz(tmp_path / "unit.npz", x_train=_images(30).astype("float32") / 255,
                y_train=np.tile([0, 1, 2], 10))
    assert load_dataset(path).value_scale == 1.0


# (arrays, message)
BAD_NPZ = [
    ({"y_train": np.zeros(3)}, r"has no x_train \(it has: y_train\)"),
    ({"x_train": _images(4), "y_train": np.array([0, 1, 0, 1]), "x_val": _images(2)},
     r"has x_val but no y_val"),
    ({"x_train": np.zeros((10, 64)), "y_train": np.zeros(10)},
     r"x_train has shape \(10, 64\); expected images \(N, height, width\)"),
    ({"x_train": _images(10), "y_train": np.tile([0, 1], 4)},
     r"x_train has 10 images but y_train has 8 labels"),
    ({"x_train": _images(10), "y_train": np.array([0, 1] * 4 + [-1, 1])},
     r"y_train has label -1; labels start at 0"),
    ({"x_train": _images(10), "y_train": np.linspace(0, 1, 10)},
     r"y_train labels must be whole numbers, got float64"),
    ({"x_train": _images(10), "y_train": np.eye(2)[np.tile([0, 1], 5)]},
     r"y_train has shape \(10, 2\); expected one integer label per image \(not one-hot\)"),
    ({"x_train": _images(10), "y_train": np.tile([0, 1], 5), "x_test": _images(2),
      "y_test": np.array([0, 7])},
     r"y_test has label 7, but there are 2 classes \(labels 0 to 1\)"),
    ({"x_train": _images(10), "y_train": np.tile([0, 1], 5),
      "class_names": np.array(["only"])},
     r"y_train has label 1, but there are 1 classes"),
    ({"x_train": _images(10), "y_train": np.zeros(10, int)},
     r"the training labels hold one class \(0\)"),
    ({"x_train": _images(10), "y_train": np.tile([0, 1], 5), "x_test": _images(2, (4, 4)),
      "y_test": np.array([0, 1])}, r"x_test images are 4x4x1 but x_train images are 6x5x1"),
    ({"x_train": np.full((10, 4, 4), np.nan), "y_train": np.tile([0, 1], 5)},
     r"x_train holds NaN or infinite pixel values"),
    ({"x_train": np.zeros((0, 4, 4)), "y_train": np.zeros(0, int)}, r"x_train is empty"),
]


@pytest.mark.parametrize(("arrays", "message"), BAD_NPZ, ids=[f"{i:02d}" for i in
                                                              range(len(BAD_NPZ))])
def test_bad_npz_is_a_one_line_data_error(tmp_path, arrays, message):
    path = _npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message) as caught:
        load_dataset(path)
    assert "\n" not in str(caught.value)


def test_a_file_that_is_not_npz(tmp_path):
    (tmp_path / "fake.npz").write_text("not a zip")
    with pytest.raises(DataError, match=r"cannot read .*fake.npz as .npz"):
        load_dataset(str(tmp_path / "fake.npz"))


# -- image folders -------------------------------------------------------------------


def test_image_folder_classes_are_subfolders(tmp_path):
    root = _folder(tmp_path / "pets", {"dog": 12, "cat": 10, "eel": 11})
    (root / "cat" / ".DS_Store").write_text("hidden files are ignored")
    data = load_dataset(str(root))
    assert data.name == "pets"
    assert data.class_names == ("cat", "dog", "eel")  # sorted, as Keras orders them
    assert data.input_shape == (10, 12, 3)
    assert sum(data.sizes().values()) == 33
    assert data.value_scale == 255.0
    counts = np.bincount(np.concatenate([data.y_train, data.y_val, data.y_test]))
    assert list(counts) == [10, 12, 11]


def test_image_folder_grayscale_and_resized(tmp_path):
    root = _folder(tmp_path / "g", {"a": 6, "b": 6}, size=(10, 12))
    _folder(root, {"b": 3}, size=(20, 16))  # bigger images are fine once resized
    data = load_dataset(str(root), image_size=(8, 9), color_mode="grayscale")
    assert data.input_shape == (8, 9, 1)


def test_mixed_sizes_need_an_image_size(tmp_path):
    root = _folder(tmp_path / "m", {"a": 4, "b": 4})
    Image.fromarray(np.zeros((20, 20, 3), "uint8")).save(root / "b" / "big.png")
    with pytest.raises(DataError, match=r"b/big.png is 20x20x3 but .*a/0.png is 10x12x3; "
                                         r"pass --image-size HxW"):
        load_dataset(str(root))


@pytest.mark.parametrize(("build", "message"), [
    (lambda r: r.mkdir(), r"has no class subfolders: put each class's images in a subfolder"),
    (lambda r: _folder(r, {"only": 5}), r"has one class \(only\); a classifier needs at "
                                        r"least two"),
    (lambda r: (_folder(r, {"a": 5}), (r / "b").mkdir()), r"class folder .*/b has no images"),
    (lambda r: (_folder(r, {"a": 5, "b": 5}), (r / "a" / "notes.txt").write_text("x")),
     r"a/notes.txt is not an image \(expected .bmp, .gif, .jpeg, .jpg, .png\)"),
    (lambda r: (_folder(r, {"a": 5, "b": 5}), (r / "b" / "broken.png").write_bytes(b"no")),
     r"cannot read image .*b/broken.png"),
    (lambda r: (_folder(r, {"a": 5, "b": 5}), (r / "a" / "sub").mkdir()),
     r"a/sub is a folder inside class folder a; classes cannot be nested"),
], ids=["empty", "one-class", "empty-class", "not-an-image", "corrupt", "nested"])
def test_bad_image_folders_are_one_line_data_errors(tmp_path, build, message):
    root = tmp_path / "imgs"
    build(root)
    with pytest.raises(DataError, match=message) as caught:
        load_dataset(str(root))
    assert "\n" not in str(caught.value)


# -- sources and options ---------------------------------------------------------------


@pytest.mark.parametrize(("source", "kwargs", "message"), [
    ("no/such/folder", {}, r"data not found: no/such/folder \(use digits, keras:NAME"),
    ("mnist2", {}, r"data not found: mnist2"),
    ("keras:svhn", {}, r"unknown Keras data set keras:svhn \(known: keras:mnist"),
    ("digits", {"image_size": (8, 8)}, r"--image-size and --color-mode apply to image folders"),
    ("digits", {"color_mode": "cmyk"}, r"--color-mode 'cmyk' is not one of rgb, grayscale"),
])
def test_source_errors(source, kwargs, message):
    with pytest.raises(DataError, match=message):
        load_dataset(source, **kwargs)


def test_unsupported_file_kind(tmp_path):
    (tmp_path / "data.csv").write_text("1,2")
    with pytest.raises(DataError, match=r"data.csv is neither an image folder nor a .npz"):
        load_dataset(str(tmp_path / "data.csv"))


def test_a_class_too_small_to_stratify_is_a_data_error():
    raw = RawData({"train": (np.zeros((12, 4, 4, 1)), np.array([0] * 11 + [1]))}, ("a", "b"),
                  1.0)
    with pytest.raises(DataError, match="cannot split a test set off tiny"):
        split_dataset("tiny", raw)


def test_slug_is_fit_for_registry_names():
    raw = RawData({"train": (np.zeros((30, 4, 4, 1)), np.tile([0, 1, 2], 10))}, None, 1.0)
    assert split_dataset("keras:fashion_mnist", raw).slug == "keras-fashion_mnist"
