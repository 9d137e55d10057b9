"""Deep function fitting (Fig. 3c,d) on a short stream: conditions, statistics, the frozen control."""

import json

import numpy as np
import pytest

from spikefa import config, runner
from spikefa.cli import main
from spikefa.data.synthetic import TanhTeacher
from spikefa.experiments import fig3_deep
from spikefa.seeds import stream


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fig3d") / "run"
    runner.run(
        "fig3_deep",
        ["runs=3", "train.examples=6000", "train.eval_every=2000", "test.points=500", "eta=0.01"],
        out,
    )
    return out, json.loads((out / "summary.json").read_text())


def test_every_condition_reports_and_learns(short_run):
    out, summary = short_run
    res = summary["results"]
    assert set(res) == {"shallow3", "bp3", "fa3", "shallow4", "bp4", "fa4", "fa4_frozen_w0"}
    for name, r in res.items():
        assert len(r["test_nses"]) == 3
        if not name.startswith("shallow"):
            assert r["test_nse"] < 0.8, name  # from ≈1 at the start
    for key in ("bp4_vs_bp3_p", "fa4_vs_fa3_welch_p", "fa4_vs_fa4_frozen_w0_p"):
        assert 0 <= summary["stats"][key] <= 1
    assert (out / "figures" / "nse.png").stat().st_size > 1000
    assert np.load(out / "curves.npz")["fa4_nse"].shape == (3, 4)  # runs × (start + 3 evaluations)


def test_frozen_control_keeps_the_first_layer():
    cfg = config.resolve("fig3_deep", ["eta=0.01"])
    net = fig3_deep.student(cfg, "fa4_frozen_w0", 0)
    w1, w2 = net.W[1].copy(), net.W[2].copy()
    X, Y = TanhTeacher.draw(stream(0, "task")).sample(stream(0, "data"), 500)
    net.train(X, Y)
    np.testing.assert_array_equal(net.W[1], w1)
    assert not np.array_equal(net.W[2], w2)
    assert net.algorithm == "fa" and net.sizes == (30, 20, 10, 10)


@pytest.mark.parametrize(
    "item, words",
    [("depths=[5]", "depths"), ('algorithms=["np"]', "algorithms"), ("runs=0", "runs")],
)
def test_bad_config_exits_2(item, words, tmp_path, capsys):
    assert main(["run", "fig3_deep", "--set", item, "--out", str(tmp_path / "r")]) == 2
    assert words in capsys.readouterr().err
