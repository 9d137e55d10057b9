"""Experiment configs: TOML files shipped in the package (`spikefa/configs/`), overridden by
`--set KEY=VALUE`.

The shipped file `configs/<experiment>.toml` is the schema: it names every key an experiment
accepts and its type, besides the keys whose defaults live in code (`experiments.code_defaults`:
the spiking model's switches, defined once in its spec). A user's own TOML file names its experiment
(`experiment = "fig2_linear"`) and may set any subset of those keys; `--set` overrides come last. An
unknown key or a value of the wrong type is a `SpikefaError` that names the key and the closest
valid ones.
"""

from __future__ import annotations

import copy
import difflib
import math
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from spikefa import experiments
from spikefa.errors import SpikefaError

CONFIGS_DIR = Path(str(resources.files("spikefa") / "configs"))
# trained networks shipped with a checkout (not part of an installed package)
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


def shipped_configs() -> list[str]:
    return sorted(p.stem for p in CONFIGS_DIR.glob("*.toml"))


def read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise SpikefaError(f"cannot read config {path}: {exc.strerror}") from exc
    except (
        ValueError,
        RecursionError,
    ) as exc:  # TOMLDecodeError, an integer of over 4300 digits, deep nesting
        raise SpikefaError(f"config {path} is not valid TOML: {exc}") from exc


def locate(config: str) -> Path:
    """A path to a TOML file, or the name of a shipped config."""
    path = Path(config)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise SpikefaError(f"config file {path} does not exist")
        return path
    shipped = CONFIGS_DIR / f"{config}.toml"
    if not shipped.is_file():
        close = difflib.get_close_matches(config, shipped_configs(), n=3)
        hint = (
            f"did you mean {', '.join(close)}?"
            if close
            else f"shipped: {', '.join(shipped_configs())}"
        )
        raise SpikefaError(f"no config named {config!r}; {hint}")
    return shipped


def flat(d: dict, prefix: str = "") -> dict[str, Any]:
    """A nested config as one level of dotted keys.

    Parameters
    ----------
    d : dict
        A config, tables nested as dicts.
    prefix : str
        Put before every key (the dotted path of `d` itself).

    Returns
    -------
    dict
        Dotted key (`train.epochs`) → value; arrays of tables stay lists.
    """
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat(v, key + "."))
        else:
            out[key] = v
    return out


