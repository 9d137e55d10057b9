"""What a newcomer sees: the summary table of `spikefa run`, and a clean failure when data is missing."""

import re
import urllib.error
import urllib.request

from spikefa.cli import main
from spikefa.runner import summary_table


def test_run_ends_with_a_table_of_every_algorithm(tmp_path, capsys):
    assert main(["run", "fig2_linear", "--set", "train.examples=300", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    for algo in ("shallow", "node_perturbation", "bp", "fa"):
        assert re.search(rf"^\W*{algo}\b", out, re.M), out
    assert "test NSE" in out and out.strip().endswith(str(tmp_path / "r"))


def test_table_shows_validation_and_test_error_angle_and_time(tmp_path):
    summary = {"experiment": "fig3_mnist", "wall_seconds": 1234.5, "results": {
        "bp": {"test_error": 0.0241, "validation_error": 0.019, "train_seconds_per_run": 300.0, "runs": 2},
        "fa": {"test_error": 0.021, "validation_error": 0.02, "angle_deg_final": 41.03,
               "train_seconds_per_run": 310.0, "runs": 2}}}
    header, bp, fa, last = summary_table(summary, tmp_path).splitlines()
    assert header.split()[:5] == ["algorithm", "validation", "error", "test", "error"]
    assert bp.split() == ["bp", "1.90%", "2.41%", "–", "600", "s"]
    assert fa.split() == ["fa", "2.00%", "2.10%", "41.0°", "620", "s"]
    assert "1,234 s" in last and last.endswith(str(tmp_path))


def test_no_data_offline_is_one_line_naming_every_way_to_give_it_and_leaves_no_folder(tmp_path, monkeypatch, capsys):
    def offline(*args, **kw):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.delenv("SPIKEFA_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    out = tmp_path / "results" / "nodata"
    assert main(["run", "fig3_mnist", "--set", "runs=1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert all(w in err for w in ("SPIKEFA_DATA", "--data", str(tmp_path / "home" / ".cache" / "spikefa")))
    assert not (tmp_path / "results").exists()  # nor the parent folder it created
