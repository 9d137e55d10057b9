"""The inputs of the results page: what each results folder, sweep, checkpoint or evaluation
measured.

Inputs, in any mix: a results folder of `spikefa run` (`summary.json`, `config.toml`, and for a
spiking network optionally the `evaluation.json` that `spikefa evaluate --json` printed), a sweep
folder of `spikefa sweep` (`sweep.json`, `runs/<point>/seed-*/`), a spiking checkpoint `.npz`, or a
saved evaluation `.json` naming its checkpoint. Record folders (see `records`) have the same layout.

`values` count independently trained networks: one value per network (a run's `runs`, a sweep's
seeds). The spike draws of one spiking network's evaluation are its read-out noise, kept apart in
`draws`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from spikefa import config
from spikefa.errors import SpikefaError
from spikefa.report import networks
from spikefa.report.commands import closest_config, command_for, search_command
from spikefa.results import per_network


@dataclass
class Source:
    """What one results folder (run or sweep point) or spiking network measured."""

    path: Path
    kind: str  # run | sweep | network
    experiment: str
    name: str  # the shipped config (or recipe) it ran
    cfg: dict  # its resolved config (one run's, for a sweep)
    values: dict  # algorithm → metric → one value per trained network
    command: str
    figures: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    origins: dict = field(default_factory=dict)  # figure → the command of the run that drew it
    draws: dict = field(default_factory=dict)  # algorithm → metric → spike draws of one network
    progress: networks.Progress | None = None  # a spiking network's recipe: how far it got
    selected_on: str | None = None  # how a spiking network was selected
    search: str | None = None  # a sweep point's declared search: its points are arms of one test

    def get(self, algo: str, metric: str) -> list:
        """The values of one algorithm's metric, one per network (missing ones left out)."""
        return [v for v in self.values.get(algo, {}).get(metric, []) if v is not None]

    @property
    def n(self) -> int:
        """How many networks per algorithm it measured (runs, or a sweep's seeds)."""
        return max((len(v) for ms in self.values.values() for v in ms.values()), default=0)


def arm(cfg: dict, algorithm: str) -> str:
    """An algorithm's name in the report: `fa_frozen12` for a run whose weight layers 1 and 2 kept
    their initial weights (`frozen_layers`), else the algorithm's own name."""
    frozen = cfg.get("frozen_layers") or []
    return f"{algorithm}_frozen{''.join(map(str, frozen))}" if frozen else algorithm


def load_source(path: str | Path) -> list[Source]:
    """The sources in a results folder, sweep folder, record, checkpoint or saved evaluation.

    Parameters
    ----------
    path : str or Path
        What `spikefa report` was given.

    Returns
    -------
    list of Source
        One per sweep point; one otherwise.

    Raises
    ------
    SpikefaError
        Where `path` is none of these, or a file in it cannot be read.
    """
    path = Path(path)
    if (path / "sweep.json").is_file():
        return sweep_sources(path)
    if (path / "summary.json").is_file():
        return [run_source(path)]
    if (path / "evaluation.json").is_file():
        return [network_source(path / "evaluation.json")]
    if path.suffix == ".npz" and path.is_file():
        return [checkpoint_source(path)]
    if path.suffix == ".json" and path.is_file():
        return [network_source(path)]
    raise SpikefaError(
        f"{path} is not a results folder (summary.json), a sweep folder "
        f"(sweep.json), a checkpoint (.npz) or a saved evaluation (.json)"
    )


def _folder_config(path: Path, experiment: str | None) -> dict:
    cfg = config.resolve(str(path / "config.toml")) if (path / "config.toml").is_file() else {}
    cfg.setdefault("experiment", experiment)
    return cfg


def run_source(path: Path) -> Source:
    """A results folder of `spikefa run`; a spiking run's saved evaluation replaces its one test
    draw by the mean of its draws."""
    s = networks.read_json(path / "summary.json")
    cfg = _folder_config(path, s.get("experiment"))
    values = {arm(cfg, a): per_network(r) for a, r in s.get("results", {}).items()}
    figures = sorted((path / "figures").glob("*.png"))
    src = _folder_source(path, "run", s, cfg, values, figures, s.get("stats", {}))
    if cfg.get("experiment") == "fig4_spiking":  # summary.json is written last: the run has ended
        trained = max((r.get("epochs", 0.0) for r in s.get("results", {}).values()), default=0.0)
        declared = networks.declared_epochs(cfg) or trained
        src.progress = networks.Progress(round(trained, 4), declared, True)
        src.selected_on = next((r.get("selected_on") for r in s.get("results", {}).values()), None)
        if (path / "evaluation.json").is_file():
            e = networks.read_json(path / "evaluation.json")
            add_draws(src, arm(cfg, e.get("feedback") or mode_of(cfg)), e)
    return src


