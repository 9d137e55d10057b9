"""Synaptic terms split into (postsynaptic) × (presynaptic) × f(w or B) factors: matrix products
over the presynaptic index and the streams. A term that does not split is refused with one line."""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from spikefa.spiking.codegen.blocks import compile_function, njit_kernel, print_code
from spikefa.spiking.codegen.parsing import RuleError, layer_variables, statements, substitute


@dataclass
class Term:
    """coeff · post(x_post) · pre(x_pre) · syn(w): coeff holds numbers and shared scalars (η)."""

    coeff: object
    post: object
    pre: object
    syn: object


class Synaptic:
    """A synapse's names: its weight, and the variables of its pre- and postsynaptic layers under
    the spec's switches; `extra`: names both sides have besides (the per-unit parts of eligibility
    traces)."""

    def __init__(self, weight, pre_kind, post_kind, consts, spec, extra=frozenset()):
        self.weight, self.consts = weight, consts
        self.pre_names, self.pre_shared = layer_variables(pre_kind, spec)
        self.post_names, self.post_shared = layer_variables(post_kind, spec)
        self.pre_names, self.post_names = self.pre_names | extra, self.post_names | extra

    def kind(self, name: str, where: str) -> str:
        """syn, pre, post or scalar (a shared variable of either side)."""
        if name == self.weight:
            return "syn"
        base, side = (
            (name[:-4], "pre")
            if name.endswith("_pre")
            else (name[:-5], "post")
            if name.endswith("_post")
            else (name, "post")
        )  # Brian2 reads an unsuffixed neuron variable from the postsynaptic group
        names, shared = (
            (self.pre_names, self.pre_shared)
            if side == "pre"
            else (self.post_names, self.post_shared)
        )
        if base not in names:
            raise RuleError(
                f"{where}: unknown name {name!r} (synapse: {self.weight}; {side}synaptic: "
                f"{', '.join(sorted(n + '_' + side for n in names))})"
            )
        return "scalar" if base in shared else side

    def kinds(self, expr, where) -> set:
        return {self.kind(s.name, where) for s in expr.free_symbols} - {"scalar"}

    def terms(self, expr, where: str, text: str) -> list[Term]:
        expr = substitute(expr, self.consts)
        if any(str(f.func) == "rand" for f in expr.atoms(sympy.Function)):
            raise RuleError(f"{where} {text!r}: rand() has no counterpart in the batched engine")
        return [
            self._split(t, where, text)
            for t in self._additive(sympy.expand(expr, deep=False), where, text, 0)
        ]

    def _additive(self, expr, where, text, depth) -> list:
        """Additive terms of expr whose every factor depends on one kind of variable at most."""
        out = []
        for term in sympy.Add.make_args(expr):
            factors = sympy.Mul.make_args(term)
            mixed = [f for f in factors if len(self.kinds(f, where)) > 1]
            if not mixed:
                out.append(term)
                continue
            f = mixed[0]
            rest = sympy.Mul(*[g for g in factors if g is not f])
            opened = sympy.expand(
                f,
                deep=False,
                mul=True,
                power_base=True,
                power_exp=True,
                multinomial=True,
                log=False,
                basic=False,
            )
            if depth > 8 or opened == f:
                labels = [
                    {"syn": self.weight, "pre": "presynaptic", "post": "postsynaptic"}[k]
                    for k in ("syn", "pre", "post")
                    if k in self.kinds(f, where)
                ]
                mixed_kinds = ", ".join(labels[:-1]) + " and " + labels[-1]
                raise RuleError(
                    f"{where} {text!r} does not factorise into (postsynaptic) × (presynaptic) × "
                    f"f({self.weight}): {print_code(f)} mixes {mixed_kinds} variables (engine=brian2 runs any rule)"
                )
            out += self._additive(sympy.expand(rest * opened, deep=False), where, text, depth + 1)
        return out

    def _split(self, term, where, text) -> Term:
        parts = {"scalar": [], "post": [], "pre": [], "syn": []}
        for f in sympy.Mul.make_args(term):
            k = self.kinds(f, where)
            parts[k.pop() if k else "scalar"].append(f)
        return Term(*(sympy.Mul(*parts[k]) for k in ("scalar", "post", "pre", "syn")))

    def strip(self, expr, side: str):
        """expr over the names of one layer: x_pre → x (or x_post → x, unsuffixed post names
        unchanged)."""
        suffix = "_" + side
        return expr.subs(
            {
                s: sympy.Symbol(s.name[: -len(suffix)], real=True)
                for s in expr.free_symbols
                if s.name.endswith(suffix)
            }
        )


def _of_namespace(name: str, expr, xp):
    """A compiled function of a namespace `ns` that returns `expr` of its symbols."""
    symbols = sorted(expr.free_symbols, key=lambda s: s.name)
    lines = [f"{s.name} = ns[{s.name!r}]" for s in symbols] + [f"return {print_code(expr)}"]
    return compile_function(name, ["ns"], lines, xp)


class Operand:
    """One side of a matrix product: an element-wise expression of one layer's variables, evaluated
    as an array per stream (batch × n). A bare variable is used as it is, without a copy."""

    def __init__(self, expr, xp):
        self.one = expr == 1
        self.name = expr.name if isinstance(expr, sympy.Symbol) else None
        self.fn = None if self.one or self.name else _of_namespace("operand", expr, xp)

    def __call__(self, ns: dict, batch: int, n: int, dtype, xp):
        if self.one:
            return xp.ones((batch, n), dtype, order="F")
        a = ns[self.name] if self.name else self.fn(ns)
        if getattr(a, "ndim", 0) != 2:
            a = xp.broadcast_to(xp.asarray(a, dtype), (batch, n))
        flags = getattr(a, "flags", None)  # NumPy and CuPy; torch's products take any strides
        return (
            a if flags is None or flags.f_contiguous or flags.c_contiguous else xp.asfortranarray(a)
        )


