"""Property-based tests (hypothesis): whatever the input, the command line never shows a traceback.

The rule: bad input (unknown key, wrong type, bad value, missing or corrupted file) exits 2 with
exactly one line `spikefa: error: ...` on stderr; a corrupted data file makes `data check` exit 1.
"""

import io
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
from spikefa.seeds import stream
from spikefa.spiking.spec import SpikingSpec, initial_state, load_checkpoint, save_checkpoint

FIXTURES = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture]}


def assert_one_error_line(capsys):
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("spikefa: error: ") and "Traceback" not in err, (
        err
    )


def files_in(folder: Path) -> dict:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# ------------------------------------------------------------------------------- `run --set`
CONFIGS = config.shipped_configs()
SCHEMAS = {name: config.flat(tomllib.loads(config.locate(name).read_text())) for name in CONFIGS}
WORDS = sorted(
    {
        w
        for schema in SCHEMAS.values()
        for v in schema.values()
        for w in (v if isinstance(v, list) else [v])
        if isinstance(w, str)
    }
    | {
        "dfa",
        "sparse_fa",
        "sign_symmetric",
        "fast",
        "runtime",
        "decay",
        "float64",
        "cupy",
        "svhn",
        "fashion-mnist",
        "tanh",
        "linear",
        "mse",
    }
)
ODD = [
    "",
    "[]",
    '""',
    "[1,",
    "{a = 1",
    '"open',
    "1 2",
    "==",
    "0x",
    "+inf",
    "1979-05-27",
    "{}",
    "{x = 1}",
    "[[]]",
    "'''x'''",
    "1\nx = 2",
    "1 # comment",
    '[1, "a"]',
    "\\",
    "\x00",  # malformed TOML, edge values
    "1" * 5000,
    "0x" + "f" * 5000,
    "[" * 3000 + "]" * 3000,
    "[" * 400 + "0x" + "f" * 5000 + "]" * 400,
]


def toml_float(x: float) -> str:
    return "nan" if math.isnan(x) else {math.inf: "inf", -math.inf: "-inf"}.get(x, repr(x))


def toml_list(items: list[str]) -> str:
    return "[" + ", ".join(items) + "]"


INTS = st.one_of(
    st.integers(-2, 2), st.integers(), st.sampled_from([-(2**63), 2**63, 10**400])
).map(str)
FLOATS = st.floats().map(toml_float)
STRINGS = st.one_of(st.sampled_from(WORDS), st.text(max_size=8)).map(json.dumps)
SCALARS = st.one_of(INTS, FLOATS, st.sampled_from(["true", "false"]), STRINGS)
VALUES = st.one_of(
    st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4).map(toml_list), max_leaves=8),
    st.sampled_from(ODD),
    st.text(max_size=12),
)


def like(default) -> st.SearchStrategy[str]:
    """TOML text of values of the type of `default`: the values that reach `validate`."""
    if isinstance(default, bool):
        return st.sampled_from(["true", "false"])
    if isinstance(default, (int, float)):
        return st.one_of(INTS, FLOATS) if isinstance(default, float) else INTS
    if isinstance(default, str):
        return STRINGS
    if isinstance(default, dict):  # a table in an array of tables, e.g. a [[schedule]] phase
        return VALUES
    return st.lists(like(default[0]) if default else SCALARS, max_size=5).map(toml_list)


def set_items(schema: dict) -> st.SearchStrategy[list[str]]:
    """`--set` items: up to three real keys with values of their type or any other, then perhaps
    an unknown key or any text."""
    real = st.sampled_from(sorted(schema)).flatmap(
        lambda k: st.one_of(like(schema[k]), VALUES).map(f"{k}=".__add__)
    )
    other = st.one_of(
        st.tuples(st.text(max_size=12), VALUES).map("=".join),
        st.sampled_from(ODD),
        st.text(max_size=20),
    )
    return st.tuples(st.lists(real, max_size=3), st.lists(other, max_size=1)).map(
        lambda t: t[0] + t[1]
    )


@pytest.fixture
def no_training(monkeypatch):
    """Experiments keep their own `validate`; a config that passes it only seeds its random streams."""
    real = experiments.get

    def run(cfg, out, data_dir=None):
        stream(cfg["seed"], "init")  # what every run starts with
        return {"results": {}}

    monkeypatch.setattr(
        experiments,
        "get",
        lambda name: types.SimpleNamespace(validate=real(name).validate, run=run),
    )


