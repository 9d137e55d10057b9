"""The MNIST experiment end to end on a small slice (all algorithms, two runs each)."""

import json

import numpy as np
import pytest

from spikefa import runner
from spikefa.cli import main

SMALL = [
    "train.images=600",
    "test.images=300",
    "train.epochs=2.0",
    "train.eval_every=1.0",
    "runs=2",
    "angle.window=100",
    'algorithms=["bp","fa","sparse_fa","shallow","dfa","sign_symmetric"]',
]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, data_folder):
    out = tmp_path_factory.mktemp("fig3") / "run"
    runner.run("fig3_mnist", SMALL + ["eta=0.03"], out, data=str(data_folder))
    return out, json.loads((out / "summary.json").read_text())


def test_every_algorithm_learns_and_reports(small_run):
    out, summary = small_run
    res = summary["results"]
    assert set(res) == {"bp", "fa", "sparse_fa", "shallow", "dfa", "sign_symmetric"}
    for algo, r in res.items():
        assert len(r["test_errors"]) == 2 and r["runs"] == 2
        assert r["examples_per_s"] > 0
        if algo != "shallow":  # its random hidden layer needs far more examples (and a smaller η)
            assert r["test_error"] < 0.45, algo  # chance is 0.9
    for algo in ("fa", "sparse_fa", "dfa", "sign_symmetric"):
        assert 0 <= res[algo]["angle_deg_final"] <= 90
    assert "angle_deg_w_vs_b_final" in res["fa"]
    assert "angle_deg_final" not in res["bp"] and "angle_deg_final" not in res["shallow"]
    assert 0 <= summary["stats"]["bp_best_epoch"] <= 2
    for f in ("validation_error.png", "angle.png", "receptive_fields.png"):
        assert (out / "figures" / f).stat().st_size > 1000


def test_runs_share_initial_weights_across_algorithms(small_run):
    out, _ = small_run
    curves = np.load(out / "curves.npz")
    # run 0 of every algorithm starts from the same W (sparse FA removes half of the output
    # weights): the same validation error before any update
    first = {
        k: curves[k][0]
        for k in curves.files
        if k.endswith("_run0_validation_error") and "sparse" not in k
    }
    assert len(set(first.values())) == 1, first


def test_metrics_csv_has_a_row_per_evaluation(small_run):
    out, _ = small_run
    lines = (out / "metrics.csv").read_text().strip().splitlines()
    assert (
        lines[0] == "algorithm,run,epoch,examples,validation_error"
    )  # test: read once, at the end
    assert len(lines) - 1 == 6 * 2 * 3  # 6 algorithms × 2 runs × (start + one evaluation per epoch)


def test_validation_is_held_out_and_reported(small_run):
    out, summary = small_run
    assert "validation = 10000" in (out / "config.toml").read_text()
    for algo, r in summary["results"].items():
        assert r["validation_images"] == 10000 and len(r["validation_errors"]) == 2
        assert 0 < r["validation_error"] < 0.9, algo  # measured, and learning shows on it
    assert summary["results"]["bp"]["validation_error"] != summary["results"]["bp"]["test_error"]


def test_no_validation_set_is_recorded_as_such(tmp_path, data_folder):
    sets = RESUMABLE + ["runs=1", 'algorithms=["fa"]', "train.epochs=0.1", "train.validation=0"]
    runner.run("fig3_mnist", sets, tmp_path / "r", data=str(data_folder))
    r = json.loads((tmp_path / "r" / "summary.json").read_text())["results"]["fa"]
    assert r["validation_error"] is None and r["validation_images"] == 0 and r["test_error"] < 0.9


def test_per_algorithm_settings_apply_to_their_algorithm_only(tmp_path, data_folder):
    """FA at a learning rate of 1e-12 stays at its initial error; BP, at the shared one, learns."""
    sets = RESUMABLE + [
        "runs=1",
        "train.epochs=0.2",
        "per_algorithm.fa.eta=1e-12",
        "per_algorithm.fa.eta_layers=[1e-12, 1e-12]",
    ]
    runner.run("fig3_mnist", sets, tmp_path / "r", data=str(data_folder))
    with np.load(tmp_path / "r" / "curves.npz") as z:
        fa, bp = z["fa_run0_validation_error"], z["bp_run0_validation_error"]
    assert abs(fa[-1] - fa[0]) < 0.01 and bp[-1] < bp[0] - 0.15


