"""`spikefa report`: claims, verdicts and commands from tiny synthetic results folders."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from spikefa import config, report
from spikefa.cli import main
from spikefa.results import ResultsDir


def fake_run(folder, name, sets=(), results=None, stats=None, figures=()):
    """A results folder as `spikefa run NAME --set ...` leaves it, with made-up results."""
    cfg = config.resolve(name, list(sets))
    out = ResultsDir(folder)
    out.write_text("config.toml", config.to_toml(cfg))
    out.write_json(
        "summary.json",
        {
            "experiment": cfg["experiment"],
            "seed": cfg["seed"],
            "results": results or {},
            "stats": stats or {},
        },
    )
    for f in figures:
        (folder / "figures").mkdir(exist_ok=True)
        (folder / "figures" / f).write_bytes(b"\x89PNG fake")
    return folder


def fake_sweep(folder, name, seeds, values, sets=()):
    """A sweep folder: `values` is algorithm → metric → one value per seed."""
    runs = []
    for i in range(seeds):
        run = folder / "runs" / "default" / f"seed-{i}"
        cfg = config.resolve(
            name,
            list(sets) + (["runs=1"] if "runs" in config.resolve(name) else []) + [f"seed={i}"],
        )
        ResultsDir(run).write_text("config.toml", config.to_toml(cfg))
        runs.append({"seed": i, "folder": str(run), "status": "ran"})
    metrics = {
        a: {m: {"n": len(v), "mean": float(np.mean(v)), "values": list(v)} for m, v in ms.items()}
        for a, ms in values.items()
    }
    out = ResultsDir(folder, resume=True)
    out.write_json(
        "sweep.json",
        {
            "folder": str(folder),  # as a sweep records where it ran
            "experiment": config.resolve(name)["experiment"],
            "seeds": seeds,
            "points": [
                {
                    "name": "default",
                    "sets": list(sets),
                    "metrics": metrics,
                    "tests": {},
                    "runs": runs,
                }
            ],
        },
    )
    return folder


def rows_of(md: str) -> dict:
    """claim figure+text → the row's cells."""
    out = {}
    for line in md.splitlines():
        if line.startswith("| ") and not line.startswith("| Claim") and not line.startswith("|---"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            out[cells[0]] = cells
    return out


def row(md: str, key: str) -> list:
    claim = next(c for c in report.CLAIMS if c.key == key)
    return rows_of(md)[f"{claim.figure}: {claim.claim}"]


def verdict(cells) -> str:
    """A row's verdict: one of the page's verdicts (a stopped network's label starts with its name)."""
    text = re.match(r"\*\*(.+?)\*\*", cells[5]).group(1)
    assert text in report.VERDICTS or text.startswith("stopped at epoch ")
    return text


def test_every_claim_is_a_row_and_unrun_claims_say_not_run(tmp_path):
    out = report.report(
        [str(fake_run(tmp_path / "r", "fig5_quadratic", results={}))], tmp_path / "results.md"
    )
    md = out.read_text()
    rows = rows_of(md)
    assert len(rows) == len(report.CLAIMS) >= 10
    assert {verdict(c) for c in rows.values()} == {
        "not run"
    }  # the folder measured nothing a rule reads
    assert sum("spikefa " in c[4] for c in rows.values()) >= 10


def band(paper, ours, n_paper=20, n_test=10000, z=2.0):
    """The tolerance the page should use, computed here from its definition."""
    p, s = np.mean(ours), np.std(ours, ddof=1) if len(ours) > 1 else 0.0
    return z * np.sqrt(
        paper * (1 - paper) / 10000 + p * (1 - p) / n_test + s**2 * (1 / len(ours) + 1 / n_paper)
    )


def test_fig3a_numbers_verdicts_and_differences(tmp_path):
    bp, fa, shallow = [0.023, 0.024, 0.0235], [0.039, 0.040, 0.041], [0.079] * 3
    run = fake_run(
        tmp_path / "r",
        "fig3_mnist",
        ["train.epochs=2.0", "runs=3"],
        figures=["validation_error.png"],
        results={
            "bp": {"test_error": 0.0235, "test_errors": bp, "validation_error": 0.02},
            "fa": {
                "test_error": 0.040,
                "test_errors": fa,
                "angle_deg_final": 40.0,
                "angle_deg_final_per_layer": [40.0],
            },
            "shallow": {"test_error": 0.079, "test_errors": shallow},
        },
    )
    md = report.report([str(run)], tmp_path / "docs" / "results.md").read_text()
    cells = {k: row(md, k) for k in ("fig3a_bp", "fig3a_fa", "fig3a_order", "fig3a_shallow")}
    assert (
        abs(np.mean(bp) - 0.024) <= band(0.024, bp) and verdict(cells["fig3a_bp"]) == "reproduced"
    )
    assert (
        np.mean(fa) - 0.021 > band(0.021, fa)
        and verdict(cells["fig3a_fa"]) == "worse than the paper"
    )
    assert f"±{100 * band(0.021, fa):.2f} (2 SE)" in cells["fig3a_fa"][5]
    assert "conditions that differ: train.epochs = 2.0" in cells["fig3a_fa"][5]
    assert (
        abs(np.mean(shallow) - 0.072) <= band(0.072, shallow)
        and verdict(cells["fig3a_shallow"]) == "reproduced"
    )
    assert verdict(cells["fig3a_order"]) == "not reproduced"  # FA 4.0% is not below BP 2.35%
    for c in cells.values():
        assert "train.epochs = 2.0 (paper: 20 epochs)" in c[3] and "n = 3 (paper: 20)" in c[3]
        assert "50,000 training images, 10,000 held out for validation (paper: all 60,000)" in c[3]
        assert "inconclusive" not in c[5]  # three networks
    assert "2.35 ± 0.05% (n = 3)" in cells["fig3a_bp"][2]
    assert verdict(row(md, "fig3a_sparse")) == "not run"  # no sparse_fa in the folder
    angle = row(md, "fig3b")  # one angle, not one per network
    assert verdict(angle) == "reproduced" and "inconclusive (n = 1)" in angle[5]
    assert cells["fig3a_bp"][4] == "`spikefa run fig3_mnist --set train.epochs=2.0 --set runs=3`"
    assert (tmp_path / "docs" / "results_figures" / "fig3a_bp_validation_error.png").is_file()
    assert "results_figures/fig3a_bp_validation_error.png" in md


@pytest.mark.parametrize(
    "shift, expected",
    [
        (-2.2, "better than the paper"),
        (-1.8, "reproduced"),
        (1.8, "reproduced"),
        (2.2, "worse than the paper"),
    ],
)
def test_paper_values_are_judged_two_sided_on_a_2se_band(tmp_path, shift, expected):
    """Twenty networks whose mean lies `shift` standard errors of the difference from the paper's
    2.1%: within two on either side reproduces it, beyond is better or worse."""
    spread = 0.0005 * np.linspace(-1, 1, 20)
    se = band(0.021, 0.021 + spread, z=1.0)
    for _ in range(5):  # the band depends on our mean: settle it
        se = band(0.021, 0.021 + shift * se + spread, z=1.0)
    fa = (0.021 + shift * se + spread).tolist()
    sweep = fake_sweep(
        tmp_path / "s",
        "fig3_mnist",
        20,
        {"fa": {"test_error": fa}, "bp": {"test_error": fa}},
        ["train.validation=0"],
    )
    md = report.report([str(sweep)], tmp_path / "results.md").read_text()
    assert verdict(row(md, "fig3a_fa")) == expected
    assert "inconclusive" not in row(md, "fig3a_fa")[5]


def test_as_the_paper_when_nothing_differs(tmp_path):
    vals = [0.020 + 0.0001 * i for i in range(20)]
    sweep = fake_sweep(
        tmp_path / "s",
        "fig3_mnist",
        20,
        {"fa": {"test_error": vals}, "bp": {"test_error": [v + 0.003 for v in vals]}},
        ["train.validation=0", "eta=0.001", "init_scale=0.05"],
    )
    md = report.report([str(sweep)], tmp_path / "results.md").read_text()
    order = row(md, "fig3a_paper_eta")
    assert verdict(order) == "reproduced"
    assert order[3].endswith("as in the paper") and "differs" not in order[3]
    assert "(n = 20)" in order[2] and "Student p" in order[5]
    assert order[4] == (
        "`spikefa sweep fig3_mnist --seeds 20 --set eta=0.001 --set init_scale=0.05 "
        "--set train.validation=0`"
    )
    # our own η and initial scale are other rows: they read only runs at the shipped values
    assert verdict(row(md, "fig3a_fa")) == "not run"


def test_sweeps_split_by_algorithm_are_joined_seed_by_seed(tmp_path):
    vals = [0.020 + 0.0001 * i for i in range(10)]
    common = ["train.validation=0"]
    a = fake_sweep(
        tmp_path / "a",
        "fig3_mnist",
        10,
        {"bp": {"test_error": [v + 0.003 for v in vals]}, "fa": {"test_error": vals}},
        [*common, 'algorithms=["bp", "fa"]'],
    )
    b = fake_sweep(
        tmp_path / "b",
        "fig3_mnist",
        10,
        {"sparse_fa": {"test_error": vals}, "shallow": {"test_error": [0.07] * 10}},
        [*common, 'algorithms=["sparse_fa", "shallow"]'],
    )
    fewer = fake_sweep(
        tmp_path / "c",
        "fig3_mnist",
        3,
        {"shallow": {"test_error": [0.01] * 3}},
        [*common, 'algorithms=["shallow"]'],
    )  # other seeds: never joined with the others
    md = report.report([str(a), str(b), str(fewer)], tmp_path / "results.md").read_text()
    shallow = row(md, "fig3a_shallow")  # reads fa and shallow, one from each sweep
    assert verdict(shallow) == "reproduced" and "(n = 10)" in shallow[2]
    assert (
        shallow[4] == "`spikefa sweep fig3_mnist --seeds 10 --set train.validation=0`"
    )  # all four: the shipped list
    assert verdict(row(md, "fig3a_sparse")) == "reproduced"


def test_the_command_reproduces_the_config(tmp_path):
    """The command of a row resolves to the config of the run it came from."""
    sets = [
        "per_algorithm.fa.eta=0.05",
        "per_algorithm.fa.feedback_scale_layers=[0.2, 0.2, 0.5]",
        "train.epochs=3.0",
        'algorithms=["fa", "bp"]',
    ]
    run = fake_run(
        tmp_path / "r",
        "fig3_mnist_deep",
        sets,
        results={"fa": {"test_error": 0.03}, "bp": {"test_error": 0.02}},
    )
    src = report.load_source(run)[0]
    assert src.name == "fig3_mnist_deep"
    items = re.findall(r"--set '([^']*)'|--set (\S+)", src.command)
    again = config.resolve(src.command.split()[2], [a or b for a, b in items])
    assert again == config.resolve(str(run / "config.toml"))
    md = report.report([str(run)], tmp_path / "results.md").read_text()
    deeper = row(md, "deeper")
    assert verdict(deeper) == "not reproduced" and "+1.00 points" in deeper[5]
    assert "each algorithm at its own settings" in deeper[3] and "inconclusive (n = 1)" in deeper[5]


def test_depth_claims_use_t_tests_on_sweeps(tmp_path):
    rng = np.random.default_rng(0)

    def vals(m):
        return (m * (1 + 0.05 * rng.standard_normal(20))).tolist()

    sweep = fake_sweep(
        tmp_path / "s",
        "fig3_deep",
        20,
        {
            "fa4": {"test_nse": vals(0.1)},
            "fa3": {"test_nse": vals(0.2)},
            "bp4": {"test_nse": vals(0.05)},
            "bp3": {"test_nse": vals(0.19)},
            "fa4_frozen_w0": {"test_nse": vals(0.3)},
            "shallow3": {"test_nse": vals(0.8)},
        },
    )
    md = report.report([str(sweep)], tmp_path / "results.md").read_text()
    assert verdict(row(md, "fig3cd_depth")) == "reproduced"
    assert verdict(row(md, "fig3d_fa_bp")) == "not reproduced"  # fa4/bp4 = 2 is outside ×1.5
    assert verdict(row(md, "supp_frozen")) == "reproduced"


def checkpoint(path, recipe, **meta):
    """A spiking checkpoint of a shipped recipe with this meta (no weights: the page reads none)."""
    meta = {"config": config.to_toml(config.resolve(recipe)), "selected_on": "validation", **meta}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, meta=np.array(json.dumps(meta)), W1=np.zeros((2, 2), np.float16))
    return path


