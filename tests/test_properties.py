"""Property-based tests (hypothesis): whatever the input, the command line never shows a traceback.

Contract: bad input (unknown key, wrong type, bad value, missing or corrupted file) exits 2 with
exactly one line `spikefa: error: ...` on stderr; a corrupted data file makes `data check` exit 1.
"""

import json
import math
import tempfile
import tomllib
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import spikefa.data
from spikefa import config, experiments
from spikefa.cli import main
from spikefa.data import datasets, load_images
from spikefa.errors import DataError, SpikefaError
from spikefa.spiking.spec import SpikingSpec, initial_state, load_checkpoint, save_checkpoint

FIXTURES = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def assert_one_error_line(capsys):
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("spikefa: error: ") and "Traceback" not in err, err


def files_in(folder: Path) -> dict:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# ------------------------------------------------------------------------------- `run --set`
CONFIGS = config.shipped_configs()
SCHEMAS = {name: config._flat(tomllib.loads(config.locate(name).read_text())) for name in CONFIGS}
WORDS = sorted({w for schema in SCHEMAS.values() for v in schema.values()
                for w in (v if isinstance(v, list) else [v]) if isinstance(w, str)}
               | {"dfa", "sparse_fa", "sign_symmetric", "fast", "runtime", "decay", "float64", "cupy", "svhn",
                  "fashion-mnist", "tanh", "linear", "mse"})
MALFORMED = ["", "[1,", "{a = 1", '"open', "1 2", "==", "0x", "+inf", "1979-05-27", "{}", "{x = 1}", "[[]]",
             "'''x'''", "1\nx = 2", "1 # comment", "[1, \"a\"]", "\\", "\x00"]


def toml_float(x: float) -> str:
    return "nan" if math.isnan(x) else {math.inf: "inf", -math.inf: "-inf"}.get(x, repr(x))


SCALARS = st.one_of(st.integers().map(str), st.sampled_from(["0", "-1", str(2 ** 63), "1" + "0" * 400]),
                    st.floats().map(toml_float), st.sampled_from(["true", "false"]),
                    st.sampled_from(WORDS).map(json.dumps), st.text(max_size=8).map(json.dumps))
VALUES = st.one_of(st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4).map(
    lambda xs: "[" + ", ".join(xs) + "]"), max_leaves=8), st.sampled_from(MALFORMED), st.text(max_size=12))


def set_items(schema: dict):
    keys = st.one_of(st.sampled_from(sorted(schema)), st.text(max_size=12))
    item = st.one_of(st.tuples(keys, VALUES).map("=".join), st.text(max_size=20))
    return st.lists(item, min_size=1, max_size=3)


@pytest.fixture
def no_training(monkeypatch):
    """Experiments keep their own `validate`; a config that passes it is not trained."""
    real = experiments.get
    monkeypatch.setattr(experiments, "get", lambda name: types.SimpleNamespace(
        validate=real(name).validate, run=lambda cfg, out, data_dir=None: {"results": {}}))


@pytest.mark.parametrize("name", CONFIGS)
@settings(max_examples=150, **FIXTURES)
@given(data=st.data())
def test_run_with_any_set_exits_0_or_2_with_one_line(name, data, no_training, tmp_path, capsys):
    """`run CONFIG --set ...`: exit 0 (its config.toml reads back), or exit 2 with one line and
    nothing written; a folder holding a finished run is never written into."""
    sets = [f"--set={s}" for s in data.draw(set_items(SCHEMAS[name]), label="sets")]
    out = Path(tempfile.mkdtemp(dir=tmp_path)) / "r"
    code = main(["run", name, *sets, "--out", str(out)])
    if code == 0:
        written = (out / "config.toml").read_text()
        assert (out / "summary.json").is_file() and config.to_toml(config.resolve(str(out / "config.toml"))) == written
        capsys.readouterr()
    else:
        assert code == 2 and not out.exists()
        assert_one_error_line(capsys)
    done = tmp_path / "done"
    done.mkdir(exist_ok=True)
    (done / "summary.json").write_text('{"experiment": "finished"}\n')
    before = files_in(done)
    assert main(["run", name, *sets, "--out", str(done)]) == 2
    assert_one_error_line(capsys)
    assert files_in(done) == before


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_parse_set_raises_only_spikefa_errors(item):
    """`--set` parsing: any text is a (key, value) pair or a SpikefaError, never another exception."""
    try:
        key, _ = config.parse_set(item)
    except SpikefaError as exc:
        assert len(str(exc).splitlines()) == 1
    else:
        assert key and "=" not in key


