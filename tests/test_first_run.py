"""What a newcomer sees: the summary table of `spikefa run`, and a clean failure when data is missing."""

import json
import re
import urllib.error
import urllib.request

import numpy as np
import pytest

from spikefa.cli import main
from spikefa.runner import summary_table


def test_run_ends_with_a_table_of_every_algorithm(tmp_path, capsys):
    assert (
        main(["run", "fig2_linear", "--set", "train.examples=300", "--out", str(tmp_path / "r")])
        == 0
    )
    out = capsys.readouterr().out
    for algo in ("shallow", "node_perturbation", "bp", "fa"):
        assert re.search(rf"^\W*{algo}\b", out, re.M), out
    assert "test NSE" in out and out.strip().endswith(str(tmp_path / "r"))


def test_table_shows_validation_and_test_error_angle_and_time(tmp_path):
    summary = {
        "experiment": "fig3_mnist",
        "wall_seconds": 1234.5,
        "results": {
            "bp": {
                "test_error": 0.0241,
                "validation_error": 0.019,
                "train_seconds_per_run": 300.0,
                "runs": 2,
            },
            "fa": {
                "test_error": 0.021,
                "validation_error": 0.02,
                "angle_deg_final": 41.03,
                "train_seconds_per_run": 310.0,
                "runs": 2,
            },
        },
    }
    header, bp, fa, last = summary_table(summary, tmp_path).splitlines()
    assert header.split()[:5] == ["algorithm", "validation", "error", "test", "error"]
    assert bp.split() == ["bp", "1.90%", "2.41%", "–", "600", "s"]
    assert fa.split() == ["fa", "2.00%", "2.10%", "41.0°", "620", "s"]
    assert "1,234 s" in last and last.endswith(str(tmp_path))


def test_no_data_offline_is_one_line_naming_every_way_to_give_it_and_leaves_no_folder(
    tmp_path, monkeypatch, capsys
):
    def offline(*args, **kw):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.delenv("SPIKEFA_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    out = tmp_path / "results" / "nodata"
    assert main(["run", "fig3_mnist", "--set", "runs=1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert all(
        w in err for w in ("SPIKEFA_DATA", "--data", str(tmp_path / "home" / ".cache" / "spikefa"))
    )
    assert not (tmp_path / "results").exists()  # nor the parent folder it created


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    from spikefa.spiking.spec import SpikingSpec, initial_state, save_checkpoint

    spec = SpikingSpec(sizes=(784, 24, 16, 10), steps_per_image=4, dtype="float64")
    return save_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "small.npz",
        spec,
        initial_state(spec),
        {"dataset": "mnist"},
    )


def test_traces_shows_progress_and_writes_no_empty_folder(
    small_checkpoint, data_folder, tmp_path, capsys
):
    out = tmp_path / "tr"
    assert (
        main(
            [
                "traces",
                str(small_checkpoint),
                "--out",
                str(out),
                "--steps",
                "12",
                "--device",
                "numpy",
                "--data",
                str(data_folder),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "recording 12 steps" in captured.err and "drawing" in captured.err
    assert captured.out.strip() == str(out)
    assert sorted(p.name for p in out.iterdir()) == ["traces.npz", "traces.png"]
    assert (
        main(
            [
                "traces",
                str(small_checkpoint),
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
    assert not (tmp_path / "x").exists()


def test_raster_draws_single_spikes_of_a_subset_and_outputs_stay_inside_the_frame():
    from spikefa import plotting
    from spikefa.spiking.traces import draw_raster, plot_traces, raster_units

    rng = np.random.default_rng(0)
    steps, sizes = 40, (784, 300, 10)
    spikes = [
        (t, l, i)
        for t in range(steps)
        for l, n in enumerate(sizes[:-1])
        for i in range(n)
        if rng.random() < 0.2
    ]
    t_, layer, index = map(np.array, zip(*spikes))
    tr = {
        "t": np.arange(steps, dtype=float),
        "psp": rng.normal(size=(2, steps)),
        "modulator": rng.normal(size=(2, steps)),
        "neurons": np.array([[1, 0], [1, 1]]),
        "image_onsets": np.array([0.0, 20.0]),
        "labels": np.array([3, 7]),
        "y": np.eye(10)[np.arange(steps) % 10],
        "spike_t": t_.astype(float),
        "spike_layer": layer,
        "spike_index": index,
    }
    assert len(raster_units(tr, 1, 25)) == 25 and len(raster_units(tr, 0, 25)) == 25
    fig, ax = plotting.new_axes()
    draw_raster(ax, tr, n=25)
    ticks = [
        seg for c in ax.collections for seg in c.get_segments()
    ]  # one per spike of the chosen units
    shown = sum(np.isin(index[layer == l], raster_units(tr, l, 25)).sum() for l in (0, 1))
    assert len(ticks) == shown and all(
        abs(s[1, 1] - s[0, 1]) < 1 for s in ticks
    )  # each within its own row
    fig = plot_traces(tr)
    outputs = fig.axes[-1]
    low, high = outputs.get_ylim()
    assert low < 0 and high > 1  # rates of exactly 0 or 1 are not drawn on the frame
    plotting.close(fig)


def test_diagnose_reports_fit_saturation_and_alignment(small_checkpoint, data_folder, capsys):
    assert (
        main(
            [
                "diagnose",
                str(small_checkpoint),
                "--images",
                "40",
                "--json",
                "--data",
                str(data_folder),
            ]
        )
        == 0
    )
    d = json.loads(capsys.readouterr().out)
    assert d["images"] == 40 and all(
        0 <= d[k] <= 1 for k in ("train_error", "validation_error", "validation_error_4x_longer")
    )
    assert not any("test" in k for k in d)  # the test set is never read
    assert [layer["layer"] for layer in d["layers"]] == [1, 2, 3]
    assert all(
        0 <= layer["saturated"] <= 1 and layer["w_rms_growth"] == pytest.approx(1.0)
        for layer in d["layers"]
    )
    assert (
        0 <= d["layers"][0]["angle_deg_B_vs_wT"] <= 180
        and "angle_deg_B_vs_wT" not in d["layers"][2]
    )
    assert main(["diagnose", str(small_checkpoint), "--images", "0"]) == 2
