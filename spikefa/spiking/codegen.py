"""The batched engine's arithmetic, compiled from the Brian2 model's own strings (`equations.py`).

Every string is parsed with SymPy through Brian2's own parser and printed as array code that runs
on NumPy or CuPy unchanged (whole-array SIMD ufuncs; a Numba loop measured several times slower
here, since its scalar `exp` does not vectorise):

- a linear differential equation dv/dt = A·v + C is integrated exactly over one step,
  v ← β·v + (C/A)(β − 1) with β = e^A (Brian2's `exact`); the PSP's β rides on the forward product;
- thresholds, resets and per-neuron statements (output error, δ, bias plasticity) become array
  statements over a layer's variables; a shared variable (the bias) sums its increments over streams;
- synaptic terms — the forward `on_pre`, the summed feedback variable and the plasticity of w — are
  split into a sum of (postsynaptic) × (presynaptic) × f(w or B) terms, each a matrix product over the
  presynaptic index and the streams. A term that does not split is refused with one line naming it.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass

import numpy as np
import sympy

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
def _sympy(text: str, where: str):
    from brian2.parsing.sympytools import str_to_sympy

    try:
        return str_to_sympy(text)
    except Exception as exc:  # SyntaxError, SympifyError, TypeError: all one line for the user
        raise RuleError(
            f"{where}: cannot parse {text!r} ({' '.join(str(exc).split()) or type(exc).__name__})"
        ) from None


def _statements(text: str, where: str) -> list[tuple[str, str, object]]:
    """(variable, operator, SymPy expression) of each statement; lines or `;` separate statements."""
    from brian2.parsing.statements import parse_statement

    out = []
    for line in re.split(r"[\n;]", text):
        line = line.split("#")[0].strip()
        if not line:
            continue
        try:
            var, op, expr, _ = parse_statement(line)
        except Exception:
            raise RuleError(f"{where}: {line!r} is not a statement such as 'w += expr'") from None
        out.append((var, op, _sympy(expr, where)))
    return out


@functools.cache
def layer_variables(kind: str) -> tuple[frozenset, frozenset]:
    """(every variable, the shared ones) of a layer kind, read from its Brian2 equations."""
    from brian2 import Equations

    eqs = Equations({"input": eq.INPUT, "hidden": eq.HIDDEN, "output": eq.OUTPUT}[kind])
    return frozenset(eqs.names), frozenset(n for n, e in eqs.items() if "shared" in e.flags)


def constants(spec: SpikingSpec) -> dict[str, float]:
    """The namespace constants of the Brian2 model, with time in steps (dt = 1)."""
    return {
        "tau": spec.tau_steps,
        "decay": spec.decay,
        "weight_decay": spec.weight_decay,
        "dt": 1.0,
    }


def _substitute(expr, consts: dict):
    return expr.subs({s: consts[s.name] for s in expr.free_symbols if s.name in consts})


# ---------------------------------------------------------------------------------- array code
_PRINTER = None


def _print(expr) -> str:
    global _PRINTER
    if _PRINTER is None:
        from sympy.printing.numpy import NumPyPrinter

        class Printer(NumPyPrinter):
            def _print_Float(self, expr):  # every bit of a double (SymPy prints 15 digits)
                return repr(float(expr))

        _PRINTER = Printer({"fully_qualified_modules": False, "allow_unknown_functions": True})
    return _PRINTER.doprint(expr)


def _functions(source: str, xp) -> dict:
    """The array functions a generated source calls, from `xp` (numpy, cupy or torch_arrays)."""
    names = {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}
    special = {
        "int_": lambda a: a,
        "float_": lambda a: a,
    }  # booleans take part in arithmetic as 0/1
    return {
        n: special[n] if n in special else getattr(xp, n)
        for n in names
        if n in special or (hasattr(xp, n) and not n.startswith("_"))
    }


def _function(name: str, args: list[str], body: list[str], xp):
    """Compile `def name(args): body` with the array functions it uses."""
    source = f"def {name}({', '.join(args)}):\n" + "".join(
        f"    {line}\n" for line in body or ["pass"]
    )
    namespace = _functions(source, xp)
    exec(compile(source, f"<spikefa {name}>", "exec"), namespace)
    fn = namespace[name]
    fn.source = source
    return fn


class Block:
    """Statements over one layer's variables, optionally followed by a threshold and the resets of the
    units that cross it: `block(ns)` with ns: name → per-stream array (batch × n), per-neuron array
    (shared over streams: the bias) or scalar (η). A shared target sums its increments over streams.

    With `loops`, one Numba loop over all elements runs the arithmetic, and each transcendental
    subexpression (exp, tanh, …) of names not written earlier in the block is first evaluated by a
    whole-array NumPy ufunc (SIMD) into a buffer, kept in `ns["_cache"]` for later blocks of the same
    step while its inputs stay unchanged (σ(u) of the threshold serves δ). Without `loops`, plain
    array code (NumPy or CuPy)."""

    def __init__(
        self,
        statements,
        names: frozenset,
        shared: frozenset,
        per_neuron: frozenset,
        consts: dict,
        where: str,
        xp,
        threshold=None,
        resets=(),
        loops: bool = False,
    ):
        self.where, self.loops = where, loops
        ops, written, local = [], set(), set()

        def check(expr):
            expr = _substitute(expr, consts)
            if any(str(f.func) == "rand" for f in expr.atoms(sympy.Function)):
                raise RuleError(f"{where}: rand() has no counterpart in the batched engine")
            for sym in expr.free_symbols:
                if sym.name not in names | local | {NOISE}:
                    raise RuleError(f"{where}: unknown name {sym.name!r} in {_print(expr)}")
            return expr

        for kind, items in (
            ("set", statements),
            ("threshold", [(SPIKES, "=", threshold)] if threshold is not None else []),
            ("reset", resets),
        ):
            for var, op, expr in items:
                expr = check(expr)
                if kind == "threshold":
                    target = "spikes"
                elif var in per_neuron:
                    if op not in ("+=", "-="):
                        raise RuleError(
                            f"{where}: {var} is shared by all streams; only '{var} += …' can change it"
                        )
                    target = "shared"
                elif var in names:
                    if var in shared:
                        raise RuleError(f"{where}: {var} is a shared variable the engine sets")
                    target = "reset" if kind == "reset" else "array"
                else:
                    if op != "=" or kind != "set":
                        raise RuleError(f"{where}: {var!r} is not a variable of this layer")
                    target = "local"
                    local.add(var)
                ops.append((target, var, op, expr))
                if target != "local":
                    written.add(var)
        self.writes = written
        self.scalars = sorted(
            n for n in shared if any(n in {x.name for x in e.free_symbols} for *_, e in ops)
        )
        self.per_neuron = sorted(
            n
            for n in per_neuron
            if n in written or any(n in {x.name for x in e.free_symbols} for *_, e in ops)
        )
        self._arrays_code(ops, local, xp) if not loops else self._loop_code(ops, local, xp)

    # ---- plain array code (NumPy or CuPy)
    def _arrays_code(self, ops, local, xp):
        body, reads = [], set()
        for target, var, op, expr in ops:
            reads |= {x.name for x in expr.free_symbols} - local
            code = _print(expr)
            if target == "local":
                body.append(f"{var} = {code}")
            elif target == "spikes":
                body.append(f"{SPIKES}[...] = {code}")
            elif target == "shared":
                body.append(f"{var} {op} _over_streams({code})")
            elif target == "reset":
                body.append(
                    f"{var} += {SPIKES} * ({code})"
                    if op == "+="
                    else f"{var}[...] = where({SPIKES} != 0, {_print(_apply(var, op, expr))}, {var})"
                )
            else:
                body.append(f"{var}[...] = {code}" if op == "=" else f"{var} {op} {code}")
            reads |= {var} if target != "local" else set()
        self.fn = _function("block", ["ns"], [f"{a} = ns[{a!r}]" for a in sorted(reads)] + body, xp)
        self.fn.__globals__["_over_streams"] = _over_streams

    # ---- one Numba loop, transcendental functions hoisted into whole-array ufuncs
    def _loop_code(self, ops, local, xp):
        written, hoisted = set(), {}  # hoisted: array code → (symbol, names it reads)

        def hoist(expr):
            if isinstance(expr, sympy.Symbol) or expr.is_Number:
                return expr
            if _transcendental(expr) and not (
                {x.name for x in expr.free_symbols} & (written | local)
            ):
                code = _print(expr)
                if code not in hoisted:
                    hoisted[code] = (
                        sympy.Symbol(f"_h{len(hoisted)}", real=True),
                        {x.name for x in expr.free_symbols},
                    )
                return hoisted[code][0]
            return expr.func(*[hoist(a) for a in expr.args]) if expr.args else expr

        lowered = []
        for target, var, op, expr in ops:
            lowered.append((target, var, op, hoist(expr)))
            if target != "local":
                written.add(var)
        self.hoisted = [(code, sym.name, reads) for code, (sym, reads) in hoisted.items()]
        self.hoist_fns = {
            code: _function(
                "hoist",
                ["ns", "out"],
                [*(f"{n} = ns[{n!r}]" for n in sorted(reads)), *_ufunc_into(code)],
                xp,
            )
            for code, _, reads in self.hoisted
        }
        # numbers become arguments, so that one compiled loop serves every spec of the same shape
        params: dict = {}

        def parametrise(expr):
            floats = [f for f in expr.atoms(sympy.Float)]
            for f in floats:
                params.setdefault(float(f), sympy.Symbol(f"_c{len(params)}", real=True))
            return expr.xreplace({f: params[float(f)] for f in floats})

        lowered = [(t, v, op, parametrise(e)) for t, v, op, e in lowered]
        self.params = list(params)
        reads = set().union(*({x.name for x in e.free_symbols} for *_, e in lowered)) - local
        reads -= {f"_c{k}" for k in range(len(params))}
        scalars = [n for n in self.scalars]
        neuron = [n for n in self.per_neuron]
        stream = sorted(
            (
                reads
                | {v for t, v, _, _ in lowered if t in ("array", "reset")}
                | ({SPIKES} if any(t == "spikes" for t, *_ in lowered) else set())
            )
            - set(scalars)
            - set(neuron)
            - {h for _, h, _ in self.hoisted}
        )
        stream_all = stream + [h for _, h, _ in self.hoisted]
        self.args = (stream, neuron, scalars)
        if not stream_all:
            raise RuleError(f"{self.where}: a block must read or write a per-stream variable")
        from sympy.printing.pycode import PythonCodePrinter

        p = PythonCodePrinter(
            {"fully_qualified_modules": True, "allow_unknown_functions": True}
        )  # math.exp, clip, int_
        # per-stream arrays arrive transposed (neurons × streams): column-major batches then run along
        # memory in the inner loop, which Numba vectorises
        lines = [f"n, nb = a_{stream_all[0]}.shape", "for i in range(n):"]
        lines += [f"    {n} = a_{n}[i]" for n in neuron]
        accs = [k for k, (t, *_) in enumerate(lowered) if t == "shared"]
        lines += [f"    acc{k} = 0.0" for k in accs]
        lines += ["    for b in range(nb):"]
        lines += [
            f"        {n} = a_{n}[i, b]"
            for n in stream_all
            if n in reads
            or n in {v for t, v, op, _ in lowered if t in ("array", "reset") and op != "="}
        ]
        for k, (target, var, op, expr) in enumerate(lowered):
            code = p.doprint(expr)
            if target == "spikes":
                lines += [f"        {SPIKES} = 1.0 if {code} else 0.0"]
            elif target == "shared":
                lines += [
                    f"        acc{k} += {code}" if op == "+=" else f"        acc{k} -= {code}"
                ]
            elif target == "reset":
                lines += [
                    f"        if {SPIKES} != 0.0:",
                    f"            {var} = {p.doprint(_apply(var, op, expr))}",
                ]
            else:
                lines += [
                    f"        {var} = {p.doprint(_apply(var, op, expr)) if target == 'array' else code}"
                ]
        # Values below the smallest normal number are stored as 0 (NaN stays NaN) (flush to zero, as GPUs and fast-math CPUs
        # do): a silent unit's trace decays through the subnormal range, and subnormal operands run
        # matrix products on the CPU's slow path, which doubled the time of a training step.
        lines += [
            f"        a_{v}[i, b] = {v}"
            if v == SPIKES
            else f"        a_{v}[i, b] = 0.0 if abs({v}) < _tiny else {v}"
            for v in sorted({v for t, v, *_ in lowered if t in ("array", "reset", "spikes")})
        ]
        lines += [f"    a_{lowered[k][1]}[i] += acc{k}" for k in accs]
        argnames = (
            [f"a_{n}" for n in stream_all]
            + [f"a_{n}" for n in neuron]
            + scalars
            + [f"_c{k}" for k in range(len(params))]
            + ["_tiny"]
        )
        self.kernel = _njit_kernel(argnames, lines)

    def __call__(self, ns: dict) -> None:
        if not self.loops:
            self.fn(ns)
            return
        cache, pool = ns.setdefault("_cache", {}), ns["_pool"]
        buffers = []
        for code, _, reads in self.hoisted:
            if code not in cache:
                like = next(ns[n] for n in self.args[0] if getattr(ns.get(n), "ndim", 0) == 2)
                out = pool.get(code)
                if out is None or out.shape != like.shape or out.dtype != like.dtype:
                    out = pool[code] = np.empty_like(like, order="F")
                self.hoist_fns[code](ns, out)
                cache[code] = (out, reads)
            buffers.append(cache[code][0])
        stream, neuron, scalars = self.args
        first = ns[stream[0]] if stream else buffers[0]
        self.kernel(
            *(ns[n].T for n in stream),
            *(a.T for a in buffers),
            *(ns[n] for n in neuron),
            *(ns[n] for n in scalars),
            *self.params,
            np.finfo(first.dtype).tiny,
        )
        invalidate(ns, self.writes)


def invalidate(ns: dict, written) -> None:
    """Forget hoisted values that read a variable just written."""
    cache = ns.get("_cache")
    if cache:
        for code in [c for c, (_, reads) in cache.items() if reads & set(written)]:
            del cache[code]


_TRANSCENDENTAL = {
    "exp",
    "log",
    "sin",
    "cos",
    "tan",
    "tanh",
    "sinh",
    "cosh",
    "asin",
    "acos",
    "atan",
    "asinh",
    "acosh",
    "atanh",
}


def _transcendental(expr) -> bool:
    return (isinstance(expr, sympy.Function) and expr.func.__name__ in _TRANSCENDENTAL) or (
        expr.is_Pow and not expr.exp.is_Integer
    )


def _ufunc_into(code: str) -> list[str]:
    """Lines that evaluate `code` (a ufunc of an argument) into `out` with as few passes as possible."""
    m = re.fullmatch(r"(\w+)\((-?)(\w+)\)", code)
    if m and m.group(1) != "where":
        f, neg, x = m.groups()
        return [f"negative({x}, out=out)" if neg else f"out[...] = {x}", f"{f}(out, out=out)"]
    return [f"out[...] = {code}"]


_KERNELS: dict = {}


def _njit_kernel(argnames, lines):
    """A Numba kernel from its body; the source is written to a cache folder once, so that Numba
    caches the compiled machine code across processes too."""
    import hashlib
    import importlib.util
    import os
    import sys
    import tempfile
    from pathlib import Path

    source = (
        "import math\nimport numba\n\n\n@numba.njit\ndef int_(c):\n    return 1.0 if c else 0.0\n\n\n"
        "@numba.njit\ndef clip(x, lo, hi):\n    return min(max(x, lo), hi)\n\n\n"
        f"@numba.njit(cache=True, error_model='numpy')\ndef kernel({', '.join(argnames)}):\n"
        + "".join(f"    {l}\n" for l in lines)
    )
    if source in _KERNELS:
        return _KERNELS[source]
    folder = (
        Path(os.environ.get("NUMBA_CACHE_DIR") or tempfile.gettempdir())
        / f"spikefa-kernels-{os.getuid()}"
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"k{hashlib.sha1(source.encode()).hexdigest()[:16]}.py"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)
    name = f"spikefa_kernel_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # Numba's cache finds the module by name
    spec.loader.exec_module(module)
    _KERNELS[source] = module.kernel
    return module.kernel


def _apply(var: str, op: str, expr):
    v = sympy.Symbol(var, real=True)
    return {"=": expr, "+=": v + expr, "-=": v - expr, "*=": v * expr, "/=": v / expr}[op]


def _over_streams(increment):
    """The sum over streams of a shared variable's increment."""
    if getattr(increment, "ndim", 0) != 2:
        raise RuleError("a shared variable's increment must depend on a per-stream variable")
    return increment.sum(axis=0)