def assert_run_exits_0_or_2(name: str, sets: list[str], tmp_path: Path, capsys) -> None:
    """`run NAME --set ...` exits 0 (no NaN or inf in the config, its config.toml reads back), or 2
    with one line and nothing written."""
    out = Path(tempfile.mkdtemp(dir=tmp_path)) / "r"
    code = main(["run", name, *(f"--set={s}" for s in sets), "--out", str(out)])
    if code == 0:
        cfg, written = config.resolve(str(out / "config.toml")), (out / "config.toml").read_text()
        assert (out / "summary.json").is_file() and config.to_toml(cfg) == written
        assert all(math.isfinite(v) for v in config._scalars(cfg) if isinstance(v, float))
        capsys.readouterr()
    else:
        assert code == 2 and not out.exists()
        assert_one_error_line(capsys)


@pytest.mark.parametrize("name", CONFIGS)
@settings(max_examples=150, **FIXTURES)
@given(data=st.data())
def test_run_with_any_set_exits_0_or_2_with_one_line(name, data, no_training, tmp_path, capsys):
    """Any `--set` items: exit 0 or 2 as above; a folder holding a finished run is never written into."""
    sets = data.draw(set_items(SCHEMAS[name]), label="sets")
    assert_run_exits_0_or_2(name, sets, tmp_path, capsys)
    done = tmp_path / "done"
    done.mkdir(exist_ok=True)
    (done / "summary.json").write_text('{"experiment": "finished"}\n')
    before = files_in(done)
    assert main(["run", name, *(f"--set={s}" for s in sets), "--out", str(done)]) == 2
    assert_one_error_line(capsys)
    assert files_in(done) == before


EDGES = {
    bool: [],
    int: ["0", "-1", str(2**63 - 1)],
    float: ["0", "-0.0", "-1e-300", "1e308", "nan", "inf"],
    str: ['""'],
    list: ["[]", "[0]", "[-1.5]", '[""]'],
}


@pytest.mark.parametrize("name", CONFIGS)
def test_every_key_with_edge_values_exits_0_or_2(name, no_training, tmp_path, capsys):
    """Every key of a config set to edge values of its type (empty, zero, negative, huge, NaN)."""
    for key, default in SCHEMAS[name].items():
        for value in EDGES[type(default)]:
            assert_run_exits_0_or_2(name, [f"{key}={value}"], tmp_path, capsys)


