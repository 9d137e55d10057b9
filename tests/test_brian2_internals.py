"""The parts of Brian2 below its public names that the engines rely on, each tested on its own, so
that a Brian2 release that changes one fails here by name: its expression parser and printer
(`brian2.parsing.sympytools`), which the batched engine compiles from, and the simulation time a
standalone binary reports (`last_run_seconds`, in `test_spiking_brian.py`). Run under each supported
Brian2 release (2.9 to 2.11)."""

import math

import pytest
import sympy

from spikefa.spiking.codegen.eligibility import brian_rule
from spikefa.spiking.codegen.parsing import RuleError, parse_expr, statements
from spikefa.spiking.spec import SpikingSpec


def test_expressions_parse_with_the_function_names_the_batched_engine_compiles():
    expr = parse_expr("int(u > 1) * clip(p, 0, 1) + exp(-dt / tau) + rand()", "test")
    functions = {str(f.func) for f in expr.atoms(sympy.Function)}
    assert functions == {"int_", "clip", "exp", "rand"}
    assert {s.name for s in expr.free_symbols} >= {"u", "p", "dt", "tau"}


def test_an_eligibility_trace_prints_back_as_code_brian2_runs():
    rule = "delig/dt = (p_pre - elig) / (5 * ms); w += eta_post * delta_post * elig"
    declared, code = brian_rule(SpikingSpec(sizes=(6, 5, 3), plasticity=rule))
    assert declared == "elig : 1\n"
    (var, op, step), (w, w_op, change) = statements(code, "test")
    assert (var, op, w, w_op) == ("elig", "=", "w", "+=")
    decay = math.exp(-1 / 5)  # the exact step of the trace over 1 ms
    names = sorted(step.free_symbols, key=str)
    assert [s.name for s in names] == ["elig", "p_pre"]
    assert sympy.lambdify(names, step)(0.3, 0.7) == pytest.approx(0.3 * decay + 0.7 * (1 - decay))
    assert change == parse_expr("eta_post * delta_post * elig", "test")


@pytest.mark.parametrize(
    "text, parsed",
    [
        ("w += a * b", [("w", "+=", "a * b")]),
        ("x = -1; y **= 2  # a comment", [("x", "=", "-1"), ("y", "**=", "2")]),
        ("v //= 3\nz = (a == b)", [("v", "//=", "3"), ("z", "=", "a == b")]),
    ],
)
def test_statements_read_variable_operator_and_expression(text, parsed):
    expected = [(v, op, parse_expr(e, "expected")) for v, op, e in parsed]
    assert statements(text, "test") == expected


@pytest.mark.parametrize("text", ["a == b", "1x = 3", "x = ", "x = = 3", "w + 1"])
def test_what_is_not_a_statement_is_refused_in_one_line(text):
    with pytest.raises(RuleError, match="is not a statement"):
        statements(text, "rule")