def test_a_finished_spiking_network_counts_once_whatever_its_spike_draws(tmp_path):
    ckpt = checkpoint(
        tmp_path / "fig4_paper_fa.npz",
        "fig4_paper_fa",
        test_error=0.0175,
        epoch=80.0,
        epochs_trained=100.0,
        epochs_declared=100.0,
        finished=True,
        validation_error=0.017,
    )
    ev = tmp_path / "paper_eval.json"
    draws = [0.018, 0.019, 0.0185, 0.0185]
    ev.write_text(
        json.dumps(
            {
                "test_error": float(np.mean(draws)),
                "test_errors": draws,
                "engine": "fast",
                "checkpoint": str(ckpt),
            }
        )
    )
    md = report.report([str(ev)], tmp_path / "results.md").read_text()
    faithful = row(md, "fig4_faithful")
    assert verdict(faithful) == "reproduced" and "inconclusive (n = 1)" in faithful[5]
    assert "1.85% (n = 1)" in faithful[2]  # the mean of its draws, one network
    assert f"SD {100 * np.std(draws, ddof=1):.2f} points over 4 spike draws" in faithful[2]
    assert "--repeats 4" in faithful[4] and "(trained by: spikefa run fig4_paper_fa)" in faithful[4]
    for words in (
        "50 image streams whose weight changes are summed",
        f"η per step {config.resolve('fig4_paper_fa')['schedule'][0]['eta']:g} (paper: not given)",
        "50,000 training images, 10,000 held out for validation (paper: all 60,000)",
    ):
        assert words in faithful[3]
    assert "trained" not in faithful[3] and "phase" not in faithful[3]


