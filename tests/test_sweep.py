"""`spikefa sweep`: planning, statistics, and real Dask clusters (a LocalCluster started by the sweep,
and one started here and reached by address)."""

import json

import numpy as np
import pytest
from scipy import stats

from spikefa.cli import main
from spikefa.errors import SpikefaError
from spikefa.sweeps import candidates, client_for, grid, plan, summarise, sweep

SHORT = ["train.examples=1500", "train.eval_every=500", "test.points=200"]


def test_a_key_given_twice_is_a_grid_axis():
    points = grid(["eta=0.1", "seed=3", "eta=0.2", "runs=2", "runs=4"])
    assert points == [
        ["eta=0.1", "seed=3", "runs=2"],
        ["eta=0.1", "seed=3", "runs=4"],
        ["eta=0.2", "seed=3", "runs=2"],
        ["eta=0.2", "seed=3", "runs=4"],
    ]


def test_replicates_get_distinct_seeds_and_one_network_each(tmp_path):
    runs = plan("fig3_deep", ["seed=10"], 3, tmp_path)
    assert [r["seed"] for r in runs] == [10, 11, 12]
    assert all("runs=1" in r["run_sets"] for r in runs)
    strided = plan(
        "fig3_deep", ["runs=4"], 3, tmp_path
    )  # 4 networks per run: seeds must not overlap
    assert [r["seed"] for r in strided] == [0, 4, 8]
    assert (
        plan("fig2_linear", [], 2, tmp_path)[1]["folder"]
        == tmp_path / "runs" / "default" / "seed-1"
    )


@pytest.mark.parametrize(
    "sets, seeds, word",
    [(["eta=-1"], 2, "eta"), (["no_such_key=1"], 2, "unknown config key"), ([], 0, "--seeds")],
)
def test_bad_sweeps_stop_before_anything_runs(tmp_path, capsys, sets, seeds, word):
    with pytest.raises(SpikefaError, match=word):
        plan("fig3_deep", sets, seeds, tmp_path)
    argv = ["sweep", "fig3_deep", "--seeds", str(seeds), "--out", str(tmp_path / "s")] + [
        a for s in sets for a in ("--set", s)
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "s").exists()


def test_each_network_of_a_run_of_several_is_one_value(tmp_path):
    runs = []
    for seed, nses in ((0, [0.4, 0.6]), (1, [0.7, 0.9])):
        folder = tmp_path / f"seed-{seed}"
        folder.mkdir()
        result = {"test_nse": float(np.mean(nses)), "test_nses": nses, "runs": 2}
        (folder / "summary.json").write_text(json.dumps({"results": {"fa4": result}}))
        runs.append(
            {"point": "default", "seed": seed, "folder": folder, "sets": [], "status": "ran"}
        )
    d = summarise("fig3_deep", runs, 2)["points"][0]["metrics"]["fa4"]["test_nse"]
    assert d["values"] == [0.4, 0.6, 0.7, 0.9] and d["n"] == 4


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "sw"
    return out, sweep("fig2_linear", 3, SHORT, out, workers=2, progress=False)