def exact_step(var: str, rhs, consts: dict, where: str):
    """(β, drive) of the exact one-step solution v ← β·v + drive of dv/dt = rhs, rhs linear in v with a constant coefficient."""
    v = next((s for s in rhs.free_symbols if s.name == var), sympy.Symbol(var, real=True))
    A = sympy.diff(rhs, v)
    C = sympy.simplify(rhs - A * v)
    if v in A.free_symbols or v in C.free_symbols:
        raise RuleError(f"{where}: d{var}/dt = {rhs} is not linear in {var}")
    A_num = _substitute(A, consts)
    if A_num.free_symbols:
        raise RuleError(f"{where}: d{var}/dt = {rhs}: the coefficient of {var} must be a constant")
    if A_num == 0:
        return 1.0, _substitute(C, consts)
    beta = sympy.exp(A_num)
    drive = sympy.simplify(C / A) * (beta - 1)
    return float(beta), sympy.expand(_substitute(drive, consts).evalf())


# ---------------------------------------------------------------------------------- factorisation
@dataclass
class Term:
    """coeff · post(x_post) · pre(x_pre) · syn(w): coeff holds numbers and shared scalars (η)."""

    coeff: object
    post: object
    pre: object
    syn: object


class Synaptic:
    """A synapse's names: its weight, and the variables of its pre- and postsynaptic layers."""

    def __init__(self, weight: str, pre_kind: str, post_kind: str, consts: dict):
        self.weight, self.consts = weight, consts
        self.pre_names, self.pre_shared = layer_variables(pre_kind)
        self.post_names, self.post_shared = layer_variables(post_kind)

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
        expr = _substitute(expr, self.consts)
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
                    f"f({self.weight}): {_print(f)} mixes {mixed_kinds} variables (engine=brian2 runs any rule)"
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
        """expr over the names of one layer: x_pre → x (or x_post → x, unsuffixed post names unchanged)."""
        suffix = "_" + side
        return expr.subs(
            {
                s: sympy.Symbol(s.name[: -len(suffix)], real=True)
                for s in expr.free_symbols
                if s.name.endswith(suffix)
            }
        )


