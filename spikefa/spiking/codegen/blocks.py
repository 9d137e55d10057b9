"""Element-wise blocks of a layer's statements, printed as array code (NumPy, CuPy, torch) or as
one Numba loop per block; the exact one-step solution of a linear differential equation."""

from __future__ import annotations

import ast
import functools
import re

import numpy as np
import sympy

from spikefa.spiking.codegen.parsing import NOISE, SPIKES, RuleError, substitute

_PRINTER = None


def print_code(expr) -> str:
    global _PRINTER
    if _PRINTER is None:
        from sympy.printing.numpy import NumPyPrinter

        class Printer(NumPyPrinter):
            def _print_Float(self, expr):  # every bit of a double (SymPy prints 15 digits)
                return repr(float(expr))

            def _print_And(self, expr):  # nested pairs: PyTorch has no logical_and.reduce
                return functools.reduce(
                    lambda a, b: f"logical_and({a}, {b})", map(self._print, expr.args)
                )

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


def compile_function(name: str, args: list[str], body: list[str], xp):
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
    """Statements over one layer's variables, optionally followed by a threshold and the resets of
    the units that cross it: `block(ns)` with ns: name → per-stream array (batch × n), per-neuron
    array (shared over streams: the bias) or scalar (η). A shared target sums its increments over
    streams.

    With `loops`, one Numba loop over all elements runs the arithmetic, and each transcendental
    subexpression (exp, tanh, …) of names not written earlier in the block is first evaluated by a
    whole-array NumPy ufunc (SIMD) into a buffer, kept in `ns["_cache"]` for later blocks of the
    same step while its inputs stay unchanged (σ(u) of the threshold serves δ). Without `loops`,
    plain array code (NumPy or CuPy)."""

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
        ops, local = self._targets(statements, threshold, resets, names, shared, per_neuron, consts)
        self.writes = {var for target, var, *_ in ops if target != "local"}
        # a block with resets but no threshold acts on spikes it is given (spikes that arrive)
        self.reads_spikes = threshold is None and any(t == "reset" for t, *_ in ops)
        self.scalars = sorted(
            n for n in shared if any(n in {x.name for x in e.free_symbols} for *_, e in ops)
        )
        self.per_neuron = sorted(
            n
            for n in per_neuron
            if n in self.writes or any(n in {x.name for x in e.free_symbols} for *_, e in ops)
        )
        self._arrays_code(ops, local, xp) if not loops else self._loop_code(ops, local, xp)

    def _targets(self, statements, threshold, resets, names, shared, per_neuron, consts):
        """Every statement as (target, variable, operator, expression), the target saying what it
        writes: a per-stream array, a reset of the units that spiked, the spikes, a per-neuron
        (shared) variable, or a local name; and the local names."""
        where, ops, local = self.where, [], set()

        def check(expr):
            expr = substitute(expr, consts)
            if any(str(f.func) == "rand" for f in expr.atoms(sympy.Function)):
                raise RuleError(f"{where}: rand() has no counterpart in the batched engine")
            for sym in expr.free_symbols:
                if sym.name not in names | local | {NOISE}:
                    raise RuleError(f"{where}: unknown name {sym.name!r} in {print_code(expr)}")
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
        return ops, local

    # ---- plain array code (NumPy or CuPy)
    def _arrays_code(self, ops, local, xp):
        body, reads = [], {SPIKES} if self.reads_spikes else set()
        for target, var, op, expr in ops:
            reads |= {x.name for x in expr.free_symbols} - local
            code = print_code(expr)
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
                    else f"{var}[...] = where({SPIKES} != 0, {print_code(apply_op(var, op, expr))}, {var})"
                )
            else:
                body.append(f"{var}[...] = {code}" if op == "=" else f"{var} {op} {code}")
            reads |= {var} if target != "local" else set()
        self.fn = compile_function(
            "block", ["ns"], [f"{a} = ns[{a!r}]" for a in sorted(reads)] + body, xp
        )
        self.fn.__globals__["_over_streams"] = _over_streams

    # ---- one Numba loop, transcendental functions hoisted into whole-array ufuncs
    def _loop_code(self, ops, local, xp):
        lowered = self._hoist(ops, local, xp)
        lowered, self.params = _parametrise(lowered)
        reads = set().union(*({x.name for x in e.free_symbols} for *_, e in lowered)) - local
        reads -= {f"_c{k}" for k in range(len(self.params))}
        reads |= {SPIKES} if self.reads_spikes else set()
        stream = sorted(
            (
                reads
                | {v for t, v, _, _ in lowered if t in ("array", "reset")}
                | ({SPIKES} if any(t == "spikes" for t, *_ in lowered) else set())
            )
            - set(self.scalars)
            - set(self.per_neuron)
            - {h for _, h, _ in self.hoisted}
        )
        stream_all = stream + [h for _, h, _ in self.hoisted]
        self.args = (stream, self.per_neuron, self.scalars)
        if not stream_all:
            raise RuleError(f"{self.where}: a block must read or write a per-stream variable")
        lines = _kernel_lines(lowered, stream_all, self.per_neuron, reads)
        argnames = (
            [f"a_{n}" for n in stream_all]
            + [f"a_{n}" for n in self.per_neuron]
            + self.scalars
            + [f"_c{k}" for k in range(len(self.params))]
            + ["_tiny"]
        )
        self.kernel = njit_kernel(argnames, lines)

    def _hoist(self, ops, local, xp) -> list:
        """`ops` with each transcendental subexpression of names not written earlier in the block
        replaced by a buffer `_h<k>` that a whole-array ufunc fills (`hoisted`, `hoist_fns`)."""
        written, hoisted = set(), {}  # hoisted: array code → (symbol, names it reads)

        def hoist(expr):
            if isinstance(expr, sympy.Symbol) or expr.is_Number:
                return expr
            if is_transcendental(expr) and not (
                {x.name for x in expr.free_symbols} & (written | local)
            ):
                code = print_code(expr)
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
            code: compile_function(
                "hoist",
                ["ns", "out"],
                [*(f"{n} = ns[{n!r}]" for n in sorted(reads)), *_ufunc_into(code)],
                xp,
            )
            for code, _, reads in self.hoisted
        }
        return lowered

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
            smallest_normal(first.dtype),
        )
        invalidate(ns, self.writes)