@given(st.sampled_from(["1", "true", '"x"', "[1]"]), st.sampled_from(["x = 2", "[train]", "[[t]]"]))
def test_parse_set_refuses_a_second_toml_line(value, line):
    """Nothing after the value is silently dropped: `seed=1<newline>x = 2` is refused."""
    with pytest.raises(SpikefaError, match="cannot parse"):
        config.parse_set(f"seed={value}\n{line}")


# ------------------------------------------------------------------------------- checkpoints
SPEC = SpikingSpec(sizes=(784, 8, 10), reading="tau", steps_per_image=2)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny valid checkpoint (784-8-10, so `evaluate` can run it on MNIST)."""
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "c.npz", SPEC, initial_state(SPEC), {"dataset": "mnist"})


@pytest.fixture(scope="module")
def mnist(data_folder):
    return load_images("mnist", data_folder)


@pytest.fixture
def cached_mnist(mnist, monkeypatch):
    """`evaluate` gets MNIST from memory (loading it each time would dominate the run time)."""
    monkeypatch.setattr(spikefa.data, "load_images", lambda name, folder=None: mnist)


def assert_refused(path, capsys, accept_valid=False):
    """`evaluate` and `export` exit 2 with one line, or 0 where `load_checkpoint` accepts the file."""
    try:
        load_checkpoint(path)
        valid = True
    except SpikefaError:
        valid = False
    assert accept_valid or not valid
    for argv in (["evaluate", str(path), "--n-test", "20"], ["export", str(path), str(path.parent / "copy.npz")]):
        code = main(argv)
        if valid:
            assert code == 0
            capsys.readouterr()
        else:
            assert code == 2
            assert_one_error_line(capsys)


def mutations(n: int):
    """Truncation, byte flips (biased to the zip headers at both ends) or garbage for an n-byte file."""
    pos = st.one_of(st.integers(0, 80), st.integers(n - 300, n - 1), st.integers(0, n - 1))
    flips = st.lists(st.tuples(pos, st.integers(1, 255)), min_size=1, max_size=4, unique_by=lambda f: f[0])

    def flip(b, fl):
        b = bytearray(b)
        for i, x in fl:
            b[i] ^= x
        return bytes(b)

    return st.one_of(st.integers(0, n - 1).map(lambda k: lambda b: b[:k]),
                     flips.map(lambda fl: lambda b: flip(b, fl)),
                     st.binary(max_size=200).map(lambda g: lambda b: g))


@settings(max_examples=300, **FIXTURES)
@given(data=st.data())
def test_corrupted_checkpoint_exits_2(data, checkpoint, cached_mnist, tmp_path, capsys):
    """A truncated, bit-flipped or garbage checkpoint is refused with one line (a flip that leaves
    a valid zip, e.g. in a timestamp, may load and run)."""
    good, path = checkpoint.read_bytes(), tmp_path / "c.npz"
    path.write_bytes(data.draw(mutations(len(good)), label="mutation")(good))
    assert_refused(path, capsys, accept_valid=True)


def npz(path: Path, spec=SPEC.to_dict(), meta=None, state=None) -> Path:
    """An uncompressed checkpoint-like npz; `spec=None` leaves the spec out."""
    texts = {"spec": json.dumps(spec)} if spec is not None else {}
    texts |= {"meta": json.dumps(meta)} if meta is not None else {}
    np.savez(path, **texts, **(initial_state(SPEC) if state is None else state))
    return path


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=6)


@settings(max_examples=200, **FIXTURES)
@given(field=st.sampled_from(sorted(SPEC.to_dict())), value=JSON)
def test_checkpoint_with_any_spec_field_loads_or_exits_2(field, value, cached_mnist, tmp_path, capsys):
    """A spec field of any JSON value gives a valid spec or a clear refusal, never a TypeError."""
    spec = {**SPEC.to_dict(), field: value}
    try:
        valid = SpikingSpec.from_dict(spec).sizes == SPEC.sizes  # a spec of other sizes does not fit the state
    except SpikefaError:
        valid = False
    assume(not valid or spec["steps_per_image"] <= SPEC.steps_per_image)  # keep `evaluate` short
    assert_refused(npz(tmp_path / "c.npz", spec), capsys, accept_valid=valid)


@settings(max_examples=200, **FIXTURES)
@given(key=st.sampled_from(sorted(initial_state(SPEC))),
       shape=st.lists(st.integers(0, 12), max_size=3).map(tuple))
def test_checkpoint_with_a_wrong_shape_exits_2(key, shape, cached_mnist, tmp_path, capsys):
    """Any array of the wrong shape (weights, biases, feedback, PSPs, traces) is refused."""
    state = initial_state(SPEC)
    good = state[key].shape
    state[key] = np.zeros(shape, np.float32)
    ok = shape == good or (key[0] in "up" and len(shape) == 2 and shape[0] >= 1 and shape[1:] == good)
    assert_refused(npz(tmp_path / "c.npz", state=state), capsys, accept_valid=ok)


@pytest.mark.parametrize("make", [
    lambda p: p.write_bytes(b""),
    lambda p: p.mkdir(),
    lambda p: p.write_text("not a checkpoint\n"),
    lambda p: None,  # missing
    lambda p: npz(p, spec=None),
    lambda p: npz(p, spec=[]),
    lambda p: npz(p, meta=[1, 2]),
    lambda p: npz(p, state={k: v for k, v in initial_state(SPEC).items() if k != "B1"}),
    lambda p: npz(p, state={**initial_state(SPEC), "w1": np.zeros((8, 784))}),
    lambda p: npz(p, state={**initial_state(SPEC), "w1": np.array(["a"] * 8)}),
    lambda p: np.save(p.with_suffix(".npy"), np.zeros(3)) or p.with_suffix(".npy").rename(p),
], ids=["empty", "directory", "text", "missing", "no-spec", "spec-not-dict", "meta-not-dict", "missing-key",
        "wrong-shape", "strings", "npy"])
def test_foreign_checkpoint_exits_2(make, cached_mnist, tmp_path, capsys):
    """Files that are not spikefa checkpoints are refused with one line."""
    make(tmp_path / "c.npz")
    assert_refused(tmp_path / "c.npz", capsys)


# ------------------------------------------------------------------------------- data files
@settings(max_examples=40, **FIXTURES)
@given(data=st.data(), stem=st.sampled_from(datasets.FILES))
def test_corrupted_data_file_is_a_clear_error(data, stem, data_folder, tmp_path, monkeypatch, capsys):
    """One truncated, bit-flipped or garbage MNIST file: loading raises DataError naming it (and
    saying to delete it), nothing is downloaded, and `data check` exits 1 naming it."""
    monkeypatch.setattr(datasets, "fetch_verified", lambda *a, **k: pytest.fail("tried to download"))
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    (folder / "mnist").mkdir()
    for other in datasets.FILES:
        (folder / "mnist" / f"{other}.gz").symlink_to(data_folder / "mnist" / f"{other}.gz")
    bad = folder / "mnist" / f"{stem}.gz"
    good = bad.read_bytes()
    bad.unlink()
    bad.write_bytes(data.draw(mutations(len(good)), label="mutation")(good))
    with pytest.raises(DataError) as exc:
        load_images("mnist", folder)
    assert str(bad) in str(exc.value) and "delete it" in str(exc.value) and len(str(exc.value).splitlines()) == 1
    assert main(["data", "check", "--data", str(folder)]) == 1
    out, err = capsys.readouterr()
    assert f"mnist/{stem}: corrupted" in out and len(err.splitlines()) == 1 and "Traceback" not in err


def test_data_file_replaced_by_a_folder_is_a_clear_error(data_folder, tmp_path, capsys):
    """A folder where a data file should be is reported like a corrupted file, not a traceback."""
    for stem in datasets.FILES:
        (tmp_path / "mnist").mkdir(exist_ok=True)
        (tmp_path / "mnist" / f"{stem}.gz").symlink_to(data_folder / "mnist" / f"{stem}.gz")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").mkdir()
    with pytest.raises(DataError, match="t10k-labels"):
        load_images("mnist", tmp_path)
    assert main(["data", "check", "--data", str(tmp_path)]) == 1
    assert "t10k-labels-idx1-ubyte: corrupted" in capsys.readouterr().out
