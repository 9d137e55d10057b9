"""The argument parser of the `spikefa` command, built from the table of commands `options.toml`."""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

from spikefa import __version__
from spikefa.cli import commands
from spikefa.spiking.brian import DEVICES  # brian2 itself is imported only when a network is built

OPTIONS = Path(__file__).with_name("options.toml")
TYPES = {"int": int, "float": float}
CHOICES = {"devices": DEVICES}


class _Parser(argparse.ArgumentParser):
    """argparse with the command line's error format: one line on stderr, exit code 2."""

    def error(self, message):
        self.exit(2, f"spikefa: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every `spikefa` command.

    Returns
    -------
    argparse.ArgumentParser
        Its parsed arguments name the command's function as `func`.
    """
    table = tomllib.loads(OPTIONS.read_text(encoding="utf-8"))
    p = _Parser(
        prog="spikefa", description="Feedback alignment experiments (Lillicrap et al. 2016)."
    )
    p.add_argument("--version", action="version", version=f"spikefa {__version__}")
    _commands(p, table["command"], table["shared"], "command")
    return p


def _commands(parent: argparse.ArgumentParser, table: dict, shared: dict, dest: str) -> None:
    """Add the commands of `table` (name → its help, function, options or own commands)."""
    sub = parent.add_subparsers(dest=dest, required=True)
    for name, command in table.items():
        p = sub.add_parser(name, help=command["help"])
        for option in command.get("option", []):
            fields = {**shared.get(option.get("like"), {}), **option}
            fields.pop("like", None)
            flags = fields.pop("flags")
            if "type" in fields:
                fields["type"] = TYPES[fields["type"]]
            if isinstance(fields.get("choices"), str):
                fields["choices"] = CHOICES[fields["choices"]]
            p.add_argument(*flags, **fields)
        if "command" in command:
            _commands(p, command["command"], shared, f"{name}_command")
        if "function" in command:
            p.set_defaults(func=getattr(commands, command["function"]))
