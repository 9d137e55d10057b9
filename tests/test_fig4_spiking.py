"""The spiking experiment end to end on a tiny network, and the evaluate / traces commands."""

import json

import numpy as np
import pytest

from spikefa import runner
from spikefa.bench import stream_step_flops
from spikefa.cli import main
from spikefa.experiments.fig4_spiking import chunk_size
from spikefa.spiking.spec import (
    SpikingSpec,
    eta_in_force,
    initial_state,
    load_checkpoint,
    save_checkpoint,
)
from spikefa.spiking.training import FastRunner

TINY = [
    "sizes=[784,24,16,10]",
    "steps_per_image=4",
    "train.images=120",
    "validation.images=60",
    "test.images=60",
    "chunk_images=40",
    "eta=0.01",
    'dtype="float64"',
]


@pytest.fixture(scope="module", params=["brian2", "fast"])
def tiny_run(request, tmp_path_factory, data_folder):
    out = tmp_path_factory.mktemp("fig4") / request.param
    extra = (
        ["engine=brian2", "device=numpy"]
        if request.param == "brian2"
        else ["engine=fast", "batch=4"]
    )
    runner.run(
        "fig4_spiking",
        TINY
        + extra
        + ['algorithms=["fa","bp"]', "validation.every_images=80", "keep_snapshots=true"],
        out,
        data=str(data_folder),
    )
    return request.param, out, json.loads((out / "summary.json").read_text())


def test_summary_names_reading_and_steps(tiny_run):
    engine, out, summary = tiny_run
    assert set(summary["results"]) == {"fa", "bp"}
    r = summary["results"]["fa"]
    assert 0 <= r["test_error"] <= 1 and r["reading"] == "tau" and r["steps_per_image"] == 4
    assert r["train_images"] == 120 and r["test_images"] == 60 and r["train_steps"] == 480
    assert r["engine"] == engine and (engine == "fast" or r["ms_per_step"] > 0)
    assert (
        0 <= r["validation_error"] <= 1
        and r["validation_images"] == 60
        and r["selected_on"] == "validation"
    )
    assert r["selected_images"] in (80, 120) and 0 <= r["angle_deg_mod1_final"] <= 180
    assert (out / "figures" / "validation_error.png").exists()


def test_checkpoint_is_written_and_loads(tiny_run):
    _, out, summary = tiny_run
    spec, state, meta = load_checkpoint(out / "fa.npz")
    assert spec.sizes == (784, 24, 16, 10) and spec.feedback == "fa" and meta["images_seen"] == 120
    _, _, best = load_checkpoint(
        out / "fa-best.npz"
    )  # the network selected on validation, tested once
    assert (
        best["selected_on"] == "validation"
        and best["test_error"] == summary["results"]["fa"]["test_error"]
    )
    assert (
        best["validation_error"] == min(c[1] for c in meta["curve"])
        and best["split"]["validation_images"] == 60
    )
    assert (
        best["config"]["experiment"] == "fig4_spiking"
        and best["recipe"]["schedule"][0]["eta"] == [0.01] * 3
    )
    snapshots = sorted(p.name for p in (out / "snapshots").iterdir())
    assert snapshots == ["bp-00000080.npz", "bp-00000120.npz", "fa-00000080.npz", "fa-00000120.npz"]
    assert load_checkpoint(out / "snapshots" / "fa-00000080.npz")[2]["images_seen"] == 80
    # the latest state says it is the selected network exactly when its measurement was the best so far
    latest_is_best = meta["curve"][-1][1] < min(c[1] for c in meta["curve"][:-1])
    assert (meta.get("selected_on") == "validation") == latest_is_best
    spec_bp, state_bp, _ = load_checkpoint(out / "bp.npz")
    np.testing.assert_array_equal(state_bp["B2"], state_bp["w3"].T)


