"""The Python API: spikefa.run, spikefa.load_network and Network.evaluate, spikefa.sweep's input."""

import numpy as np
import pytest

import spikefa
from spikefa.config import MODELS_DIR
from spikefa.errors import SpikefaError
from spikefa.spiking.spec import SpikingSpec, initial_state, save_checkpoint

SHORT = {"train.examples": 300, "algorithms": ["fa", "bp"]}


@pytest.fixture(scope="module")
def fig2(tmp_path_factory):
    return spikefa.run("fig2_linear", tmp_path_factory.mktemp("api") / "r", seed=1, overrides=SHORT)


def test_run_returns_summary_config_metrics_and_figures(fig2):
    assert set(fig2.summary["results"]) == {"fa", "bp"} and fig2.summary["seed"] == 1
    assert "test_nse" in fig2.summary["results"]["fa"]
    assert fig2.config["seed"] == 1 and fig2.config["train"]["examples"] == 300
    rows = fig2.metrics
    assert {r["algorithm"] for r in rows} == {"fa", "bp"} and isinstance(rows[0]["test_nse"], float)
    assert fig2.figures and all(p.suffix == ".png" and p.is_file() for p in fig2.figures)
    assert "fa" in str(fig2) and str(fig2.path) in repr(fig2)
    assert spikefa.Results(fig2.path).summary == fig2.summary


def test_overrides_as_keywords_dicts_and_tables_are_the_same_items():
    from spikefa.api import set_items

    items = set_items(
        {"train": {"examples": 300}, "lr.fa": 0.5}, {"seed": np.int64(2), "algorithms": ("fa",)}
    )
    assert items == ["train.examples=300", "lr.fa=0.5", "seed=2", 'algorithms=["fa"]']
    assert set_items(None, {"train__examples": 300, "name": 'a "quoted"\\ word'}) == [
        "train.examples=300",
        'name="a \\"quoted\\"\\\\ word"',
    ]


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"train__exampels": 10}, ["unknown config key", "train.exampels", "train.examples"]),
        ({"seed": "one"}, ["seed", "integer"]),
        ({"seed": None}, ["seed", "None"]),
        ({"overrides": {"train.examples": 10}, "train__examples": 20}, ["train.examples", "twice"]),
    ],
)
def test_bad_input_is_a_spikefa_error_naming_the_key(kwargs, words, tmp_path):
    with pytest.raises(SpikefaError) as err:
        spikefa.run("fig2_linear", tmp_path / "r", **kwargs)
    assert all(w in str(err.value) for w in words), err.value
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_unknown_config_is_a_spikefa_error():
    with pytest.raises(
        SpikefaError, match="no config named 'fig2_liner'; did you mean fig2_linear"
    ):
        spikefa.run("fig2_liner")


def test_sweep_refuses_a_key_both_set_and_an_axis_before_anything_runs(tmp_path):
    with pytest.raises(SpikefaError, match="both set and a grid axis"):
        spikefa.sweep("fig2_linear", 2, tmp_path / "s", seed=1, grid={"seed": [1, 2]})
    with pytest.raises(SpikefaError, match="non-empty list"):
        spikefa.sweep("fig2_linear", 2, tmp_path / "s", grid={"seed": 3})
    assert not (tmp_path / "s").exists()


def test_sweep_runs_every_candidate_of_a_declared_search(tmp_path):
    search = tmp_path / "search.toml"
    search.write_text(
        '[[candidate]]\nlabel = "short"\ntrain.examples = 200\n\n'
        "[[candidate]]\ntrain.examples = 300\n"
    )
    s = spikefa.sweep(
        "fig2_linear", 1, tmp_path / "s", candidates=search, workers=1, algorithms=["fa"]
    )
    assert [p["name"] for p in s["points"]] == ["short", "train.examples-300"]
    assert s["failed"] == 0 and s["ran"] == 2
    assert s["search"] == str(search) and any("algorithms" in x for x in s["sets"])  # its command
    examples = [
        spikefa.Results(r["folder"]).config["train"]["examples"]
        for p in s["points"]
        for r in p["runs"]
    ]
    assert examples == [200, 300]
    with pytest.raises(SpikefaError, match="no search 'no_such'.*fig4_fa"):
        spikefa.sweep("fig4_search", 1, tmp_path / "t", candidates="no_such")
    assert not (tmp_path / "t").exists()


def test_sweep_stays_the_api_function_when_the_sweep_machinery_is_imported():
    import spikefa.sweeps  # noqa: F401  (the module of the machinery has a name of its own)

    assert spikefa.sweep is spikefa.api.sweep
    with pytest.raises(SpikefaError, match="seeds must be at least 1"):
        spikefa.sweep("fig2_linear", 0)


@pytest.mark.skipif(
    not (MODELS_DIR / "fig4_paper_fa.npz").is_file(), reason="no shipped networks here"
)
def test_shipped_network_loads_by_name_and_scores_on_a_few_test_images(data_folder):
    net = spikefa.load_network("fig4_paper_fa")
    assert net.spec.sizes == (784, 1500, 1500, 1500, 10) and net.meta["selected_on"] == "validation"
    r = net.evaluate(n=200, engine="fast", data=data_folder, progress=False)
    assert r["n_test"] == 200 and r["split"] == "test" and r["engine"] == "fast"
    assert 0 <= r["test_error"] < 0.1  # about 4% on all 10,000


