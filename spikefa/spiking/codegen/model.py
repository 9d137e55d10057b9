"""The compiled model: every block and product of the batched engine, built from the equations and
the spec's own rules; `fast.step` gives their order."""

from __future__ import annotations

import functools

import numpy as np
import sympy

from spikefa.spiking import equations as eq
from spikefa.spiking.codegen.blocks import Block, apply_op, exact_step, is_transcendental
from spikefa.spiking.codegen.parsing import (
    NOISE,
    RuleError,
    constants,
    layer_variables,
    parse_expr,
    statements,
    substitute,
)
from spikefa.spiking.codegen.synapses import Synaptic, Term, products
from spikefa.spiking.spec import SpikingSpec


class CompiledModel:
    """Everything the batched engine computes, built from the strings of `equations.py` (and the
    spec's own rules): call the blocks with a layer's variables; see `fast.step` for the order."""

    def __init__(self, spec: SpikingSpec, xp=np, loops: bool = False):
        self.spec, self.xp, self.loops = spec, xp, loops
        consts = constants(spec)
        L = spec.n_layers
        self.kinds = ["input"] + ["hidden"] * (L - 1) + ["output"]
        # PSPs and traces: exact one-step solutions of the layers' differential equations
        from brian2 import Equations

        self.beta, spike_blocks = {}, []
        for l, kind in enumerate(self.kinds):
            names, shared = layer_variables(kind)
            text = {"input": eq.INPUT, "hidden": eq.HIDDEN, "output": eq.OUTPUT}[kind]
            stmts = []
            for var, e in Equations(text).items():
                if e.type == "differential equation":
                    beta, drive = exact_step(
                        var, parse_expr(str(e.expr), f"{kind} d{var}/dt"), consts, f"{kind} layer"
                    )
                    if var == "u":  # β rides on the forward product; the rest is this step's drive
                        self.beta[l] = beta
                        if drive != 0:
                            stmts.append((var, "+=", drive))
                    else:
                        stmts.append(
                            (var, "=", sympy.Float(beta) * sympy.Symbol(var, real=True) + drive)
                        )
            spike_blocks.append(stmts)
        per_neuron = frozenset({"bias"})
        # per layer: the state update, then (layers 0 … L−1) spikes and their resets — one block where
        # the threshold needs no transcendental function of what the update writes, else two
        self.update, self.spike = [], []
        for l, kind in enumerate(self.kinds):
            names, shared = layer_variables(kind)
            args = (names, shared, per_neuron, consts)
            update = spike_blocks[l]
            if kind == "output":
                self.update.append(Block(update, *args, f"{kind} layer", xp, loops=loops))
                self.spike.append(None)
                continue
            cond = parse_expr(
                (eq.INPUT_SPIKE if kind == "input" else eq.SPIKE).format(noise=NOISE),
                f"{kind} threshold",
            )
            resets = statements(eq.TRACE_ON_SPIKE, f"{kind} reset")
            written = {v for v, _, _ in update}
            split = any(
                is_transcendental(e) and {x.name for x in e.free_symbols} & written
                for top in (cond, *[r for *_, r in resets])
                for e in sympy.preorder_traversal(top)
            )
            if split:
                self.update.append(Block(update, *args, f"{kind} layer", xp, loops=loops))
                self.spike.append(
                    Block(
                        [],
                        *args,
                        f"{kind} threshold",
                        xp,
                        threshold=cond,
                        resets=resets,
                        loops=loops,
                    )
                )
            else:
                self.update.append(None)
                self.spike.append(
                    Block(
                        update,
                        *args,
                        f"{kind} layer",
                        xp,
                        threshold=cond,
                        resets=resets,
                        loops=loops,
                    )
                )
        hidden_names, hidden_shared = layer_variables("hidden")
        out_names, out_shared = layer_variables("output")
        self.output_error = Block(
            statements(eq.OUTPUT_ERROR, "output error"),
            out_names,
            out_shared,
            per_neuron,
            consts,
            "output error",
            xp,
            loops=loops,
        )
        self.hidden_delta = Block(
            statements(eq.HIDDEN_DELTA, "δ"),
            hidden_names,
            hidden_shared,
            per_neuron,
            consts,
            "δ",
            xp,
            loops=loops,
        )
        self.bias_plasticity = {
            kind: Block(
                statements(eq.BIAS_PLASTICITY, "bias plasticity"),
                *layer_variables(kind),
                per_neuron,
                consts,
                "bias plasticity",
                xp,
                loops=loops,
            )
            for kind in ("hidden", "output")
        }
        # synapses: the forward on_pre, the summed feedback, the plasticity of w
        self.alpha = {}
        for l in range(1, L + 1):
            syn = Synaptic("w", self.kinds[l - 1], self.kinds[l], consts)
            ((var, op, expr),) = statements(eq.FORWARD_ON_PRE, "forward on_pre")
            (t,) = syn.terms(expr, "forward on_pre", eq.FORWARD_ON_PRE)
            if (
                var != "u_post"
                or op != "+="
                or t.post != 1
                or t.pre != 1
                or str(t.syn) != "w"
                or t.coeff.free_symbols
            ):
                raise RuleError(
                    f"forward on_pre {eq.FORWARD_ON_PRE!r} must add a constant times w to u_post"
                )
            self.alpha[l] = float(t.coeff)
        self.plasticity_text = eq.plasticity_rule(spec)
        self.plasticity = {}
        for l in range(1, L + 1):
            syn = Synaptic("w", self.kinds[l - 1], self.kinds[l], consts)
            self.plasticity[l] = products(
                syn,
                syn.terms(
                    _increment(self.plasticity_text, "w", "plasticity"),
                    "plasticity",
                    self.plasticity_text,
                ),
                xp,
                sparse=False,
            )
        # a rule that vanishes with η is skipped while η = 0 (evaluation, the plasticity gate)
        self.plasticity_needs_eta = _vanishes_without_eta(
            _increment(self.plasticity_text, "w", "plasticity"), consts
        )
        self.bias_needs_eta = all(
            _vanishes_without_eta(e, consts) for _, _, e in statements(eq.BIAS_PLASTICITY, "bias")
        )
        self.feedback_text = eq.feedback_rule(spec)
        self.feedback = {}
        for l in range(1, L):
            syn = Synaptic("B", self.kinds[spec.feedback_source(l)], self.kinds[l], consts)
            self.feedback[l] = products(
                syn, _summed(self.feedback_text, syn), xp, sparse=spec.mode.sparse
            )
        # f(B) is computed once per run, unless B changes (it follows w, or is drawn afresh) and f is not B itself
        self.feedback_fixed = not (spec.mode.transport or spec.mode.redraw) or all(
            p.syn.fn is None for ps in self.feedback.values() for p in ps
        )


