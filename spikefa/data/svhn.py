"""SVHN, cropped digits: the `train_32x32.mat` and `test_32x32.mat` files of
http://ufldl.stanford.edu/housenumbers/, verified by their published MD5 and read with SciPy.

Each file holds `X` (32 × 32 × 3 × n, uint8) and `y` (n × 1, labels 1–10 where 10 is the digit 0).
Loaded as rows of 3,072 float32 values (channel-last pixel order, as stored), each colour channel
standardised with the training set's mean and SD; labels 0–9. The `extra` set is not used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spikefa.data.datasets import ImageData, data_dir, digest, fetch_verified
from spikefa.errors import DataError

URL = "http://ufldl.stanford.edu/housenumbers/"
FILES = {
    "train": ("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),
    "test": ("test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3"),
}


def _verify(path: Path, expected: str) -> None:
    if digest(path, "md5") != expected:
        raise DataError(
            f"{path} is corrupted (MD5 mismatch); delete it and it will be downloaded again"
        )


def svhn_files(folder: str | Path | None = None, download: bool = True) -> dict[str, Path]:
    base = data_dir(folder) / "svhn"
    paths = {}
    for split, (name, expected) in FILES.items():
        path = base / name
        if path.exists():
            _verify(path, expected)
        elif not download:
            raise DataError(f"SVHN file {name} is missing from {base}")
        else:
            errors = fetch_verified(
                [URL + name], path, lambda p, e=expected: _verify(p, e), f"svhn/{name}"
            )
            if errors:
                raise DataError(
                    f"cannot download SVHN ({'; '.join(errors)}). Offline? Put "
                    f"{', '.join(n for n, _ in FILES.values())} into {base}"
                )
        paths[split] = path
    return paths


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
        X, y = mat["X"], mat["y"].ravel()
    except (KeyError, ValueError, OSError) as exc:
        raise DataError(f"{path} is not an SVHN .mat file ({exc})") from None
    if X.ndim != 4 or X.shape[:3] != (32, 32, 3) or X.shape[3] != len(y):
        raise DataError(
            f"{path}: expected X of shape 32×32×3×n and n labels, got {X.shape} and {len(y)}"
        )
    return np.moveaxis(X, 3, 0).reshape(len(y), -1), (y % 10).astype(np.uint8)


def load_svhn(folder: str | Path | None = None, download: bool = True) -> ImageData:
    paths = svhn_files(folder, download)
    (train_x, train_y), (test_x, test_y) = _read(paths["train"]), _read(paths["test"])
    channels = train_x.reshape(len(train_x), -1, 3).astype(np.float64)
    mean, sd = channels.mean(axis=(0, 1)), channels.std(axis=(0, 1))

    def standardise(x):
        return ((x.reshape(len(x), -1, 3) - mean) / sd).reshape(len(x), -1).astype(np.float32)

    return ImageData(
        standardise(train_x),
        train_y,
        standardise(test_x),
        test_y,
        np.empty((0, train_x.shape[1]), np.float32),
        np.empty(0, np.uint8),
        (32, 32, 3),
    )