@pytest.mark.parametrize("recorded", [True, False])
def test_an_unfinished_spiking_network_is_shown_on_validation_only(tmp_path, recorded):
    """Stopped at epoch 12.5 of the recipe's 100: its test error (in its meta, or in an evaluation
    of it) is never shown; older checkpoints say how far they got through their curve."""
    state = (
        {"epochs_trained": 12.5, "epochs_declared": 100.0, "finished": False}
        if recorded
        else {"curve": [[250000, 0.06], [625000, 0.0512]], "split": {"train_images": 50000}}
    )
    best = checkpoint(
        tmp_path / "fig4_best_fa.npz",
        "fig4_best_fa",
        test_error=0.0303,
        epoch=2.0,
        validation_error=0.0512,
        **state,
    )
    ev = tmp_path / "best_eval.json"
    ev.write_text(
        json.dumps(
            {
                "test_error": 0.0155,
                "test_errors": [0.0154, 0.0156],
                "engine": "fast",
                "checkpoint": str(best),
            }
        )
    )
    md = report.report([str(best), str(ev)], tmp_path / "results.md").read_text()
    cells = row(md, "fig4_best")
    assert verdict(cells) == "stopped at epoch 12.5 of 100"
    assert "validation 5.12%" in cells[2] and "test error not read" in cells[2]
    assert "3.03" not in md and "1.55" not in md and "1.54" not in md
    assert "under way" not in md
    for words in (
        "streams",
        "trained 12.5 of the recipe's 100 epochs",
        "phase 1: plasticity_delay = 6",
        "phase 1: η halved every 20 epochs",
        "η per step 0.000667",
    ):
        assert words in cells[3]


