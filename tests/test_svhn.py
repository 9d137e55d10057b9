"""The SVHN loader on small generated files of the real format (the data cannot be fetched here)."""

import numpy as np
import pytest
from scipy.io import savemat

from spikefa.data import svhn
from spikefa.data.datasets import digest
from spikefa.errors import DataError


def write_mat(path, n, seed):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = rng.integers(1, 11, (n, 1)).astype(np.uint8)  # 10 stands for the digit 0
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"X": X, "y": y})
    return X, y


@pytest.fixture
def folder(tmp_path, monkeypatch):
    base = tmp_path / "svhn"
    sizes = {"train": 40, "test": 12}
    data = {
        split: write_mat(base / name, sizes[split], k)
        for k, (split, (name, _)) in enumerate(svhn.FILES.items())
    }
    monkeypatch.setattr(
        svhn,
        "FILES",
        {s: (name, digest(base / name, "md5")) for s, (name, _) in svhn.FILES.items()},
    )
    return tmp_path, data


def test_loads_rows_labels_and_standardised_channels(folder):
    path, data = folder
    d = svhn.load_svhn(path, download=False)
    X, y = data["train"]
    assert (
        d.train_x.shape == (40, 3072)
        and d.test_x.shape == (12, 3072)
        and d.train_x.dtype == np.float32
    )
    np.testing.assert_array_equal(d.train_y, y.ravel() % 10)
    assert set(np.unique(d.train_y)) <= set(range(10))
    channels = d.train_x.reshape(40, -1, 3)
    np.testing.assert_allclose(channels.mean(axis=(0, 1)), 0, atol=1e-5)
    np.testing.assert_allclose(channels.std(axis=(0, 1)), 1, atol=1e-4)
    # row 0 is image 0 of the file, pixels in stored (row, column, channel) order
    raw = X[..., 0].astype(np.float64).reshape(-1, 3)
    assert np.corrcoef(raw[:, 0], channels[0, :, 0])[0, 1] > 0.999


def test_corrupted_file_is_refused(folder):
    path, _ = folder
    target = path / "svhn" / "test_32x32.mat"
    target.write_bytes(target.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(DataError, match="MD5 mismatch"):
        svhn.load_svhn(path, download=False)


def test_offline_download_names_the_folder(tmp_path, monkeypatch):
    def refuse(*a, **k):
        raise OSError("no network")

    monkeypatch.setattr("urllib.request.urlopen", refuse)
    with pytest.raises(DataError, match="Offline"):
        svhn.load_svhn(tmp_path)
    assert not list((tmp_path / "svhn").glob("*.part"))


def test_fig3_runs_on_svhn(folder):
    import json

    from spikefa import runner

    path, _ = folder
    out = runner.run(
        "fig3_mnist",
        [
            'dataset="svhn"',
            "sizes=[3072,20,10]",
            "runs=1",
            "train.epochs=1.0",
            'algorithms=["bp","fa"]',
            "angle.window=10",
            "train.validation=10",
        ],
        path / "run",
        data=str(path),
    )
    res = json.loads((out / "summary.json").read_text())["results"]
    assert set(res) == {"bp", "fa"} and (out / "figures" / "receptive_fields.png").exists()
    assert 0 <= res["fa"]["validation_error"] <= 1 and res["fa"]["validation_images"] == 10