@pytest.mark.parametrize(
    "item, words",
    [
        ("per_algorithm.fa.epochs=3", "per-algorithm setting"),
        ("per_algorithm.xx.eta=0.1", "not an algorithm"),
        ('per_algorithm.fa.eta="fast"', "per_algorithm.fa.eta"),
        ("per_algorithm.fa.eta=-1", "per_algorithm.fa.eta"),
        ("per_algorithm.fa=3", "per_algorithm.fa"),
        ("eta_layers=[0.1]", "eta_layers"),
        ("feedback_scale_layers=[0.1, 0.2]", "feedback_scale_layers"),
        ("train.validation=-1", "train.validation"),
    ],
)
def test_bad_per_algorithm_and_layer_settings_exit_2(item, words, tmp_path, capsys):
    assert main(["run", "fig3_mnist", "--set", item, "--out", str(tmp_path / "r")]) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_deep_config_names_its_experiment_and_own_settings():
    from spikefa import config
    from spikefa.experiments.fig3_mnist import for_algorithm, validate

    cfg = config.resolve("fig3_mnist_deep")
    validate(cfg)
    assert cfg["experiment"] == "fig3_mnist" and cfg["sizes"] == [784, 1000, 1000, 1000, 10]
    assert cfg["algorithms"] == ["bp", "fa"] and cfg["train"]["validation"] == 10000
    assert (
        for_algorithm(cfg, "fa")["train"]["epochs"] == for_algorithm(cfg, "bp")["train"]["epochs"]
    )


@pytest.mark.parametrize(
    "item, words",
    [
        ("sizes=[784,10]", "sizes"),
        ('algorithms=["fa","xx"]', "algorithms"),
        ('algorithms=["node_perturbation"]', "algorithms"),
        ("sparsity=1.0", "sparsity"),
        ("runs=0", "runs"),
        ('hidden="relu"', "hidden"),
        ("batch=0", "batch"),
        ("backend=cupy", "backend"),
    ],
)
def test_bad_config_exits_2(item, words, tmp_path, capsys):
    assert main(["run", "fig3_mnist", "--set", item, "--out", str(tmp_path / "r")]) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_minibatch_runs_learn_deeper_networks(xp, tmp_path, data_folder):
    """batch > 1: minibatches (on the CPU, or the GPU where one answers), any depth, no δ angles."""
    backend = "numpy" if xp is np else "cupy"
    out = tmp_path / "batch"
    runner.run(
        "fig3_mnist",
        [
            "train.images=2000",
            "test.images=500",
            "train.epochs=3.0",
            "runs=1",
            "batch=20",
            "eta=0.5",
            "sizes=[784,64,32,10]",
            f"backend={backend}",
            'algorithms=["bp","fa"]',
        ],
        out,
        data=str(data_folder),
    )
    res = json.loads((out / "summary.json").read_text())["results"]
    for algo in ("bp", "fa"):
        assert res[algo]["test_error"] < 0.3, algo
        assert "angle_deg_final" not in res[algo]
    assert 0 <= res["fa"]["angle_deg_w_vs_b_final"] <= 180


RESUMABLE = [
    "sizes=[784,40,10]",
    "train.images=3000",
    "test.images=300",
    "train.epochs=2.0",
    "train.eval_every=0.02",
    "runs=2",
    'algorithms=["fa","bp"]',
    "checkpoint_minutes=0",
]


def _partial_run(folder):
    """True once the folder holds a finished network and one in training."""
    from spikefa.results import load_npz

    finished = [
        json.loads(str(load_npz(p, "checkpoint")["meta"]))["finished"]
        for p in sorted(folder.glob("*-run*.npz"))
    ]
    return any(finished) and not all(finished)


def test_resume_after_sigkill_ends_with_the_same_weights(tmp_path, data_folder, killed_mid_run):
    sets = [a for s in RESUMABLE for a in ("--set", s)]
    runner.run("fig3_mnist", RESUMABLE, tmp_path / "whole", data=str(data_folder))
    killed_mid_run(
        ["fig3_mnist", *sets, "--out", str(tmp_path / "cut")],
        lambda: _partial_run(tmp_path / "cut"),
    )
    assert not (tmp_path / "cut" / "summary.json").exists()
    assert (
        main(
            [
                "run",
                "fig3_mnist",
                *sets,
                "--out",
                str(tmp_path / "cut"),
                "--resume",
                "--data",
                str(data_folder),
            ]
        )
        == 0
    )
    _assert_same_results(tmp_path / "whole", tmp_path / "cut")


