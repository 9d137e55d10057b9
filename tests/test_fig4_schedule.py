"""The declared schedule of a spiking run: its phases, rates, frozen layers and stopping rule, and
the selection on validation (a search never reads the test set)."""

import json

import numpy as np
import pytest
from spiking_tiny import TINY

from spikefa import runner
from spikefa.cli import main
from spikefa.spiking.spec import (
    SpikingSpec,
    eta_in_force,
    initial_state,
    load_checkpoint,
)


def test_schedule_phases_set_rates_per_layer_presentation_and_gate(tmp_path, data_folder):
    """Two declared phases: the second freezes the middle layer and shows each image for 6 steps."""
    recipe = tmp_path / "two_phases.toml"
    recipe.write_text(
        'experiment = "fig4_spiking"\nrecipe = "two_phases"\n'
        "[[schedule]]\nepochs = 1\neta = 0.01\n"
        "[[schedule]]\nepochs = 1\neta = [0.02, 0.0, 0.01]\nsteps_per_image = 6\nplasticity_delay = 2\n"
    )
    sets = TINY + ["engine=fast", "batch=3", "keep_snapshots=true"]
    runner.run(str(recipe), sets, tmp_path / "r", data=str(data_folder))
    spec, end, meta = load_checkpoint(tmp_path / "r" / "fa.npz")
    _, mid, _ = load_checkpoint(tmp_path / "r" / "snapshots" / "fa-00000120.npz")
    assert (
        spec.steps_per_image == 6
        and spec.layer_eta(spec.eta, 2) == 0
        and spec.layer_eta(spec.eta, 1) == 0.02
    )
    np.testing.assert_array_equal(end["w2"], mid["w2"])
    assert np.abs(end["w1"] - mid["w1"]).max() > 0 and np.abs(end["w3"] - mid["w3"]).max() > 0
    assert meta["config"]["name"] == "two_phases" and meta["phase"] == 2
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert (
        summary["results"]["fa"]["train_steps"] == 120 * 4 + 120 * 6
        and summary["results"]["fa"]["phases"] == 2
    )
    config_toml = (tmp_path / "r" / "config.toml").read_text()
    assert (
        config_toml.count("[[schedule]]") == 2
    )  # the resolved config declares the schedule it ran


