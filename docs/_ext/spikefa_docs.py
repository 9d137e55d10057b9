"""Pages of the documentation that are generated at build time, so that they cannot drift from the code.

- `_generated/configs.md`: every key of every shipped config, read from the TOML files that the
  package itself loads (`spikefa.config.CONFIGS_DIR`) — the value as shipped and the comment written
  beside it in the file.
- `_generated/cli.md`: every command and option of `spikefa`, read from its argparse parser.
- `_generated/results_toctree.md`: the results section of the table of contents, which lists the
  results report `docs/results.md` (written by `spikefa report`) when it exists, and otherwise
  `_generated/results.md`, a short page that says how to make it.
- `_generated/notebooks/*.ipynb`: copies of `notebooks/`, rendered by myst-nb.

`generate(docs_dir)` writes them; `docs/conf.py` calls it at the start of every build. Files are
only rewritten when their content changes, so incremental builds stay incremental.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

# ----------------------------------------------------------------------------------- TOML comments
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""")
_NUMPYDOC = re.compile(
    r"^(Parameters|Returns|Attributes)\n-{3,}$", re.M
)  # numpydoc section headers
_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def _split_comment(line: str) -> tuple[str, str]:
    """(code, comment) of one TOML line; a `#` inside a string is not a comment."""
    quote = None
    i = 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c == "#":
            return line[:i], line[i + 1 :].strip()
        i += 1
    return line, ""


