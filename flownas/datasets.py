"""Image datasets for real training and zero-cost proxies, as in-memory arrays.

Three layouts are read, without torchvision (images through PIL, the rest
through numpy):

* an ``.npz`` file with ``x_train, y_train, x_test, y_test`` (uint8 NHWC
  images, integer labels; optional ``class_names``), e.g. the shared
  ``cifar10-mini/cifar10_mini.npz`` (the name ``cifar10-mini`` finds it);
* a CIFAR-10 python-version directory (``data_batch_1..5``, ``test_batch``,
  optional ``batches.meta``), or the folder holding ``cifar-10-batches-py``;
* an ImageFolder tree: ``ROOT/train/<class>/*.png`` with ``ROOT/val`` (or
  ``ROOT/test``) beside it, or ``ROOT/<class>/*.png`` alone, in which case a
  seeded fraction of the images is held out for validation.

Everything is checked on load: a missing file or a malformed one raises a
``DataError`` that names the file and what is wrong with it. Loads are cached
per process, so evaluators that are shipped to workers carry only a path.
"""
from __future__ import annotations

import functools
import io
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".gif", ".tif", ".tiff", ".webp")
# shorthand names of the shared datasets -> file under FLOWNAS_DATA
NAMED = {"cifar10-mini": "cifar10-mini/cifar10_mini.npz"}
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = "test_batch"


