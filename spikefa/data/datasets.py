"""MNIST and Fashion-MNIST: where they live, how they are fetched and verified, how they load.

Data folder: `--data DIR`, else `$SPIKEFA_DATA`, else `~/.cache/spikefa`; each data
set sits in its own subfolder as the four standard `*-ubyte.gz` files. Every file is checked
against its SHA-256 before use. Missing files are downloaded from public mirrors, written to a
temporary file, verified, then renamed into place, so a failed download never leaves a bad file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from spikefa.data.idx import read_idx
from spikefa.errors import DataError

FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    mirrors: tuple[str, ...]
    sha256_gz: dict[str, str]  # SHA-256 of the original `.gz` files
    sha256_raw: dict[str, str]  # SHA-256 of the decompressed files (accepted when only those exist)


DATASETS = {
    "mnist": DatasetInfo(
        "mnist",
        (
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        {
            "train-images-idx3-ubyte": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
        {
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
    ),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist",
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        {
            "train-images-idx3-ubyte": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
        {
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
    ),
}


def default_dir() -> Path:
    """The data folder when neither --data nor $SPIKEFA_DATA names one."""
    return Path.home() / ".cache" / "spikefa"


def data_dir(explicit: str | Path | None = None) -> Path:
    """The data folder: `explicit`, else `$SPIKEFA_DATA`, else `~/.cache/spikefa`."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("SPIKEFA_DATA")
    return Path(env).expanduser() if env else default_dir()


def _info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(
            f"unknown data set {name!r}; known: {', '.join(DATASETS)}, or a path to "
            f"an .npz file of one's own"
        ) from None


def digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file (the algorithm its publisher used: SHA-256 for MNIST, MD5 for SVHN); a
    file that cannot be read (e.g. a folder in its place) is a DataError."""
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, algorithm).hexdigest()
    except OSError as exc:
        raise DataError(
            f"cannot read {path} ({exc.strerror}); delete it and it will be downloaded again"
        ) from None


def _present(folder: Path, stem: str) -> Path | None:
    for p in (folder / f"{stem}.gz", folder / stem):
        if p.exists():
            return p
    return None


def verify_file(info: DatasetInfo, stem: str, path: Path, gzipped: bool | None = None) -> None:
    """Raise DataError unless `path` (gzipped or raw) has the published SHA-256."""
    gzipped = path.suffix == ".gz" if gzipped is None else gzipped
    expected = info.sha256_gz[stem] if gzipped else info.sha256_raw[stem]
    if digest(path) != expected:
        raise DataError(
            f"{path} is corrupted (SHA-256 mismatch); delete it and it will be downloaded again"
        )


def check(name: str, folder: Path) -> dict[str, str]:
    """Status of each file of data set `name` under `folder`: 'ok', 'missing' or 'corrupted'."""
    info, status = _info(name), {}
    for stem in FILES:
        path = _present(folder / name, stem)
        if path is None:
            status[stem] = "missing"
            continue
        try:
            verify_file(info, stem, path)
            status[stem] = "ok"
        except DataError:
            status[stem] = "corrupted"
    return status


def fetch_verified(urls, target: Path, verify, desc: str) -> list[str]:
    """Download the first of `urls` that works to `target` through a temporary file that must pass
    `verify(path)` (raising DataError) before it is renamed into place. Returns the errors met;
    an empty list means `target` now exists."""
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as resp:
                total = int(resp.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=desc) as bar:
                    for block in iter(lambda: resp.read(1 << 16), b""):
                        out.write(block)
                        bar.update(len(block))
            verify(Path(tmp))
            os.replace(tmp, target)
            return []
        except (urllib.error.URLError, OSError, DataError) as exc:
            errors.append(f"{url}: {exc}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return errors


def _download(info: DatasetInfo, stem: str, folder: Path) -> Path:
    target = folder / f"{stem}.gz"
    errors = fetch_verified(
        [m + f"{stem}.gz" for m in info.mirrors],
        target,
        lambda p: verify_file(info, stem, p, gzipped=True),
        f"{info.name}/{stem}.gz",
    )
    if errors:
        raise DataError(
            f"cannot download {info.name} ({'; '.join(errors)}). Offline? Put the files "
            f"{', '.join(f + '.gz' for f in FILES)} into {folder}, or give the folder that holds "
            f"{info.name}/ with --data DIR or the environment variable SPIKEFA_DATA (default: {default_dir()})"
        )
    return target


def dataset_files(
    name: str, folder: str | Path | None = None, download: bool = True
) -> dict[str, Path]:
    """Paths of the four verified files of data set `name`, downloading the missing ones."""
    info, base = _info(name), data_dir(folder)
    paths = {}
    for stem in FILES:
        path = _present(base / name, stem)
        if path is None:
            if not download:
                raise DataError(f"{name} file {stem}.gz is missing from {base / name}")
            path = _download(info, stem, base / name)
        else:
            verify_file(info, stem, path)
        paths[stem] = path
    return paths


@dataclass(frozen=True)
class ImageData:
    """Inputs as float32, shape (n, inputs) — pixels in [0, 1] for image data; labels as integers
    0…K−1. `val_x`, `val_y`: the validation images held out of the training set by `holdout` (empty
    until then). `shape`: the layout of one image's inputs (for drawing weights as images)."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    val_x: np.ndarray = field(default_factory=lambda: np.empty((0, 784), np.float32))
    val_y: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint8))
    shape: tuple[int, ...] = (28, 28)

    @property
    def n_inputs(self) -> int:
        return self.train_x.shape[1]

    @property
    def n_classes(self) -> int:
        """K: one more than the largest label."""
        return int(max(self.train_y.max(initial=0), self.test_y.max(initial=0))) + 1

    def holdout(self, n_validation: int) -> ImageData:
        """The last `n_validation` training images become the validation set (0: none); everything
        that is chosen is chosen on them, and the test images are only read at the end."""
        if not 0 <= n_validation < len(self.train_x):
            raise DataError(
                f"train.validation must be in 0..{len(self.train_x) - 1} (the data has {len(self.train_x):,} "
                f"training images), got {n_validation}"
            )
        keep = len(self.train_x) - n_validation
        return replace(
            self,
            train_x=self.train_x[:keep],
            train_y=self.train_y[:keep],
            val_x=self.train_x[keep:],
            val_y=self.train_y[keep:],
        )

    @classmethod
    def from_arrays(cls, train_x, train_y, test_x, test_y, name: str = "the data") -> ImageData:
        """Image data of one's own: pixels as floats in [0, 1] or integers 0–255 (uint8), one image
        per row or as (n, height, width[, channels]); integer labels 0…K−1. A DataError names what
        does not fit (`name`: how the message calls the data, e.g. its file)."""
        xs = {"train_x": np.asarray(train_x), "test_x": np.asarray(test_x)}
        ys = {"train_y": np.asarray(train_y), "test_y": np.asarray(test_y)}
        _check_own(xs, ys, name)

        def pixels(x):
            flat = x.reshape(len(x), -1)
            return (
                flat.astype(np.float32) / np.float32(255)
                if np.issubdtype(x.dtype, np.integer)
                else flat.astype(np.float32)
            )

        inputs = int(np.prod(xs["train_x"].shape[1:]))
        side = int(round(np.sqrt(inputs)))
        shape = (
            xs["train_x"].shape[1:]
            if xs["train_x"].ndim > 2
            else (side, side)
            if side * side == inputs
            else (1, inputs)
        )
        labels = np.uint8 if max(y.max() for y in ys.values()) < 256 else np.int32
        return cls(
            pixels(xs["train_x"]),
            ys["train_y"].astype(labels),
            pixels(xs["test_x"]),
            ys["test_y"].astype(labels),
            np.empty((0, inputs), np.float32),
            np.empty(0, labels),
            tuple(int(n) for n in shape),
        )