def test_frozen_layers_keep_their_initial_weights(tmp_path, data_folder):
    """The control of the mechanism: hidden layers frozen, only the output layer learns."""
    runner.run(
        "fig4_spiking",
        TINY + ["engine=fast", "batch=3", "frozen_layers=[1,2]"],
        tmp_path / "r",
        data=str(data_folder),
    )
    spec, end, meta = load_checkpoint(tmp_path / "r" / "fa.npz")
    start = initial_state(spec)
    for k in ("w1", "w2", "bias1", "bias2"):
        np.testing.assert_array_equal(end[k], start[k])
    assert np.abs(end["w3"] - start["w3"]).max() > 0 and meta["recipe"]["schedule"][0]["eta"] == [
        0.0,
        0.0,
        0.01,
    ]
    assert (
        main(
            [
                "run",
                "fig4_spiking",
                *[a for kv in TINY + ["frozen_layers=[4]"] for a in ("--set", kv)],
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )  # the tiny network has 3 weight layers


def test_bad_schedule_phase_exits_2(tmp_path, capsys):
    for phase, word in (
        ("epochs = 1", "at least epochs and eta"),
        ("epochs = 1\neta = [0.1, 0.1]", "one per weight layer"),
        ("epochs = 1\neta = 0.1\nbatch = 3", "unknown keys"),
        ("epochs = 1\neta = 0.1\nplasticity_delay = 10", "plasticity_delay"),
    ):
        bad = tmp_path / "bad.toml"
        bad.write_text(f'experiment = "fig4_spiking"\n[[schedule]]\n{phase}\n')
        assert main(["run", str(bad), "--out", str(tmp_path / "r")]) == 2
        assert word in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_eta_schedule_halves_the_rate():
    from spikefa.config import eta_at

    cfg = {"eta": 0.01, "train": {"eta_halving_epochs": 2.0}}
    assert (
        eta_at(cfg, 0) == 0.01
        and eta_at(cfg, 2) == pytest.approx(0.005)
        and eta_at(cfg, 3) == pytest.approx(0.01 * 0.5**1.5)
    )
    assert eta_at({"eta": 0.01, "train": {"eta_halving_epochs": 0.0}}, 5) == 0.01


def test_eta_override_scales_the_weight_change():
    """One step from the same state and uniforms: half the rate gives exactly half the change."""
    from spikefa.spiking import fast
    from spikefa.spiking.spec import initial_state

    spec = SpikingSpec(sizes=(6, 5, 3), reading="tau", steps_per_image=1, eta=0.05, dtype="float64")
    rng = np.random.default_rng(0)
    images, labels = rng.random((1, 1, 6)), rng.integers(0, 3, (1, 1))
    uniforms = [rng.random((1, 1, n)) for n in (6, 5)]
    changes = []
    for eta in (None, 0.025):
        state = fast.batch_state(spec, initial_state(spec), 1)
        fast.run(spec, state, images, labels, uniforms=uniforms, eta=eta)
        changes.append(state["w2"] - initial_state(spec)["w2"])
    assert np.abs(changes[0]).max() > 0
    np.testing.assert_allclose(changes[1], changes[0] / 2, rtol=1e-9, atol=1e-15)


def test_eta_in_force_follows_the_declared_phase():
    """What `spikefa traces --learn` learns at: the rate of the phase a checkpoint was saved in."""
    phases = [
        {"epochs": 1.0, "eta": [0.01, 0.01], "eta_halving_epochs": 0.0},
        {"epochs": 2.0, "eta": [0.04, 0.02], "eta_halving_epochs": 1.0},
    ]
    meta = {"recipe": {"schedule": phases}, "phase": 2, "images_seen": 250, "epoch": 2.5}
    spec = SpikingSpec(sizes=(6, 5, 3), eta=0.04, eta_scale=(1.0, 0.5))
    assert eta_in_force(spec, meta) == pytest.approx(0.04 * 0.5**1.5)
    assert eta_in_force(spec, meta, at_start=True) == 0.01


def test_a_declared_stopping_rule_ends_the_recipe_and_the_test_set_is_read_once(
    tmp_path, data_folder, monkeypatch
):
    """With patience_epochs = 1, a run whose second validation is no better than its first stops there:
    it has finished, its checkpoints say so, and the test set is read once, by the selected network;
    resuming the finished run reads it no more."""
    from spikefa.spiking import loop

    tiny = [
        "sizes=[784,12,10]",
        "steps_per_image=2",
        "train.images=40",
        "validation.images=20",
        "test.images=20",
        "chunk_images=20",
        "engine=fast",
        "train.epochs=6",
        "train.patience_epochs=1",
        "eta=0",
    ]  # nothing learns: no measurement is much better than another
    tests = []
    real = loop.evaluate
    monkeypatch.setattr(
        loop,
        "evaluate",
        lambda r, s, x, y, **kw: (
            (tests.append(len(x)) if kw.get("progress") else None) or real(r, s, x, y, **kw)
        ),
    )
    out = tmp_path / "run"
    runner.run("fig4_spiking", tiny, out, data=str(data_folder))
    summary = json.loads((out / "summary.json").read_text())["results"]["fa"]
    _, _, best = load_checkpoint(out / "fa-best.npz")
    _, _, latest = load_checkpoint(out / "fa.npz")
    stop = best["test_read_at_epoch"] + 1  # one epoch with no new best after the selected one
    assert (
        summary["finished"]
        and summary["epochs_trained"] == stop < 6
        and summary["epochs_declared"] == 6
    )
    assert best["finished"] and best["test_error"] == summary["test_error"]
    assert latest["finished"] and "test_error" not in latest and latest["epochs_trained"] == stop
    assert tests == [20]
    runner.run("fig4_spiking", tiny, out, data=str(data_folder), resume=True)
    assert tests == [20]


def test_search_candidates_never_read_the_test_set_and_are_ranked_on_validation(
    tmp_path, data_folder
):
    tiny = [
        "sizes=[784,12,10]",
        "steps_per_image=2",
        "train.images=40",
        "validation.images=20",
        "chunk_images=20",
        "train.epochs=1",
    ]
    errors = {}
    for eta in (0.0, 0.05):
        out = runner.run(
            "fig4_search",
            [*tiny, f"eta={eta}"],
            tmp_path / "search" / f"eta-{eta}",
            data=str(data_folder),
        )
        fa = json.loads((out / "summary.json").read_text())["results"]["fa"]
        assert "test_error" not in fa and fa["validation_error"] is not None and fa["finished"]
        assert [h["layer"] for h in fa["health"]] == [1, 2] and all(
            0 <= h["saturated"] <= 1 for h in fa["health"]
        )
        errors[eta] = fa["validation_error"]
    assert (
        main(["report", "--search", str(tmp_path / "search"), "--out", str(tmp_path / "table.md")])
        == 0
    )
    rows = [
        r
        for r in (tmp_path / "table.md").read_text().splitlines()
        if r.startswith("| ") and "rank" not in r
    ]
    assert len(rows) == 2 and "test" not in (tmp_path / "table.md").read_text()
    etas = [r.split(" | ")[2] for r in rows]  # the η column, best first
    assert etas == [f"{e:g}" for e in sorted(errors, key=lambda e: (errors[e], e))]