def add_draws(src: Source, algo: str, evaluation: dict) -> None:
    """An evaluation's spike draws of one network: their mean is the network's value, the draws
    its read-out noise."""
    for split in ("test", "validation"):
        draws = evaluation.get(f"{split}_errors") or []
        mean = evaluation.get(f"{split}_error")
        if mean is not None:
            src.values.setdefault(algo, {})[f"{split}_error"] = [float(mean)]
        if len(draws) > 1:
            src.draws.setdefault(algo, {})[f"{split}_error"] = [float(d) for d in draws]


def sweep_sources(path: Path) -> list[Source]:
    """One source per point of a sweep folder, its values one per seed."""
    s = networks.read_json(path / "sweep.json")
    out = []
    for p in s.get("points", []):
        done = [Path(r["folder"]) for r in p.get("runs", [])]
        done = [f if f.is_absolute() else path / "runs" / p["name"] / f.name for f in done]
        cfgs = [f / "config.toml" for f in done if (f / "config.toml").is_file()]
        cfgs += [path / "runs" / p["name"] / "config.toml"]  # where a record keeps it
        cfgs = [c for c in cfgs if c.is_file()]
        cfg = config.resolve(str(cfgs[0])) if cfgs else {"experiment": s.get("experiment")}
        values = {
            arm(cfg, a): {m: d["values"] for m, d in ms.items()}
            for a, ms in p.get("metrics", {}).items()
        }
        figures = sorted((path / "figures").glob("*.png"))
        if cfgs:
            figures += sorted((cfgs[0].parent / "figures").glob("*.png"))
        seeds = s.get("seeds", len(done))
        src = _folder_source(path, "sweep", s, cfg, values, figures, p.get("tests", {}), seeds)
        if s.get("search"):
            src.search = s["search"]
            src.command = search_command(src.name, seeds, s["search"], s.get("sets", []))
        out.append(src)
    return out


def _folder_source(path, kind, summary, cfg, values, figures, stats, *seeds) -> Source:
    """A run's (or a sweep point's) source, named by the shipped config closest to its config, with
    the command that makes it again."""
    experiment, name = summary.get("experiment", "?"), closest_config(cfg)[0]
    command = command_for(kind, cfg, *seeds)
    return Source(path, kind, experiment, name, cfg, values, command, figures, stats)


def _network(path: Path, cfg: dict, state: dict, figures: list) -> Source:
    """One spiking network: its validation error always, its test error only once finished."""
    # a network that records no config matches no claim (its recipe is unknown)
    name = cfg.get("recipe") or (closest_config(cfg)[0] if len(cfg) > 1 else "")
    cfg = cfg or {"experiment": "fig4_spiking"}
    prog = networks.Progress(state["epochs_trained"], state["epochs_declared"], state["finished"])
    values = {"validation_error": [state.get("validation_error")]}
    if prog.finished and state.get("test_error") is not None:
        values["test_error"] = [state["test_error"]]
    src = Source(
        path,
        "network",
        cfg["experiment"],
        name,
        cfg,
        {mode_of(cfg): values},
        f"spikefa run {name}" if name else "(its recipe is not recorded)",
        figures,
        progress=prog,
        selected_on=state.get("selected_on"),
    )
    if prog.finished and len(state.get("test_errors") or []) > 1:
        src.draws[mode_of(cfg)] = {"test_error": list(state["test_errors"])}
    return src


def mode_of(cfg: dict) -> str:
    """The arm a spiking network's recipe trains: its first feedback mode, with its frozen
    layers."""
    return arm(cfg, (cfg.get("algorithms") or ["fa"])[0])


def checkpoint_source(path: Path) -> Source:
    """A spiking checkpoint, through its meta."""
    meta = networks.checkpoint_meta(path)
    cfg = networks.recipe_config(meta, path)
    figures = sorted((path.parent / "figures").glob("*.png"))  # a checkpoint in its results folder
    return _network(path, cfg, networks.status(meta, cfg), figures)


def network_source(path: Path) -> Source:
    """A saved evaluation of a spiking network; its draws are read only once the recipe ended."""
    e, state, cfg = networks.evaluated(path)
    src = _network(path, cfg, state, sorted((path.parent / "figures").glob("*.png")))
    read = e if state["finished"] else {k: v for k, v in e.items() if k.startswith("validation_")}
    if not {"test_error", "validation_error"} & set(read):
        return src  # a test evaluation of an unfinished network: never read
    src.draws = {}
    add_draws(src, mode_of(cfg), read)
    repeats = len(read.get("test_errors") or read.get("validation_errors") or [0])
    src.command = (
        f"spikefa evaluate {Path(e['checkpoint']).as_posix()} "
        f"--engine {e.get('engine', 'fast')}"
        + (" --split validation" if "validation_error" in read else "")
        + (f" --repeats {repeats}" if repeats > 1 else "")
        + f"  (trained by: {src.command})"
    )
    return src
