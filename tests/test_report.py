"""`spikefa report`: claims, verdicts and commands from tiny synthetic results folders."""

import json
import re

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
    out.write_json("summary.json", {"experiment": cfg["experiment"], "seed": cfg["seed"], "results": results or {},
                                    "stats": stats or {}})
    for f in figures:
        (folder / "figures").mkdir(exist_ok=True)
        (folder / "figures" / f).write_bytes(b"\x89PNG fake")
    return folder


def fake_sweep(folder, name, seeds, values, sets=()):
    """A sweep folder: `values` is algorithm → metric → one value per seed."""
    runs = []
    for i in range(seeds):
        run = folder / "runs" / "default" / f"seed-{i}"
        cfg = config.resolve(name, list(sets) + ([f"runs=1"] if "runs" in config.resolve(name) else []) + [f"seed={i}"])
        ResultsDir(run).write_text("config.toml", config.to_toml(cfg))
        runs.append({"seed": i, "folder": str(run), "status": "ran"})
    metrics = {a: {m: {"n": len(v), "mean": float(np.mean(v)), "values": list(v)} for m, v in ms.items()}
               for a, ms in values.items()}
    out = ResultsDir(folder, resume=True)
    out.write_json("sweep.json", {"experiment": config.resolve(name)["experiment"], "seeds": seeds,
                                  "points": [{"name": "default", "sets": list(sets), "metrics": metrics, "tests": {},
                                              "runs": runs}]})
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
    return re.match(r"\*\*(.+?)\*\*", cells[5]).group(1)


def test_every_claim_is_a_row_and_unrun_claims_say_not_run(tmp_path):
    out = report.report([str(fake_run(tmp_path / "r", "fig5_quadratic", results={}))], tmp_path / "results.md")
    md = out.read_text()
    rows = rows_of(md)
    assert len(rows) == len(report.CLAIMS) >= 10
    assert all(verdict(c) in report.VERDICTS for c in rows.values())
    assert {verdict(c) for c in rows.values()} == {"not run"}  # the folder measured nothing a rule reads
    assert sum("spikefa " in c[4] for c in rows.values()) >= 10


def test_fig3a_numbers_verdicts_and_deviations(tmp_path):
    run = fake_run(tmp_path / "r", "fig3_mnist", ["train.epochs=2.0", "runs=3"], figures=["test_error.png"], results={
        "bp": {"test_error": 0.0235, "test_errors": [0.023, 0.024, 0.0235], "validation_error": 0.02},
        "fa": {"test_error": 0.040, "test_errors": [0.039, 0.040, 0.041], "angle_deg_final": 40.0,
               "angle_deg_final_per_layer": [40.0]},
        "shallow": {"test_error": 0.08, "test_errors": [0.08, 0.08, 0.08]}})
    md = report.report([str(run)], tmp_path / "docs" / "results.md").read_text()
    bp, fa, order, shallow = (row(md, k) for k in ("fig3a_bp", "fig3a_fa", "fig3a_order", "fig3a_shallow"))
    assert verdict(bp) == "reproduced with deviations"  # 2.35% ≤ 2.4% + 0.5, but 2 epochs and n = 3
    assert "train.epochs = 2.0" in bp[5] and "n = 3 (paper: 20)" in bp[5]
    assert "2.35 ± 0.05% (n = 3)" in bp[2]
    assert verdict(fa) == "not reproduced" and "4.00%" in fa[5]
    assert verdict(order) == "not reproduced"  # FA 4.0% is not below BP 2.35%
    assert verdict(shallow) == "reproduced with deviations"
    assert verdict(row(md, "fig3a_sparse")) == "not run"  # no sparse_fa in the folder
    assert verdict(row(md, "fig3b")) == "reproduced with deviations"
    assert bp[4] == "`spikefa run fig3_mnist --set train.epochs=2.0 --set runs=3`"
    assert (tmp_path / "docs" / "results_figures" / "fig3a_bp_test_error.png").is_file()
    assert "results_figures/fig3a_bp_test_error.png" in md


def test_reproduced_without_deviations_needs_the_papers_conditions(tmp_path):
    sets = ["train.validation=0"]
    vals = [0.020 + 0.0001 * i for i in range(20)]
    sweep = fake_sweep(tmp_path / "s", "fig3_mnist", 20, {"fa": {"test_error": vals}, "bp": {"test_error": [v + 0.003 for v in vals]}},
                       sets)
    md = report.report([str(sweep)], tmp_path / "results.md").read_text()
    fa, order = row(md, "fig3a_fa"), row(md, "fig3a_order")
    assert verdict(fa) == "reproduced" and verdict(order) == "reproduced"
    assert "(n = 20)" in fa[2] and "Student p" in order[5]
    assert fa[4] == "`spikefa sweep fig3_mnist --seeds 20 --set train.validation=0`"


