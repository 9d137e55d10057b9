"""The initial-scale sweep on a short stream: small ω ends nearer pseudo-backprop."""

import json

import numpy as np

from spikefa import runner
from spikefa.cli import main
from spikefa.experiments.supp_init_scale import held_out_angles
from spikefa.rate.network import Network


def test_short_sweep_records_both_angles(tmp_path):
    out = tmp_path / "run"
    runner.run(
        "supp_init_scale",
        [
            "init_scales=[0.001, 0.25]",
            "train.examples=6000",
            "train.eval_every=500",
            "test.points=200",
        ],
        out,
    )
    res = json.loads((out / "summary.json").read_text())["results"]
    small, large = res["omega_0.001"], res["omega_0.25"]
    assert small["test_nse"] < 1e-3 and large["test_nse"] < 1e-3
    assert small["closer_to_pseudo_bp"]
    assert small["angle_deg_to_pseudo_bp_final"] < large["angle_deg_to_pseudo_bp_final"]
    assert (out / "figures" / "init_scale.png").stat().st_size > 1000


def test_pseudo_backprop_angle_is_zero_when_b_is_the_pseudo_inverse():
    net = Network(
        (4, 3, 2),
        "fa",
        np.random.default_rng(0),
        np.random.default_rng(1),
        hidden="linear",
        output="linear",
        init_scale=1.0,
    )
    net.B[1] = np.linalg.pinv(net.W[2].T)  # B = W⁺ exactly (paper's W = our W[2]ᵀ)
    E = np.random.default_rng(2).normal(size=(50, 2))
    to_bp, to_pbp = held_out_angles(net, E)
    assert to_pbp < 1e-5 and to_bp > 1.0


def test_bad_scales_exit_2(tmp_path, capsys):
    assert (
        main(
            [
                "run",
                "supp_init_scale",
                "--set",
                "init_scales=[0.1, -1.0]",
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 2
    )
    assert "init_scales" in capsys.readouterr().err