def test_evaluate_with_both_engines(tiny_run, data_folder, capsys):
    _, out, _ = tiny_run
    for engine in (["--engine", "fast"], ["--engine", "brian2", "--device", "numpy"]):
        assert (
            main(
                [
                    "evaluate",
                    str(out / "fa.npz"),
                    *engine,
                    "--n-test",
                    "30",
                    "--json",
                    "--data",
                    str(data_folder),
                ]
            )
            == 0
        )
        result = json.loads(capsys.readouterr().out)
        assert (
            result["n_test"] == 30
            and 0 <= result["test_error"] <= 1
            and result["steps_per_image"] == 4
        )


def test_evaluate_on_the_held_out_validation_images(tiny_run, data_folder, capsys, tmp_path):
    _, out, _ = tiny_run
    assert (
        main(
            [
                "evaluate",
                str(out / "fa.npz"),
                "--split",
                "validation",
                "--n-test",
                "60",
                "--json",
                "--data",
                str(data_folder),
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert (
        result["split"] == "validation"
        and result["n_validation"] == 60
        and 0 <= result["validation_error"] <= 1
    )
    assert "test_error" not in result
    spec, state, _ = load_checkpoint(out / "fa.npz")
    save_checkpoint(tmp_path / "no_split.npz", spec, state, {})
    assert (
        main(
            [
                "evaluate",
                str(tmp_path / "no_split.npz"),
                "--split",
                "validation",
                "--data",
                str(data_folder),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no validation images" in err


def test_evaluate_with_another_presentation_length(tiny_run, data_folder, capsys):
    _, out, _ = tiny_run
    args = ["evaluate", str(out / "fa.npz"), "--n-test", "20", "--json", "--data", str(data_folder)]
    assert main(args + ["--steps-per-image", "7"]) == 0
    assert json.loads(capsys.readouterr().out)["steps_per_image"] == 7
    assert main(args + ["--steps-per-image", "0"]) == 2
    assert "steps_per_image must be" in capsys.readouterr().err


def test_evaluate_repeats_average_fresh_spike_draws(tiny_run, data_folder, capsys):
    _, out, _ = tiny_run
    args = ["evaluate", str(out / "fa.npz"), "--n-test", "40", "--json", "--data", str(data_folder)]
    assert main(args) == 0
    once = json.loads(capsys.readouterr().out)["test_error"]
    assert main(args + ["--repeats", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (
        len(result["test_errors"]) == 3 and result["test_errors"][0] == once
    )  # the first draw is the default one
    assert result["test_error"] == pytest.approx(np.mean(result["test_errors"]))
    assert result["test_error_sd"] == pytest.approx(np.std(result["test_errors"], ddof=1))
    for bad in (["--repeats", "0"], ["--repeats", "2", "--engine", "brian2"]):
        assert main(args + bad) == 2
        assert "--repeats must be" in capsys.readouterr().err
    # what makes repeats worth averaging: one runner, the same weights, the same images — other spikes
    spec, state, _ = load_checkpoint(out / "fa.npz")
    fast_runner = FastRunner(spec, 10, batch=2)
    images = np.random.default_rng(0).random((10, spec.sizes[0]), dtype=np.float32)
    scores = [
        fast_runner.run(fast_runner.prepare(state), images, np.zeros(10, int), learn=False)[1]
        for _ in range(2)
    ]
    assert not np.array_equal(*scores)


def test_traces_records_psp_and_modulator(tiny_run, data_folder, tmp_path):
    _, out, _ = tiny_run
    assert (
        main(
            [
                "traces",
                str(out / "fa.npz"),
                "--out",
                str(tmp_path / "tr"),
                "--steps",
                "12",
                "--neurons",
                "0",
                "5",
                "--device",
                "numpy",
                "--data",
                str(data_folder),
            ]
        )
        == 0
    )
    tr = np.load(tmp_path / "tr" / "traces.npz")
    assert (
        tr["psp"].shape == tr["modulator"].shape == (4, 12)
    )  # 2 neurons × 2 hidden layers, 12 steps
    assert tr["neurons"].tolist() == [[1, 0], [1, 5], [2, 0], [2, 5]]
    assert tr["t"].tolist() == list(range(12)) and tr["image_onsets"].tolist() == [0, 4, 8]
    assert np.ptp(tr["psp"]) > 0 and np.ptp(tr["modulator"]) > 0
    assert (tmp_path / "tr" / "traces.png").stat().st_size > 10_000


def test_traces_refuses_missing_neurons_and_bad_checkpoint(tiny_run, data_folder, tmp_path, capsys):
    _, out, _ = tiny_run
    assert (
        main(
            [
                "traces",
                str(out / "fa.npz"),
                "--neurons",
                "99",
                "--device",
                "numpy",
                "--out",
                str(tmp_path / "x"),
                "--data",
                str(data_folder),
            ]
        )
        == 2
    )
    assert "neurons [99]" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"junk")
    assert main(["evaluate", str(bad)]) == 2
    assert "not a spikefa checkpoint" in capsys.readouterr().err


def test_standalone_chunks_divide_train_and_test():
    cfg = {"chunk_images": 1000, "engine": "brian2", "device": "cpp_standalone"}
    assert chunk_size(cfg, 20000, 1000) == 1000
    assert chunk_size(cfg, 60000, 10000) == 1000
    assert chunk_size(cfg, 1200, 900) == 300
    assert chunk_size({**cfg, "device": "runtime"}, 1200, 900) == 1000


def test_one_stream_step_of_the_full_network_is_about_32_mflop():
    assert stream_step_flops(SpikingSpec()) == pytest.approx(31.8e6, rel=0.01)


def test_bad_spiking_config_exits_2(capsys, tmp_path):
    for item, word in (
        ("engine=gpu", "engine"),
        ('algorithms=["sgd"]', "algorithms"),
        ("sizes=[784,10]", "sizes"),
        ('reading="both"', "reading"),
        ("device=quantum", "device"),
        ("batch=0", "batch"),
        ("feedback_delay=11", "feedback_delay must be in 0..steps_per_image (10), got 11"),
        ('error_coding="bursts"', "error_coding must be one of analog, spikes"),
    ):
        assert main(["run", "fig4_spiking", "--set", item, "--out", str(tmp_path / "r")]) == 2
        assert word in capsys.readouterr().err
    spiking_bp = ["--set", 'algorithms=["fa","bp"]', "--set", 'error_coding="spikes"']
    assert main(["run", "fig4_spiking", *spiking_bp, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "feedback bp changes B at every step" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_biology_switches_enter_the_recipe_only_when_set():
    """Runs and checkpoints made before the switches existed keep their identity."""
    from spikefa import config
    from spikefa.spiking.recipe import recipe
    from spikefa.spiking.switches import SWITCHES as KEYS

    plain = config.resolve("fig4_spiking")
    assert not set(KEYS) & set(recipe(plain, "fa")["spec"])
    assert all(plain[k] == SpikingSpec().to_dict()[k] for k in KEYS)  # the spec's defaults
    spec = recipe(
        config.resolve("fig4_spiking", ['error_coding="spikes"', "feedback_delay=2"]), "fa"
    )
    assert spec["spec"]["error_coding"] == "spikes" and spec["spec"]["feedback_delay"] == 2
    assert "forward_delay" not in spec["spec"] and "dale" not in spec["spec"]


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


def test_divergence_exits_3_naming_layer_and_step(tmp_path, data_folder, capsys):
    sets = TINY + ["engine=fast", 'dtype="float32"', "eta=1e38"]
    assert (
        main(
            [
                "run",
                "fig4_spiking",
                *[a for s in sets for a in ("--set", s)],
                "--out",
                str(tmp_path / "r"),
                "--data",
                str(data_folder),
            ]
        )
        == 3
    )
    err = capsys.readouterr().err
    assert "NaN/inf in w1 by step 160" in err
    assert not (tmp_path / "r" / "summary.json").exists()


def test_resume_needs_an_earlier_run(tmp_path, capsys):
    assert main(["run", "fig4_spiking", "--resume", "--out", str(tmp_path / "nothing")]) == 2
    assert "--resume needs" in capsys.readouterr().err


def test_export_float16_loads_back_as_float32(tiny_run, tmp_path, capsys):
    _, out, _ = tiny_run
    assert main(["export", str(out / "fa.npz"), str(tmp_path / "small.npz"), "--float16"]) == 0
    spec, full, _ = load_checkpoint(out / "fa.npz")
    spec16, small, meta = load_checkpoint(tmp_path / "small.npz")
    assert (
        spec16 == spec and small["w1"].dtype == np.dtype(spec.dtype) and small["u1"].shape == (24,)
    )
    np.testing.assert_allclose(small["w2"], full["w2"], rtol=1e-3, atol=1e-4)
    assert not small["u1"].any() and meta["random_state"] is None


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


@pytest.mark.gpu
def test_cupy_backend_trains_end_to_end(cupy, tmp_path, data_folder):
    """The experiment on the GPU: checkpoints come back as NumPy arrays that the CPU engines load."""
    out = tmp_path / "gpu"
    runner.run(
        "fig4_spiking",
        TINY + ["engine=fast", 'backend="cupy"', "batch=4", 'algorithms=["fa","bp"]'],
        out,
        data=str(data_folder),
    )
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["results"]["fa"]["backend"] == "cupy"
        and 0 <= summary["results"]["fa"]["test_error"] <= 1
    )
    spec, state, meta = load_checkpoint(out / "fa.npz")
    assert meta["images_seen"] == 120 and all(isinstance(v, np.ndarray) for v in state.values())
    start = initial_state(spec)
    assert np.abs(state["w1"] - start["w1"]).max() > 1e-4 and np.array_equal(
        state["B1"], start["B1"]
    )
    _, state_bp, _ = load_checkpoint(out / "bp.npz")
    np.testing.assert_array_equal(state_bp["B2"], state_bp["w3"].T)
    assert (
        main(
            [
                "evaluate",
                str(out / "fa.npz"),
                "--engine",
                "fast",
                "--n-test",
                "30",
                "--data",
                str(data_folder),
            ]
        )
        == 0
    )


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


def test_evaluate_validation_scores_the_held_out_images_not_the_measured_subset(
    tmp_path, data_folder, capsys, monkeypatch
):
    """A run that measures 20 of its 10,000 held-out images: `--split validation` scores the first
    of the 10,000 (the last training images), in new checkpoints and in ones that predate
    `split.holdout_images` alike."""
    from spikefa.data import load_images
    from spikefa.spiking import training

    out = tmp_path / "run"
    tiny = [
        "sizes=[784,20,10]",
        "steps_per_image=2",
        "train.images=40",
        "validation.images=20",
        "test.images=20",
        "chunk_images=20",
        "engine=fast",
    ]
    runner.run("fig4_spiking", tiny, out, data=str(data_folder))
    scored = []
    real = training.evaluate
    monkeypatch.setattr(
        training, "evaluate", lambda r, s, x, y, **kw: scored.append(x) or real(r, s, x, y, **kw)
    )
    expected = load_images("mnist", data_folder).holdout(10000).val_x[:20]
    spec, state, meta = load_checkpoint(out / "fa.npz")
    assert meta["split"]["validation_images"] == 20 and meta["split"]["holdout_images"] == 10000
    old = {**meta, "split": {k: v for k, v in meta["split"].items() if k != "holdout_images"}}
    save_checkpoint(tmp_path / "old.npz", spec, state, old)
    for ckpt in (out / "fa.npz", tmp_path / "old.npz"):
        argv = [
            "evaluate",
            str(ckpt),
            "--split",
            "validation",
            "--n-test",
            "20",
            "--json",
            "--data",
            str(data_folder),
        ]
        assert main(argv) == 0
        assert json.loads(capsys.readouterr().out)["n_validation"] == 20
        np.testing.assert_array_equal(scored.pop(), expected.astype(spec.dtype))


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