@pytest.mark.parametrize("item", ["--", "-", "=", "=1", "--set", "-x=1"])
def test_dashes_and_empty_keys_exit_2(item, capsys):
    """`--set=ITEM` whatever argparse makes of ITEM (Python 3.11 reads `--set=--` as [])."""
    assert main(["run", "fig2_linear", f"--set={item}"]) == 2
    assert_one_error_line(capsys)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(), st.tuples(st.text(max_size=12), VALUES).map("=".join)))
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
SPEC_FIELDS = SPEC.to_dict()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny valid checkpoint (784-8-10, so `evaluate` can run it on MNIST)."""
    return save_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "c.npz", SPEC, initial_state(SPEC), {"dataset": "mnist"}
    )


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
    for argv in (
        ["evaluate", str(path), "--n-test", "20"],
        ["export", str(path), str(path.parent / "copy.npz")],
    ):
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
    flips = st.lists(
        st.tuples(pos, st.integers(1, 255)), min_size=1, max_size=4, unique_by=lambda f: f[0]
    )

    def flip(b, fl):
        b = bytearray(b)
        for i, x in fl:
            b[i] ^= x
        return bytes(b)

    return st.one_of(
        st.integers(0, n - 1).map(lambda k: lambda b: b[:k]),
        flips.map(lambda fl: lambda b: flip(b, fl)),
        st.binary(max_size=200).map(lambda g: lambda b: g),
    )


@settings(max_examples=300, **FIXTURES)
@given(data=st.data())
def test_corrupted_checkpoint_exits_2(data, checkpoint, cached_mnist, tmp_path, capsys):
    """A truncated, bit-flipped or garbage checkpoint is refused with one line (a flip that leaves
    a valid zip, e.g. in a timestamp, may load and run)."""
    good, path = checkpoint.read_bytes(), tmp_path / "c.npz"
    path.write_bytes(data.draw(mutations(len(good)), label="mutation")(good))
    assert_refused(path, capsys, accept_valid=True)


def npy(path: Path) -> None:
    buf = io.BytesIO()
    np.save(buf, np.zeros(3))
    path.write_bytes(buf.getvalue())


def npz(path: Path, spec=SPEC_FIELDS, meta=None, state=None) -> Path:
    """An uncompressed checkpoint-like npz; `spec=None` leaves the spec out."""
    texts = {"spec": json.dumps(spec)} if spec is not None else {}
    texts |= {"meta": json.dumps(meta)} if meta is not None else {}
    np.savez(path, **texts, **(initial_state(SPEC) if state is None else state))
    return path


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=120, **FIXTURES)
@given(field=st.sampled_from(sorted(SPEC_FIELDS)), value=JSON)
def test_checkpoint_with_any_spec_field_loads_or_exits_2(
    field, value, cached_mnist, tmp_path, capsys
):
    """A spec field of any JSON value gives a valid spec or a clear refusal, never a TypeError."""
    spec = {**SPEC_FIELDS, field: value}
    try:
        valid = (
            SpikingSpec.from_dict(spec).sizes == SPEC.sizes
        )  # a spec of other sizes does not fit the state
    except SpikefaError:
        valid = False
    assume(not valid or spec["steps_per_image"] <= SPEC.steps_per_image)  # keep `evaluate` short
    assert_refused(npz(tmp_path / "c.npz", spec), capsys, accept_valid=valid)


@settings(max_examples=200, **FIXTURES)
@given(
    key=st.sampled_from(sorted(initial_state(SPEC))),
    shape=st.lists(st.integers(0, 12), max_size=3).map(tuple),
)
def test_checkpoint_with_a_wrong_shape_exits_2(key, shape, cached_mnist, tmp_path, capsys):
    """Any array of the wrong shape (weights, biases, feedback, PSPs, traces) is refused."""
    state = initial_state(SPEC)
    good = state[key].shape
    state[key] = np.zeros(shape, np.float32)
    ok = shape == good or (
        key[0] in "up" and len(shape) == 2 and shape[0] >= 1 and shape[1:] == good
    )
    assert_refused(npz(tmp_path / "c.npz", state=state), capsys, accept_valid=ok)


@pytest.mark.parametrize(
    "make",
    [
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
        npy,
    ],
    ids=[
        "empty",
        "directory",
        "text",
        "missing",
        "no-spec",
        "spec-not-dict",
        "meta-not-dict",
        "missing-key",
        "wrong-shape",
        "strings",
        "npy",
    ],
)
def test_foreign_checkpoint_exits_2(make, cached_mnist, tmp_path, capsys):
    """Files that are not spikefa checkpoints are refused with one line."""
    make(tmp_path / "c.npz")
    assert_refused(tmp_path / "c.npz", capsys)


# ------------------------------------------------------------------------------- data files
def mnist_folder(data_folder: Path, folder: Path) -> Path:
    """`folder`/mnist holding links to the verified MNIST files."""
    (folder / "mnist").mkdir()
    for stem in datasets.FILES:
        (folder / "mnist" / f"{stem}.gz").symlink_to(data_folder / "mnist" / f"{stem}.gz")
    return folder / "mnist"


@settings(max_examples=40, **FIXTURES)
@given(data=st.data(), stem=st.sampled_from(datasets.FILES))
def test_corrupted_data_file_is_a_clear_error(
    data, stem, data_folder, tmp_path, monkeypatch, capsys
):
    """One truncated, bit-flipped or garbage MNIST file: loading raises DataError naming it (and
    saying to delete it), nothing is downloaded, and `data check` exits 1 naming it."""
    monkeypatch.setattr(
        datasets, "fetch_verified", lambda *a, **k: pytest.fail("tried to download")
    )
    bad = mnist_folder(data_folder, Path(tempfile.mkdtemp(dir=tmp_path))) / f"{stem}.gz"
    good = bad.read_bytes()
    bad.unlink()
    bad.write_bytes(data.draw(mutations(len(good)), label="mutation")(good))
    with pytest.raises(DataError) as exc:
        load_images("mnist", bad.parent.parent)
    assert (
        str(bad) in str(exc.value)
        and "delete it" in str(exc.value)
        and len(str(exc.value).splitlines()) == 1
    )
    assert main(["data", "check", "--data", str(bad.parent.parent)]) == 1
    out, err = capsys.readouterr()
    assert (
        f"mnist/{stem}: corrupted" in out and len(err.splitlines()) == 1 and "Traceback" not in err
    )


def test_data_file_replaced_by_a_folder_is_a_clear_error(data_folder, tmp_path, capsys):
    """A folder where a data file should be is reported like a corrupted file, not a traceback."""
    bad = mnist_folder(data_folder, tmp_path) / "t10k-labels-idx1-ubyte.gz"
    bad.unlink()
    bad.mkdir()
    with pytest.raises(DataError, match="t10k-labels.*delete it"):
        load_images("mnist", tmp_path)
    assert main(["data", "check", "--data", str(tmp_path)]) == 1
    assert "t10k-labels-idx1-ubyte: corrupted" in capsys.readouterr().out
