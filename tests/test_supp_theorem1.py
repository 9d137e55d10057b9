"""The Theorem 1 experiment: the batch-limit ODE of linear FA learns every random problem from zero."""

import json

from spikefa import runner


def test_error_vanishes_and_invariant_stays_zero(tmp_path):
    runner.run("supp_theorem1", ["runs=3", "sizes=[8,6,4]"], tmp_path / "r")
    r = json.loads((tmp_path / "r" / "summary.json").read_text())["results"]
    assert len(r["fa"]["final_relative_errors"]) == 3 and r["fa"]["final_relative_error"] < 1e-3
    assert r["fa"]["invariant_max"] < 1e-6 and r["fa"]["b_full_column_rank"]
    assert abs(r["flow_field"]["a_times_w_end"] - 1) < 1e-3 and r["flow_field"]["w_end"] > 0
    assert (tmp_path / "r" / "figures" / "theorem1.png").stat().st_size > 1000


def test_too_short_an_integration_leaves_an_error(tmp_path):
    runner.run("supp_theorem1", ["runs=1", "t_end=0.5"], tmp_path / "r")
    r = json.loads((tmp_path / "r" / "summary.json").read_text())["results"]
    assert r["fa"]["final_relative_error"] > 0.1
