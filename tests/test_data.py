import gzip
import shutil
import struct
import urllib.error

import numpy as np
import pytest

from spikefa.data import (
    LinearTask,
    QuadraticTask,
    TanhTeacher,
    datasets,
    load_fashion_mnist,
    load_mnist,
    read_idx,
)
from spikefa.data.idx import parse_idx
from spikefa.errors import DataError
from spikefa.seeds import stream


def idx_bytes(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


@pytest.mark.parametrize("gz", [True, False])
def test_idx_roundtrip(tmp_path, gz):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("a.gz" if gz else "a")
    path.write_bytes(gzip.compress(idx_bytes(arr)) if gz else idx_bytes(arr))
    np.testing.assert_array_equal(read_idx(path), arr)


def test_idx_rejects_bad_magic_and_truncation(tmp_path):
    raw = idx_bytes(np.zeros((5, 2), np.uint8))
    with pytest.raises(DataError, match="magic"):
        parse_idx(b"\x01" + raw[1:])
    with pytest.raises(DataError, match="promises"):
        parse_idx(raw[:-1])
    bad = tmp_path / "x.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot read"):
        read_idx(bad)


def test_mnist_loads_with_standard_split(data_folder):
    d = load_mnist(data_folder, download=False)
    assert d.train_x.shape == (60000, 784) and d.test_x.shape == (10000, 784)
    assert d.train_x.dtype == np.float32 and d.train_y.dtype == np.uint8
    assert d.train_x.min() == 0.0 and d.train_x.max() == 1.0
    assert np.bincount(d.test_y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_fashion_mnist_loads(data_folder):
    datasets.dataset_files("fashion-mnist", data_folder)
    d = load_fashion_mnist(data_folder, download=False)
    assert d.train_x.shape == (60000, 784) and np.bincount(d.test_y).tolist() == [1000] * 10


def test_check_reports_missing_and_corrupted(data_folder, tmp_path):
    shutil.copytree(data_folder / "mnist", tmp_path / "mnist")
    p = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    b = bytearray(p.read_bytes())
    b[len(b) // 2] ^= 0xFF
    p.write_bytes(bytes(b))
    with pytest.raises(DataError, match="corrupted"):
        load_mnist(tmp_path, download=False)
    (tmp_path / "mnist" / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing"):
        load_mnist(tmp_path, download=False)
    status = datasets.check("mnist", tmp_path)
    assert status["train-labels-idx1-ubyte"] == "missing"
    assert status["t10k-labels-idx1-ubyte"] == "corrupted"
    assert status["t10k-images-idx3-ubyte"] == "ok"


def test_raw_files_are_accepted_and_verified(data_folder, tmp_path):
    (tmp_path / "mnist").mkdir()
    for stem in datasets.FILES:
        (tmp_path / "mnist" / stem).write_bytes(
            gzip.decompress((data_folder / "mnist" / f"{stem}.gz").read_bytes())
        )
    assert set(datasets.check("mnist", tmp_path).values()) == {"ok"}


class FakeResponse:
    def __init__(self, data):
        self.data, self.pos, self.headers = data, 0, {"Content-Length": str(len(data))}

    def read(self, n):
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_download_verifies_and_writes_atomically(data_folder, tmp_path, monkeypatch):
    served = []

    def urlopen(url, timeout):
        served.append(url)
        name = url.rsplit("/", 1)[1]
        data = (data_folder / "mnist" / name).read_bytes()
        if "ossci" in url:  # the first mirror serves a corrupted copy: it must be rejected
            data = data[:-10] + b"0123456789"
        return FakeResponse(data)

    monkeypatch.setattr(datasets.urllib.request, "urlopen", urlopen)
    paths = datasets.dataset_files("mnist", tmp_path)
    assert len(served) == 8  # every file: bad mirror first, then the good one
    assert {p.name for p in paths.values()} == {f"{s}.gz" for s in datasets.FILES}
    assert sorted(f.name for f in (tmp_path / "mnist").iterdir()) == sorted(
        f"{s}.gz" for s in datasets.FILES
    )
    assert load_mnist(tmp_path).test_x.shape == (10000, 784)


def test_offline_error_names_folder_and_files(tmp_path, monkeypatch):
    def urlopen(url, timeout):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(datasets.urllib.request, "urlopen", urlopen)
    with pytest.raises(DataError) as exc:
        load_mnist(tmp_path)
    msg = str(exc.value)
    assert (
        str(tmp_path / "mnist") in msg
        and "train-images-idx3-ubyte.gz" in msg
        and "t10k-labels-idx1-ubyte.gz" in msg
    )
    assert list((tmp_path / "mnist").iterdir()) == []  # no partial file left behind


def test_data_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("SPIKEFA_DATA", str(tmp_path / "env"))
    assert datasets.data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert datasets.data_dir() == tmp_path / "env"
    monkeypatch.delenv("SPIKEFA_DATA")
    assert datasets.data_dir().parts[-2:] == (".cache", "spikefa")


def test_linear_task_is_seeded_and_uniform():
    t1, t2 = LinearTask.draw(stream(0, "task")), LinearTask.draw(stream(0, "task"))
    np.testing.assert_array_equal(t1.T, t2.T)
    assert t1.T.shape == (10, 30) and -1 <= t1.T.min() and t1.T.max() <= 1
    x, y = t1.sample(stream(0, "data"), 2000)
    np.testing.assert_allclose(y, x @ t1.T.T)
    assert abs(x.mean()) < 0.05 and abs(x.std() - 1) < 0.05
    assert not np.array_equal(
        t1.sample(stream(0, "data"), 5)[0], t1.sample(stream(0, "test"), 5)[0]
    )


def test_tanh_teacher_and_quadratic_target():
    teacher = TanhTeacher.draw(stream(1, "task"))
    assert [w.shape for w in teacher.weights] == [(20, 30), (10, 20), (10, 10)]
    x, y = teacher.sample(stream(1, "data"), 7)
    w0, w1, w2 = teacher.weights
    b0, b1, b2 = teacher.biases
    np.testing.assert_allclose(y, np.tanh(np.tanh(x @ w0.T + b0) @ w1.T + b1) @ w2.T + b2)
    quad = QuadraticTask.draw(stream(1, "task"))
    np.testing.assert_array_equal(quad.Q, quad.Q.transpose(0, 2, 1))
    x, y = quad.sample(stream(1, "data"), 3)
    assert y.shape == (3, 20)
    np.testing.assert_allclose(y[0, 4], x[0] @ quad.Q[4] @ x[0])


def test_named_streams_are_independent_and_reproducible():
    a = stream(3, "feedback").random(4)
    stream(3, "init").random(100)
    np.testing.assert_array_equal(a, stream(3, "feedback").random(4))
    assert not np.array_equal(a, stream(3, "init").random(4))
    assert not np.array_equal(a, stream(4, "feedback").random(4))
    with pytest.raises(ValueError):
        stream(0, "nonsense")
