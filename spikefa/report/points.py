"""The table of a sweep's points against its first point, over independently trained seeds.

For each point (a candidate of a declared search, or a grid point) and algorithm: the settings it
changes, its metric as mean ± SD over its seeds, and its difference from the first point with the
standard error of that difference and Welch's t-test. Read from the sweep's `sweep.json`, so a
record of the sweep (`spikefa report --save-records`) rebuilds the table on a fresh clone.
"""

from __future__ import annotations

import math
from pathlib import Path

from scipy import stats

from spikefa.errors import SpikefaError
from spikefa.report.networks import read_json


def _sweep(folder) -> dict:
    path = Path(folder) / "sweep.json"
    if not path.is_file():
        raise SpikefaError(f"{folder}: not a sweep folder or record (no sweep.json)")
    s = read_json(path)
    if not s.get("points"):
        raise SpikefaError(f"{path}: the sweep has no points")
    return s


def _cell(m: dict) -> str:
    spread = f" ± {100 * m['sd']:.2f}" if m["n"] > 1 else ""  # one seed has no spread to show
    return f"{100 * m['mean']:.2f}{spread}% (n = {m['n']})"


def _against(m: dict, ref: dict) -> str:
    """m − ref in points, with the SE of the difference and Welch's p (where both have seeds)."""
    diff = 100 * (m["mean"] - ref["mean"])
    if m["n"] < 2 or ref["n"] < 2:
        return f"{diff:+.2f}"
    se = 100 * math.sqrt(m["sd"] ** 2 / m["n"] + ref["sd"] ** 2 / ref["n"])
    p = stats.ttest_ind_from_stats(
        m["mean"], m["sd"], m["n"], ref["mean"], ref["sd"], ref["n"], equal_var=False
    ).pvalue
    return f"{diff:+.2f} ± {se:.2f} (p = {p:.2g})" if se > 0 else f"{diff:+.2f}"


def _settings(sets: list[str]) -> str:
    """The `--set` items, a rule's lines (newlines, or TOML's escaped ones) joined by "; "."""
    lines = (s.replace("\\u000a", "; ").replace("\n", "; ") for s in sets)
    return "<br>".join(f"`{s}`" for s in lines) or "–"


def table(folder, metric: str = "validation_error") -> str:
    """The Markdown table of the sweep in `folder` (a sweep folder or its record), one row per
    point and algorithm, each against the first point's same algorithm.

    Parameters
    ----------
    folder : str or Path
        A folder holding `sweep.json`.
    metric : str
        The summarised metric to compare (an error rate, shown in percent).

    Returns
    -------
    str
        The table.

    Raises
    ------
    SpikefaError
        Without `sweep.json`, or where no point summarises `metric`.
    """
    points = _sweep(folder)["points"]
    first = points[0]
    lines = [
        f"| point | settings | {metric.replace('_', ' ')} | against {first['name']}, points |",
        "|---|---|---|---|",
    ]
    for p in points:
        for algo, ms in p.get("metrics", {}).items():
            ref = first.get("metrics", {}).get(algo, {}).get(metric)
            if metric not in ms:
                continue
            vs = _against(ms[metric], ref) if ref and p is not first else "–"
            label = p["name"] if len(p["metrics"]) == 1 else f"{p['name']} · {algo}"
            lines.append(
                f"| {label} | {_settings(p.get('sets', []))} | {_cell(ms[metric])} | {vs} |"
            )
    if len(lines) == 2:
        raise SpikefaError(f"{folder}: no point of the sweep summarises {metric}")
    return "\n".join(lines) + "\n"


def write(folder, out: str | Path, metric: str = "validation_error") -> Path:
    """Write `table(folder, metric)` to `out`; returns its path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table(folder, metric))
    return out