@dataclass(frozen=True, eq=False)
class ImageData:
    """A labelled image classification split: uint8 NHWC images, int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    classes: tuple[str, ...]
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W), as networks take it."""
        h, w, c = self.x_train.shape[1:]
        return (c, h, w)

    @functools.cached_property
    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and std of the training images, in [0, 1] units."""
        x = self.x_train.reshape(-1, self.x_train.shape[-1]).astype(np.float64) / 255.0
        std = x.std(0)
        return x.mean(0).astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32)


def resolve(dataset: str | Path) -> Path:
    """The path of a dataset given by path or by a shared name (``cifar10-mini``)."""
    if isinstance(dataset, str) and dataset in NAMED:
        from .benchmarks.base import table_path
        return table_path(NAMED[dataset])
    path = Path(dataset).expanduser()
    if not path.exists():
        known = ", ".join(NAMED)
        raise DataError(f"dataset {path} does not exist (give a path, or one of the shared names: {known})")
    return path


def load_image_data(dataset: str | Path, *, val_fraction: float | None = None, seed: int = 0,
                    image_size: int | None = None) -> ImageData:
    """Load (once per process) the dataset at ``dataset``.

    ``val_fraction`` holds out that seeded fraction of the training images as
    the validation split instead of the dataset's own test/val split (needed
    for an ImageFolder without a val folder, where it defaults to 0.1).
    ``image_size`` resizes ImageFolder images to that square size (default:
    they must all share one size).
    """
    path = resolve(dataset).resolve()
    stamp = path.stat().st_mtime_ns
    return _load_cached(str(path), stamp, val_fraction, seed, image_size)


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, _mtime: int, val_fraction, seed, image_size) -> ImageData:
    p = Path(path)
    if val_fraction is not None and not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    if p.is_file():
        if p.suffix != ".npz":
            raise DataError(f"{p}: unknown dataset file type (expected an .npz file, a CIFAR-10 "
                            f"python directory or an ImageFolder directory)")
        parts = _read_npz(p)
    elif (p / "cifar-10-batches-py").is_dir():
        parts = _read_cifar_dir(p / "cifar-10-batches-py")
    elif any((p / name).exists() for name in CIFAR_TRAIN + (CIFAR_TEST,)):
        parts = _read_cifar_dir(p)
    elif (p / "train").is_dir():
        val_dir = next((p / d for d in ("val", "valid", "test") if (p / d).is_dir()), None)
        x_tr, y_tr, classes = _read_image_folder(p / "train", image_size)
        if val_dir is None:
            parts = (x_tr, y_tr, None, None, classes)
            val_fraction = val_fraction or 0.1
        else:
            x_va, y_va, _ = _read_image_folder(val_dir, image_size, classes)
            parts = (x_tr, y_tr, x_va, y_va, classes)
    else:
        x, y, classes = _read_image_folder(p, image_size)
        parts = (x, y, None, None, classes)
        val_fraction = val_fraction or 0.1
    x_tr, y_tr, x_va, y_va, classes = parts
    if val_fraction is not None:
        x_tr, y_tr, x_va, y_va = _hold_out(p, x_tr, y_tr, val_fraction, seed)
    data = ImageData(x_tr, y_tr, x_va, y_va, tuple(classes), str(p))
    for arr in (data.x_train, data.y_train, data.x_val, data.y_val):
        arr.flags.writeable = False   # shared by every evaluation of the process
    return data


def _hold_out(path, x, y, fraction, seed):
    n_val = int(round(len(x) * fraction))
    if n_val < 1 or n_val >= len(x):
        raise DataError(f"{path}: holding out {fraction:.0%} of {len(x)} images leaves an empty split")
    order = np.random.default_rng(seed).permutation(len(x))
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    return x[train], y[train], x[val], y[val]


# -- npz ---------------------------------------------------------------------
def _read_npz(path: Path):
    if not zipfile.is_zipfile(path):   # np.load would take it for a pickle and advise allow_pickle
        with open(path, "rb") as f:
            head = f.read(16)
        if head.startswith(b"PK"):
            raise DataError(f"{path}: a truncated or damaged .npz file (its zip archive has no end)")
        raise DataError(f"{path}: not an .npz file (an .npz is a zip archive of arrays, as numpy.savez "
                        f"writes; this file starts with {head!r})")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in z.files]
            if missing:
                raise DataError(f"{path}: malformed dataset: missing arrays {', '.join(missing)} "
                                f"(has {', '.join(z.files) or 'none'})")
            arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
            names = [str(c) for c in z["class_names"]] if "class_names" in z.files else None
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - OSError, ValueError, zipfile.BadZipFile, ...
        raise DataError(f"{path}: cannot read the .npz file ({type(exc).__name__}: {exc})") from None
    x_tr = _check_images(path, "x_train", arrays["x_train"])
    x_te = _check_images(path, "x_test", arrays["x_test"])
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise DataError(f"{path}: malformed dataset: x_train images are {x_tr.shape[1:]} but "
                        f"x_test images are {x_te.shape[1:]}")
    n_classes = len(names) if names else None
    y_tr = _check_labels(path, "y_train", arrays["y_train"], len(x_tr), n_classes)
    y_te = _check_labels(path, "y_test", arrays["y_test"], len(x_te), n_classes)
    if names is None:
        names = [str(i) for i in range(int(max(y_tr.max(), y_te.max())) + 1)]
    return x_tr, y_tr, x_te, y_te, names


def _check_images(path, key, x) -> np.ndarray:
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] not in (1, 3) or len(x) == 0:
        raise DataError(f"{path}: malformed dataset: {key} must be a non-empty uint8 array of "
                        f"shape (N, H, W, 1 or 3), got {x.dtype} {x.shape}")
    return x


def _check_labels(path, key, y, n, num_classes) -> np.ndarray:
    if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: malformed dataset: {key} must be {n} integer labels, "
                        f"got {y.dtype} {y.shape}")
    hi = num_classes if num_classes is not None else np.inf
    if y.min() < 0 or y.max() >= hi:
        raise DataError(f"{path}: malformed dataset: {key} has labels outside [0, {hi}): "
                        f"min {y.min()}, max {y.max()}")
    return y.astype(np.int64)


# -- CIFAR-10 python version ------------------------------------------------
class _CifarUnpickler(pickle.Unpickler):
    """Only what CIFAR batch pickles hold: dicts, lists, bytes, numpy arrays."""

    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
                ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}")
        if name == "_reconstruct":
            # numpy's own reconstructor, wherever this numpy version keeps it
            return np.ndarray.__reduce__(np.zeros(0))[0]
        return super().find_class(module, name)


def _read_cifar_batch(path: Path, num_classes: int | None):
    if not path.is_file():
        raise DataError(f"missing CIFAR-10 batch file {path}")
    try:
        with open(path, "rb") as fh:
            batch = _CifarUnpickler(io.BytesIO(fh.read()), encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a malformed file
        raise DataError(f"{path}: malformed CIFAR-10 batch file ({type(exc).__name__}: {exc})") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path}: malformed CIFAR-10 batch file (not a dict)")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    labels = batch.get("labels", batch.get("fine_labels"))
    if "data" not in batch or labels is None:
        raise DataError(f"{path}: malformed CIFAR-10 batch file: needs 'data' and 'labels', "
                        f"has {', '.join(map(str, batch)) or 'nothing'}")
    data = np.asarray(batch["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: malformed CIFAR-10 batch file: 'data' must be uint8 (N, 3072), "
                        f"got {data.dtype} {data.shape}")
    x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    y = _check_labels(path, "labels", np.asarray(labels), len(x), num_classes)
    return np.ascontiguousarray(x), y


def _read_cifar_dir(root: Path):
    names = None
    meta = root / "batches.meta"
    if meta.is_file():
        try:
            with open(meta, "rb") as fh:
                m = _CifarUnpickler(fh, encoding="bytes").load()
            raw = m.get(b"label_names") or m.get("label_names")
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in raw]
        except Exception as exc:  # noqa: BLE001
            raise DataError(f"{meta}: malformed CIFAR-10 meta file ({type(exc).__name__}: {exc})") from None
    n_classes = len(names) if names else None
    present = [root / f for f in CIFAR_TRAIN if (root / f).exists()]
    if not present:
        raise DataError(f"{root}: a CIFAR-10 directory needs data_batch_1..5 and test_batch; "
                        f"found no data_batch_* file")
    train = [_read_cifar_batch(f, n_classes) for f in present]
    x_te, y_te = _read_cifar_batch(root / CIFAR_TEST, n_classes)
    x_tr = np.concatenate([x for x, _ in train])
    y_tr = np.concatenate([y for _, y in train])
    if names is None:
        names = [str(i) for i in range(int(max(y_tr.max(), y_te.max())) + 1)]
    return x_tr, y_tr, x_te, y_te, names


# -- ImageFolder --------------------------------------------------------------
def _read_image_folder(root: Path, image_size: int | None, classes: list[str] | None = None):
    from PIL import Image, UnidentifiedImageError

    found = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not found:
        raise DataError(f"{root}: not a dataset: expected an .npz file, a CIFAR-10 python directory "
                        f"(data_batch_*, test_batch) or an ImageFolder (one sub-folder per class)")
    if classes is None:
        classes = found
    else:
        extra = sorted(set(found) - set(classes))
        if extra:
            raise DataError(f"{root}: class folders {', '.join(extra)} do not exist in the training split")
    images, labels, shape = [], [], None
    for label, name in enumerate(classes):
        folder = root / name
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
        for f in files:
            try:
                with Image.open(f) as im:
                    im = im.convert("RGB")
                    if image_size is not None and im.size != (image_size, image_size):
                        im = im.resize((image_size, image_size), Image.BILINEAR)
                    arr = np.asarray(im, dtype=np.uint8)
            except (UnidentifiedImageError, OSError) as exc:
                raise DataError(f"{f}: not a readable image ({exc})") from None
            if shape is None:
                shape = arr.shape
            elif arr.shape != shape:
                raise DataError(f"{f}: image is {arr.shape[1]}x{arr.shape[0]} but earlier ones are "
                                f"{shape[1]}x{shape[0]}; pass image_size to resize them")
            images.append(arr)
            labels.append(label)
    if not images:
        raise DataError(f"{root}: the class folders ({', '.join(classes)}) hold no images "
                        f"({', '.join(IMAGE_SUFFIXES)})")
    return np.stack(images), np.asarray(labels, dtype=np.int64), classes