def test_sweeps_split_by_algorithm_are_joined_seed_by_seed(tmp_path):
    vals = [0.020 + 0.0001 * i for i in range(10)]
    common = ["train.validation=0"]
    a = fake_sweep(tmp_path / "a", "fig3_mnist", 10, {"bp": {"test_error": [v + 0.003 for v in vals]},
                                                      "fa": {"test_error": vals}}, [*common, 'algorithms=["bp", "fa"]'])
    b = fake_sweep(tmp_path / "b", "fig3_mnist", 10, {"sparse_fa": {"test_error": vals},
                                                      "shallow": {"test_error": [0.07] * 10}},
                   [*common, 'algorithms=["sparse_fa", "shallow"]'])
    fewer = fake_sweep(tmp_path / "c", "fig3_mnist", 3, {"shallow": {"test_error": [0.01] * 3}},
                       [*common, 'algorithms=["shallow"]'])  # other seeds: never joined with the others
    md = report.report([str(a), str(b), str(fewer)], tmp_path / "results.md").read_text()
    shallow = row(md, "fig3a_shallow")  # reads fa and shallow, one from each sweep
    assert verdict(shallow) == "reproduced with deviations" and "(n = 10)" in shallow[2]
    assert shallow[4] == "`spikefa sweep fig3_mnist --seeds 10 --set train.validation=0`"  # all four: the shipped list
    assert verdict(row(md, "fig3a_sparse")) == "reproduced with deviations"


def test_the_command_reproduces_the_config(tmp_path):
    """The command of a row resolves to the config of the run it came from."""
    sets = ["per_algorithm.fa.eta=0.05", "per_algorithm.fa.feedback_scale_layers=[0.2, 0.2, 0.5]", "train.epochs=3.0",
            'algorithms=["fa", "bp"]']
    run = fake_run(tmp_path / "r", "fig3_mnist_deep", sets, results={"fa": {"test_error": 0.03}, "bp": {"test_error": 0.02}})
    src = report.load_source(run)[0]
    assert src.name == "fig3_mnist_deep"
    items = re.findall(r"--set '([^']*)'|--set (\S+)", src.command)
    again = config.resolve(src.command.split()[2], [a or b for a, b in items])
    assert again == config.resolve(str(run / "config.toml"))
    md = report.report([str(run)], tmp_path / "results.md").read_text()
    deeper = row(md, "deeper")
    assert verdict(deeper) == "not reproduced" and "+1.00 points" in deeper[5]
    assert "each algorithm at its own settings" in deeper[5]


def test_depth_claims_use_t_tests_on_sweeps(tmp_path):
    rng = np.random.default_rng(0)
    vals = lambda m: (m * (1 + 0.05 * rng.standard_normal(20))).tolist()  # noqa: E731
    sweep = fake_sweep(tmp_path / "s", "fig3_deep", 20, {
        "fa4": {"test_nse": vals(0.1)}, "fa3": {"test_nse": vals(0.2)}, "bp4": {"test_nse": vals(0.05)},
        "bp3": {"test_nse": vals(0.19)}, "fa4_frozen_w0": {"test_nse": vals(0.3)}, "shallow3": {"test_nse": vals(0.8)}})
    md = report.report([str(sweep)], tmp_path / "results.md").read_text()
    assert verdict(row(md, "fig3cd_depth")) == "reproduced"
    assert verdict(row(md, "fig3d_fa_bp")) == "not reproduced"  # fa4/bp4 = 2 is outside ×1.5
    assert verdict(row(md, "supp_frozen")) == "reproduced"


def test_spiking_rows_read_checkpoints_and_saved_evaluations(tmp_path):
    recipe = config.to_toml(config.resolve("fig4_paper_fa"))
    meta = {"test_error": 0.0175, "config": recipe, "selected_on": "validation", "epoch": 100.0}
    ckpt = tmp_path / "fig4_paper_fa.npz"
    np.savez(ckpt, meta=np.array(json.dumps(meta)), W1=np.zeros((2, 2), np.float16))
    best = tmp_path / "fig4_best_fa.npz"
    np.savez(best, meta=np.array(json.dumps({"test_error": 0.03, "selected_on": "last", "epoch": 12.5,
                                             "config": config.to_toml(config.resolve("fig4_best_fa"))})))
    ev = tmp_path / "best_eval.json"
    ev.write_text(json.dumps({"test_error": 0.0155, "test_errors": [0.015, 0.016, 0.0155, 0.0155], "engine": "fast",
                              "checkpoint": str(best)}))
    md = report.report([str(ckpt), str(ev)], tmp_path / "results.md").read_text()
    faithful, bst, decay = row(md, "fig4_faithful"), row(md, "fig4_best"), row(md, "fig4_decay")
    assert verdict(faithful) == "reproduced" and "1.75%" in faithful[2] and faithful[4] == "`spikefa run fig4_paper_fa`"
    assert verdict(bst) == "reproduced with deviations" and "(n = 4)" in bst[2]
    assert "plasticity_delay = 3" in bst[5] and "not selected on validation" in bst[5]
    assert "--repeats 4" in bst[4] and "trained 12.5 of the recipe's 100 epochs" in bst[5]
    assert "trained" not in faithful[5]
    assert verdict(decay) == "not run"


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r.md")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a results folder" in err
    assert not (tmp_path / "r.md").exists()


