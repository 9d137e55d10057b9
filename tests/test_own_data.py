"""Training on one's own data: an .npz with train_x, train_y, test_x, test_y, or arrays from Python."""

import json

import numpy as np
import pytest

from spikefa.cli import main
from spikefa.data import ImageData, check_sizes, load_images
from spikefa.errors import DataError


def three_bands(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """8×8 uint8 images of 3 classes: class k lights rows 2k…2k+2."""
    y = rng.integers(0, 3, n)
    x = rng.random((n, 8, 8)) * 0.3
    for i, k in enumerate(y):
        x[i, 2 * k : 2 * k + 3] += 0.7
    return (np.clip(x, 0, 1) * 255).astype(np.uint8), y


@pytest.fixture
def own_npz(tmp_path):
    rng = np.random.default_rng(0)
    (trx, trY), (tex, teY) = three_bands(600, rng), three_bands(200, rng)
    path = tmp_path / "own.npz"
    np.savez(path, train_x=trx, train_y=trY, test_x=tex, test_y=teY)
    return path


def test_fig3_mnist_trains_on_an_npz_of_its_own(own_npz, tmp_path, capsys):
    out = tmp_path / "r"
    argv = [
        "run",
        "fig3_mnist",
        "--set",
        f'dataset="{own_npz}"',
        "--set",
        "sizes=[64,100,3]",
        "--set",
        "runs=1",
        "--set",
        "train.epochs=1.0",
        "--set",
        "train.validation=100",
        "--set",
        'algorithms=["bp","fa"]',
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    results = json.loads((out / "summary.json").read_text())["results"]
    assert results["bp"]["test_error"] < 0.2 and results["fa"]["test_error"] < 0.2  # chance: 2/3
    # the angles under the names an MNIST run gives them (tests/test_fig3_mnist.py)
    angles = {k for k in results["fa"] if k.startswith("angle")}
    assert angles == {"angle_deg_final", "angle_deg_final_per_layer", "angle_deg_w_vs_b_final"}
    assert not any(k.startswith("angle") for k in results["bp"])
    assert (out / "figures" / "receptive_fields.png").stat().st_size > 1000
    assert "fa " in capsys.readouterr().out


def test_sizes_that_do_not_fit_the_file_are_one_clear_error_and_leave_no_folder(
    own_npz, tmp_path, capsys
):
    out = tmp_path / "r"
    assert (
        main(
            [
                "run",
                "fig3_mnist",
                "--set",
                f'dataset="{own_npz}"',
                "--set",
                "runs=1",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sizes [784, 1000, 10]" in err and "[64, hidden..., 3]" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "dataset, words",
    [("missing.npz", ["missing.npz", "does not exist"]), ("cifar", ["dataset", ".npz"])],
)
def test_a_dataset_that_is_not_there_is_one_clear_error(dataset, words, tmp_path, capsys):
    assert (
        main(
            [
                "run",
                "fig3_mnist",
                "--set",
                f'dataset="{tmp_path / dataset if dataset.endswith(".npz") else dataset}"',
                "--set",
                "sizes=[64,100,3]",
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(w in err for w in words), err


def test_an_npz_without_the_four_arrays_names_what_is_missing(tmp_path):
    np.savez(tmp_path / "d.npz", train_x=np.zeros((3, 4)), train_y=np.zeros(3, int))
    with pytest.raises(DataError, match="lacks test_x, test_y"):
        load_images(str(tmp_path / "d.npz"))


def test_arrays_from_python_floats_and_uint8():
    rng = np.random.default_rng(1)
    x = rng.random((10, 5))
    d = ImageData.from_arrays(x, np.arange(10) % 4, x[:3], [0, 1, 3])
    assert (
        d.train_x.dtype == np.float32
        and np.allclose(d.train_x, x)
        and (d.n_inputs, d.n_classes) == (5, 4)
    )
    assert d.shape == (1, 5) and d.val_x.shape == (0, 5)
    u = ImageData.from_arrays(
        np.full((4, 3, 3), 255, np.uint8), [0, 1, 0, 1], np.zeros((2, 3, 3), np.uint8), [1, 0]
    )
    assert u.train_x.shape == (4, 9) and u.train_x.max() == 1.0 and u.shape == (3, 3)
    held = u.holdout(1)
    assert held.train_x.shape == (3, 9) and held.val_x.shape == (1, 9) and held.shape == (3, 3)
    check_sizes(u, [9, 20, 2], "arrays")
    with pytest.raises(DataError, match=r"must be \[9, hidden\.\.\., 2\]"):
        check_sizes(u, [784, 20, 10], "arrays")


@pytest.mark.parametrize(
    "train_x, train_y, words",
    [
        (np.full((3, 4), 2.0), [0, 1, 2], "floats in [0, 1]"),
        (np.full((3, 4), np.nan), [0, 1, 2], "floats in [0, 1]"),
        (np.full((3, 4), 300), [0, 1, 2], "integers 0–255"),
        (np.zeros((3, 4)), [0.0, 1.0, 2.0], "integer label"),
        (np.zeros((3, 4)), [0, -1, 2], "integer label"),
        (np.zeros((3, 4)), [0, 1], "one integer label"),
        (np.zeros((3, 5)), [0, 1, 2], "of one shape"),
        (np.zeros(3), [0, 1, 2], "of one shape"),
    ],
)
def test_bad_arrays_are_refused_naming_the_array(train_x, train_y, words):
    with pytest.raises(DataError, match=words.replace("[", r"\[").replace("]", r"\]")):
        ImageData.from_arrays(train_x, train_y, np.zeros((2, 4)), [0, 1], name="mine.npz")


def test_a_validation_set_larger_than_the_file_says_how_many_images_there_are(
    own_npz, tmp_path, capsys
):
    assert (
        main(
            [
                "run",
                "fig3_mnist",
                "--set",
                f'dataset="{own_npz}"',
                "--set",
                "sizes=[64,100,3]",
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "train.validation must be in 0..599 (the data has 600 training images), got 10000" in err
    assert not (tmp_path / "r").exists()