def _parametrise(lowered) -> tuple[list, list]:
    """Numbers become arguments `_c<k>`, so that one compiled loop serves every spec of the same
    shape; the lowered statements and the numbers."""
    params: dict = {}

    def parametrise(expr):
        floats = [f for f in expr.atoms(sympy.Float)]
        for f in floats:
            params.setdefault(float(f), sympy.Symbol(f"_c{len(params)}", real=True))
        return expr.xreplace({f: params[float(f)] for f in floats})

    return [(t, v, op, parametrise(e)) for t, v, op, e in lowered], list(params)


def _kernel_lines(lowered, stream_all, neuron, reads) -> list[str]:
    """The body of a block's Numba kernel: per neuron i, per stream b, load, compute, store.
    Per-stream arrays arrive transposed (neurons × streams): column-major batches then run along
    memory in the inner loop, which Numba vectorises."""
    from sympy.printing.pycode import PythonCodePrinter

    p = PythonCodePrinter(
        {"fully_qualified_modules": True, "allow_unknown_functions": True}
    )  # math.exp, clip, int_
    lines = [f"n, nb = a_{stream_all[0]}.shape", "for i in range(n):"]
    lines += [f"    {n} = a_{n}[i]" for n in neuron]
    accs = [k for k, (t, *_) in enumerate(lowered) if t == "shared"]
    lines += [f"    acc{k} = 0.0" for k in accs]
    lines += ["    for b in range(nb):"]
    updated = {v for t, v, op, _ in lowered if t in ("array", "reset") and op != "="}
    lines += [f"        {n} = a_{n}[i, b]" for n in stream_all if n in reads or n in updated]
    for k, (target, var, op, expr) in enumerate(lowered):
        code = p.doprint(expr)
        if target == "spikes":
            lines += [f"        {SPIKES} = 1.0 if {code} else 0.0"]
        elif target == "shared":
            lines += [f"        acc{k} += {code}" if op == "+=" else f"        acc{k} -= {code}"]
        elif target == "reset":
            lines += [
                f"        if {SPIKES} != 0.0:",
                f"            {var} = {p.doprint(apply_op(var, op, expr))}",
            ]
        else:
            lines += [
                f"        {var} = {p.doprint(apply_op(var, op, expr)) if target == 'array' else code}"
            ]
    # Values below the smallest normal number are stored as 0 (NaN stays NaN) (flush to zero, as
    # GPUs and fast-math CPUs do): a silent unit's trace decays through the subnormal range, and
    # subnormal operands run matrix products on the CPU's slow path, which doubled the time of a
    # training step.
    lines += [
        f"        a_{v}[i, b] = {v}"
        if v == SPIKES
        else f"        a_{v}[i, b] = 0.0 if abs({v}) < _tiny else {v}"
        for v in sorted({v for t, v, *_ in lowered if t in ("array", "reset", "spikes")})
    ]
    return lines + [f"    a_{lowered[k][1]}[i] += acc{k}" for k in accs]


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