def test_every_phase_of_a_schedule_is_a_listed_difference(tmp_path):
    phases = (
        "schedule=[{epochs=80, eta=1e-3, steps_per_image=10, plasticity_delay=3, "
        "eta_halving_epochs=20.0}, {epochs=20, eta=3.125e-5, steps_per_image=20, "
        "plasticity_delay=6}]"
    )
    cfg = config.resolve("fig4_paper_fa", ['reading="decay"', phases])
    ck = checkpoint(
        tmp_path / "decay.npz",
        "fig4_paper_fa",
        config=config.to_toml(cfg),
        validation_error=0.05,
        epochs_trained=12.5,
        epochs_declared=100.0,
        finished=False,
    )
    cells = row(report.report([str(ck)], tmp_path / "results.md").read_text(), "fig4_decay")
    for words in (
        "a schedule of 2 phases",
        "phase 1: plasticity_delay = 3",
        "phase 2: plasticity_delay = 6",
        "phase 1: η halved every 20 epochs",
        "η per step 0.001 then 3.125e-05",
        "10/20 steps per image",
    ):
        assert words in cells[3]


def test_an_old_finished_checkpoint_is_read_through_its_recipe(tmp_path):
    """No `finished` in its meta: its curve reaches the recipe's end, so its test error is read."""
    two = "schedule=[{epochs=2,eta=1e-3,steps_per_image=10}]"
    meta = {
        "config": config.to_toml(config.resolve("fig4_paper_fa", [two, 'reading="decay"'])),
        "test_error": 0.021,
        "epoch": 1.0,
        "curve": [[50000, 0.03], [100000, 0.031]],
        "split": {"train_images": 50000},
        "selected_on": "last",
    }
    np.savez(tmp_path / "decay.npz", meta=np.array(json.dumps(meta)))
    md = report.report([str(tmp_path / "decay.npz")], tmp_path / "results.md").read_text()
    decay = row(md, "fig4_decay")
    assert verdict(decay) == "reproduced" and "2.10% (n = 1)" in decay[2]
    assert "not selected on validation" in decay[3] and "trained" not in decay[3]
    assert "streams" in decay[3]


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r.md")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a results folder" in err
    assert not (tmp_path / "r.md").exists()


