"""Which shipped config a resolved config comes from, how it differs, and the command that reruns
it."""

from __future__ import annotations

import re
import shlex

from spikefa import config
from spikefa.errors import SpikefaError

# bookkeeping: these keys do not change what is measured
NOT_SETTINGS = {
    "seed",
    "runs",
    "checkpoint_minutes",
    "backend",
    "threads",
    "device",
    "chunk_images",
    "keep_snapshots",
    "train.eval_every",
    "angle.window",
    "angle.final_examples",
    "test.points",
    "validation.every_images",
}


def experiment_of(name: str) -> str | None:
    """The experiment a shipped config runs, or None where `name` is not a shipped config."""
    try:
        return config.resolve(name)["experiment"]
    except SpikefaError:
        return None


def differences(base: dict, cfg: dict) -> dict:
    """The settings of a config that differ from another one.

    Parameters
    ----------
    base, cfg : dict
        Resolved configs.

    Returns
    -------
    dict
        Dotted key → the value in `cfg`, for every setting that differs (bookkeeping keys and
        `experiment` left out).
    """
    a, b = config.flat(base), config.flat(cfg)
    return {
        k: v for k, v in b.items() if a.get(k) != v and k not in NOT_SETTINGS and k != "experiment"
    }


def closest_config(cfg: dict) -> tuple[str, dict]:
    """The shipped config a resolved config comes from.

    Parameters
    ----------
    cfg : dict
        A resolved config.

    Returns
    -------
    name : str
        The recipe it names (`recipe`), else the shipped config of its experiment with the fewest
        differing settings.
    diff : dict
        Those differences (dotted key → value).
    """
    names = [n for n in config.shipped_configs() if experiment_of(n) == cfg.get("experiment")]
    if cfg.get("recipe") in names:
        names = [cfg["recipe"]]
    if not names:
        return cfg.get("experiment", "?"), {}
    found = [(n, differences(config.resolve(n), cfg)) for n in names]
    return min(found, key=lambda nd: len(nd[1]))  # the first of equally close ones


def toml_value(v) -> str:
    """A value as TOML on one line (tables inline, as `--set` takes them)."""
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list) and any(isinstance(x, dict) for x in v):
        return "[" + ", ".join(map(toml_value, v)) + "]"
    return config.to_toml({"v": v}).strip()[len("v = ") :]


def set_item(key: str, v) -> str:
    """`--set KEY=VALUE`, quoted for the shell where the value needs it."""
    item = f"{key}={toml_value(v)}"
    return f"--set '{item}'" if re.search(r"[^\w.,=+-]", item) else f"--set {item}"


def command_for(kind: str, cfg: dict, seeds: int = 0) -> str:
    """The command that reruns a config.

    Parameters
    ----------
    kind : str
        `run` (`spikefa run`) or `sweep` (`spikefa sweep`).
    cfg : dict
        The resolved config.
    seeds : int
        A sweep's number of seeds.

    Returns
    -------
    str
        The shipped config it comes from, with one `--set` per differing setting.
    """
    name, diff = closest_config(cfg)
    sets = " ".join(set_item(k, v) for k, v in diff.items())
    if kind == "sweep":
        return f"spikefa sweep {name} --seeds {seeds}" + (f" {sets}" if sets else "")
    runs = cfg.get("runs")
    if runs is not None and runs != config.resolve(name).get("runs"):
        sets = (sets + " " if sets else "") + f"--set runs={runs}"
    return f"spikefa run {name}" + (f" {sets}" if sets else "")


def search_command(name: str, seeds: int, search: str, sets: list[str]) -> str:
    """The command that reruns a declared search: `spikefa sweep` over its candidates, with the
    options that were given to every one of them."""
    given = "".join(f" --set {shlex.quote(s)}" for s in sets)
    return f"spikefa sweep {name} --seeds {seeds} --candidates {search}{given}"
