from __future__ import annotations

import numpy as np
import pytest

from adaprune.data import load_data
from adaprune.errors import ConfigError, DataError


def test_npz_loads_with_test_split(blobs_npz):
    d = load_data(f"npz:{blobs_npz}")
    assert d.x.shape == (240, 8) and d.x.dtype == np.float32
    assert d.y.dtype == np.int64 and d.num_classes == 3 and d.has_test
    assert d.source_paths == (str(blobs_npz),)


def test_npz_nhwc_images_become_nchw(tmp_path):
    x = np.zeros((5, 6, 7, 3), dtype=np.uint8)
    x[:, 0, 0, 2] = 9
    np.savez(tmp_path / "img.npz", x=x, y=np.zeros(5, dtype=int))
    d = load_data(f"npz:{tmp_path / 'img.npz'}")
    assert d.x.shape == (5, 3, 6, 7) and d.x[0, 2, 0, 0] == 9


def test_sibling_test_source(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "a.npz", x=rng.normal(size=(10, 3)), y=np.arange(10) % 2)
    np.savez(tmp_path / "b.npz", x=rng.normal(size=(4, 3)), y=np.arange(4) % 2)
    d = load_data(f"npz:{tmp_path / 'a.npz'}", test=f"npz:{tmp_path / 'b.npz'}")
    assert d.n == 10 and len(d.y_test) == 4


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x": np.zeros((3, 2)), "y": np.zeros(2, dtype=int)}, "x has 3 samples but y has 2"),
        ({"x": np.zeros((3, 2)), "y": np.array([0, -1, 0])}, "non-negative integers, got -1 at row 1"),
        ({"x": np.zeros((3, 2)), "y": np.array([0.0, 0.5, 1.0])}, "non-negative integers, got 0.5 at row 1"),
        ({"x": np.array([[0.0, 1.0], [np.inf, 0.0]]), "y": np.array([0, 1])}, "NaN or inf in 1 samples"),
        ({"x": np.array([[0.0, np.nan]]), "y": np.array([0])}, "first at row 0"),
        ({"x": np.zeros((0, 2)), "y": np.zeros(0, dtype=int)}, "empty"),
        ({"x": np.zeros((3, 2))}, "no array 'y'"),
    ],
)
def test_npz_validation_errors(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message):
        load_data(f"npz:{tmp_path / 'bad.npz'}")


def test_unreadable_and_missing_files(tmp_path):
    (tmp_path / "junk.npz").write_text("not an archive")
    with pytest.raises(DataError, match="not readable"):
        load_data(f"npz:{tmp_path / 'junk.npz'}")
    with pytest.raises(DataError, match="does not exist"):
        load_data(f"npz:{tmp_path / 'nope.npz'}")


@pytest.mark.parametrize("spec", ["", "csv:x", "npz:", "mnist1d:many", "digits:3"])
def test_bad_specs(spec):
    with pytest.raises(ConfigError):
        load_data(spec)


def test_digits_fixed_split():
    d = load_data("digits")
    assert d.x.shape == (1347, 1, 8, 8) and len(d.y_test) == 450
    assert d.x.min() >= 0.0 and d.x.max() <= 1.0
    assert np.array_equal(load_data("digits").y, d.y)


def test_mnist1d_default_split_and_global_rng_untouched():
    np.random.seed(123)
    expected_next = np.random.random()
    np.random.seed(123)
    d = load_data("mnist1d")
    assert d.x.shape == (4000, 1, 40) and len(d.y_test) == 1000 and d.num_classes == 10
    assert np.random.random() == expected_next
    small = load_data("mnist1d:200")
    assert small.n == 200 and len(small.y_test) == 50


def _write_png(path, array):
    from PIL import Image

    Image.fromarray(array).save(path)


def test_folder_source_reads_classes_and_images(tmp_path):
    for cls, value in (("cat", 10), ("dog", 200)):
        (tmp_path / cls).mkdir()
        for i in range(3):
            _write_png(tmp_path / cls / f"{i}.png", np.full((4, 5, 3), value + i, dtype=np.uint8))
    d = load_data(f"folder:{tmp_path}")
    assert d.x.shape == (6, 1, 4, 5)  # grey content stays one channel
    assert d.y.tolist() == [0, 0, 0, 1, 1, 1] and d.class_names == ("cat", "dog")
    assert d.x[3, 0, 0, 0] == pytest.approx(200 / 255)


def test_folder_source_errors(tmp_path):
    (tmp_path / "a").mkdir()
    _write_png(tmp_path / "a" / "0.png", np.zeros((4, 4, 3), dtype=np.uint8))
    (tmp_path / "a" / "1.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"1 bad image files.*1.png' \(not a readable image"):
        load_data(f"folder:{tmp_path}")
    (tmp_path / "a" / "1.png").unlink()
    (tmp_path / "b").mkdir()
    with pytest.raises(DataError, match="has no images"):
        load_data(f"folder:{tmp_path / 'b'}")
