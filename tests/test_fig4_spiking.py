"""The spiking experiment's config and engines: chunk sizes, checks of bad values, the switches in
the recipe, divergence and the CuPy backend."""

import json

import numpy as np
import pytest
from spiking_tiny import TINY

from spikefa import runner
from spikefa.bench import stream_step_flops
from spikefa.cli import main
from spikefa.experiments.fig4_spiking import chunk_size
from spikefa.spiking.spec import (
    SpikingSpec,
    initial_state,
    load_checkpoint,
)


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
