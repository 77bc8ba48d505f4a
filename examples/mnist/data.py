"""MNIST for the example: the full data set when it is there (or can be downloaded), else the test set split.

Where the files are looked for, in order:

1. ``data_dir`` and ``data_dir/MNIST/raw`` (torchvision's layout), each file either
   gzip-compressed (``*.gz``, as distributed) or decompressed.
2. All four files present: train on the 60,000 training images, validate on the
   10,000 test images (the usual MNIST setup).
3. Only the two test files present (``t10k-images-idx3-ubyte[.gz]`` and
   ``t10k-labels-idx1-ubyte[.gz]``, as on machines without internet access): a
   FIXED split of the 10,000 test images, every fifth image (index % 5 == 4) for
   validation (2,000) and the rest for training (8,000). The split is logged.
4. Neither: the same in ``download_dir`` (default: ``data_dir``), and if that has
   none either and ``download`` is true, torchvision downloads MNIST into
   ``download_dir/MNIST/raw`` the usual way (under a file lock, so parallel trials
   download once).
5. Otherwise one clear :class:`MnistDataError` says what to put where.

The IDX files are read here (no decompressed copies are written anywhere), so a
read-only ``data_dir`` works. The test files are checked against the md5 sums of
their uncompressed bytes. Images are normalised once, with the mean and standard
deviation torchvision's MNIST example uses, into in-memory tensors: indexing a
tensor per batch is much cheaper on a CPU than a per-image transform pipeline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import gzip
import hashlib
import logging
import os
import pathlib
from collections.abc import Iterator

import numpy as np
import torch

MEAN = 0.1307
STD = 0.3081

# md5 of the UNCOMPRESSED bytes (see ../shared/data/mnist/README.md).
TEST_MD5 = {
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
TRAIN_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
VALIDATION_EVERY = 5  # test-set split: index % 5 == 4 is validation (2,000 of 10,000)

log = logging.getLogger(__name__)


class MnistDataError(ValueError):
    """The data directory holds no usable MNIST (and it could not be downloaded)."""


@dataclasses.dataclass(frozen=True)
class MnistData:
    """Normalised images ``(N, 1, 28, 28)`` float32 and labels ``(N,)`` int64, for training and validation."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    validation_images: torch.Tensor
    validation_labels: torch.Tensor
    source: str  # one line: which files, which split


def resolve_data_dir(data_dir: str | os.PathLike[str], base_dir: str | os.PathLike[str]) -> pathlib.Path:
    """Expand ``~`` and ``$VARS``; a relative path is taken relative to ``base_dir`` (the model directory)."""
    path = pathlib.Path(os.path.expandvars(os.path.expanduser(os.fspath(data_dir))))
    if not path.is_absolute():
        path = pathlib.Path(base_dir) / path
    return path.resolve()


def load_mnist(
    data_dir: str | os.PathLike[str],
    *,
    download: bool = True,
    download_dir: str | os.PathLike[str] | None = None,
) -> MnistData:
    """Load MNIST from ``data_dir`` (see the module doc); downloads go to ``download_dir`` (default ``data_dir``).

    Paths are absolute, or relative to the current directory.
    """
    target = pathlib.Path(download_dir if download_dir is not None else data_dir).resolve()
    return _load_cached(pathlib.Path(data_dir).resolve(), download, target)