def _vanishes_without_eta(expr, consts) -> bool:
    return substitute(expr, {**consts, **{n: 0.0 for n in ("eta", "eta_post", "eta_pre")}}) == 0


def _increment(text: str, weight: str, where: str):
    """The increment of `weight` in a one-statement rule ('w += …', 'w = …', 'w *= …')."""
    stmts = statements(text, where)
    if len(stmts) != 1 or stmts[0][0] != weight:
        raise RuleError(
            f"{where} {text!r}: the batched engine runs one statement that changes {weight} "
            f"(e.g. '{weight} += eta_post * delta_post * p_pre')"
        )
    _, op, expr = stmts[0]
    if op == "+=":
        return expr
    return sympy.expand(apply_op(weight, op, expr) - sympy.Symbol(weight, real=True), deep=False)


def _summed(text: str, syn: Synaptic) -> list[Term]:
    """The terms of a summed variable 'mod_post = expr : 1 (summed)'."""
    from brian2 import Equations

    where = "feedback"
    try:
        eqs = Equations(text)
    except Exception as exc:
        raise RuleError(
            f"{where}: cannot read {text!r} as Brian2 equations ({' '.join(str(exc).split())})"
        ) from None
    summed = [(n, e) for n, e in eqs.items() if "summed" in e.flags]
    if len(eqs) != 1 or not summed or summed[0][0] != "mod_post":
        raise RuleError(
            f"{where} {text!r}: the batched engine runs one summed variable, "
            "'mod_post = <expr> : 1 (summed)'"
        )
    return syn.terms(parse_expr(str(summed[0][1].expr), where), where, text)


def compile_model(
    spec: SpikingSpec, xp_name: str = "numpy", loops: bool | None = None
) -> CompiledModel:
    """The compiled model of a spec on an array module (`xp_name`: numpy, cupy or
    spikefa.spiking.torch_arrays); `loops` (default: on numpy) fuses element-wise work into Numba
    loops. Cached: a model compiles once per process."""
    loops = xp_name == "numpy" if loops is None else loops
    # only these fields shape the compiled code
    key = (
        spec.n_layers,
        spec.reading,
        spec.time_constant,
        spec.weight_decay,
        spec.feedback,
        spec.plasticity,
        spec.feedback_rule,
    )
    return _compile(key, xp_name, loops)


@functools.lru_cache(maxsize=64)
def _compile(key, xp_name: str, loops: bool) -> CompiledModel:
    import importlib

    L, reading, time_constant, weight_decay, feedback, plasticity, feedback_rule = key
    spec = SpikingSpec(
        sizes=(1,) * (L + 1),
        reading=reading,
        time_constant=time_constant,
        weight_decay=weight_decay,
        feedback=feedback,
        plasticity=plasticity,
        feedback_rule=feedback_rule,
    )
    return CompiledModel(spec, importlib.import_module(xp_name), loops)


def check_rules(spec: SpikingSpec) -> None:
    """Raise a RuleError (one line) when the spec's rules cannot run in the batched engine."""
    compile_model(spec)


def clear_caches() -> None:
    """Forget every compiled model and layer's names: after the equations themselves have changed."""
    _compile.cache_clear()
    layer_variables.cache_clear()