def test_runs_split_by_algorithm_are_joined(tmp_path):
    fa = fake_run(
        tmp_path / "fa",
        "fig3_mnist_deep",
        ['algorithms=["fa"]'],
        results={"fa": {"test_error": 0.023}},
    )
    bp = fake_run(
        tmp_path / "bp",
        "fig3_mnist_deep",
        ['algorithms=["bp"]'],
        results={"bp": {"test_error": 0.020}},
    )
    other = fake_run(
        tmp_path / "o",
        "fig3_mnist_deep",
        ['algorithms=["bp"]', "train.epochs=1.0"],
        results={"bp": {"test_error": 0.010}},
    )
    md = report.report([str(fa), str(bp), str(other)], tmp_path / "results.md").read_text()
    deeper = row(md, "deeper")
    assert verdict(deeper) == "reproduced" and "+0.30 points" in deeper[5]
    assert (
        deeper[4] == "`spikefa run fig3_mnist_deep`"
    )  # both algorithms: the shipped config as it is


def test_each_algorithm_keeps_its_own_settings_when_joined(tmp_path):
    fa = fake_run(
        tmp_path / "fa",
        "fig3_mnist_deep",
        ['algorithms=["fa"]', "per_algorithm.fa.eta=0.05", "per_algorithm.bp.eta=0.7"],
        results={"fa": {"test_error": 0.023}},
    )
    bp = fake_run(
        tmp_path / "bp",
        "fig3_mnist_deep",
        ['algorithms=["bp"]', "per_algorithm.bp.eta=0.1"],
        results={"bp": {"test_error": 0.020}},
    )
    merged = report.merge_algorithms(report.load_source(fa) + report.load_source(bp))[-1]
    assert (
        merged.cfg["per_algorithm"]["fa"]["eta"] == 0.05
        and merged.cfg["per_algorithm"]["bp"]["eta"] == 0.1
    )
    assert (
        "per_algorithm.fa.eta=0.05" in merged.command
        and "per_algorithm.bp.eta=0.1" in merged.command
    )
    assert "0.7" not in merged.command


