"""The table of a recipe search ranks runs of one network size and one rule only."""

import json

import numpy as np
from scipy import stats

from spikefa import config
from spikefa.cli import main


def _candidate(folder, sizes, eta, error, rule="fa"):
    """A finished search run's small files, as a run or a record leaves them."""
    folder.mkdir(parents=True)
    cfg = config.resolve("fig4_search", [f"sizes={sizes}", f"eta={eta}", f'algorithms=["{rule}"]'])
    (folder / "config.toml").write_text(config.to_toml(cfg))
    result = {"validation_error": error, "selected_epoch": 3, "epochs_trained": 5, "health": []}
    (folder / "summary.json").write_text(
        json.dumps({"experiment": "fig4_spiking", "results": {rule: result}})
    )


def test_a_search_over_two_widths_and_rules_gets_one_ranked_table_per_width_and_rule(tmp_path):
    small, full = "[784,500,500,500,10]", "[784,1500,1500,1500,10]"
    for i, (sizes, eta, error, rule) in enumerate(
        [
            (small, 1e-3, 0.05, "fa"),
            (full, 6.67e-4, 0.04, "fa"),
            (small, 2e-3, 0.03, "fa"),
            (full, 2e-3, 0.06, "fa"),
            (small, 4e-3, 0.02, "bp"),
            (small, 8e-3, 0.07, "bp"),
        ]
    ):
        _candidate(tmp_path / "runs" / str(i), sizes, eta, error, rule)
    out = tmp_path / "table.md"
    assert main(["report", "--search", str(tmp_path / "runs"), "--out", str(out)]) == 0
    text = out.read_text()
    heads = [line for line in text.splitlines() if line.startswith("**")]
    assert heads == [
        "**784-500-500-500-10, fa**",
        "**784-500-500-500-10, bp**",
        "**784-1500-1500-1500-10, fa**",
    ]
    parts = [text.split(h)[1].split("**")[0] for h in heads]
    ranks = [
        [
            (r.split(" | ")[0], r.split(" | ")[2])
            for r in part.splitlines()
            if r[:3] in ("| 1", "| 2")
        ]
        for part in parts
    ]
    assert ranks == [
        [("| 1", "0.002"), ("| 2", "0.001")],
        [("| 1", "0.004"), ("| 2", "0.008")],
        [("| 1", "0.000667"), ("| 2", "0.002")],
    ]


def _point(name, sets, values):
    m = {"n": len(values), "mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1))}
    return {"name": name, "sets": sets, "metrics": {"fa": {"validation_error": {**m}}}}


def test_a_sweep_s_points_are_compared_with_its_first_over_seeds(tmp_path):
    plain, delays = [0.050, 0.054, 0.052], [0.061, 0.065, 0.066]
    rule = 'plasticity="dx/dt = -x / (20 * ms)\\u000aw += x"'  # a rule's lines, as a sweep records them
    points = [_point("plain", [], plain), _point("delays", ["feedback_delay=2", rule], delays)]
    (tmp_path / "sweep.json").write_text(json.dumps({"points": points}))
    out = tmp_path / "t.md"
    assert main(["report", "--points", str(tmp_path), "--out", str(out)]) == 0
    rows = [r.split(" | ") for r in out.read_text().splitlines()[2:]]
    assert [r[0] for r in rows] == ["| plain", "| delays"] and rows[1][1] == (
        '`feedback_delay=2`<br>`plasticity="dx/dt = -x / (20 * ms); w += x"`'
    )
    assert rows[0][2] == "5.20 ± 0.20% (n = 3)" and rows[0][3] == "– |"
    p = stats.ttest_ind(delays, plain, equal_var=False).pvalue
    se = 100 * np.sqrt(np.var(delays, ddof=1) / 3 + np.var(plain, ddof=1) / 3)
    assert rows[1][3] == f"+1.20 ± {se:.2f} (p = {p:.2g}) |"


def test_a_point_of_one_seed_shows_no_spread(tmp_path):
    points = [_point("plain", [], [0.0347]), _point("gate", ["plasticity_delay=6"], [0.0214])]
    for p in points:
        p["metrics"]["fa"]["validation_error"]["sd"] = 0.0
    (tmp_path / "sweep.json").write_text(json.dumps({"points": points}))
    out = tmp_path / "t.md"
    assert main(["report", "--points", str(tmp_path), "--out", str(out)]) == 0
    rows = [r.split(" | ") for r in out.read_text().splitlines()[2:]]
    assert rows[1][2:] == ["2.14% (n = 1)", "-1.33 |"]


def test_points_of_a_folder_without_a_sweep_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["report", "--points", str(tmp_path), "--out", str(tmp_path / "t.md")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no sweep.json" in err[0] and not (tmp_path / "t.md").exists()
