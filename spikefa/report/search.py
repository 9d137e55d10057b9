"""The table of a recipe search: one row per candidate, from its run's own small files.

A candidate is a spiking run (`summary.json`, `config.toml`, `metrics.csv`), found in run, sweep or
record folders. Rows are ranked by the validation error of the epoch each run selected, in one table
per network size and rule; they show the
settings a search varies, the validation curve's start and end, and the health of the selected
network (weight growth and saturated units per layer, measured on held-out images). Test errors are
never shown: a search chooses on validation alone.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from spikefa import config
from spikefa.errors import SpikefaError

SETTINGS = (
    ("eta", "η"),
    ("eta_scale", "η per layer"),
    ("weight_decay", "weight decay"),
    ("feedback_scale", "β"),
    ("steps_per_image", "steps"),
    ("batch", "streams"),
)


def candidates(folders) -> list[dict]:
    """Every spiking run below `folders`, with its settings, curve and health."""
    runs = []
    for folder in map(Path, folders):
        for summary in sorted(folder.rglob("summary.json")) if folder.is_dir() else []:
            s = json.loads(summary.read_text())
            if s.get("experiment") != "fig4_spiking":
                continue
            cfg = config.resolve(str(summary.parent / "config.toml"))
            for mode, r in s["results"].items():
                runs.append(
                    {
                        "folder": summary.parent,
                        "mode": mode,
                        "cfg": cfg,
                        "result": r,
                        "curve": _curve(summary.parent / "metrics.csv", mode),
                    }
                )
    if not runs:
        raise SpikefaError(
            f"no spiking runs (summary.json of fig4_spiking) below {', '.join(map(str, folders))}"
        )
    return sorted(
        runs,
        key=lambda c: (
            c["result"].get("validation_error") is None,
            c["result"].get("validation_error") or 0.0,
        ),
    )


def _curve(path: Path, mode: str) -> list[tuple[float, float]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [
            (float(r["epoch"]), float(r["validation_error"]))
            for r in csv.DictReader(f)
            if r.get("algorithm") == mode
        ]


def _setting(cfg: dict, key: str) -> str:
    v = cfg[key]
    if key == "eta_scale":
        return " / ".join(f"{a:g}" for a in v) if v else "1"
    return f"{v:g}" if isinstance(v, float) else str(v)


def table(folders) -> str:
    """The Markdown tables of the candidates below `folders`, one per network size and learning
    rule (smallest network first, FA before the others, each under a heading line), best first: a
    rank holds among runs of one width and one rule only, since a setting found on one width is not
    the same setting on another, and each rule has its own search."""
    runs = candidates(folders)
    groups = sorted(
        {(tuple(c["cfg"]["sizes"]), c["mode"]) for c in runs},
        key=lambda g: (sum(g[0]), g[0], g[1] != "fa", g[1]),
    )
    if len(groups) == 1:
        return _table(runs)
    return "\n".join(
        f"**{'-'.join(map(str, w))}, {mode}**\n\n"
        + _table([c for c in runs if (tuple(c["cfg"]["sizes"]), c["mode"]) == (w, mode)])
        for w, mode in groups
    )


def _table(runs: list[dict]) -> str:
    head = [
        "rank",
        "rule",
        *(label for _, label in SETTINGS),
        "sizes",
        "epochs",
        "validation: first → best (epoch)",
        "weight growth per layer",
        "saturated per layer",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rank, c in enumerate(runs, 1):
        r, curve, health = c["result"], c["curve"], c["result"].get("health") or []
        best = r.get("validation_error")
        first = f"{100 * curve[0][1]:.2f}%" if curve else "–"
        chosen = f"{100 * best:.2f}% ({r.get('selected_epoch', 0):g})" if best is not None else "–"
        cells = [
            str(rank),
            c["mode"],
            *(_setting(c["cfg"], k) for k, _ in SETTINGS),
            "-".join(map(str, c["cfg"]["sizes"])),
            f"{r.get('epochs_trained', curve[-1][0] if curve else 0):g}",
            f"{first} → {chosen}",
            " / ".join(f"{h['w_rms_growth']:.2f}×" for h in health) or "–",
            " / ".join(f"{100 * h['saturated']:.0f}%" for h in health) or "–",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write(folders, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table(folders))
    return out
