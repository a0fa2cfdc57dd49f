import pickle

import numpy as np
import pytest

from flownas.datasets import load_image_data
from flownas.errors import DataError

from conftest import require_data, write_tiny_images


def test_npz_layout(tiny_images):
    d = load_image_data(tiny_images)
    assert d.x_train.shape == (96, 16, 16, 3) and d.x_val.shape == (48, 16, 16, 3)
    assert d.num_classes == 10 and d.classes[3] == "class3"
    assert d.image_shape == (3, 16, 16)
    assert not d.x_train.flags.writeable          # shared by every evaluation of the process
    mean, std = d.mean_std
    assert mean.shape == (3,) and (std > 0).all()
    assert load_image_data(tiny_images) is d      # loaded once per process


def test_held_out_validation_split(tiny_images):
    d = load_image_data(tiny_images, val_fraction=0.25, seed=3)
    assert len(d.x_train) == 72 and len(d.x_val) == 24
    again = load_image_data(str(tiny_images), val_fraction=0.25, seed=3)
    assert np.array_equal(again.y_val, d.y_val)
    with pytest.raises(DataError, match="val_fraction"):
        load_image_data(tiny_images, val_fraction=1.5)


def test_shared_cifar10_mini():
    require_data("cifar10-mini/cifar10_mini.npz")
    d = load_image_data("cifar10-mini")
    assert d.x_train.shape == (4829, 32, 32, 3) and len(d.y_val) == 932
    assert d.classes[0] == "airplane" and d.num_classes == 10


def _cifar_batch(path, n, seed):
    rng = np.random.default_rng(seed)
    batch = {b"batch_label": b"training batch", b"labels": [int(v) for v in rng.integers(0, 10, n)],
             b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
             b"filenames": [b"x.png"] * n}
    path.write_bytes(pickle.dumps(batch, protocol=2))
    return batch


def test_cifar10_python_directory(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    b1 = _cifar_batch(root / "data_batch_1", 5, 0)
    _cifar_batch(root / "data_batch_2", 4, 1)
    test = _cifar_batch(root / "test_batch", 3, 2)
    names = [f"n{i}".encode() for i in range(10)]
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))
    for path in (root, tmp_path):                 # the batch folder or the folder holding it
        d = load_image_data(path)
        assert d.x_train.shape == (9, 32, 32, 3) and d.x_val.shape == (3, 32, 32, 3)
        assert d.classes == tuple(f"n{i}" for i in range(10))
        assert list(d.y_train[:5]) == b1[b"labels"] and list(d.y_val) == test[b"labels"]
        # row layout: 1024 red, 1024 green, 1024 blue values, row-major
        assert d.x_train[0, 0, 1, 2] == b1[b"data"][0, 2048 + 1]


def test_cifar_batch_with_foreign_objects_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    (tmp_path / "test_batch").write_bytes(b"")
    with pytest.raises(DataError, match=r"data_batch_1.*unexpected object builtins.print"):
        load_image_data(tmp_path)


def test_cifar_directory_errors(tmp_path):
    _cifar_batch(tmp_path / "data_batch_1", 4, 0)
    with pytest.raises(DataError, match=r"missing CIFAR-10 batch file .*test_batch"):
        load_image_data(tmp_path)
    (tmp_path / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match=r"test_batch: malformed CIFAR-10 batch file"):
        load_image_data(tmp_path)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(DataError, match=r"test_batch.*'data' must be uint8 \(N, 3072\)"):
        load_image_data(tmp_path)


def _png(path, colour, size=(8, 8)):
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_image_folder_with_val_folder(tmp_path):
    for split, n in (("train", 3), ("val", 2)):
        for cls, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
            for i in range(n):
                _png(tmp_path / split / cls / f"{i}.png", colour)
    d = load_image_data(tmp_path)
    assert d.classes == ("cat", "dog")
    assert d.x_train.shape == (6, 8, 8, 3) and d.x_val.shape == (4, 8, 8, 3)
    assert list(d.y_train) == [0, 0, 0, 1, 1, 1]
    assert tuple(d.x_train[0, 0, 0]) == (255, 0, 0) and tuple(d.x_val[-1, 0, 0]) == (0, 0, 255)


def test_image_folder_alone_holds_out_a_fraction_and_resizes(tmp_path):
    for i in range(10):
        _png(tmp_path / "a" / f"{i}.png", (10, 20, 30), size=(8 + i % 2, 8))
        _png(tmp_path / "b" / f"{i}.jpg", (200, 20, 30))
    with pytest.raises(DataError, match=r"image is 9x8 but earlier ones are 8x8; pass image_size"):
        load_image_data(tmp_path)
    d = load_image_data(tmp_path, image_size=12)
    assert d.x_train.shape[1:] == (12, 12, 3)
    assert len(d.x_train) == 18 and len(d.x_val) == 2    # 10% held out by default


def test_image_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"not a dataset: expected an \.npz file"):
        load_image_data(tmp_path / "empty")
    (tmp_path / "cls" / "a").mkdir(parents=True)
    (tmp_path / "cls" / "a" / "broken.png").write_bytes(b"no image here")
    with pytest.raises(DataError, match=r"broken\.png: not a readable image"):
        load_image_data(tmp_path / "cls")


def test_missing_dataset_is_named(tmp_path):
    with pytest.raises(DataError, match=r"nowhere\.npz does not exist"):
        load_image_data(tmp_path / "nowhere.npz")


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("y_test"), r"missing arrays y_test"),
    (lambda a: a.update(x_train=a["x_train"].astype(np.float32)), r"x_train must be a non-empty uint8 array"),
    (lambda a: a.update(y_train=a["y_train"][:-1]), r"y_train must be 96 integer labels"),
    (lambda a: a.update(y_test=a["y_test"] + 10), r"y_test has labels outside \[0, 10\)"),
    (lambda a: a.update(x_test=a["x_test"][:, :8]), r"x_train images are \(16, 16, 3\) but x_test"),
])
def test_malformed_npz_is_explained(tmp_path, change, message):
    src = write_tiny_images(tmp_path / "ok.npz")
    with np.load(src) as z:
        arrays = dict(z)
    change(arrays)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(DataError, match=r"bad\.npz: malformed dataset: " + message):
        load_image_data(bad)


def test_unreadable_files_are_named(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"junk\.npz: not an \.npz file \(an \.npz is a zip archive of arrays, as "
                                        r"numpy\.savez writes; this file starts with b'garbage'\)"):
        load_image_data(junk)   # numpy's own message advised allow_pickle
    cut = tmp_path / "cut.npz"
    cut.write_bytes(write_tiny_images(tmp_path / "ok.npz").read_bytes()[:200])
    with pytest.raises(DataError, match=r"cut\.npz: a truncated or damaged \.npz file"):
        load_image_data(cut)
    other = tmp_path / "data.csv"
    other.write_text("1,2,3")
    with pytest.raises(DataError, match=r"data\.csv: unknown dataset file type"):
        load_image_data(other)