class Operand:
    """One side of a matrix product: an element-wise expression of one layer's variables, evaluated
    as an array per stream (batch × n). A bare variable is used as it is, without a copy."""

    def __init__(self, expr, xp):
        self.one = expr == 1
        self.name = expr.name if isinstance(expr, sympy.Symbol) else None
        self.fn = (
            None
            if self.one or self.name
            else _function(
                "operand",
                ["ns"],
                [
                    *(
                        f"{s.name} = ns[{s.name!r}]"
                        for s in sorted(expr.free_symbols, key=lambda s: s.name)
                    ),
                    f"return {_print(expr)}",
                ],
                xp,
            )
        )

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
        self.fn = (
            None
            if self.value is not None
            else _function(
                "scalar",
                ["ns"],
                [
                    *(
                        f"{s.name} = ns[{s.name!r}]"
                        for s in sorted(expr.free_symbols, key=lambda s: s.name)
                    ),
                    f"return {_print(expr)}",
                ],
                xp,
            )
        )

    def __call__(self, ns: dict) -> float:
        return self.value if self.value is not None else float(self.fn(ns))


class Matrix:
    """f(w) or f(B), element-wise over a weight matrix; in sparse feedback, absent synapses (B = 0)
    stay absent when f(0) ≠ 0."""

    def __init__(self, expr, weight: str, xp, sparse: bool):
        self.identity = isinstance(expr, sympy.Symbol)
        self.const = None if expr.free_symbols else float(expr)
        self.masked = sparse and not self.identity and _substitute(expr, {weight: 0.0}) != 0
        self.fn = (
            None
            if self.identity or self.const is not None
            else _function("matrix", [weight], [f"return {_print(expr)}"], xp)
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


# ---------------------------------------------------------------------------------- the model
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
                        var, _sympy(str(e.expr), f"{kind} d{var}/dt"), consts, f"{kind} layer"
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
            cond = _sympy(
                (eq.INPUT_SPIKE if kind == "input" else eq.SPIKE).format(noise=NOISE),
                f"{kind} threshold",
            )
            resets = _statements(eq.TRACE_ON_SPIKE, f"{kind} reset")
            written = {v for v, _, _ in update}
            split = any(
                _transcendental(e) and {x.name for x in e.free_symbols} & written
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
            _statements(eq.OUTPUT_ERROR, "output error"),
            out_names,
            out_shared,
            per_neuron,
            consts,
            "output error",
            xp,
            loops=loops,
        )
        self.hidden_delta = Block(
            _statements(eq.HIDDEN_DELTA, "δ"),
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
                _statements(eq.BIAS_PLASTICITY, "bias plasticity"),
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
            ((var, op, expr),) = _statements(eq.FORWARD_ON_PRE, "forward on_pre")
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
            _vanishes_without_eta(e, consts) for _, _, e in _statements(eq.BIAS_PLASTICITY, "bias")
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
    return _substitute(expr, {**consts, **{n: 0.0 for n in ("eta", "eta_post", "eta_pre")}}) == 0


def _increment(text: str, weight: str, where: str):
    """The increment of `weight` in a one-statement rule ('w += …', 'w = …', 'w *= …')."""
    statements = _statements(text, where)
    if len(statements) != 1 or statements[0][0] != weight:
        raise RuleError(
            f"{where} {text!r}: the batched engine runs one statement that changes {weight} "
            f"(e.g. '{weight} += eta_post * delta_post * p_pre')"
        )
    _, op, expr = statements[0]
    if op == "+=":
        return expr
    return sympy.expand(_apply(weight, op, expr) - sympy.Symbol(weight, real=True), deep=False)


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
    return syn.terms(_sympy(str(summed[0][1].expr), where), where, text)


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
