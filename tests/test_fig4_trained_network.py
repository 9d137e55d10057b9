"""A tiny trained spiking run: its summary and checkpoints, and the evaluate, traces and export
commands on them."""

import json

import numpy as np
import pytest
from spiking_tiny import TINY

from spikefa import runner
from spikefa.cli import main
from spikefa.spiking.spec import (
    load_checkpoint,
    save_checkpoint,
)
from spikefa.spiking.training import FastRunner


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