def test_sweep_on_a_local_cluster_summarises_every_run(local_sweep):
    out, summary = local_sweep
    assert summary["ran"] == 3 and summary["failed"] == 0 and summary["exit_code"] == 0
    (point,) = summary["points"]
    finals = {}
    for seed in range(3):
        run = json.loads((out / "runs" / "default" / f"seed-{seed}" / "summary.json").read_text())
        assert run["seed"] == seed
        for algo, r in run["results"].items():
            finals.setdefault(algo, []).append(r["test_nse"])
    for algo, values in finals.items():
        d = point["metrics"][algo]["test_nse"]
        assert d["values"] == values and d["n"] == 3
        assert d["mean"] == pytest.approx(np.mean(values)) and d["sd"] == pytest.approx(
            np.std(values, ddof=1)
        )
        assert d["sem"] == pytest.approx(d["sd"] / np.sqrt(3))
    t, a, b = point["tests"]["test_nse"]["shallow_vs_bp"], finals["shallow"], finals["bp"]
    assert t["mean_difference"] == pytest.approx(np.mean(a) - np.mean(b))
    assert t["student_p"] == pytest.approx(stats.ttest_ind(a, b).pvalue)
    assert t["welch_p"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert t["paired_p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert json.loads((out / "sweep.json").read_text())["points"][0]["metrics"] == point["metrics"]
    assert (
        "test_nse" in (out / "sweep.csv").read_text()
        and (out / "figures" / "sweep_test_nse.png").stat().st_size > 1000
    )


def test_a_restarted_sweep_reuses_finished_runs(local_sweep, capsys):
    out, first = local_sweep
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/summary.json")}
    assert (
        main(
            ["sweep", "fig2_linear", "--seeds", "4", "--out", str(out), "--workers", "1"]
            + [a for s in SHORT for a in ("--set", s)]
        )
        == 0
    )
    assert "1 runs done now, 3 reused, 0 failed" in capsys.readouterr().out
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["points"][0]["metrics"]["fa"]["test_nse"]["n"] == 4


def test_sweep_on_a_running_scheduler_with_a_grid_and_a_failing_point(tmp_path, capsys):
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        argv = [
            "sweep",
            "fig2_linear",
            "--seeds",
            "2",
            "--scheduler",
            cluster.scheduler_address,
            "--out",
            str(tmp_path / "sw"),
            "--set",
            "lr.bp=0.01",
            "--set",
            "lr.bp=1000.0",
            "--set",
            'algorithms=["bp"]',
        ] + [a for s in SHORT for a in ("--set", s)]
        assert main(argv) == 3  # lr.bp = 1000 diverges: the sweep goes on and reports it
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    assert last.startswith("spikefa: error: 2 runs failed") and "bp diverged: NaN/inf in W0" in last
    summary = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    ok, bad = summary["points"]
    assert ok["name"] == "lr.bp-0.01" and ok["metrics"]["bp"]["test_nse"]["n"] == 2
    assert [r["status"] for r in bad["runs"]] == ["failed", "failed"] and not bad["metrics"]


def test_identical_replicates_have_sd_0_and_no_p_value(recwarn):
    from spikefa.sweeps import describe, t_tests

    d = describe([0.1, 0.1, 0.1])
    assert d["sd"] == 0.0 and d["sem"] == 0.0 and d["mean"] == 0.1
    same = t_tests([0.1] * 3, [0.1] * 3)
    assert (
        same["mean_difference"] == 0.0
        and same["student_p"] is same["welch_p"] is same["paired_p"] is None
    )
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    a, b = [0.1, 0.1, 0.1], [0.2, 0.3, 0.2]  # one group constant: the tests are still defined
    t = t_tests(a, b)
    assert t["student_p"] == pytest.approx(stats.ttest_ind(a, b).pvalue)
    assert t["welch_p"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)


def test_sweep_without_dask_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed → ImportError
    assert (
        main(
            ["sweep", "fig2_linear", "--seeds", "1", "--out", str(tmp_path / "s")]
            + [a for s in SHORT for a in ("--set", s)]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'spikefa[sweep]'" in err
    assert not (tmp_path / "s").exists()


def test_a_declared_search_is_a_list_of_candidates(tmp_path):
    search = candidates("fig4_fa")
    assert (None, ["eta=0.004", "feedback_scale=1.0"]) in search
    runs = plan("fig4_search", ["train.epochs=1"], 1, tmp_path, search)
    assert len(runs) == len(search) and len({r["folder"] for r in runs}) == len(search)
    assert runs[6]["folder"].parent.name == "eta-0.004_eta_scale-[0.25,0.5,1.0,1.0]"
    assert all("train.epochs=1" in r["run_sets"] for r in runs)


@pytest.mark.parametrize("text", ["", "[[candidate]]\n", "eta = 1\n"])
def test_a_search_without_candidates_is_one_line_and_exit_2(tmp_path, capsys, text):
    path = tmp_path / "s.toml"
    path.write_text(text)
    argv = ["sweep", "fig4_search", "--seeds", "1", "--candidates", str(path)]
    assert main(argv + ["--out", str(tmp_path / "out")]) == 2
    assert main(argv[:-1] + ["no_such_search"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "[[candidate]]" in err and "fig4_fa" in err
    assert not (tmp_path / "out").exists()


def test_a_labelled_candidate_names_its_folder(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[[candidate]]\nlabel = "slow"\neta = 1e-4\n\n[[candidate]]\neta = 1e-2\n')
    runs = plan("fig4_search", ["batch=10", "batch=20"], 1, tmp_path, candidates(path))
    names = [r["folder"].parent.name for r in runs]
    assert names == ["slow_batch-10", "slow_batch-20", "eta-0.01_batch-10", "eta-0.01_batch-20"]
    assert runs[0]["run_sets"][:2] == ["eta=0.0001", "batch=10"]


def test_a_local_cluster_never_restarts_a_worker_for_a_late_heartbeat():
    # a compiled kernel holding the GIL for minutes delays heartbeats; a restart would kill the run
    client = client_for(None, 1)
    try:
        assert client.cluster.scheduler.worker_ttl is None
    finally:
        client.close()
        client.cluster.close()
