"""The compiled model: every block and product of the batched engine, built from the equations and
the spec's own rules; `fast.step` gives their order."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import sympy

from spikefa.spiking import equations as eq
from spikefa.spiking.codegen.blocks import Block, apply_op, exact_step, is_transcendental
from spikefa.spiking.codegen.eligibility import (
    Trace,
    increment,
    kinds,
    split_rule,
    state_key,
    synapse,
    traces,
)
from spikefa.spiking.codegen.parsing import (
    NOISE,
    RuleError,
    constants,
    layer_variables,
    parse_expr,
    statements,
    substitute,
)
from spikefa.spiking.codegen.synapses import Synaptic, Term, WeightMap, products
from spikefa.spiking.dale import dale_keep
from spikefa.spiking.spec import SpikingSpec

PER_NEURON = frozenset({"bias"})  # per-neuron variables that every stream shares


class CompiledModel:
    """Everything the batched engine computes, built from the strings of `equations.py` (and the
    spec's own rules): call the blocks with a layer's variables; see `fast.step` for the order.

    `update[l]`, `spike[l]`: layer l's state update and its threshold and resets (one block where
    they can share a loop); `arrival[l]`: with a forward delay, the reset (the trace's jump) of the
    spikes that reach layer l's synapses; `error_spike`: the threshold of the error units."""

    def __init__(self, spec: SpikingSpec, xp=np, loops: bool = False):
        self.spec, self.xp, self.loops = spec, xp, loops
        self.consts, self.kinds = constants(spec), kinds(spec)
        self.beta, self.update, self.spike, self.arrival = {}, [], [], []
        for l, kind in enumerate(self.kinds):
            self._layer(l, kind)
        self.output_error = self._block(eq.OUTPUT_ERROR, "output", "output error")
        self.hidden_delta = self._block(eq.HIDDEN_DELTA, "hidden", "δ")
        self.bias_plasticity = {
            kind: self._block(eq.BIAS_PLASTICITY, kind, "bias plasticity")
            for kind in ("hidden", "output")
        }
        self.bias_needs_eta = all(
            _vanishes_without_eta(e, self.consts)
            for _, _, e in statements(eq.BIAS_PLASTICITY, "bias")
        )
        self.error_spike = (
            self._block(
                [],
                "error",
                "error units",
                threshold=parse_expr(eq.ERROR_SPIKE.format(noise=NOISE), "error units"),
            )
            if spec.coding.spikes
            else None
        )
        self._forward()
        self._plasticity()
        self._feedback()

    def _block(self, stmts, kind: str, where: str, **kw) -> Block:
        """A block over the variables of a group kind; `stmts` a string or parsed statements."""
        if isinstance(stmts, str):
            stmts = statements(stmts, where)
        names, shared = layer_variables(kind, self.spec)
        return Block(
            stmts, names, shared, PER_NEURON, self.consts, where, self.xp, loops=self.loops, **kw
        )

    def _exact_steps(self, l: int, kind: str) -> list:
        """The exact one-step solutions of a layer's differential equations, then what it runs at
        every step; the PSP's β rides on the forward product (self.beta), the rest is its drive."""
        from brian2 import Equations

        stmts = []
        for var, e in Equations(eq.layer(kind, self.spec)).items():
            if e.type != "differential equation":
                continue
            expr = parse_expr(str(e.expr), f"{kind} d{var}/dt")
            beta, drive = exact_step(var, expr, self.consts, f"{kind} layer")
            if var == "u":
                self.beta[l] = beta
                stmts += [(var, "+=", drive)] if drive != 0 else []
            else:
                stmts.append((var, "=", sympy.Float(beta) * sympy.Symbol(var, real=True) + drive))
        return stmts + statements(eq.every_step(kind, self.spec), f"{kind} every step")

    def _layer(self, l: int, kind: str) -> None:
        """Layer l's state update, then (layers 0 … L−1) its spikes and their resets: one block
        where the threshold needs no transcendental function of what the update writes, else two.
        With a forward delay the trace jumps as the spikes arrive (`arrival`)."""
        update, where = self._exact_steps(l, kind), f"{kind} layer"
        if kind == "output":
            self.update.append(self._block(update, kind, where))
            self.spike.append(None)
            return
        arrival = statements(eq.on_arrival(self.spec), f"{kind} arrival")
        self.arrival.append(
            self._block([], kind, f"{kind} arrival", resets=arrival) if arrival else None
        )
        cond = parse_expr(eq.threshold(kind, self.spec).format(noise=NOISE), f"{kind} threshold")
        resets = statements(eq.on_spike(kind, self.spec), f"{kind} reset")
        written = {v for v, _, _ in update}
        split = any(
            is_transcendental(e) and {x.name for x in e.free_symbols} & written
            for top in (cond, *[r for *_, r in resets])
            for e in sympy.preorder_traversal(top)
        )
        fire = dict(threshold=cond, resets=resets)
        self.update.append(self._block(update, kind, where) if split else None)
        self.spike.append(
            self._block([], kind, f"{kind} threshold", **fire)
            if split
            else self._block(update, kind, where, **fire)
        )

    def _forward(self) -> None:
        """α of every forward on_pre: a spike adds α·w to the postsynaptic PSP."""
        self.alpha = {}
        for l in range(1, self.spec.n_layers + 1):
            syn = Synaptic("w", self.kinds[l - 1], self.kinds[l], self.consts, self.spec)
            ((var, op, expr),) = statements(eq.FORWARD_ON_PRE, "forward on_pre")
            (t,) = syn.terms(expr, "forward on_pre", eq.FORWARD_ON_PRE)
            if (var, op, t.post, t.pre, str(t.syn)) != ("u_post", "+=", 1, 1, "w") or (
                t.coeff.free_symbols
            ):
                raise RuleError(
                    f"forward on_pre {eq.FORWARD_ON_PRE!r} must add a constant times w to u_post"
                )
            self.alpha[l] = float(t.coeff)

    def _plasticity(self) -> None:
        """The rule's products per weight layer, its traces' per-unit updates, and Dale's law."""
        spec, xp = self.spec, self.xp
        self.plasticity_text = eq.plasticity_rule(spec)
        rule = _increment(split_rule(self.plasticity_text)[1], "w", "plasticity")
        self.plasticity, self.traces, self.dale = {}, {}, {}
        for l in range(1, spec.n_layers + 1):
            syn = synapse(spec, l)
            terms = syn.terms(increment(spec, l, rule), "plasticity", self.plasticity_text)
            self.plasticity[l] = products(syn, terms, xp, sparse=False)
            self.traces[l] = [
                TraceUpdate(
                    tr, l, products(syn, tr.pre, xp, False), products(syn, tr.post, xp, False)
                )
                for tr in traces(spec, l)
            ]
            self.dale[l] = (
                WeightMap(eq.DALE[dale_keep(spec)], syn, xp, self.loops) if spec.dale else None
            )
        # a rule that vanishes with η is skipped while η = 0 (evaluation, the plasticity gate)
        self.plasticity_needs_eta = _vanishes_without_eta(rule, self.consts)

    def _feedback(self) -> None:
        """The products of the feedback: the summed modulator (analog error), read from the layer
        that sends δ or from its delay line, or the modulator's increment per error spike."""
        spec = self.spec
        self.feedback_text = eq.feedback_rule(spec)
        self.feedback, self.feedback_accumulates = {}, spec.coding.spikes
        pre_kind = "error" if spec.coding.spikes else "line" if spec.feedback_delay else None
        for l in range(1, spec.n_layers):
            source = pre_kind or self.kinds[spec.feedback_source(l)]
            syn = Synaptic("B", source, self.kinds[l], self.consts, spec)
            terms = _summed(self.feedback_text, syn)
            if spec.coding.spikes:
                text = eq.feedback_on_spike(self.feedback_text)
                ((_, _, expr),) = statements(text, "feedback per error spike")
                terms = syn.terms(expr, "feedback per error spike", text)
            self.feedback[l] = products(syn, terms, self.xp, sparse=spec.mode.sparse)
        # f(B) is computed once per run, unless B changes (it follows w, or is drawn afresh) and f
        # is not B itself
        self.feedback_fixed = not (spec.mode.transport or spec.mode.redraw) or all(
            p.syn.fn is None for ps in self.feedback.values() for p in ps
        )


@dataclass
class TraceUpdate:
    """The per-unit parts of a trace at weight layer l: X ← β·X + Σ products of one side each."""

    trace: Trace
    l: int
    pre: list
    post: list

    def key(self, side: str) -> str:
        return state_key(self.trace.name, side, self.l)


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
    key = tuple((k, getattr(spec, k)) for k in _SHAPING) + (
        ("forward_delay", min(spec.forward_delay, 1)),  # a delay line or none; its length is data
        ("feedback_delay", min(spec.feedback_delay, 1)),
        ("dale", dale_keep(spec) if spec.dale else ""),  # the signs are data, not how they are kept
    )
    return _compile(key, len(spec.sizes), xp_name, loops)


_SHAPING = (
    "reading",
    "time_constant",
    "weight_decay",
    "feedback",
    "plasticity",
    "feedback_rule",
    "error_coding",
    "modulator_time_constant",
    "refractory_steps",
)


@functools.lru_cache(maxsize=64)
def _compile(key, n_sizes: int, xp_name: str, loops: bool) -> CompiledModel:
    import importlib

    keep = dict(key)["dale"]
    fields = dict(key) | {"dale": {"excitatory": 0.5, "keep": keep} if keep else {}}
    spec = SpikingSpec(sizes=(1,) * n_sizes, steps_per_image=1, **fields)
    return CompiledModel(spec, importlib.import_module(xp_name), loops)


def check_rules(spec: SpikingSpec) -> None:
    """Raise a RuleError (one line) when the spec's rules cannot run in the batched engine."""
    compile_model(spec)


def clear_caches() -> None:
    """Forget every compiled model: after the equations themselves have changed."""
    _compile.cache_clear()
