"""Parsing the model's strings with SymPy, through Brian2's own parser, and the names a layer
has."""

from __future__ import annotations

import functools
import re

from spikefa.errors import SpikefaError
from spikefa.spiking import equations as eq
from spikefa.spiking.spec import SpikingSpec

NOISE = "noise"  # this step's uniform of each unit: the engine's `rand()`
SPIKES = "spikes"  # the units that crossed their threshold this step (0/1)
# The Brian2 model reads three names from TimedArrays; the batched engine supplies them each step
# (`fast.namespaces`): rate = images(t, i), the pixels; ystar = int(labels(t) == i), the one-hot
# target; eta = eta_max · plastic(t), this step's learning rate with the plasticity gate.


class RuleError(SpikefaError):
    """A rule the batched engine cannot run, or a string that does not parse."""


# ---------------------------------------------------------------------------------- parsing
def parse_expr(text: str, where: str):
    from brian2.parsing.sympytools import str_to_sympy

    try:
        return str_to_sympy(text)
    except Exception as exc:  # SyntaxError, SympifyError, TypeError: all one line for the user
        raise RuleError(
            f"{where}: cannot parse {text!r} ({' '.join(str(exc).split()) or type(exc).__name__})"
        ) from None


# a statement as Brian2 reads one: a variable, an assignment (=, or an operator and =), an
# expression
STATEMENT = re.compile(r"([A-Za-z_]\w*)\s*((?:\*\*|//|<<|>>|[-+*/%&^|])?=)\s*([^=\s].*)", re.ASCII)


def statements(text: str, where: str) -> list[tuple[str, str, object]]:
    """(variable, operator, SymPy expression) of each statement; lines or `;` separate
    statements."""
    out = []
    for line in re.split(r"[\n;]", text):
        line = line.split("#")[0].strip()
        if not line:
            continue
        match = STATEMENT.fullmatch(line)
        if match is None:
            raise RuleError(f"{where}: {line!r} is not a statement such as 'w += expr'")
        var, op, expr = match.groups()
        out.append((var, op, parse_expr(expr, where)))
    return out


def layer_variables(kind: str, spec: SpikingSpec) -> tuple[frozenset, frozenset]:
    """(every variable, the shared ones) of a group kind (`equations.layer`: a layer, the error
    units or a feedback line) under the spec's switches, read from its Brian2 equations."""
    return _variables(eq.layer(kind, spec))


@functools.cache
def _variables(text: str) -> tuple[frozenset, frozenset]:
    from brian2 import Equations

    eqs = Equations(text)
    return frozenset(eqs.names), frozenset(n for n, e in eqs.items() if "shared" in e.flags)


def constants(spec: SpikingSpec) -> dict[str, float]:
    """The namespace constants of the Brian2 model, with time in steps (dt = 1 ms = 1)."""
    return {
        "tau": spec.tau_steps,
        "decay": spec.decay,
        "weight_decay": spec.weight_decay,
        "refractory_steps": float(spec.refractory_steps),
        "tau_mod": spec.modulator_time_constant,
        "mod_decay": spec.modulator_decay,
        "dt": 1.0,
        "ms": 1.0,
    }


def substitute(expr, consts: dict):
    return expr.subs({s: consts[s.name] for s in expr.free_symbols if s.name in consts})
