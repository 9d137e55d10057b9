"""A spiking network's state of training, from its checkpoint's meta or a saved evaluation.

A network is finished once its recipe has ended; only then is its test error read. Checkpoints
record `epochs_trained`, `epochs_declared` and `finished`; older ones are read through `epoch`, the
validation curve and the recipe's schedule.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from spikefa import config
from spikefa.errors import SpikefaError
from spikefa.report.commands import experiment_of


@dataclass(frozen=True)
class Progress:
    """How far a network's recipe got: epochs trained of those declared."""

    trained: float
    declared: float
    finished: bool

    @property
    def label(self) -> str:
        return f"stopped at epoch {self.trained:g} of {self.declared:g}"


def read_json(path: Path) -> dict:
    """A JSON file as a dict; an unreadable one is a SpikefaError naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SpikefaError(f"cannot read {path}: {exc}") from None


def declared_epochs(cfg: dict) -> float | None:
    """The epochs a spiking recipe declares: its schedule's phases, else `train.epochs`."""
    if cfg.get("schedule"):
        return round(sum(p["epochs"] for p in cfg["schedule"]), 4)
    epochs = (cfg.get("train") or {}).get("epochs")
    return float(epochs) if epochs is not None else None


def recipe_config(meta: dict, where) -> dict:
    """The resolved config a checkpoint records (its recipe as a table, TOML text or a name); {}
    where it records none (such a network matches no claim)."""
    recipe = meta.get("config")
    if isinstance(recipe, dict):
        cfg = dict(recipe)
    elif isinstance(recipe, str) and "=" in recipe:
        try:
            cfg = tomllib.loads(recipe)
        except ValueError as exc:
            raise SpikefaError(
                f"{where}: the config it records is not valid TOML ({exc})"
            ) from None
    elif isinstance(recipe, str) and recipe and experiment_of(recipe):
        cfg = {**config.resolve(recipe), "recipe": recipe}
    else:
        return {}
    cfg.pop("name", None)  # the name a run was given is not a setting
    cfg.setdefault("experiment", "fig4_spiking")
    return cfg


def progress(meta: dict, cfg: dict) -> Progress:
    """Epochs trained of those declared, and whether the recipe has ended.

    Parameters
    ----------
    meta : dict
        A checkpoint's meta, or the `network` table of a saved record.
    cfg : dict
        The recipe the network was trained under.

    Returns
    -------
    Progress
        From `epochs_trained`, `epochs_declared` and `finished` where recorded; for older
        checkpoints the epochs trained are the last validation measurement's (a selected network's
        own `epoch` is where it was selected, not where training stopped), and the recipe has ended
        once they reach its schedule's total.
    """
    split, curve = meta.get("split") or {}, meta.get("curve") or []
    trained = meta.get("epochs_trained")
    if trained is None and curve and split.get("train_images"):
        trained = curve[-1][0] / split["train_images"]
    if trained is None:
        trained = meta.get("epoch", 0.0)
    declared = meta.get("epochs_declared", declared_epochs(cfg))
    declared = trained if declared is None else declared
    finished = meta.get("finished", trained >= declared - 1e-9)
    return Progress(round(float(trained), 4), round(float(declared), 4), bool(finished))


def status(meta: dict, cfg: dict) -> dict:
    """What the page may read of a network: its progress, how it was selected, its validation
    error and, only once its recipe has ended, its test error and spike draws."""
    p = progress(meta, cfg)
    val = meta.get("validation_error", (meta.get("best") or {}).get("validation_error"))
    out = {
        "epochs_trained": p.trained,
        "epochs_declared": p.declared,
        "finished": p.finished,
        "selected_on": meta.get("selected_on", "last"),
        "validation_error": val,
    }
    if p.finished:
        out.update({k: meta[k] for k in ("test_error", "test_errors") if meta.get(k) is not None})
    return out


def checkpoint_meta(path: Path) -> dict:
    """The meta JSON of a spikefa checkpoint."""
    from spikefa.results import load_npz

    z = load_npz(path, "checkpoint")
    if "meta" not in z:
        raise SpikefaError(f"{path} is not a spikefa checkpoint (no meta)")
    try:
        return json.loads(str(z["meta"]))
    except ValueError:
        raise SpikefaError(f"{path}: its meta is not JSON") from None


def evaluated(path: Path) -> tuple[dict, dict, dict]:
    """A saved `spikefa evaluate --json` output: (evaluation, network status, recipe config).

    A record carries the network's status and its recipe beside it (`network`, `config.toml`);
    otherwise both are read from the checkpoint the evaluation names.
    """
    e = read_json(path)
    if "checkpoint" in e and "network" in e:
        recipe = Path(path).parent / "config.toml"
        cfg = config.resolve(str(recipe)) if recipe.is_file() else {}
        return e, e["network"], cfg
    if "checkpoint" not in e or not {"test_error", "validation_error"} & set(e):
        raise SpikefaError(
            f"{path} is not the output of spikefa evaluate --json "
            f"(no checkpoint and test_error or validation_error)"
        )
    ckpt = Path(e["checkpoint"])
    ckpt = ckpt if ckpt.is_absolute() or ckpt.exists() else Path(path).parent / ckpt
    meta = checkpoint_meta(ckpt)
    cfg = recipe_config(meta, ckpt)
    return e, status(meta, cfg), cfg
