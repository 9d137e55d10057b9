"""Resuming a spiking run: from a copied or a killed run's checkpoint, to the same weights, and
only under the same recipe."""

import json

import numpy as np
import pytest
from spiking_tiny import TINY

from spikefa import runner
from spikefa.cli import main
from spikefa.spiking.spec import load_checkpoint

SWITCHES = [
    "dale={excitatory=0.8}",
    "refractory_steps=1",
    'plasticity="delig/dt = (p_pre - elig) / (5 * ms); w += eta_post * delta_post * elig"',
    'error_coding="spikes"',
    "forward_delay=1",
    "feedback_delay=2",
]


@pytest.mark.parametrize("switches", [[], SWITCHES], ids=["plain", "all-switches"])
def test_a_copied_checkpoint_resumes_to_the_same_weights(tmp_path, data_folder, switches):
    """A checkpoint carried to another folder (or machine) continues its recipe bit for bit, with
    the switches' stream state (refractory countdowns, eligibility traces, modulators, error spikes
    and delay lines) too."""
    fast = TINY + [
        "engine=fast",
        "batch=3",
        "validation.every_images=40",
        "train.epochs=2",
        "keep_snapshots=true",
        *switches,
    ]
    runner.run("fig4_spiking", fast, tmp_path / "whole", data=str(data_folder))
    (tmp_path / "pieces").mkdir()
    (tmp_path / "pieces" / "fa.npz").write_bytes(
        (tmp_path / "whole" / "snapshots" / "fa-00000120.npz").read_bytes()
    )
    runner.run("fig4_spiking", fast, tmp_path / "pieces", data=str(data_folder), resume=True)
    _, whole, meta_w = load_checkpoint(tmp_path / "whole" / "fa.npz")
    _, pieces, meta_p = load_checkpoint(tmp_path / "pieces" / "fa.npz")
    assert {k.rstrip("0123456789") for k in whole} >= (
        {"refr", "trace_elig_pre"} if switches else set()
    )
    for k in whole:
        np.testing.assert_array_equal(whole[k], pieces[k], err_msg=k)
    assert not switches or {"m1", "fq0", "bq3"} <= set(whole)
    assert meta_w["curve"] == meta_p["curve"] and meta_p["images_seen"] == 240
    summary = json.loads((tmp_path / "pieces" / "summary.json").read_text())
    assert summary["results"]["fa"]["epochs"] == 2.0
    # selected among the measurements after the copy: the best one before it did not travel
    assert summary["results"]["fa"]["selected_images"] > 120


def test_resume_cannot_change_the_declared_schedule(tmp_path, data_folder, capsys):
    sets = TINY + ["engine=fast", "batch=3"]
    runner.run("fig4_spiking", sets, tmp_path / "r", data=str(data_folder))
    for change in ("train.epochs=2", "eta=0.02", "feedback_scale=0.3"):
        assert (
            main(
                [
                    "run",
                    "fig4_spiking",
                    "--resume",
                    "--out",
                    str(tmp_path / "r"),
                    "--data",
                    str(data_folder),
                    *[a for kv in sets + [change] for a in ("--set", kv)],
                ]
            )
            == 2
        )
        assert "another recipe" in capsys.readouterr().err


def test_fast_engine_resumes_after_sigkill_with_the_same_weights(
    tmp_path, data_folder, killed_mid_run
):
    sets = TINY + [
        "engine=fast",
        "batch=3",
        "train.images=600",
        "train.epochs=2",
        "checkpoint_minutes=0",
    ]
    runner.run("fig4_spiking", sets, tmp_path / "whole", data=str(data_folder))
    ckpt = tmp_path / "cut" / "fa.npz"

    def mid_run():
        return ckpt.exists() and 0 < load_checkpoint(ckpt)[2]["images_seen"] < 1200

    killed_mid_run(
        ["fig4_spiking", *[a for s in sets for a in ("--set", s)], "--out", str(tmp_path / "cut")],
        mid_run,
    )
    runner.run("fig4_spiking", sets, tmp_path / "cut", data=str(data_folder), resume=True)
    _, whole, meta_w = load_checkpoint(tmp_path / "whole" / "fa.npz")
    _, cut, meta_c = load_checkpoint(ckpt)
    for k in whole:
        np.testing.assert_array_equal(whole[k], cut[k], err_msg=k)
    assert meta_w["curve"] == meta_c["curve"]


def test_resume_needs_an_earlier_run(tmp_path, capsys):
    assert main(["run", "fig4_spiking", "--resume", "--out", str(tmp_path / "nothing")]) == 2
    assert "--resume needs" in capsys.readouterr().err