def _assert_same_results(whole, cut):
    """The runs in folders `whole` and `cut` ended with the same networks, errors and curves."""
    a, b = (json.loads((d / "summary.json").read_text())["results"] for d in (whole, cut))
    for algo in a:
        assert b[algo]["weights_sha256"] == a[algo]["weights_sha256"]
        assert b[algo]["test_errors"] == a[algo]["test_errors"]
    assert (cut / "metrics.csv").read_text() == (whole / "metrics.csv").read_text()
    with np.load(whole / "curves.npz") as x, np.load(cut / "curves.npz") as y:
        for k in x.files:
            np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def test_an_interrupted_run_resumes_to_the_same_results(tmp_path, data_folder, monkeypatch):
    """Stopped in the middle of its second network (in the process, at a chunk of the training
    loop), a run resumed from its checkpoints ends as an uninterrupted one."""
    from spikefa.rate.learner import RateLearner

    changed = ("train.images", "train.epochs", "train.eval_every")
    sets = [s for s in RESUMABLE if s.split("=")[0] not in changed]
    sets += ["train.images=1000", "train.epochs=1.0", "train.eval_every=0.1"]
    runner.run("fig3_mnist", sets, tmp_path / "whole", data=str(data_folder))
    learn, calls = RateLearner.learn, []

    def stop_in_the_second_network(self, *args):
        calls.append(1)
        if len(calls) == 15:  # ten chunks a network
            raise RuntimeError("stopped")
        learn(self, *args)

    monkeypatch.setattr(RateLearner, "learn", stop_in_the_second_network)
    with pytest.raises(RuntimeError):
        runner.run("fig3_mnist", sets, tmp_path / "cut", data=str(data_folder))
    assert not (tmp_path / "cut" / "summary.json").exists()
    monkeypatch.setattr(RateLearner, "learn", learn)
    runner.run("fig3_mnist", sets, tmp_path / "cut", data=str(data_folder), resume=True)
    _assert_same_results(tmp_path / "whole", tmp_path / "cut")


def test_resume_refuses_another_config_and_a_corrupted_checkpoint(tmp_path, data_folder, capsys):
    sets = [a for s in RESUMABLE + ["runs=1", "train.epochs=0.5"] for a in ("--set", s)]
    out = str(tmp_path / "r")
    assert main(["run", "fig3_mnist", *sets, "--out", out, "--data", str(data_folder)]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "run",
                "fig3_mnist",
                "--set",
                "eta=0.5",
                "--out",
                out,
                "--resume",
                "--data",
                str(data_folder),
            ]
        )
        == 2
    )
    assert "another config" in capsys.readouterr().err
    ckpt = tmp_path / "r" / "fa-run0.npz"  # the first network a resumed run meets
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    assert main(["run", "fig3_mnist", "--out", out, "--resume", "--data", str(data_folder)]) == 2
    err = capsys.readouterr().err
    assert "is corrupted" in err and err.count("\n") == 1


def test_a_refused_resume_leaves_the_folder_as_it_was(tmp_path, data_folder, capsys):
    """The first network would resume and the second would not: the refusal comes before
    anything in the folder is written, config.toml included."""
    sets = RESUMABLE + ["runs=1", "train.epochs=0.5", "train.images=600"]
    out = tmp_path / "r"
    runner.run("fig3_mnist", sets, out, data=str(data_folder))
    (out / "summary.json").unlink()  # as if it had stopped after its last checkpoints
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    args = ["run", "fig3_mnist", "--set", "per_algorithm.bp.eta=0.5", "--out", str(out)]
    assert main([*args, "--resume", "--data", str(data_folder)]) == 2
    err = capsys.readouterr().err
    assert "bp-run0.npz was trained under another recipe" in err and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert "config.toml" in before and "fa-run0.npz" in before


def test_divergence_exits_3_naming_layer_and_example(tmp_path, data_folder, capsys):
    sets = [
        a for s in RESUMABLE + ["runs=1", "eta=1e30", 'algorithms=["bp"]'] for a in ("--set", s)
    ]
    assert (
        main(["run", "fig3_mnist", *sets, "--out", str(tmp_path / "r"), "--data", str(data_folder)])
        == 3
    )
    err = capsys.readouterr().err
    assert "NaN/inf in W" in err and "between examples" in err
    assert not (tmp_path / "r" / "summary.json").exists()


def test_eta_halving_slows_learning_to_a_stop(tmp_path, data_folder):
    """With η halved every 1e-6 epochs, only the first chunk (η at 0 epochs) learns."""
    sets = RESUMABLE + [
        "runs=1",
        'algorithms=["fa"]',
        "train.epochs=0.2",
        "train.eta_halving_epochs=1e-6",
    ]
    runner.run("fig3_mnist", sets, tmp_path / "r", data=str(data_folder))
    with np.load(tmp_path / "r" / "curves.npz") as z:
        errors = z["fa_run0_validation_error"]
    assert errors[1] < errors[0] and np.all(errors[2:] == errors[1])