def test_evaluate_scores_a_checkpoint_state_without_preparing_it(data_folder):
    from spikefa.data import load_mnist
    from spikefa.spiking.training import FastRunner, evaluate

    spec = SpikingSpec(sizes=(784, 20, 10), steps_per_image=3)
    state, data = initial_state(spec), load_mnist(data_folder)
    x, y = data.test_x[:40].astype(spec.dtype), data.test_y[:40]
    runner = FastRunner(spec, 40, batch=8)
    err = evaluate(runner, state, x, y)  # a one-stream state, as a checkpoint holds it
    assert 0 <= err <= 1
    assert state["u1"].shape == (20,) and not state["u1"].any()  # not changed


def test_network_saves_and_loads_back(tmp_path):
    spec = SpikingSpec(sizes=(784, 12, 10), steps_per_image=2, dtype="float64")
    path = save_checkpoint(tmp_path / "a.npz", spec, initial_state(spec), {"dataset": "mnist"})
    net = spikefa.load_network(path)
    copy = spikefa.load_network(net.save(tmp_path / "b.npz", float16=True))
    assert copy.spec == net.spec and copy.meta == {"dataset": "mnist"}
    np.testing.assert_allclose(copy.state["w1"], net.state["w1"], atol=1e-3)


def test_a_bad_checkpoint_is_a_spikefa_error(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    with pytest.raises(SpikefaError, match="not a spikefa checkpoint"):
        spikefa.load_network(notes)
    with pytest.raises(SpikefaError, match="no shipped network named fig4_nonesuch"):
        spikefa.load_network("fig4_nonesuch")


def test_network_traces_are_the_arrays_of_the_folder_written(tmp_path, data_folder):
    spec = SpikingSpec(sizes=(784, 12, 10), steps_per_image=4, dtype="float64")
    net = spikefa.load_network(
        save_checkpoint(tmp_path / "a.npz", spec, initial_state(spec), {"dataset": "mnist"})
    )
    tr = net.traces(tmp_path / "tr", steps=8, neurons=[0, 3], device="numpy", data=data_folder)
    assert tr["psp"].shape == tr["modulator"].shape == (2, 8) and tr["folder"] == tmp_path / "tr"
    assert sorted(p.name for p in (tmp_path / "tr").iterdir()) == ["traces.npz", "traces.png"]


TWO_TRACES = """delig/dt = (p_pre - elig) / (3 * ms)
dutag/dt = (u_post - utag) / (3 * ms)
w += eta_post * delta_post * (elig + utag)"""


def test_network_traces_record_the_eligibility_traces_of_chosen_synapses(tmp_path, data_folder):
    from spikefa.data import load_mnist

    spec = SpikingSpec(
        sizes=(784, 12, 10), steps_per_image=4, dtype="float64", plasticity=TWO_TRACES
    )
    net = spikefa.load_network(
        save_checkpoint(tmp_path / "a.npz", spec, initial_state(spec), {"dataset": "mnist"})
    )
    bright = int(np.argmax(load_mnist(data_folder).test_x[0]))  # fires at almost every step
    tr = net.traces(steps=8, neurons=[0, 3], pre=[0, bright], device="numpy", data=data_folder)
    e = tr["eligibility"]
    assert e.shape == (2, 2, 2, 8) and list(tr["eligibility_names"]) == ["elig", "utag"]
    assert list(tr["pre"]) == [0, bright]
    # elig filters the presynaptic trace: the same for both recorded units, none from the corner
    np.testing.assert_array_equal(e[0, 0], e[0, 1])
    assert not e[0, :, 0].any() and (e[0, :, 1, -1] > 0).all()
    # utag filters each unit's own PSP, step by step, whichever presynaptic unit it is read from
    beta = np.exp(-1 / 3)
    expected = np.zeros_like(tr["psp"])
    for t in range(8):
        before = expected[:, t - 1] if t else 0.0
        expected[:, t] = beta * before + (1 - beta) * tr["psp"][:, t]
    for k in range(2):
        np.testing.assert_allclose(e[1, :, k], expected, rtol=1e-9, atol=1e-12)


def test_eligibility_traces_need_a_rule_that_declares_them_and_units_that_exist(
    tmp_path, data_folder
):
    plain = SpikingSpec(sizes=(784, 12, 10), steps_per_image=4, dtype="float64")
    path = save_checkpoint(tmp_path / "a.npz", plain, initial_state(plain), {"dataset": "mnist"})
    with pytest.raises(SpikefaError, match="declares an eligibility trace"):
        spikefa.load_network(path).traces(tmp_path / "t", steps=4, pre=[0], data=data_folder)
    spec = SpikingSpec(sizes=(784, 12, 10), steps_per_image=4, plasticity=TWO_TRACES)
    path = save_checkpoint(tmp_path / "b.npz", spec, initial_state(spec), {"dataset": "mnist"})
    with pytest.raises(SpikefaError, match=r"presynaptic units \[784\] do not exist"):
        spikefa.load_network(path).traces(tmp_path / "t", steps=4, pre=[784], data=data_folder)
