"""The record store: the small files of every measurement the results page reads, kept in the
repository so that the page can be rebuilt from a fresh clone.

A record is a folder named for what it measured (the config it ran, how it differs from the shipped
one, its seed), so that saving a rerun replaces the earlier record of the same measurement and
leaves the others as they are. It holds the resolved `config.toml`, `metrics.csv`, `summary.json`,
a sweep's `sweep.json` (with each point's config under `runs/<point>/`), and for a spiking network
`evaluation.json`: its evaluation with its state of training (`network`), the test error only once
its recipe has ended. Never checkpoints or figures.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from spikefa import config
from spikefa.report import networks
from spikefa.report.commands import command_for
from spikefa.report.sources import Source, load_source

SMALL_FILES = ("config.toml", "metrics.csv", "summary.json", "evaluation.json")


def record_name(src: Source) -> str:
    """A measurement's record folder: its config's name, its kind and a digest of its command
    and seed (the same measurement rerun gets the same name)."""
    kind = "sweep" if src.kind == "sweep" else "run"
    cmd = command_for(kind, src.cfg, 0) if src.cfg else str(src.path)
    digest = hashlib.sha1(f"{src.kind}\n{cmd}\nseed={src.cfg.get('seed')}".encode()).hexdigest()[:8]
    kind = "" if src.kind == "run" else f"-{src.kind}"
    return f"{src.name or 'unnamed'}{kind}-{digest}"


def _write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")


def _copy_run(folder: Path, into: Path) -> None:
    for name in SMALL_FILES:
        if (folder / name).is_file():
            shutil.copyfile(folder / name, into / name)


def _copy_sweep(folder: Path, into: Path) -> None:
    s = networks.read_json(folder / "sweep.json")
    for p in s.get("points", []):
        runs = [Path(r["folder"]) for r in p.get("runs", [])]
        runs = [f if f.is_absolute() else folder / "runs" / p["name"] / f.name for f in runs]
        cfgs = [f / "config.toml" for f in runs if (f / "config.toml").is_file()]
        if cfgs:  # every seed runs the same config but for its seed: one stands for all
            (into / "runs" / p["name"]).mkdir(parents=True)
            shutil.copyfile(cfgs[0], into / "runs" / p["name"] / "config.toml")
        for r in p.get("runs", []):
            r["folder"] = Path(r["folder"]).name
    s.pop("folder", None)  # where it ran: a path of that machine, not of the record
    _write_json(into / "sweep.json", s)


def _copy_network(src: Source, given: Path, into: Path) -> None:
    """A spiking network: its recipe, its state of training, and its evaluation where its recipe
    has ended (a test evaluation of an unfinished network is left out)."""
    if given.suffix == ".npz":
        meta = networks.checkpoint_meta(given)
        e, state = {"checkpoint": given.name}, networks.status(meta, src.cfg)
    else:
        e, state, _ = networks.evaluated(given)
        if not state["finished"]:
            e = {k: v for k, v in e.items() if not k.startswith("test_")}
        if Path(e["checkpoint"]).is_absolute():
            e["checkpoint"] = Path(e["checkpoint"]).name
    if src.cfg.get("experiment") and len(src.cfg) > 1:
        (into / "config.toml").write_text(config.to_toml(src.cfg))
    if (given.parent / "metrics.csv").is_file():  # a checkpoint in its results folder
        shutil.copyfile(given.parent / "metrics.csv", into / "metrics.csv")
    _write_json(into / "evaluation.json", {**e, "network": state})


def save_records(paths: list[str], store: str | Path) -> list[Path]:
    """Copy the small files of results into the record store.

    Parameters
    ----------
    paths : list of str
        Results folders, sweep folders, checkpoints or saved evaluations.
    store : str or Path
        The store (e.g. `docs/records`); created where missing.

    Returns
    -------
    list of Path
        The records written, each replacing the earlier record of the same measurement.
    """
    store, written = Path(store), []
    store.mkdir(parents=True, exist_ok=True)
    for given in map(Path, paths):
        src = load_source(given)[0]  # a sweep's points share its folder
        target = store / record_name(src)
        tmp = Path(tempfile.mkdtemp(dir=store, prefix=f".{target.name}."))
        if src.kind == "sweep":
            _copy_sweep(given, tmp)
        elif src.kind == "run":
            _copy_run(given, tmp)
        else:
            _copy_network(src, given if given.is_file() else given / "evaluation.json", tmp)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        written.append(target)
    return written


def record_paths(store: str | Path) -> list[Path]:
    """The records in a store, in name order (hidden folders of unfinished saves left out)."""
    store = Path(store)
    return (
        sorted(p for p in store.iterdir() if p.is_dir() and not p.name.startswith("."))
        if store.is_dir()
        else []
    )
