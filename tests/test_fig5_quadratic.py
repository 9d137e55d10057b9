"""Fig. 5 on a small network and a short stream: the W–B angle starts near 90° and is recorded."""

import json

import numpy as np
import pytest

from spikefa import runner
from spikefa.cli import main


def test_short_run_records_alignment(tmp_path):
    out = tmp_path / "run"
    runner.run(
        "fig5_quadratic",
        [
            "hidden_units=60",
            "train.examples=4000",
            "train.eval_every=1000",
            "test.points=200",
            "eta=0.01",
        ],
        out,
    )
    res = json.loads((out / "summary.json").read_text())["results"]
    assert set(res) == {"fa", "bp", "fa_frozen_w0"}
    assert 80 < res["fa"]["angle_deg_w_vs_b_initial"] < 100  # independent random matrices
    assert 0 < res["fa"]["angle_deg_final"] <= 90
    assert "angle_deg_w_vs_b_final" not in res["bp"]
    curves = np.load(out / "curves.npz")
    assert curves["fa_angle_w_b"].shape == (5,)
    assert (out / "figures" / "alignment.png").stat().st_size > 1000


@pytest.mark.parametrize("item", ['algorithms=["sgd"]', "hidden_units=0"])
def test_bad_config_exits_2(item, tmp_path, capsys):
    assert main(["run", "fig5_quadratic", "--set", item, "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.startswith("spikefa: error:")