def test_runs_split_by_algorithm_are_joined(tmp_path):
    fa = fake_run(tmp_path / "fa", "fig3_mnist_deep", ['algorithms=["fa"]'], results={"fa": {"test_error": 0.023}})
    bp = fake_run(tmp_path / "bp", "fig3_mnist_deep", ['algorithms=["bp"]'], results={"bp": {"test_error": 0.020}})
    other = fake_run(tmp_path / "o", "fig3_mnist_deep", ['algorithms=["bp"]', "train.epochs=1.0"],
                     results={"bp": {"test_error": 0.010}})
    md = report.report([str(fa), str(bp), str(other)], tmp_path / "results.md").read_text()
    deeper = row(md, "deeper")
    assert verdict(deeper) == "reproduced with deviations" and "+0.30 points" in deeper[5]
    assert deeper[4] == "`spikefa run fig3_mnist_deep`"  # both algorithms: the shipped config as it is


def test_each_algorithm_keeps_its_own_settings_when_joined(tmp_path):
    fa = fake_run(tmp_path / "fa", "fig3_mnist_deep", ['algorithms=["fa"]', "per_algorithm.fa.eta=0.05",
                                                         "per_algorithm.bp.eta=0.7"], results={"fa": {"test_error": 0.023}})
    bp = fake_run(tmp_path / "bp", "fig3_mnist_deep", ['algorithms=["bp"]', "per_algorithm.bp.eta=0.1"],
                  results={"bp": {"test_error": 0.020}})
    merged = report.merge_algorithms(report.load_source(fa) + report.load_source(bp))[-1]
    assert merged.cfg["per_algorithm"]["fa"]["eta"] == 0.05 and merged.cfg["per_algorithm"]["bp"]["eta"] == 0.1
    assert "per_algorithm.fa.eta=0.05" in merged.command and "per_algorithm.bp.eta=0.1" in merged.command
    assert "0.7" not in merged.command


def test_a_checkpoint_without_its_recipe_matches_no_claim(tmp_path):
    ckpt = tmp_path / "old.npz"
    np.savez(ckpt, meta=np.array(json.dumps({"test_error": 0.017})))
    md = report.report([str(ckpt)], tmp_path / "results.md").read_text()
    assert {verdict(c) for c in rows_of(md).values()} == {"not run"}


def test_frozen_layer_controls_and_algorithms_are_arms_of_one_comparison(tmp_path):
    two = "schedule=[{epochs=2,eta=1e-3,steps_per_image=10}]"
    arms = {"fa": ([], 0.060, 0.065), "fa_frozen123": (["frozen_layers=[1,2,3]"], 0.080, 0.082),
            "fa_frozen12": (["frozen_layers=[1,2]"], 0.062, 0.064),
            "bp": (['algorithms=["bp"]', "schedule=[{epochs=2,eta=2e-3,steps_per_image=10}]"], 0.050, 0.058)}
    folders = []
    for name, (sets, val, test) in arms.items():
        algo = "bp" if name == "bp" else "fa"
        folders.append(fake_run(tmp_path / name, "fig4_paper_fa", [two, *sets],
                                results={algo: {"validation_error": val, "test_error": test}},
                                figures=["validation_error.png"]))
    longer = fake_run(tmp_path / "longer", "fig4_paper_fa", ["schedule=[{epochs=3,eta=1e-3,steps_per_image=10}]",
                                                             "frozen_layers=[1,2]"],
                      results={"fa": {"validation_error": 0.01, "test_error": 0.01}})
    md = report.report([str(f) for f in folders + [longer]], tmp_path / "results.md").read_text()
    controls, algos = row(md, "fig4_controls"), row(md, "fig4_algorithms")
    # the control of another length is not an arm of this comparison: frozen 1-2 beats FA on test only there
    assert verdict(controls) == "not reproduced" and "fa 6.50% vs fa_frozen12 6.40%" in controls[5]
    assert "fa 6.00% vs fa_frozen123 8.00%" in controls[5] and "2 epochs" in controls[3]
    assert controls[4].count("spikefa run fig4_paper_fa") == 3 and "frozen_layers=[1, 2, 3]" in controls[4]
    assert algos[4].count("spikefa run fig4_paper_fa") == 2 and "frozen" not in algos[4]  # only the arms it reads
    assert "`validation_error.png` from `spikefa run fig4_paper_fa --set 'frozen_layers=[1, 2]'" not in md
    assert md.count("`validation_error.png` from `spikefa run fig4_paper_fa --set 'schedule=[{epochs = 2, eta = "
                    "0.001, steps_per_image = 10}]' --set 'frozen_layers=[1, 2]'`") == 1  # each figure under its own run
    assert "--set 'schedule=[{epochs = 2, eta = 0.001, steps_per_image = 10}]'" in controls[4]
    assert verdict(algos) == "reproduced" and "fa − bp = +0.70 points" in algos[5] and "BP 5.80%" in algos[2]
    assert row(md, "fig4_faithful")[5].startswith("**not run**")  # two epochs are not the declared recipe
