"""A claim's verdict: which source measures it, what its rules find, and how sure that is."""

from __future__ import annotations

from dataclasses import dataclass

from spikefa.report import rules
from spikefa.report.claims import Claim
from spikefa.report.conditions import differences_from_paper
from spikefa.report.joining import join_arms
from spikefa.report.sources import Source

VERDICTS = (
    "reproduced",
    "better than the paper",
    "worse than the paper",
    "not reproduced",
    "stopped",
    "not run",
)
FROM_RESULT = {
    rules.HOLDS: "reproduced",
    rules.WITHIN: "reproduced",
    rules.FAILS: "not reproduced",
    rules.BETTER: "better than the paper",
    rules.WORSE: "worse than the paper",
}
CONCLUSIVE_N = 3  # fewer independently trained networks than this cannot separate seed from effect


@dataclass
class Row:
    """One row of the page. `verdict` is one of VERDICTS (`stopped`: a spiking network whose
    recipe has not ended, judged on validation only); `n` counts the trained networks behind it."""

    claim: Claim
    verdict: str
    source: Source | None = None
    note: str = ""
    differences: tuple = ()
    n: int = 0

    @property
    def inconclusive(self) -> bool:
        return self.verdict != "not run" and self.n < CONCLUSIVE_N

    @property
    def label(self) -> str:
        """The verdict as the page prints it."""
        if self.verdict == "stopped":
            return self.source.progress.label
        return self.verdict


def networks(claim: Claim, s: Source) -> int:
    """How many trained networks a row's numbers average: the fewest among those it shows."""
    counts = [len(s.get(o.algorithm, o.metric)) for o in claim.ours]
    return min((c for c in counts if c), default=s.n)


def measures(claim: Claim, s: Source) -> bool:
    """Whether a source's runs are of the claim's config and qualify under its `where`."""
    if s.name != claim.config:
        return False
    try:
        return claim.matches(s.cfg)
    except (KeyError, TypeError, IndexError):
        return False


def judge(claim: Claim, sources: list[Source]) -> Row:
    """The row of one claim.

    Parameters
    ----------
    claim : Claim
        The claim.
    sources : list of Source
        Everything the page was given (sources that do not measure the claim are passed over).

    Returns
    -------
    Row
        Judged on the source its rules can read, then the one with the most networks, then the
        last given; `not run` where none measures it.
    """
    mine = [s for s in sources if measures(claim, s)]
    if claim.arms:  # the runs of the arms this claim reads
        mine = join_arms([s for s in mine if set(s.values) & {o.algorithm for o in claim.ours}])
    if not mine:
        return Row(claim, "not run")
    outs = [(s, rules.combine([r(s) for r in claim.rules])) for s in mine]
    s, out = max(reversed(outs), key=lambda so: (so[1].result is not None, networks(claim, so[0])))
    if out.result is None:
        if s.progress and not s.progress.finished:
            return Row(claim, "stopped", s, "", tuple(differences_from_paper(claim, s)), 1)
        return Row(claim, "not run", s, out.note)  # the folder lacks what the claim reads
    return Row(
        claim,
        FROM_RESULT[out.result],
        s,
        out.note,
        tuple(differences_from_paper(claim, s)),
        networks(claim, s),
    )