def parse_set(item: str) -> tuple[str, Any]:
    """`KEY=VALUE` with VALUE parsed as TOML; a bare word (`device=runtime`) is a string."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SpikefaError(f"--set expects KEY=VALUE, got {item!r}")
    try:
        doc = tomllib.loads(f"v = {text.strip()}")
        if list(doc) == ["v"]:  # nothing after the value (a newline could start another TOML line)
            return key, doc["v"]
    except (
        ValueError,
        RecursionError,
    ):  # TOMLDecodeError, an integer of over 4300 digits, deep nesting
        if text.strip().replace("_", "").replace("-", "").isalnum():
            return key, text.strip()
    raise SpikefaError(
        f"--set {key!r}: cannot parse value {text!r} (use TOML syntax, e.g. "
        f'1e-3, true, "text", ["fa","bp"])'
    )


def _type_name(v: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
    }.get(type(v), type(v).__name__)


def _scalars(value: Any):
    """The numbers, strings and booleans in a TOML value, however nested."""
    if isinstance(value, (list, dict)):
        for v in value.values() if isinstance(value, dict) else value:
            yield from _scalars(v)
    else:
        yield value


def _check_type(key: str, default: Any, value: Any) -> Any:
    """`value` if it has the type of `default`, else a SpikefaError naming the key. An integer is a
    number too (converted where the default is a float). TOML also has inf, nan and integers of any
    size, which no setting means: numbers must be finite and integers fit in 64 bits."""
    for v in _scalars(value):
        if isinstance(v, int) and not -(2**63) <= v < 2**63:
            raise SpikefaError(f"config key {key} is out of range: integers must fit in 64 bits")
        if isinstance(v, float) and not math.isfinite(v):
            raise SpikefaError(f"config key {key} must be a finite number, got {v}")
    if isinstance(default, bool) or isinstance(value, bool):
        ok = isinstance(default, bool) and isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float))
    else:
        ok = isinstance(value, type(default))
    if ok and isinstance(default, list) and default and value:
        ok = all(
            isinstance(v, type(default[0]))
            or (isinstance(default[0], float) and isinstance(v, int) and not isinstance(v, bool))
            for v in value
        )
    if not ok:
        expected = _type_name(default)
        if isinstance(default, list) and default:
            expected += f" of {type(default[0]).__name__} values"
        raise SpikefaError(f"config key {key} must be {expected}, got {value!r}")
    if isinstance(default, float):
        return float(value)
    if isinstance(default, list) and default and isinstance(default[0], float):
        return [float(v) for v in value]
    return value


def set_checked(cfg: dict, key: str, value: Any, like: Any, name: str | None = None) -> None:
    """Set a dotted key of a config to a value of the type a setting expects.

    Parameters
    ----------
    cfg : dict
        The config, changed in place; tables on the key's path are made as needed.
    key : str
        The dotted key, e.g. ``"train.epochs"``.
    value : Any
        The new value (an integer is converted where `like` is a float).
    like : Any
        A value of the expected type: the setting's default.
    name : str, optional
        The key as the user wrote it, for the error message (default: `key`).

    Raises
    ------
    SpikefaError
        When `value` does not have the type of `like`, or a key on the path is not a table.
    """
    value = _check_type(key if name is None else name, like, value)
    *parents, leaf = key.split(".")
    for p in parents:
        cfg = cfg.setdefault(p, {})
        if not isinstance(cfg, dict):
            raise SpikefaError(f"config key {key}: {p} is not a table")
    cfg[leaf] = value


def _open(shipped: dict, key: str, value: Any = None) -> bool:
    """True when `key` lies under a table that the shipped config leaves empty (e.g.
    `[per_algorithm]`), or names one and `value` is a table: such a table takes any keys, and the
    experiment checks them."""
    d = shipped
    *parents, leaf = key.split(".")
    for p in parents:
        d = d.get(p) if isinstance(d, dict) else None
        if d == {}:
            return True
    return isinstance(value, dict) and isinstance(d, dict) and d.get(leaf) == {}


def resolve(config: str, sets: list[str] = ()) -> dict:
    """The full config of a run: shipped defaults ← the user's file ← `--set` overrides."""
    path = locate(config)
    user = read_toml(path)
    name = user.get("experiment", path.stem)
    if not isinstance(name, str) or not (CONFIGS_DIR / f"{name}.toml").is_file():
        raise SpikefaError(
            f"config {path} names no known experiment (set experiment = one of "
            f"{', '.join(shipped_configs())})"
        )
    cfg = read_toml(CONFIGS_DIR / f"{name}.toml")
    cfg |= {k: v for k, v in experiments.code_defaults(name).items() if k not in cfg}
    shipped, schema = copy.deepcopy(cfg), flat(cfg)
    overrides = list(flat(user).items()) + [parse_set(s) for s in sets]
    for key, value in overrides:
        if key not in schema and _open(shipped, key, value):  # any keys; the experiment checks them
            set_checked(cfg, key, value, like=value)
            continue
        if key not in schema:
            close = difflib.get_close_matches(key, list(schema), n=3, cutoff=0.5)
            hint = (
                f"; did you mean {', '.join(close)}?"
                if close
                else f"; valid keys: {', '.join(sorted(schema))}"
            )
            raise SpikefaError(f"unknown config key {key!r} for {name}{hint}")
        set_checked(cfg, key, value, like=schema[key])
    require_positive(
        {"seed": cfg["seed"]}, allow_zero=True
    )  # every experiment seeds its random streams
    cfg["experiment"] = name
    return cfg


