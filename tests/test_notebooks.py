"""Every notebook runs top to bottom in QUICK mode, in a fresh folder, without an error."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip(
    "nbformat", reason="the notebook tests need the test extras (pip install -e '.[test]')"
)
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_there_is_a_notebook_per_figure():
    assert [p.stem[:2] for p in NOTEBOOKS] == [f"{k:02d}" for k in range(1, 10)]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_quick_mode(path, tmp_path, monkeypatch, data_folder):
    book = nbformat.read(path, as_version=4)
    assert not any(c.get("outputs") for c in book.cells if c.cell_type == "code"), (
        "commit notebooks without outputs"
    )
    monkeypatch.setenv("SPIKEFA_QUICK", "1")
    monkeypatch.setenv("SPIKEFA_DATA", str(data_folder))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nbclient.NotebookClient(
        book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    assert any(
        o.get("output_type") == "display_data"
        for c in book.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    ), "a notebook shows at least one figure"