def test_a_checkpoint_without_its_recipe_matches_no_claim(tmp_path):
    ckpt = tmp_path / "old.npz"
    np.savez(ckpt, meta=np.array(json.dumps({"test_error": 0.017})))
    md = report.report([str(ckpt)], tmp_path / "results.md").read_text()
    assert {verdict(c) for c in rows_of(md).values()} == {"not run"}


def test_runs_of_one_comparison_are_its_arms(tmp_path):
    two = "schedule=[{epochs=2,eta=1e-3,steps_per_image=10}]"
    arms = {
        "fa": ([], 0.060, 0.065),
        "fa_frozen12": (["frozen_layers=[1,2]"], 0.062, 0.064),
        "bp": (
            ['algorithms=["bp"]', "schedule=[{epochs=2,eta=2e-3,steps_per_image=10}]"],
            0.050,
            0.058,
        ),
    }
    folders = []
    for name, (sets, val, test) in arms.items():
        algo = "bp" if name == "bp" else "fa"
        folders.append(
            fake_run(
                tmp_path / name,
                "fig4_paper_fa",
                [two, *sets],
                results={algo: {"validation_error": val, "test_error": test}},
                figures=["validation_error.png"],
            )
        )
    longer = fake_run(  # another length: not an arm of this comparison
        tmp_path / "longer",
        "fig4_paper_fa",
        ["schedule=[{epochs=3,eta=1e-3,steps_per_image=10}]", 'algorithms=["bp"]'],
        results={"bp": {"validation_error": 0.01, "test_error": 0.01}},
    )
    md = report.report([str(f) for f in folders + [longer]], tmp_path / "results.md").read_text()
    algos = row(md, "fig4_algorithms")
    assert (
        algos[4].count("spikefa run fig4_paper_fa") == 2 and "frozen" not in algos[4]
    )  # only the arms it reads
    assert "--set 'schedule=[{epochs = 2, eta = 0.001, steps_per_image = 10}]'" in algos[4]
    assert (
        verdict(algos) == "reproduced"
        and "fa − bp = +0.70 points" in algos[5]
        and "BP 5.80%" in algos[2]
        and "2 epochs" in algos[3]
    )
    assert row(md, "fig4_faithful")[5].startswith(
        "**not run**"
    )  # two epochs are not the declared recipe


def fake_search(folder, name, search, points, sets=()):
    """A sweep folder of a declared search: `points` is label → (its sets, algorithm, one
    validation error per seed)."""
    entries = []
    for label, (extra, algo, vals) in points.items():
        runs = []
        for i in range(len(vals)):
            run = folder / "runs" / label / f"seed-{i}"
            cfg = config.resolve(name, [*sets, *extra, f"seed={i}"])
            ResultsDir(run).write_text("config.toml", config.to_toml(cfg))
            runs.append({"seed": i, "folder": str(run), "status": "ran"})
        metrics = {algo: {"validation_error": {"n": len(vals), "values": list(vals)}}}
        entries.append({"name": label, "sets": [*sets, *extra], "metrics": metrics, "runs": runs})
    ResultsDir(folder, resume=True).write_json(
        "sweep.json",
        {
            "experiment": "fig4_spiking",
            "seeds": 3,
            "points": entries,
            "search": search,
            "sets": list(sets),
        },
    )
    return folder


@pytest.mark.parametrize("shuffled", [0.050, 0.090])
def test_the_points_of_a_declared_search_are_the_arms_of_its_controls(tmp_path, shuffled):
    points = {
        "fa": ([], "fa", [0.050, 0.052, 0.051]),
        "layer-1-frozen": (["frozen_layers=[1]"], "fa", [0.070, 0.071, 0.073]),
        "layers-1-2-frozen": (["frozen_layers=[1, 2]"], "fa", [0.090, 0.092, 0.091]),
        "shuffled": (
            ['algorithms=["shuffled"]'],
            "shuffled",
            [shuffled, shuffled + 0.002, shuffled + 0.001],
        ),
    }
    search = fake_search(
        tmp_path / "controls", "fig4_search", "fig4_controls", points, ["eta=0.002"]
    )
    lone = fake_run(  # the search's own run at the same settings: one seed, one arm
        tmp_path / "lone", "fig4_search", ["eta=0.002"], results={"fa": {"validation_error": 0.04}}
    )
    md = report.report([str(search), str(lone)], tmp_path / "results.md").read_text()
    controls = row(md, "fig4_controls")
    assert controls[4] == (
        "`spikefa sweep fig4_search --seeds 3 --candidates fig4_controls --set eta=0.002`"
    )
    assert "layer 1 frozen 7.13 ± 0.15% (n = 3)" in controls[2]
    assert "fa 5.10% vs fa_frozen1 7.13%" in controls[5]
    assert "784-500-500-500-10" in controls[3] and "inconclusive" not in controls[5]
    # feedback redrawn at every step learns as well: the claim that FA's feedback carries credit fails
    assert verdict(controls) == ("reproduced" if shuffled > 0.08 else "not reproduced")