def toml_value(v: Any) -> str:
    """`v` written as a TOML value: a boolean, number, string, list or (inline table) dict, as
    `--set KEY=VALUE` and config.toml take it. Any other type is a SpikefaError."""
    if hasattr(v, "item") and getattr(v, "ndim", None) == 0:  # a NumPy scalar: its Python value
        v = v.item()
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(
        v, str
    ):  # a TOML basic string: quotes, backslashes and control characters escaped
        return (
            '"'
            + "".join(
                f"\\u{ord(c):04x}" if c < " " or c == "\x7f" else "\\" + c if c in '"\\' else c
                for c in v
            )
            + '"'
        )
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return (
            "{" + ", ".join(f"{toml_value(str(k))} = {toml_value(x)}" for k, x in v.items()) + "}"
        )
    if isinstance(v, (int, float)):
        return repr(v)
    raise SpikefaError(f"{v!r} is not a config value (a boolean, number, string, list or table)")


def to_toml(cfg: dict) -> str:
    """Serialise a resolved config (tables after plain keys, as TOML requires)."""

    def is_tables(v):  # an array of tables, e.g. [[schedule]] phases
        return isinstance(v, list) and v and all(isinstance(x, dict) for x in v)

    def table(d, prefix):
        lines = [
            f"{k} = {toml_value(v)}"
            for k, v in d.items()
            if not isinstance(v, dict) and not is_tables(v)
        ]
        for k, v in d.items():
            if isinstance(v, dict):
                lines += ["", f"[{prefix}{k}]"] + table(v, f"{prefix}{k}.")
            elif is_tables(v):
                for item in v:
                    lines += ["", f"[[{prefix}{k}]]"] + table(item, f"{prefix}{k}.")
        return lines

    return "\n".join(table(copy.deepcopy(cfg), "")) + "\n"


def halved(eta: float, epochs: float, halving_epochs: float) -> float:
    """`eta` after `epochs` epochs: constant, or halved every `halving_epochs` (continuously)
    when > 0."""
    return eta * 0.5 ** (epochs / halving_epochs) if halving_epochs else eta


def eta_at(cfg: dict, epochs_done: float) -> float:
    """The learning rate `eta` after `epochs_done` epochs of a run with
    `train.eta_halving_epochs`."""
    return halved(cfg["eta"], epochs_done, cfg["train"]["eta_halving_epochs"])


def phase_eta(phase: dict, epochs_into_phase: float) -> float:
    """The global rate (× eta_scale per layer) that a declared schedule phase has reached."""
    return halved(max(phase["eta"]), epochs_into_phase, phase["eta_halving_epochs"])


def dotted(cfg: dict, key: str) -> Any:
    """The value of config key `key`, dotted for tables ("train.epochs")."""
    for part in key.split("."):
        cfg = cfg[part]
    return cfg


def require_distinct(key: str, names: list, known) -> None:
    """Raise SpikefaError unless config key `key` lists at least one name, each once, from
    `known`."""
    if not names or len(set(names)) != len(names) or any(a not in known for a in names):
        raise SpikefaError(f"{key} must be distinct names from {', '.join(known)}, got {names}")


def require_positive_keys(cfg: dict, keys, allow_zero: bool = False) -> None:
    """`require_positive` of the values of config keys `keys` (dotted for tables)."""
    require_positive({key: dotted(cfg, key) for key in keys}, allow_zero)


def require_positive(values: dict, allow_zero: bool = False) -> None:
    """Raise SpikefaError naming the first config key whose value is not > 0 (≥ 0 with
    allow_zero)."""
    for key, v in values.items():
        if not (v >= 0 if allow_zero else v > 0):
            raise SpikefaError(
                f"{key} must be {'at least 0' if allow_zero else 'positive'}, got {v}"
            )
