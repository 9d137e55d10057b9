"""`spikefa report`: the results page, one row per claim of the paper.

Each row gives the paper's value, ours (mean ± SD over n independently trained networks), the
conditions with every known difference from the paper's, the command that reproduces ours, and a
verdict (see `verdicts.VERDICTS`). The claims and the rules of their verdicts are data, in
`claims.toml` beside this module (`claims`, `rules`); inputs are read by `sources` and `networks`,
kept in the repository by `records`, and the page is written by `render`.
"""

from __future__ import annotations

from pathlib import Path

from spikefa.errors import SpikefaError
from spikefa.report.claims import Claim, load_claims
from spikefa.report.joining import merge_algorithms
from spikefa.report.records import record_paths, save_records
from spikefa.report.render import render
from spikefa.report.sources import Source, load_source
from spikefa.report.verdicts import VERDICTS, Row, judge

CLAIMS = load_claims()

__all__ = [
    "CLAIMS",
    "VERDICTS",
    "Claim",
    "Row",
    "Source",
    "judge",
    "load_source",
    "merge_algorithms",
    "render",
    "report",
    "save_records",
]


def report(paths: list[str], out: str | Path, records: str | Path | None = None) -> Path:
    """Write the results page.

    Parameters
    ----------
    paths : list of str
        Results folders, sweep folders, checkpoints or saved evaluations.
    out : str or Path
        The Markdown file; figures of the given folders are copied beside it.
    records : str or Path, optional
        A record store (see `save_records`) whose every record is read too.

    Returns
    -------
    Path
        `out`.

    Raises
    ------
    SpikefaError
        Where nothing is given, or an input cannot be read.
    """
    given = [*map(str, record_paths(records) if records else []), *paths]
    if not given:
        raise SpikefaError(
            "nothing to report: give results folders, or --records with a store that holds records"
        )
    sources = merge_algorithms([s for p in given for s in load_source(p)])
    rows = [judge(c, sources) for c in CLAIMS]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from spikefa.results import atomic_write_bytes

    atomic_write_bytes(out, render(rows, out).encode())
    return out