def is_transcendental(expr) -> bool:
    return (isinstance(expr, sympy.Function) and expr.func.__name__ in _TRANSCENDENTAL) or (
        expr.is_Pow and not expr.exp.is_Integer
    )


def _ufunc_into(code: str) -> list[str]:
    """Lines that evaluate `code` (a ufunc of an argument) into `out` with as few passes as
    possible."""
    m = re.fullmatch(r"(\w+)\((-?)(\w+)\)", code)
    if m and m.group(1) != "where":
        f, neg, x = m.groups()
        return [f"negative({x}, out=out)" if neg else f"out[...] = {x}", f"{f}(out, out=out)"]
    return [f"out[...] = {code}"]


_KERNELS: dict = {}


def njit_kernel(argnames, lines):
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


def apply_op(var: str, op: str, expr):
    v = sympy.Symbol(var, real=True)
    return {"=": expr, "+=": v + expr, "-=": v - expr, "*=": v * expr, "/=": v / expr}[op]


def _over_streams(increment):
    """The sum over streams of a shared variable's increment."""
    if getattr(increment, "ndim", 0) != 2:
        raise RuleError("a shared variable's increment must depend on a per-stream variable")
    return increment.sum(axis=0)


def exact_step(var: str, rhs, consts: dict, where: str):
    """(β, drive) of the exact one-step solution v ← β·v + drive of dv/dt = rhs, rhs linear in v
    with a constant coefficient."""
    v = next((s for s in rhs.free_symbols if s.name == var), sympy.Symbol(var, real=True))
    A = sympy.diff(rhs, v)
    C = sympy.simplify(rhs - A * v)
    if v in A.free_symbols or v in C.free_symbols:
        raise RuleError(f"{where}: d{var}/dt = {rhs} is not linear in {var}")
    A_num = substitute(A, consts)
    if A_num.free_symbols:
        raise RuleError(f"{where}: d{var}/dt = {rhs}: the coefficient of {var} must be a constant")
    if A_num == 0:
        return 1.0, substitute(C, consts)
    beta = sympy.exp(A_num)
    drive = sympy.simplify(C / A) * (beta - 1)
    return float(beta), sympy.expand(substitute(drive, consts).evalf())


@functools.lru_cache(maxsize=8)
def smallest_normal(dtype) -> float:
    """np.finfo(dtype).tiny, which costs tens of microseconds a call: it is read at every block."""
    return float(np.finfo(dtype).tiny)