def spiking_run(folder, draws, test_error=0.019):
    """A finished run of the faithful recipe as it leaves its folder, with a saved evaluation of
    its selected network (`spikefa evaluate fa-best.npz --repeats N --json > evaluation.json`)."""
    fake_run(
        folder,
        "fig4_paper_fa",
        results={
            "fa": {
                "test_error": test_error,
                "validation_error": 0.018,
                "epochs": 100.0,
                "selected_on": "validation",
            }
        },
        figures=["validation_error.png"],
    )
    (folder / "metrics.csv").write_text("algorithm,epoch,validation_error\nfa,100.0,0.018\n")
    checkpoint(
        folder / "fa-best.npz",
        "fig4_paper_fa",
        test_error=test_error,
        epochs_trained=100.0,
        epochs_declared=100.0,
        finished=True,
    )
    (folder / "evaluation.json").write_text(
        json.dumps(
            {
                "test_error": float(np.mean(draws)),
                "test_errors": draws,
                "engine": "fast",
                "feedback": "fa",
                "checkpoint": "fa-best.npz",
            }
        )
    )
    return folder


def results_for_records(tmp_path):
    vals = [0.020 + 0.0001 * i for i in range(20)]
    sweep = fake_sweep(
        tmp_path / "sweep",
        "fig3_mnist",
        20,
        {"fa": {"test_error": vals}, "bp": {"test_error": [v + 0.003 for v in vals]}},
    )
    fa = fake_run(
        tmp_path / "fa",
        "fig3_mnist_deep",
        ['algorithms=["fa"]'],
        results={"fa": {"test_error": 0.023}},
    )
    bp = fake_run(
        tmp_path / "bp",
        "fig3_mnist_deep",
        ['algorithms=["bp"]'],
        results={"bp": {"test_error": 0.020}},
    )
    paper = spiking_run(tmp_path / "paper", [0.018, 0.019, 0.0185])
    best = checkpoint(
        tmp_path / "best" / "fa-best.npz",
        "fig4_best_fa",
        test_error=0.0303,
        epochs_trained=40.0,
        epochs_declared=100.0,
        finished=False,
        validation_error=0.0201,
    )
    (tmp_path / "best" / "evaluation.json").write_text(
        json.dumps(
            {
                "test_error": 0.0155,
                "test_errors": [0.0154, 0.0156],
                "engine": "fast",
                "checkpoint": str(best),
            }
        )
    )
    return [sweep, fa, bp, paper, tmp_path / "best" / "evaluation.json"]


