"""Runs that together make one measurement: algorithms run separately, and the arms of a
comparison."""

from __future__ import annotations

from pathlib import Path

from spikefa import config
from spikefa.report.commands import closest_config, command_for
from spikefa.report.sources import Source


def _joined(group: list[Source], kind: str, name: str, cfg: dict, command: str) -> Source:
    return Source(
        Path(" + ".join(str(s.path) for s in group)),
        kind,
        group[0].experiment,
        name,
        cfg,
        {a: v for s in group for a, v in s.values.items()},
        command,
        [f for s in group for f in s.figures],
        origins={f: s.command for s in group for f in s.figures},
        draws={a: v for s in group for a, v in s.draws.items()},
        progress=group[0].progress,
        selected_on=group[0].selected_on,
    )


def merge_algorithms(sources: list[Source]) -> list[Source]:
    """Runs, or sweeps seed by seed, of one config split by algorithm, joined.

    Parameters
    ----------
    sources : list of Source
        Everything the page was given.

    Returns
    -------
    list of Source
        `sources`, then one joined source per group of runs (or sweeps with as many seeds) that
        differ only in their `algorithms` (`--set algorithms=[...]`, e.g. to run them side by side):
        as the run with all of them would have measured, since every algorithm's network depends
        only on the seed and its own settings.
    """
    groups: dict[tuple, list[Source]] = {}
    for s in sources:
        if s.kind in ("run", "sweep") and isinstance(s.cfg.get("algorithms"), list):
            shared = {k: v for k, v in s.cfg.items() if k not in ("algorithms", "per_algorithm")}
            groups.setdefault((s.kind, s.n, config.to_toml(shared)), []).append(s)
    merged = []
    for (kind, n, _), group in groups.items():
        algos = [a for s in group for a in s.cfg["algorithms"]]
        if len(group) < 2 or len(set(algos)) != len(algos):
            continue
        order = config.resolve(closest_config(group[0].cfg)[0]).get("algorithms") or []
        algos.sort(key=lambda a: order.index(a) if a in order else len(order))  # as shipped
        cfg = {**group[0].cfg, "algorithms": algos}
        if isinstance(cfg.get("per_algorithm"), dict):  # each algorithm's settings, from its run
            cfg["per_algorithm"] = {
                **cfg["per_algorithm"],
                **{
                    a: s.cfg["per_algorithm"][a]
                    for s in group
                    for a in s.cfg["algorithms"]
                    if a in s.cfg["per_algorithm"]
                },
            }
        merged.append(_joined(group, kind, closest_config(cfg)[0], cfg, command_for(kind, cfg, n)))
    return sources + merged


def comparison(s: Source) -> str:
    """What the arms of one comparison share: the config without its algorithms, frozen layers and
    learning rates (so every arm is trained for as long, on the same data, from the same seed)."""
    cfg = {
        k: v
        for k, v in s.cfg.items()
        if k not in ("algorithms", "frozen_layers", "eta", "per_algorithm")
    }
    cfg["schedule"] = [
        {k: v for k, v in p.items() if k != "eta"} for p in cfg.get("schedule") or []
    ]
    return config.to_toml(cfg)


def join_arms(sources: list[Source]) -> list[Source]:
    """The arms of each comparison joined into one source: runs that differ only in what
    `comparison` leaves out, one command per arm; and the points of one declared search (a sweep
    over candidates, each trained with the same seeds), its one command."""
    groups: dict[str, list[Source]] = {}
    for s in sources:
        if s.kind == "run":
            groups.setdefault(comparison(s), []).append(s)
        elif s.search:  # every point of a sweep folder is of its one search
            groups.setdefault(str(s.path), []).append(s)
    return [
        _joined(g, g[0].kind, g[0].name, g[0].cfg, "; ".join(dict.fromkeys(s.command for s in g)))
        for g in groups.values()
    ]