@functools.lru_cache(maxsize=4)
def _load_cached(data_dir: pathlib.Path, download: bool, download_dir: pathlib.Path) -> MnistData:
    # Cached per process: a warm worker that runs several trial segments reads the files once.
    where = data_dir
    files = _find_files(data_dir)
    if not all(name in files for name in TEST_FILES) and download_dir != data_dir:
        where, files = download_dir, _find_files(download_dir)
    download_error = ""
    if download and not all(name in files for name in TEST_FILES):
        download_error = _download(download_dir)
        where, files = download_dir, _find_files(download_dir)
    if all(name in files for name in (*TRAIN_FILES, *TEST_FILES)):
        train_x, train_y = _read_pair(files, TRAIN_FILES)
        test_x, test_y = _read_pair(files, TEST_FILES)
        source = (
            f"MNIST from {where}: {len(train_y)} training images, {len(test_y)} test images for validation"
        )
        data = MnistData(train_x, train_y, test_x, test_y, source)
    elif all(name in files for name in TEST_FILES):
        test_x, test_y = _read_pair(files, TEST_FILES)
        is_validation = torch.arange(len(test_y)) % VALIDATION_EVERY == VALIDATION_EVERY - 1
        source = (
            f"only the MNIST test set is in {where}: using a fixed split of its {len(test_y)} images, "
            f"{int((~is_validation).sum())} for training and {int(is_validation.sum())} for validation "
            f"(every {VALIDATION_EVERY}th image)"
        )
        data = MnistData(
            test_x[~is_validation],
            test_y[~is_validation],
            test_x[is_validation],
            test_y[is_validation],
            source,
        )
    else:
        present = ", ".join(sorted(files)) or "no MNIST files"
        raise MnistDataError(
            f"no MNIST data in {data_dir} (found: {present}). Put the four MNIST files "
            f"({', '.join(n + '.gz' for n in (*TRAIN_FILES, *TEST_FILES))}), or at least the two test files "
            f"({', '.join(n + '.gz' for n in TEST_FILES)}), into {data_dir} or {data_dir / 'MNIST' / 'raw'}"
            + (f" (downloading into {download_dir} failed: {download_error})" if download_error else "")
            + ("" if download else ", or set data.download: true on a machine with internet access")
        )
    log.info("%s", data.source)
    return data


def _find_files(data_dir: pathlib.Path) -> dict[str, pathlib.Path]:
    """Map each MNIST file name (without .gz) to the first place it is found."""
    found: dict[str, pathlib.Path] = {}
    for folder in (data_dir, data_dir / "MNIST" / "raw"):
        for name in (*TRAIN_FILES, *TEST_FILES):
            for candidate in (folder / name, folder / (name + ".gz")):
                if name not in found and candidate.is_file():
                    found[name] = candidate
    return found


def _read_bytes(path: pathlib.Path) -> bytes:
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as f:
            return f.read()
    return path.read_bytes()


def _read_idx(path: pathlib.Path, name: str) -> np.ndarray:
    raw = _read_bytes(path)
    if name in TEST_MD5 and hashlib.md5(raw).hexdigest() != TEST_MD5[name]:
        raise MnistDataError(f"{path} is not the MNIST file {name}: md5 of its uncompressed bytes differs")
    # IDX: two zero bytes, a type byte (0x08: unsigned byte), the number of dimensions, then big-endian sizes.
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise MnistDataError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected_ndim = 3 if "images" in name else 1
    offset = 4 + 4 * ndim
    if ndim != expected_ndim or len(raw) != offset + int(np.prod(shape)):
        raise MnistDataError(f"{path}: unexpected IDX shape {shape} for {name}")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def _read_pair(files: dict[str, pathlib.Path], names: tuple[str, str]) -> tuple[torch.Tensor, torch.Tensor]:
    images = _read_idx(files[names[0]], names[0])
    labels = _read_idx(files[names[1]], names[1])
    if len(images) != len(labels):
        raise MnistDataError(
            f"{files[names[0]]} has {len(images)} images but {files[names[1]]} {len(labels)} labels"
        )
    x = torch.from_numpy(images.astype(np.float32) / 255.0).sub_(MEAN).div_(STD).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


@contextlib.contextmanager
def _locked(lock_path: pathlib.Path) -> Iterator[None]:
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _download(data_dir: pathlib.Path) -> str:
    """torchvision's usual download into ``data_dir/MNIST/raw``, one process at a time; returns the error, if any."""
    import torchvision

    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with _locked(data_dir / ".download.lock"):
            for train in (True, False):
                torchvision.datasets.MNIST(str(data_dir), train=train, download=True)
    except Exception as exc:  # a failed download becomes part of the "what to put there" error
        return str(exc).splitlines()[0].rstrip(":")
    return ""
