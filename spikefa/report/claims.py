"""The claims of the paper the results page checks, read from `claims.toml` beside this module."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from spikefa import config
from spikefa.errors import SpikefaError
from spikefa.report import rules
from spikefa.report.commands import differences


@dataclass(frozen=True)
class Shown:
    """One number of ours a row shows: mean ± SD over networks, and n."""

    label: str
    algorithm: str
    metric: str
    unit: str = ""


@dataclass
class Claim:
    """One claim of the paper: what it says, which runs measure it and the rules of its verdict."""

    key: str
    figure: str
    claim: str
    paper: str
    config: str  # the shipped config (or recipe) whose runs measure it
    command: str  # what to run when no results are given
    rules: list  # Source → Outcome
    ours: list = field(default_factory=list)  # of Shown
    paper_conditions: dict = field(default_factory=dict)  # dotted key → {value, meaning}
    paper_n: int = 1
    where: dict = field(default_factory=dict)  # which runs of `config` qualify (see claims.toml)
    figures: tuple = ()  # figure files to show (from the source folders)
    arms: bool = False  # compare runs that differ only in algorithm, η or frozen layers

    @property
    def spiking(self) -> bool:
        return config.resolve(self.config)["experiment"] == "fig4_spiking"

    def matches(self, cfg: dict) -> bool:
        """Whether a run of this claim's config, with this resolved config, measures it."""
        flat = config.flat(cfg)
        return all(_satisfies(self, key, want, cfg, flat) for key, want in self.where.items())


def _lookup(flat: dict, key: str) -> Any:
    m = re.fullmatch(r"(.+)\[(\d+)\]", key)
    if not m:
        return flat.get(key)
    v = flat.get(m.group(1))
    return v[int(m.group(2))] if isinstance(v, list) and int(m.group(2)) < len(v) else None


def _satisfies(claim: Claim, key: str, want: Any, cfg: dict, flat: dict) -> bool:
    have = _lookup(flat, key)
    if not isinstance(want, dict):
        return have == want
    if want.get("as_declared"):  # the recipe exactly as declared
        diff = differences(config.resolve(claim.config), cfg)
        return not {k for k in diff if k != "name"}
    if want.get("shipped"):  # the shipped config's own value
        return have == _lookup(config.flat(config.resolve(claim.config)), key)
    if "more_than" in want:
        return isinstance(have, (int, float)) and have > want["more_than"]
    if "length" in want:
        return isinstance(have, list) and len(have) == want["length"]
    raise SpikefaError(f"claim {claim.key}: where.{key} = {want} is not a condition the page knows")


FIELDS = {
    "key",
    "figure",
    "claim",
    "paper",
    "config",
    "command",
    "rules",
    "ours",
    "paper_conditions",
    "paper_n",
    "where",
    "figures",
    "arms",
}


def parse(data: dict) -> list[Claim]:
    """The claims of a claims file's contents.

    Parameters
    ----------
    data : dict
        The parsed TOML: `[[claims]]`, `[tolerances.*]`, `[conditions.*]`.

    Returns
    -------
    list of Claim
        In the file's order.

    Raises
    ------
    SpikefaError
        Naming the claim, for an unknown field, rule kind, tolerance or conditions table.
    """
    out = []
    for entry in data.get("claims", []):
        where = f"claim {entry.get('key', '?')}"
        unknown = set(entry) - FIELDS
        if unknown:
            raise SpikefaError(f"{where}: unknown fields {sorted(unknown)}")
        conditions = data.get("conditions", {}).get(entry.get("paper_conditions", ""), {})
        if entry.get("paper_conditions") and not conditions:
            raise SpikefaError(f"{where}: no [conditions.{entry['paper_conditions']}]")
        paper_n = entry.get("paper_n", 1)
        built = [rules.build(r, data.get("tolerances", {}), paper_n, where) for r in entry["rules"]]
        shown = [Shown(**o) for o in entry.get("ours", [])]
        out.append(
            Claim(
                **{
                    **entry,
                    "rules": built,
                    "ours": shown,
                    "paper_conditions": conditions,
                    "figures": tuple(entry.get("figures", ())),
                }
            )
        )
    return out


def load_claims() -> list[Claim]:
    """The claims shipped with spikefa (`spikefa/report/claims.toml`)."""
    text = resources.files("spikefa.report").joinpath("claims.toml").read_text(encoding="utf-8")
    return parse(tomllib.loads(text))