def test_records_keep_the_small_files_and_rebuild_the_same_page(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    given = results_for_records(tmp_path / "results")
    direct = report.report([str(p) for p in given], tmp_path / "direct.md").read_text()
    assert (
        main(
            [
                "report",
                "--save-records",
                "docs/records",
                *map(str, given),
                "--out",
                "docs/results.md",
            ]
        )
        == 0
    )
    files = {
        p.relative_to(tmp_path / "docs" / "records")
        for p in (tmp_path / "docs" / "records").rglob("*")
        if p.is_file()
    }
    assert {f.name for f in files} <= {
        "config.toml",
        "metrics.csv",
        "summary.json",
        "evaluation.json",
        "sweep.json",
    }
    assert len({f.parts[0] for f in files}) == len(given)  # one record per measurement
    first = (tmp_path / "docs" / "results.md").read_bytes()
    assert rows_of(first.decode()) == rows_of(
        direct
    )  # the same rows as from the results themselves
    kept = b"".join(f.read_bytes() for f in (tmp_path / "docs" / "records").rglob("*.json"))
    assert b"0.0303" not in kept
    assert str(tmp_path / "results").encode() not in kept  # no path of the machine it ran on
    shutil.rmtree(tmp_path / "results")  # a fresh clone: only the records
    assert main(["report", "--records", "docs/records", "--out", "docs/again.md"]) == 0
    assert main(["report", "--records", "docs/records", "--out", "docs/results.md"]) == 0
    assert (tmp_path / "docs" / "results.md").read_bytes() == first
    assert (tmp_path / "docs" / "again.md").read_bytes() == first


def test_saving_a_rerun_replaces_its_own_record_and_rows_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    given = results_for_records(tmp_path / "results")
    assert (
        main(["report", "--save-records", "records", *map(str, given), "--out", "before.md"]) == 0
    )
    before, names = (
        rows_of(Path("before.md").read_text()),
        sorted(p.name for p in Path("records").iterdir()),
    )
    rerun = spiking_run(
        tmp_path / "rerun", [0.030, 0.031], test_error=0.031
    )  # the same command again
    assert main(["report", "--save-records", "records", str(rerun), "--out", "after.md"]) == 0
    after = rows_of(Path("after.md").read_text())
    assert sorted(p.name for p in Path("records").iterdir()) == names
    changed = {k for k in before if before[k] != after[k]}
    assert (
        changed == {rows_of_key("fig4_faithful")}
        and "3.05% (n = 1)" in after[rows_of_key("fig4_faithful")][2]
    )


def rows_of_key(key: str) -> str:
    claim = next(c for c in report.CLAIMS if c.key == key)
    return f"{claim.figure}: {claim.claim}"


def test_report_needs_something_to_read(tmp_path, capsys):
    assert (
        main(["report", "--records", str(tmp_path / "none"), "--out", str(tmp_path / "r.md")]) == 2
    )
    assert "nothing to report" in capsys.readouterr().err


def test_the_report_package_stays_small_and_uses_no_private_helpers():
    """Modules under 500 lines, functions under 60, and no `_name` imported from another module."""
    import ast

    folder = Path(report.__file__).parent
    for path in folder.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert text.count("\n") <= 500, path.name
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno - node.lineno < 60, f"{path.name}: {node.name}"
            if isinstance(node, ast.ImportFrom):
                assert not any(a.name.startswith("_") for a in node.names), (
                    f"{path.name}: {ast.unparse(node)}"
                )
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                private = node.attr.startswith("_") and not node.attr.startswith("__")
                assert not private or node.value.id == "self", f"{path.name}: {ast.unparse(node)}"


def test_claims_are_data_with_named_fields(tmp_path):
    from spikefa.errors import SpikefaError
    from spikefa.report.claims import parse

    keys = [c.key for c in report.CLAIMS]
    assert len(keys) == len(set(keys)) and all(c.rules for c in report.CLAIMS)
    base = {
        "key": "x",
        "figure": "F",
        "claim": "c",
        "paper": "1%",
        "config": "fig3_mnist",
        "command": "spikefa run",
        "rules": [
            {
                "kind": "paper_value",
                "algorithm": "fa",
                "metric": "test_error",
                "value": 0.01,
                "tolerance": "two_se",
            }
        ],
    }
    tolerances = {"two_se": {"z": 2.0, "test_images": 10000}}
    assert parse({"claims": [base], "tolerances": tolerances})[0].key == "x"
    for bad, words in (
        ({"colour": "red"}, "unknown fields"),
        ({"rules": [{"kind": "roughly"}]}, "unknown rule kind"),
        ({"rules": [{**base["rules"][0], "tolerance": "loose"}]}, "tolerance 'loose'"),
        ({"rules": [{"kind": "below", "a": "fa"}]}, "rule below"),
    ):
        with pytest.raises(SpikefaError, match=words):
            parse({"claims": [{**base, **bad}], "tolerances": tolerances})