class Scalar:
    """A coefficient of numbers and shared scalars (η), evaluated once per step."""

    def __init__(self, expr, xp):
        self.value = float(expr) if not expr.free_symbols else None
        self.fn = None if self.value is not None else _of_namespace("scalar", expr, xp)

    def __call__(self, ns: dict) -> float:
        return self.value if self.value is not None else float(self.fn(ns))


class Matrix:
    """f(w) or f(B), element-wise over a weight matrix; in sparse feedback, absent synapses (B = 0)
    stay absent when f(0) ≠ 0."""

    def __init__(self, expr, weight: str, xp, sparse: bool):
        self.identity = isinstance(expr, sympy.Symbol)
        self.const = None if expr.free_symbols else float(expr)
        self.masked = sparse and not self.identity and substitute(expr, {weight: 0.0}) != 0
        self.fn = (
            None
            if self.identity or self.const is not None
            else compile_function("matrix", [weight], [f"return {print_code(expr)}"], xp)
        )

    def __call__(self, W, xp):
        if self.identity:
            return W
        F = (
            xp.asarray(self.fn(W), W.dtype)
            if self.fn
            else xp.full(W.shape, self.const, W.dtype, order="F")
        )
        return F * (W != 0) if self.masked else F


@dataclass
class Product:
    """coeff · post ⊙ (pre-side operand ⊗ f(weight)): one matrix product per distinct (pre, f)."""

    coeff: Scalar
    post: Operand
    pre: Operand
    syn: Matrix
    scalar_sides: (
        bool  # neither side depends on a per-stream variable: the product is coeff · batch
    )


def products(syn: Synaptic, terms: list[Term], xp, sparse: bool) -> list[Product]:
    """Merge terms that share their presynaptic factor and f(weight); build their array code."""
    groups: dict = {}
    for t in terms:
        groups.setdefault((t.pre, t.syn), []).append(t)
    out = []
    for (pre, f), ts in groups.items():
        coeff, post = (
            (ts[0].coeff, ts[0].post)
            if len(ts) == 1
            else (sympy.Integer(1), sympy.Add(*[t.coeff * t.post for t in ts]))
        )
        if not syn.kinds(post, ""):  # numbers and shared scalars only: part of the coefficient
            coeff, post = coeff * post, sympy.Integer(1)
        out.append(
            Product(
                Scalar(coeff, xp),
                Operand(syn.strip(post, "post"), xp),
                Operand(syn.strip(pre, "pre"), xp),
                Matrix(f, syn.weight, xp, sparse),
                scalar_sides=post == 1 and pre == 1,
            )
        )
    return out


class WeightMap:
    """A statement that sets every weight from itself and per-neuron variables of its two layers
    (`equations.DALE`), element-wise over the weight matrix and in place: one Numba loop with
    `loops`, else array code with the presynaptic variables as columns and postsynaptic ones as
    rows."""

    def __init__(self, text: str, syn: Synaptic, xp, loops: bool):
        where = "weight statement"
        stmts = statements(text, where)
        if len(stmts) != 1 or stmts[0][:2] != (syn.weight, "="):
            raise RuleError(f"{where} {text!r} must be one statement '{syn.weight} = …'")
        expr = substitute(stmts[0][2], syn.consts)
        self.sides = sorted(
            (s.name, syn.kind(s.name, where)) for s in expr.free_symbols if s.name != syn.weight
        )
        if any(k not in ("pre", "post") for _, k in self.sides):
            raise RuleError(f"{where} {text!r} may read per-neuron variables and {syn.weight} only")
        self.weight, self.loops = syn.weight, loops
        w = syn.weight
        if loops:
            from sympy.printing.pycode import PythonCodePrinter

            code = PythonCodePrinter({"allow_unknown_functions": True}).doprint(expr)
            lines = [f"n, m = a_{w}.shape", "for j in range(m):", "    for i in range(n):"]
            lines += [f"        {n} = a_{n}[{'i' if k == 'pre' else 'j'}]" for n, k in self.sides]
            lines += [f"        {w} = a_{w}[i, j]", f"        a_{w}[i, j] = {code}"]
            self.kernel = njit_kernel([f"a_{w}", *(f"a_{n}" for n, _ in self.sides)], lines)
        else:
            body = [
                f"{n} = {n}[:, None]" if k == "pre" else f"{n} = {n}[None, :]"
                for n, k in self.sides
            ]
            args = [w, *(n for n, _ in self.sides)]
            self.fn = compile_function(
                "weights", args, [*body, f"{w}[...] = {print_code(expr)}"], xp
            )

    def __call__(self, W, pre: dict, post: dict) -> None:
        values = [(pre if k == "pre" else post)[_base(n, k)] for n, k in self.sides]
        (self.kernel if self.loops else self.fn)(W, *values)


def _base(name: str, side: str) -> str:
    """A layer's own name of a synapse's name for it: ei_pre → ei (an unsuffixed name is post's)."""
    return name[: -len(side) - 1] if name.endswith("_" + side) else name
