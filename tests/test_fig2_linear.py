"""Fig. 2 on a shorter stream: the shapes the paper reports, and the results folder."""

import json

import numpy as np
import pytest

from spikefa import config, runner
from spikefa.experiments import fig2_linear as fig2


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fig2") / "run"
    runner.run("fig2_linear", ["train.examples=6000"], out)
    return out, json.loads((out / "summary.json").read_text())


def test_results_folder_is_complete(short_run):
    out, summary = short_run
    assert {"config.toml", "metrics.csv", "summary.json", "curves.npz"} <= {
        p.name for p in out.iterdir()
    }
    assert {"nse.png", "angle.png"} <= {p.name for p in (out / "figures").iterdir()}
    assert (
        summary["experiment"] == "fig2_linear"
        and summary["seed"] == 0
        and summary["wall_seconds"] > 0
    )
    assert set(summary["versions"]) >= {"spikefa", "python", "brian2", "numpy", "numba"}
    assert config.resolve(str(out / "config.toml"))["train"]["examples"] == 6000
    header, *rows = (out / "metrics.csv").read_text().splitlines()
    assert header.startswith("algorithm,examples,test_nse") and len(rows) == 4 * 61


def test_bp_and_fa_learn_fast_node_perturbation_slower_shallow_barely(short_run):
    r = short_run[1]["results"]
    for algo in ("bp", "fa"):
        assert r[algo]["examples_to_nse_0.001"] <= 3000
    assert r["node_perturbation"]["examples_to_nse_0.01"] >= 3 * r["fa"]["examples_to_nse_0.01"]
    assert r["shallow"]["test_nse"] > 0.5 and r["shallow"]["examples_to_nse_0.01"] is None


def test_fa_angle_starts_near_orthogonal_and_falls(short_run):
    fa = short_run[1]["results"]["fa"]
    assert fa["angle_deg_initial"] > 70
    assert fa["angle_deg_final"] < 50 and fa["angle_deg_test_final"] < 50
    assert "angle_deg_initial" not in short_run[1]["results"]["bp"]


def test_algorithms_share_stream_and_initial_weights():
    cfg = config.resolve("fig2_linear", ["train.examples=200"])
    a, b = fig2.make_setup(cfg), fig2.make_setup(cfg)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.W0, b.W0)
    other_seed = fig2.make_setup(config.resolve("fig2_linear", ["train.examples=200", "seed=1"]))
    assert not np.array_equal(a.B, other_seed.B)
    c_bp = fig2.train(a, "bp", lr=0.01)
    c_bp2 = fig2.train(a, "bp", lr=0.01)
    np.testing.assert_array_equal(c_bp.test_nse, c_bp2.test_nse)  # train() does not touch the setup
    assert c_bp.test_nse[0] == pytest.approx(1.0, abs=0.01)  # near-zero weights: NSE starts at ≈ 1