def flat_keys(doc: dict, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of a parsed TOML document; an array of tables gives `name[i].key`."""
    out: dict[str, Any] = {}
    for k, v in doc.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_keys(v, key + "."))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for i, item in enumerate(v):
                out.update(flat_keys(item, f"{key}[{i}]."))
        else:
            out[key] = v
    return out


def read_config(path: Path) -> dict:
    """A shipped config as the docs show it: its description, and per table its note and its keys
    (dotted name, value, comment). Values come from `tomllib`, comments from the lines."""
    text = path.read_text(encoding="utf-8")
    values = flat_keys(tomllib.loads(text))
    intro: list[str] = []
    tables: list[dict] = [{"name": "", "note": [], "keys": []}]
    counts: dict[str, int] = {}
    pending: list[str] = []
    last: list[str] | None = (
        None  # the comment an indented comment line continues (a key's or a table's)
    )
    started = False
    for raw in text.splitlines():
        code, comment = _split_comment(raw)
        if not code.strip():
            if comment and not started:
                intro.append(comment)
            elif comment and last is not None and raw[:1].isspace():
                last.append(comment)
            elif comment:
                pending.append(comment)
                last = None
            else:
                last = None
            continue
        started = True
        header = _HEADER.match(code)
        if header and not _KEY.match(code):
            name = header.group(2).strip()
            if header.group(1) == "[[":
                counts[name] = counts.get(name, -1) + 1
                name = f"{name}[{counts[name]}]"
            tables.append(
                {"name": name, "note": pending + ([comment] if comment else []), "keys": []}
            )
            pending, last = [], (tables[-1]["note"] if comment else None)
            continue
        m = _KEY.match(code)
        if m:
            key = m.group(1).strip("\"'")
            full = f"{tables[-1]['name']}.{key}" if tables[-1]["name"] else key
            entry = {"key": full, "comment": pending + ([comment] if comment else [])}
            pending, last = [], entry["comment"]
            tables[-1]["keys"].append(entry)
    tables[-1]["note"] += pending  # comments after the last key
    for t in tables:  # the value of every key, as parsed (multi-line values included)
        for k in t["keys"]:
            k["value"] = values.get(k["key"])
    listed = {k["key"] for t in tables for k in t["keys"]}
    missing = [k for k in values if k not in listed]  # e.g. dotted keys written as `a.b = 1`
    if missing:
        tables.append(
            {
                "name": "",
                "note": [],
                "keys": [{"key": k, "value": values[k], "comment": []} for k in missing],
            }
        )
    return {
        "name": path.stem,
        "intro": intro,
        "experiment": str(values.get("experiment", "")),
        "tables": [t for t in tables if t["keys"] or t["note"]],
        "keys": list(values),
    }


def _md(text: str) -> str:
    """Plain comment text made safe for a Markdown table cell (code spans left alone)."""
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for p in parts:
        if not p.startswith("`"):
            p = re.sub(r"([\\*_|<>$\[\]])", r"\\\1", p)
        out.append(p.replace("|", "\\|") if p.startswith("`") else p)
    return "".join(out)


def _value(v: Any) -> str:
    s = json.dumps(v, ensure_ascii=False)
    return "`" + s.replace("`", "'") + "`"


# Meanings of keys that many configs share, shown where a file has no comment beside the key.
COMMON = {
    "experiment": "the experiment this config runs (one module in spikefa.experiments)",
    "seed": "the run's seed, split into named streams (data, initial weights, feedback, masks, spikes)",
    "algorithms": "the learning rules (or, for the spiking network, feedback modes) to run and compare",
    "sizes": "layer sizes, input first",
    "runs": "independent networks per algorithm (run r uses seed + r)",
}


def configs_page(configs_dir: Path) -> str:
    files = sorted(configs_dir.glob("*.toml"))
    lines = [
        "# Config reference",
        "",
        "Every key of every config that ships with spikefa, with the value it ships with and the note",
        "written beside it in the file. This page is generated from the TOML files inside the package",
        "each time the documentation is built; the same files are the schema that `spikefa run` checks",
        "your overrides against (an unknown key or a value of the wrong type stops with exit code 2).",
        "",
        "Override any key with `--set KEY=VALUE` (dotted for tables, the value in TOML syntax), or write",
        "your own TOML file that names its `experiment` and sets any subset of that experiment's keys.",
        "",
        "Shipped configs: " + ", ".join(f"[`{p.stem}`](config-{p.stem})" for p in files) + ".",
        "",
    ]
    for path in files:
        cfg = read_config(path)
        lines += [f"(config-{cfg['name']})=", f"## `{cfg['name']}`", ""]
        if cfg["intro"]:
            lines += [_md(" ".join(cfg["intro"])), ""]
        lines += [f"Run it with `spikefa run {cfg['name']}`.", ""]
        base = cfg["experiment"]
        if base and base != cfg["name"] and (configs_dir / f"{base}.toml").is_file():
            lines += [
                f"This config runs the `{base}` experiment and sets only the keys below; every other key "
                f"keeps its value from [`{base}`](config-{base}).",
                "",
            ]
        for t in cfg["tables"]:
            if t["name"]:
                lines += [
                    f"### `[{t['name']}]`" if "[" not in t["name"] else f"### `{t['name']}`",
                    "",
                ]
            if t["note"]:
                lines += [_md(" ".join(t["note"])), ""]
            if t["keys"]:
                lines += ["| key | shipped value | meaning |", "|---|---|---|"]
                lines += [
                    f"| `{k['key']}` | {_value(k['value'])} | {_md(' '.join(k['comment']) or COMMON.get(k['key'], ''))} |"
                    for k in t["keys"]
                ]
                lines.append("")
        lines += _code_defaults(cfg["name"])
    return "\n".join(lines) + "\n"


def _code_defaults(name: str) -> list[str]:
    """The keys of an experiment whose defaults live in code (the spiking model's switches)."""
    from spikefa.experiments import code_defaults
    from spikefa.spiking.switches import SWITCHES

    defaults = code_defaults(name)
    if not defaults:
        return []
    return [
        "### Switches of the model",
        "",
        "These keys take their defaults from the model's spec (`SpikingSpec`), where they are defined once.",
        "",
        "| key | default | meaning |",
        "|---|---|---|",
        *(f"| `{k}` | {_value(v)} | {_md(SWITCHES[k])} |" for k, v in defaults.items()),
        "",
    ]


# ------------------------------------------------------------------------------------- CLI page
def cli_page() -> str:
    import argparse

    from spikefa.cli import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        parser = build_parser()
        lines = [
            "# Command reference",
            "",
            "Every command and option, generated from the `spikefa` parser when the documentation is",
            "built (the same text as `spikefa COMMAND --help`). The [command-line guide](../cli.md)",
            "explains what the commands are for and what their exit codes mean.",
            "",
        ]

        def walk(p: argparse.ArgumentParser, name: str, helptext: str) -> None:
            subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
            if subs:
                helps = {c.dest: c.help for c in subs[0]._choices_actions}
                for sub_name, sub in subs[0].choices.items():
                    walk(sub, f"{name} {sub_name}", helps.get(sub_name) or "")
                return
            lines.extend([f"## `{name}`", ""])
            if helptext:
                lines.extend([_md(helptext[0].upper() + helptext[1:]) + ".", ""])
            usage = p.format_usage().strip()
            lines.extend(["```text", usage, "```", ""])
            rows = []
            for a in p._actions:
                if isinstance(a, argparse._HelpAction):
                    continue
                if a.option_strings:
                    flag = ", ".join(a.option_strings)
                    if a.nargs != 0:
                        meta = a.metavar or (None if a.choices else a.dest.upper())
                        flag += f" {meta}" if meta else ""
                        flag += " ..." if a.nargs in ("+", "*") else ""
                else:
                    flag = (a.metavar or a.dest).upper()
                text = (a.help or "").replace("%(default)s", str(a.default)).strip()
                text = text[:1].upper() + text[1:]
                if text and text[-1] not in ".)":
                    text += "."
                elif text.endswith(")"):
                    text += "."
                if a.choices and not isinstance(a.choices, dict):
                    text += (
                        (" " if text else "")
                        + "One of "
                        + ", ".join(f"`{c}`" for c in a.choices)
                        + "."
                    )
                default = a.default
                if (
                    a.option_strings
                    and default not in (None, False, [], argparse.SUPPRESS)
                    and "default" not in (a.help or "")
                ):
                    text += f" Default: `{default}`."
                rows.append(f"| `{flag}` | {_md(text)} |")
            if rows:
                lines.extend(["| argument | meaning |", "|---|---|", *rows, ""])

        walk(parser, "spikefa", "")
        return "\n".join(lines) + "\n"
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


# ------------------------------------------------------------------------------------- results
def results_page(docs_dir: Path) -> str:
    """The page shown while `docs/results.md` does not exist (conf.py leaves it out when it does)."""
    return (
        "# Results\n\n"
        "The results report lists each claim of the paper with our measurement, its conditions, the command\n"
        "that reproduces it and a verdict. It is written from finished results folders by\n"
        "`spikefa report RESULTS_DIR... --out docs/results.md`; this copy of the documentation has none yet.\n"
        "Run the command and build the documentation again.\n"
    )


def results_toctree(docs_dir: Path) -> str:
    """The toctree of the results section, included by index.md: the report itself where it exists."""
    report = "results" if (docs_dir / "results.md").is_file() else "_generated/results"
    return (
        "```{toctree}\n:caption: Results and performance\n:maxdepth: 1\n\n"
        f"{report}\ntraining\nperformance\ngpu\nsweeps\n```\n"
    )


# ------------------------------------------------------------------------------------- writing
def _write(path: Path, text: str | bytes) -> None:
    data = text.encode("utf-8") if isinstance(text, str) else text
    if path.is_file() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def generate(docs_dir: str | Path) -> None:
    from spikefa.config import CONFIGS_DIR

    docs_dir = Path(docs_dir).resolve()
    out = docs_dir / "_generated"
    _write(out / "configs.md", configs_page(Path(CONFIGS_DIR)))
    _write(out / "cli.md", cli_page())
    _write(out / "results.md", results_page(docs_dir))
    _write(out / "results_toctree.md", results_toctree(docs_dir))
    nb_src = docs_dir.parent / "notebooks"
    nb_out = out / "notebooks"
    wanted = {p.name for p in nb_src.glob("*.ipynb")}
    for p in sorted(nb_src.glob("*.ipynb")):
        _write(nb_out / p.name, p.read_bytes())
    if nb_out.is_dir():
        for old in nb_out.glob("*.ipynb"):
            if old.name not in wanted:
                old.unlink()


# ------------------------------------------------------------------------------------- autodoc
_LITERAL = re.compile(r"(`[^`]+`)")


def _summary(text: str) -> str:
    """A plain-text sentence as reStructuredText: `code` becomes a literal, markup characters are escaped."""
    out = []
    for part in _LITERAL.split(text):
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append("``" + part.strip("`") + "``")
        else:
            out.append(re.sub(r"([\\*_|<>\[\]])", r"\\\1", part))
    return "".join(out)


def plain_docstring(app, what, name, obj, options, lines: list[str]) -> None:
    """spikefa's docstrings are plain text laid out for a terminal (aligned columns, formulas), not
    reStructuredText. Show the first paragraph as text and the rest exactly as written. Docstrings
    with numpydoc sections (the Python API's) are reStructuredText, laid out by napoleon."""
    if not lines or _NUMPYDOC.search(inspect.getdoc(obj) or ""):
        return
    try:
        blank = lines.index("")
    except ValueError:
        blank = len(lines)
    head, rest = lines[:blank], lines[blank:]
    while rest and not rest[0].strip():
        rest = rest[1:]
    while rest and not rest[-1].strip():
        rest = rest[:-1]
    new = [_summary(" ".join(s.strip() for s in head))]
    if rest:
        new += ["", "::", ""] + ["    " + s for s in rest]
    lines[:] = new


def setup(app):
    app.connect("autodoc-process-docstring", plain_docstring)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