def _check_own(xs: dict, ys: dict, name: str) -> None:
    """A DataError naming the first array of one's own images or labels that does not fit."""
    for key, x in xs.items():
        if x.ndim < 2 or len(x) == 0 or x.shape[1:] != xs["train_x"].shape[1:]:
            raise DataError(
                f"{name}: {key} must hold at least one image, all of one shape as in train_x "
                f"(rows, or n × height × width), got shape {x.shape}"
            )
        if np.issubdtype(x.dtype, np.integer) and not np.issubdtype(x.dtype, np.bool_):
            ok = x.min() >= 0 and x.max() <= 255
        else:
            ok = (
                np.issubdtype(x.dtype, np.floating)
                and np.isfinite(x).all()
                and x.min() >= 0
                and x.max() <= 1
            )
        if not ok:
            raise DataError(
                f"{name}: {key} must hold pixels as floats in [0, 1] or integers 0–255 (uint8), "
                f"got {x.dtype} values from {x.min():.4g} to {x.max():.4g}"
            )
    for (ykey, y), x in zip(ys.items(), xs.values()):
        if (
            y.ndim != 1
            or len(y) != len(x)
            or not np.issubdtype(y.dtype, np.integer)
            or y.min(initial=0) < 0
        ):
            raise DataError(
                f"{name}: {ykey} must hold one integer label 0…K−1 per image ({len(x)}), "
                f"got {y.dtype} of shape {y.shape}"
            )


def is_own_dataset(name: str) -> bool:
    """A `dataset` value that names a file of one's own (an `.npz`) rather than a known data set."""
    return str(name).endswith(".npz")


def load_own(path: str | Path) -> ImageData:
    """An `.npz` file holding train_x, train_y, test_x and test_y (see `ImageData.from_arrays`)."""
    from spikefa.results import load_npz

    arrays = load_npz(
        Path(path).expanduser(), "data set (.npz with train_x, train_y, test_x, test_y)"
    )
    missing = [k for k in ("train_x", "train_y", "test_x", "test_y") if k not in arrays]
    if missing:
        raise DataError(
            f"{path} lacks {', '.join(missing)}: a data set file holds train_x, train_y, test_x "
            f"and test_y (found {', '.join(arrays) or 'nothing'})"
        )
    return ImageData.from_arrays(
        arrays["train_x"], arrays["train_y"], arrays["test_x"], arrays["test_y"], name=str(path)
    )


def check_sizes(data: ImageData, sizes, dataset: str, key: str = "sizes") -> None:
    """Raise a DataError unless the network's first and last layers fit the data: as many inputs as
    each image has values, as many outputs as there are classes."""
    if sizes[0] != data.n_inputs or sizes[-1] != data.n_classes:
        raise DataError(
            f"{key} {list(sizes)} does not fit {dataset}: its images have {data.n_inputs} inputs and its "
            f"labels {data.n_classes} classes, so {key} must be [{data.n_inputs}, hidden..., {data.n_classes}]"
        )


def load_images(
    name: str = "mnist", folder: str | Path | None = None, download: bool = True
) -> ImageData:
    """The standard 60k/10k split of MNIST or Fashion-MNIST, or one's own `.npz` file (`name` is
    then its path; see `load_own`)."""
    if is_own_dataset(name):
        return load_own(name)
    paths = dataset_files(name, folder, download)

    def pixels(stem):
        x = read_idx(paths[stem])
        return x.reshape(len(x), -1).astype(np.float32) / np.float32(255.0)

    data = ImageData(
        pixels("train-images-idx3-ubyte"),
        read_idx(paths["train-labels-idx1-ubyte"]),
        pixels("t10k-images-idx3-ubyte"),
        read_idx(paths["t10k-labels-idx1-ubyte"]),
    )
    if len(data.train_x) != len(data.train_y) or len(data.test_x) != len(data.test_y):
        raise DataError(f"{name}: image and label counts differ in {data_dir(folder) / name}")
    return data


def load_mnist(folder: str | Path | None = None, download: bool = True) -> ImageData:
    return load_images("mnist", folder, download)


def load_fashion_mnist(folder: str | Path | None = None, download: bool = True) -> ImageData:
    return load_images("fashion-mnist", folder, download)
