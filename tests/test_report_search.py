"""The table of a recipe search ranks runs of one network size only."""

import json

from spikefa import config
from spikefa.cli import main


def _candidate(folder, sizes, eta, error):
    """A finished search run's small files, as a run or a record leaves them."""
    folder.mkdir(parents=True)
    cfg = config.resolve("fig4_search", [f"sizes={sizes}", f"eta={eta}"])
    (folder / "config.toml").write_text(config.to_toml(cfg))
    result = {"validation_error": error, "selected_epoch": 3, "epochs_trained": 5, "health": []}
    (folder / "summary.json").write_text(
        json.dumps({"experiment": "fig4_spiking", "results": {"fa": result}})
    )


def test_a_search_over_two_widths_gets_one_ranked_table_per_width(tmp_path):
    small, full = "[784,500,500,500,10]", "[784,1500,1500,1500,10]"
    for i, (sizes, eta, error) in enumerate(
        [(small, 1e-3, 0.05), (full, 6.67e-4, 0.04), (small, 2e-3, 0.03), (full, 2e-3, 0.06)]
    ):
        _candidate(tmp_path / "runs" / str(i), sizes, eta, error)
    out = tmp_path / "table.md"
    assert main(["report", "--search", str(tmp_path / "runs"), "--out", str(out)]) == 0
    text = out.read_text()
    heads = [line for line in text.splitlines() if line.startswith("**")]
    assert heads == ["**784-500-500-500-10**", "**784-1500-1500-1500-10**"]
    small_part, full_part = text.split(heads[1])
    ranks = [
        [
            (r.split(" | ")[0], r.split(" | ")[2])
            for r in part.splitlines()
            if r[:3] in ("| 1", "| 2")
        ]
        for part in (small_part, full_part)
    ]
    assert ranks == [[("| 1", "0.002"), ("| 2", "0.001")], [("| 1", "0.000667"), ("| 2", "0.002")]]
