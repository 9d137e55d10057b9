"""Eligibility traces of a user rule, e-prop style.

A rule may declare traces before its weight statement, one line `dX/dt = (F - X) / (T * ms)` each
(time in ms = steps), e.g.

    delig/dt = (p_pre - elig) / (20 * ms)
    w += eta_post * mod_post * (1 - tanh(u_post)**2) * elig

X low-pass filters its drive F, a synaptic factor (pre × post), once per step in the plasticity
phase, exactly for F held over the step: X ← β·X + (1 − β)·F with β = e^(−1/T); the weight
statement reads X (the modulator gates the filtered factor).

Brian2 keeps X per synapse. The batched engine keeps it per unit where that is exact: the filter is
linear and commutes with factors that do not change in time, so when every additive term of F
depends on one side only — F_ij = a_i + b_j — then X_ij = P_i + Q_j, with P the filtered a of each
presynaptic unit and Q the filtered b of each postsynaptic unit, and the rule's terms stay matrix
products. A term that multiplies variables of both sides (p_pre·mod_post: the filtered product is
not the product of the filtered factors) or reads w would need a trace per synapse and stream, which
the batched engine refuses. State keys: trace_X_pre<l>, trace_X_post<l> (per unit) or trace_X<l>
(per synapse, n_pre·n_post, where the rule does not factorise).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass

import numpy as np
import sympy

from spikefa.spiking import equations as eq
from spikefa.spiking.codegen.blocks import exact_step
from spikefa.spiking.codegen.parsing import RuleError, constants, parse_expr
from spikefa.spiking.codegen.synapses import Synaptic, Term

_TRACE = re.compile(r"d(\w+)\s*/\s*dt\s*=\s*(.+?)(?:\s*:\s*1)?")


@dataclass
class Trace:
    """One trace of weight layer l: X ← beta·X + drive; where the drive factorises, its terms by
    side (`pre`: presynaptic factors and numbers, `post`: postsynaptic factors), else
    `pre` = None."""

    name: str
    rhs: str
    beta: float
    drive: object
    pre: list[Term] | None
    post: list[Term] | None

    @property
    def factorised(self) -> bool:
        return self.pre is not None


def split_rule(text: str) -> tuple[list[tuple[str, str]], str]:
    """(the traces a rule declares, as (name, right-hand side), and its other statements)."""
    traces, rest = [], []
    for line in re.split(r"[\n;]", text):
        line = line.split("#")[0].strip()
        m = _TRACE.fullmatch(line)
        if m:
            traces.append(m.groups())
        elif line:
            rest.append(line)
    return traces, "\n".join(rest)


def kinds(spec) -> list[str]:
    """The kind of every layer 0 … L."""
    return ["input"] + ["hidden"] * (spec.n_layers - 1) + ["output"]


def synapse(spec, l: int, weight: str = "w") -> Synaptic:
    """The names of forward synapse group l, the per-unit parts of its rule's traces included."""
    extra = frozenset(n for n, _ in split_rule(spec.plasticity)[0])
    k = kinds(spec)
    return Synaptic(weight, k[l - 1], k[l], constants(spec), spec, extra)


def _filter(name: str, rhs: str, consts: dict, names) -> tuple[float, object]:
    """(β, drive) of a trace's exact step X ← β·X + drive; refused unless it is a low-pass
    filter."""
    where = f"plasticity trace {name}"
    beta, drive = exact_step(name, parse_expr(rhs, where), consts, where)
    if not 0 < beta < 1 or {s.name for s in drive.free_symbols} & set(names):
        raise RuleError(
            f"{where}: d{name}/dt = {rhs} must be a low-pass filter (F - {name}) / T of "
            f"variables of the two layers, T > 0, with no trace in F"
        )
    return beta, drive


def traces(spec, l: int) -> list[Trace]:
    """The traces of the spec's rule at weight layer l (none without a user rule)."""
    declared = split_rule(spec.plasticity)[0] if spec.plasticity else []
    syn = Synaptic("w", *kinds(spec)[l - 1 : l + 1], constants(spec), spec)
    out = []
    for name, rhs in declared:
        beta, drive = _filter(name, rhs, syn.consts, [n for n, _ in declared])
        terms = syn.terms(drive, f"plasticity trace {name}", rhs)
        ok = all(t.syn == 1 and (t.pre == 1 or t.post == 1) for t in terms)
        pre = [t for t in terms if t.post == 1] if ok else None
        post = [t for t in terms if t.post != 1] if ok else None
        out.append(Trace(name, rhs, beta, drive, pre, post))
    return out


def brian_rule(spec) -> tuple[str, str]:
    """For Brian2: the synaptic variables of the rule's traces ("X : 1" lines) and the code it runs
    at every step: each trace's exact step, then the rule's statements."""
    from brian2.parsing.sympytools import sympy_to_str

    declared, statement = split_rule(eq.plasticity_rule(spec))
    names, consts = [n for n, _ in declared], constants(spec)
    steps = [
        f"{name} = {beta!r} * {name} + {sympy_to_str(drive)}"
        for name, (beta, drive) in ((n, _filter(n, rhs, consts, names)) for n, rhs in declared)
    ]
    return "".join(f"{n} : 1\n" for n in names), "\n".join([*steps, statement])


def increment(spec, l: int, weight_increment) -> object:
    """The weight increment with every trace X read as X_pre + X_post (its per-unit parts); a trace
    that does not factorise is refused, with one line naming the rule."""
    swap = {}
    for tr in traces(spec, l):
        if not tr.factorised:
            raise RuleError(
                f"plasticity {spec.plasticity!r}: trace {tr.name} (d{tr.name}/dt = {tr.rhs}) "
                "filters a product of presynaptic and postsynaptic variables that both change "
                "in time (or a function of w); it needs a trace per synapse and stream, which the "
                "batched engine does not keep (engine=brian2 runs it)"
            )
        swap[sympy.Symbol(tr.name, real=True)] = sympy.Symbol(
            f"{tr.name}_pre", real=True
        ) + sympy.Symbol(f"{tr.name}_post", real=True)
    if not swap:
        return weight_increment
    return sympy.expand(weight_increment.xreplace(swap), power_exp=False, log=False)


def trace_shapes(spec) -> dict[str, tuple[int, ...]]:
    """The state keys and one-stream shapes of the rule's traces."""
    return dict(_trace_shapes(json.dumps(spec.to_dict(), sort_keys=True)))


@functools.lru_cache(maxsize=16)
def _trace_shapes(spec_json: str) -> tuple:
    from spikefa.spiking.spec import SpikingSpec

    spec = SpikingSpec.from_dict(json.loads(spec_json))
    sizes, out = spec.sizes, []
    for l in range(1, spec.n_layers + 1):
        for tr in traces(spec, l):
            if tr.factorised:
                out += [
                    (state_key(tr.name, "pre", l), (sizes[l - 1],)),
                    (state_key(tr.name, "post", l), (sizes[l],)),
                ]
            else:
                out.append((state_key(tr.name, "", l), (sizes[l - 1] * sizes[l],)))
    return tuple(out)


def state_key(name: str, side: str, l: int) -> str:
    """The state key of a trace's part at weight layer l: side "pre", "post" or "" (per synapse)."""
    return f"trace_{name}{'_' + side if side else ''}{l}"


def per_synapse(state: dict, name: str, l: int, shape: tuple) -> np.ndarray:
    """Trace `name` at weight layer l per synapse (n_pre × n_post, one stream), from either form.

    Parameters
    ----------
    state : dict
        A one-stream state record.
    name : str
        The trace's name in the rule.
    l : int
        The weight layer (1-based).
    shape : tuple
        (n_pre, n_post).

    Returns
    -------
    numpy.ndarray
        P_i + Q_j where the state keeps per-unit parts, else the per-synapse values.
    """
    pre = state.get(state_key(name, "pre", l))
    if pre is None:
        return state[state_key(name, "", l)].reshape(shape)
    return pre[:, None] + state[state_key(name, "post", l)][None, :]


def per_unit(E: np.ndarray, name: str, l: int, factorised: bool) -> dict:
    """The state entries of a trace held per synapse (n_pre × n_post, one stream): where the rule
    factorises, E_ij = P_i + Q_j, split as P_i = E_i0 and Q_j = E_0j − E_00."""
    if not factorised:
        return {state_key(name, "", l): E.ravel()}
    return {state_key(name, "pre", l): E[:, 0].copy(), state_key(name, "post", l): E[0] - E[0, 0]}


def advance_traces(updates, state: dict, pre: dict, post: dict, scalars_of, xp, tiny: float):
    """Advance the per-unit parts of a rule's eligibility traces by one step, in place; the two
    sides' variables with those parts under the trace's name (`scalars_of(pre, post)`: the shared
    scalars of the two sides, as a rule names them)."""
    if not updates:
        return pre, post
    scalars, sides = scalars_of(pre, post), {"pre": dict(pre), "post": dict(post)}
    for u in updates:
        for side, ns in sides.items():
            X = state[u.key(side)]
            X *= u.trace.beta
            for p in getattr(u, side):
                X += p.coeff(scalars) * (p.pre if side == "pre" else p.post)(
                    ns, X.shape[0], X.shape[1], X.dtype, xp
                )
            X *= xp.absolute(X) >= tiny  # no subnormal operands in the products
            ns[u.trace.name] = X
    return sides["pre"], sides["post"]
