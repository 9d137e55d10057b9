"""The batched engine: the Brian2 model's equations for a batch of image streams.

Each of `batch` independent streams has its own PSPs and traces (arrays batch × n); the weights are
shared and the weight changes of all streams add up, so a batch of 1 is exactly the single-stream
model of `brian.py`. Every element-wise statement and every factor of every matrix product is
compiled from the strings of `equations.py` (and the spec's own rules) by `codegen`; this module
only orders them, as `brian_model.BrianModel._schedule` does:

  1. bottom-up, l = 0 … L−1: layer l's state update (the exact step of its differential equations;
     for l ≥ 1 the PSP's own decay was already applied below), threshold, reset; then
     u_{l+1} ← β·u_{l+1} + α·s_l w_{l+1}   (one product: β the PSP decay, α from the forward on_pre)
     — with a forward delay s_l is the oldest slot of layer l's delay line, its arrival makes the
     trace jump, and the line then takes in this step's spikes
  2. the output's state update and error; top-down, l = L−1 … 1: the summed feedback variable mod_l
     (matrix products of the presynaptic δs with f(B_l)), then δ_l — with spiking error, the error
     units of each layer that sends δ down fire once it is known, and mod_l, a state, grows by the
     products of their spikes; with a feedback delay the products read the oldest slot of the
     sender's delay line, and the lines take in this step's δs or error spikes at the end
  3. plasticity: a rule's eligibility traces advance (per unit); each term of the rule is a matrix
     product of (presynaptic) × (postsynaptic) factors over the streams, times f(w), and under
     Dale's law w is clipped to its signs; the bias learns from its increments summed over streams
     (bp mode: B_l is a view of w_{l+1}ᵀ, so it follows)

The sums in u are those of the Brian2 model taken in another order (equal to rounding).

`step` works on the state record in place. Matrix products go through a backend: `ArrayOps` uses
only NumPy's array interface, so it runs on NumPy or CuPy unchanged; `CpuOps` calls float32/float64
BLAS in place (no temporaries; the decay rides on β); `torch_backend.TorchOps` runs the same code on
PyTorch tensors through the array namespace `torch_arrays`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikefa.arrays import array_module, gemm
from spikefa.spiking import equations as eq
from spikefa.spiking.codegen import NOISE, SPIKES, CompiledModel, compile_model, invalidate
from spikefa.spiking.codegen.blocks import smallest_normal
from spikefa.spiking.codegen.eligibility import advance_traces
from spikefa.spiking.dale import dale_signs
from spikefa.spiking.delays import oldest, push, split
from spikefa.spiking.noise import CounterNoise
from spikefa.spiking.spec import SpikingSpec, is_stream_var
from spikefa.timing import NO_PARTS


# ------------------------------------------------------------------------------------ backends
class ArrayOps:
    """Matrix products and uniforms through NumPy's array interface (`xp` = numpy or cupy)."""

    def __init__(self, xp=np):
        self.xp = xp

    def gemm(self, a, b, out, alpha=1.0, beta=0.0, trans_a=False):
        """out = α·a b + β·out; `trans_a` uses aᵀ."""
        prod = (a.T if trans_a else a) @ b
        if beta:
            out *= beta
            out += alpha * prod
        else:
            out[...] = alpha * prod

    def uniforms(self, rng, out):
        out[...] = rng.random(out.shape, dtype=out.dtype)


class CpuOps(ArrayOps):
    """float32/float64 BLAS in place: no temporaries."""

    def gemm(self, a, b, out, alpha=1.0, beta=0.0, trans_a=False):
        gemm(a, b, out, alpha, beta, trans_a)

    def uniforms(self, rng, out):
        if isinstance(rng, CounterNoise):
            rng.fill(out)
            return
        out_c = out.T if out.flags.f_contiguous and not out.flags.c_contiguous else out
        rng.random(out=out_c, dtype=out.dtype) if out_c.flags.c_contiguous else super().uniforms(
            rng, out
        )


# ------------------------------------------------------------------------------------ the step
STREAM_ORDER = "F"  # per-stream arrays (batch × n) are column-major: see `batch_state`


@dataclass
class Workspace:
    """Per-step buffers of a batch: spikes s and uniforms r of every group that draws noise
    (`spec.spiking_groups()`: layers 0 … L−1, then the error units), modulators and δs (layers
    1 … L), the output rates y and the one-hot targets; `errors[s]`: the namespaces of the error
    units e⁺, e⁻ of layer s (error_coding "spikes")."""

    s: list
    r: list
    mod: list
    delta: list
    y: object
    target: object
    pool: list = None  # per layer: buffers of hoisted subexpressions (codegen.Block)
    ei: list = None  # Dale's law: the sign of every unit's outgoing weights, layers 0 … L
    errors: dict = None  # error_coding spikes: layer s → namespaces of e⁺, e⁻

    @classmethod
    def allocate(cls, spec: SpikingSpec, batch: int, xp=np):
        dt, sizes, L = np.dtype(spec.dtype), spec.sizes, spec.n_layers

        def zeros(n):
            return xp.zeros((batch, n), dt, order=STREAM_ORDER)

        groups = [n for _, n in spec.spiking_groups()]
        ws = cls(
            s=[zeros(n) for n in groups],
            r=[zeros(n) for n in groups],
            mod=[None] + [zeros(sizes[l]) for l in range(1, L + 1)],
            delta=[None] + [zeros(sizes[l]) for l in range(1, L + 1)],
            y=zeros(sizes[-1]),
            target=zeros(sizes[-1]),
            pool=[{} for _ in sizes],
            ei=None if not spec.dale else [xp.asarray(s) for s in dale_signs(spec)],
        )
        ws.errors, k = {}, L
        for src in spec.feedback_sources if spec.coding.spikes else ():
            ws.errors[src] = []
            for sign in eq.ERROR_SIGNS.values():
                carried = zeros(sizes[src])
                carried += sign
                ns = {"error": ws.delta[src], "delta": carried, NOISE: ws.r[k], SPIKES: ws.s[k]}
                ws.errors[src].append(ns | {"_pool": {}})
                k += 1
        return ws


def namespaces(
    spec: SpikingSpec, state: dict, x, ws: Workspace, eta: float, eta_max: float
) -> list[dict]:
    """Each layer's variables under their Brian2 names, with the pixels as `rate`, the one-hot
    labels as `ystar` and this step's learning rate as `eta` (the Brian2 model reads those from
    TimedArrays)."""
    L = spec.n_layers
    out = [{"p": state["p0"], "rate": x, NOISE: ws.r[0], SPIKES: ws.s[0], "_pool": ws.pool[0]}]
    if ws.ei is not None:
        out[0]["ei"] = ws.ei[0]
    for l in range(1, L + 1):
        ns = {
            "u": state[f"u{l}"],
            "bias": state[f"bias{l}"],
            "mod": modulator(state, ws, l),
            "delta": ws.delta[l],
            "eta": spec.layer_eta(eta, l),
            "eta_max": spec.layer_eta(eta_max, l),
            "_pool": ws.pool[l],
        }
        if l < L:
            ns.update(p=state[f"p{l}"], **{NOISE: ws.r[l], SPIKES: ws.s[l]})
            if spec.refractory_steps:
                ns["refr"] = state[f"refr{l}"]
            if ws.ei is not None:
                ns["ei"] = ws.ei[l]
        else:
            ns.update(y=ws.y, ystar=ws.target)
        out.append(ns)
    return out


def modulator(state: dict, ws: Workspace, l: int):
    """The modulator of layer l: a state where it filters error spikes, else this step's sum."""
    return state.get(f"m{l}", ws.mod[l])


def _scalars(pre: dict, post: dict) -> dict:
    """The shared scalars (η) of a synapse's two sides, under the names a rule uses."""
    out = {f"{k}_pre": v for k, v in pre.items() if isinstance(v, _SCALARS)}
    out |= {f"{k}_post": v for k, v in post.items() if isinstance(v, _SCALARS)}
    return out | {k: v for k, v in post.items() if isinstance(v, _SCALARS)}


# np.isscalar's answer for a namespace's values, at a fraction of its cost
_SCALARS = (float, int, np.generic)


def feedback_matrices(model: CompiledModel, state: dict, xp) -> dict:
    """f(B_l) of every term of the feedback rule (B_l itself where f is the identity)."""
    return {l: [p.syn(state[f"B{l}"], xp) for p in ps] for l, ps in model.feedback.items()}


def step(
    spec: SpikingSpec,
    state: dict,
    x,
    ws: Workspace,
    eta: float,
    ops: ArrayOps,
    eta_max: float | None = None,
    model: CompiledModel | None = None,
    fb: dict | None = None,
    feedback: bool = True,
) -> None:
    """Advance every stream by one step, in place. x: batch × n_in pixels; ws.r holds this step's
    uniforms and ws.target the one-hot labels; the step leaves its spikes, δs and rates in `ws`.
    `eta` is this step's learning rate (0 while the plasticity gate is shut), `eta_max` the ungated
    one. `feedback=False` runs the forward pathway and the output alone (nothing learns): the output
    rates are the same, since modulators and hidden δs reach only the weights."""
    xp = ops.xp
    model = model or compile_model(spec, xp.__name__, isinstance(ops, CpuOps))
    fb = fb if fb is not None else feedback_matrices(model, state, xp)
    L = spec.n_layers
    ns = namespaces(spec, state, x, ws, eta, eta if eta_max is None else eta_max)
    for l in range(L):
        _forward(model, state, ns[l], ws.s[l], l, ops)
    model.update[L](ns[L])
    model.output_error(ns[L])
    if not feedback:
        return
    _top_down(spec, model, state, ns, ws, fb, ops)
    learns, tiny = eta or not model.plasticity_needs_eta, smallest_normal(np.dtype(spec.dtype))
    for l in range(1, L + 1):
        pre, post = advance_traces(model.traces[l], state, ns[l - 1], ns[l], _scalars, xp, tiny)
        if learns:
            _plasticity(model.plasticity[l], state[f"w{l}"], pre, post, ops)
            if model.dale[l]:
                model.dale[l](state[f"w{l}"], pre, post)
    if eta or not model.bias_needs_eta:
        for l in range(1, L + 1):
            model.bias_plasticity["output" if l == L else "hidden"](ns[l])


def _forward(model: CompiledModel, state: dict, ns: dict, spikes, l: int, ops) -> None:
    """Layer l's state update and spikes; the spikes that reach its synapses this step (with a
    forward delay, those of D steps ago, which make its trace jump) enter the PSP of layer l+1."""
    if model.update[l]:
        model.update[l](ns)
    model.spike[l](ns)
    line = state.get(f"fq{l}")
    sent = spikes if line is None else oldest(line, spikes.shape[1])
    if line is not None:
        model.arrival[l](ns | {SPIKES: sent})
    u = state[f"u{l + 1}"]
    ops.gemm(sent, state[f"w{l + 1}"], u, alpha=model.alpha[l + 1], beta=model.beta[l + 1])
    if line is not None:
        push(line, spikes, ops.xp)


def _top_down(spec, model, state, ns, ws, fb, ops) -> None:
    """The error travels down: each hidden layer's modulator from the δ (or the error spikes) of
    its source, then its δ; the error units of each layer whose δ is sent down fire once it is
    known. Last, the feedback delay lines take in this step's δ or error spikes."""
    xp, L = ops.xp, spec.n_layers
    for ns_error in ws.errors.get(L, ()):
        model.error_spike(ns_error)
    for l in reversed(range(1, L)):
        src = spec.feedback_source(l)
        if not model.feedback_fixed:
            fb[l] = [p.syn(state[f"B{l}"], xp) for p in model.feedback[l]]
        senders = _senders(state, ns[src], ws, src)
        _feedback(model.feedback[l], fb[l], senders, ns[l], ops, model.feedback_accumulates)
        invalidate(ns[l], ("mod",))
        model.hidden_delta(ns[l])
        for ns_error in ws.errors.get(l, ()):
            model.error_spike(ns_error)
    for src in spec.feedback_sources:
        line = state.get(f"bq{src}")
        if line is None:
            continue
        sent = [e[SPIKES] for e in ws.errors[src]] if ws.errors else [ws.delta[src]]
        for part, new in zip(split(line, len(sent)), sent):
            push(part, new, xp)


def _senders(state: dict, ns_src: dict, ws: Workspace, src: int) -> list:
    """What the feedback synapses of layer `src` read this step: (namespace, spikes) of each group
    that sends; spikes (error units) act per spike, None: an analog value read as it is. With a
    feedback delay they read the oldest slot of its delay line."""
    line, errors = state.get(f"bq{src}"), ws.errors.get(src)
    n = ns_src["delta"].shape[1]
    if errors:
        sent = [e[SPIKES] for e in errors] if line is None else split(line, len(errors))
        return [(e, s if line is None else oldest(s, n)) for e, s in zip(errors, sent)]
    if line is not None:
        return [({"delta": oldest(line, n), "error": ns_src["delta"]}, None)]
    return [(ns_src, None)]


def _feedback(products, matrices, senders, post: dict, ops, accumulate: bool) -> None:
    """mod = Σ_terms c · post ⊙ (pre-side factor @ f(B)); `accumulate`: mod += …. The pre-side
    factor of spiking senders counts only the units that spiked, summed over the senders."""
    mod = post["mod"]
    xp, (batch, n) = ops.xp, mod.shape
    scalars = _scalars(senders[0][0], post)
    first = not accumulate
    for p, F in zip(products, matrices):
        c = p.coeff(scalars)
        Q = _presynaptic(p.pre, senders, batch, F.shape[0], mod.dtype, xp)
        if p.post.one:
            ops.gemm(Q, F, mod, alpha=c, beta=0.0 if first else 1.0)
        else:
            tmp = xp.zeros_like(mod)
            ops.gemm(Q, F, tmp, alpha=c)
            tmp *= p.post(post, batch, n, mod.dtype, xp)
            if first:
                mod[...] = tmp
            else:
                mod += tmp
        first = False
    if first:
        mod[...] = 0


def _presynaptic(operand, senders, batch: int, n: int, dtype, xp):
    """The pre-side factor of a product, summed over the sending groups (each: its spikes times the
    factor, where it spikes)."""
    total = None
    for ns, spikes in senders:
        if spikes is None:
            value = operand(ns, batch, n, dtype, xp)
        else:
            value = spikes if operand.one else spikes * operand(ns, batch, n, dtype, xp)
        total = value if total is None else total + value
    return total


def _plasticity(products, W, pre: dict, post: dict, ops) -> None:
    """W += Σ_terms c · f(W) ⊙ Σ_streams pre-side factor ⊗ post-side factor, every f(W) of the old
    W."""
    xp = ops.xp
    batch = next(v.shape[0] for v in post.values() if getattr(v, "ndim", 0) == 2)
    scalars = _scalars(pre, post)
    scale, later, direct = 0.0, [], []
    for p in products:
        c = p.coeff(scalars)
        if not c:
            continue
        if p.scalar_sides:  # no per-stream factor: every stream adds c · f(W)
            if p.syn.identity:
                scale += c * batch
            elif p.syn.const is not None:
                later.append(c * batch * p.syn.const)
            else:
                later.append(c * batch * p.syn(W, xp))
            continue
        Q = p.pre(pre, batch, W.shape[0], W.dtype, xp)
        P = p.post(post, batch, W.shape[1], W.dtype, xp)
        if p.syn.const is not None:
            direct.append((Q, P, c * p.syn.const))
        else:
            tmp = xp.zeros_like(W, order="F")
            ops.gemm(Q, P, tmp, alpha=c, trans_a=True)
            tmp *= p.syn(W, xp)
            later.append(tmp)
    if scale:
        W *= 1.0 + scale
    for t in later:
        W += t
    for Q, P, alpha in direct:
        ops.gemm(Q, P, W, alpha=alpha, beta=1.0, trans_a=True)


def batch_state(spec: SpikingSpec, state: dict, batch: int, xp=np) -> dict:
    """A copy of `state` for `batch` streams: PSPs and traces get one row per stream (single-stream
    values are repeated); under weight transport each B_l becomes a view of w_{l+1}ᵀ, so it follows
    w exactly.
    Everything is stored column-major, weights and per-stream arrays alike: OpenBLAS multiplies a
    batch of 50 rows by a column-major 1500×1500 matrix, and adds a rank-50 update to one, faster
    (row-major weights: ~0.8 of the step rate; row-major streams: ~0.98).
    Per-stream arrays get this order whatever their source, so that a resumed run takes the same
    BLAS paths, bit for bit, as an uninterrupted one."""
    out = {
        k: xp.array(np.broadcast_to(v, (batch, v.shape[-1])), copy=True, order=STREAM_ORDER)
        if is_stream_var(k)
        else xp.array(v, copy=True, order="F" if v.ndim == 2 else "K")
        for k, v in state.items()
    }
    if spec.mode.transport:
        for l in range(1, spec.n_layers):
            out[f"B{l}"] = out[f"w{l + 1}"].T
    return out


@dataclass
class StepRecord:
    """One step of a recorded run: output rates, modulators, δs and PSPs by layer (index 0 unused;
    mod for hidden layers only), spikes of layers 0 … L−1."""

    y: np.ndarray
    mod: list
    delta: list
    spikes: list
    u: list

    @classmethod
    def of(cls, spec: SpikingSpec, state: dict, ws: Workspace, xp) -> StepRecord:
        """Copies of this step's values."""
        return cls(
            xp.copy(ws.y),
            [None] + [xp.copy(modulator(state, ws, l)) for l in range(1, spec.n_layers)],
            [dl if dl is None else xp.copy(dl) for dl in ws.delta],
            [xp.copy(s) for s in ws.s],
            [None] + [xp.copy(state[f"u{l}"]) for l in range(1, spec.n_layers + 1)],
        )


def run(
    spec: SpikingSpec,
    state: dict,
    images,
    labels,
    learn: bool = True,
    uniforms: list | None = None,
    rng=None,
    record: bool = False,
    ops: ArrayOps | None = None,
    ws: Workspace | None = None,
    eta: float | None = None,
    plasticity_delay: int | None = None,
    parts=NO_PARTS,
):
    """Show images[k] (batch × n_img × n_in) to stream k in order. Returns (y, records): y has shape
    steps × batch × n_out; records holds a StepRecord per step when `record` is set. Uniforms come
    from `uniforms[l]` (batch × steps × n_l) when given, else from `rng`. `eta` overrides spec.eta,
    `plasticity_delay` the spec's gate (d > 0, an ablation: no learning in the first d steps of each
    image, while the PSPs still carry the previous one). `parts` (`spikefa.timing.Parts`) times
    the drawing of spike noise apart from the rest of the step."""
    ops = ops or default_ops(images)
    xp = ops.xp
    delay = spec.plasticity_delay if plasticity_delay is None else plasticity_delay
    model = compile_model(spec, xp.__name__, isinstance(ops, CpuOps))
    fb = feedback_matrices(model, state, xp)
    batch, n_img, _ = images.shape
    ws = ws if ws is not None and ws.y.shape[0] == batch else Workspace.allocate(spec, batch, xp)
    T, eta = spec.steps_per_image, (spec.eta if eta is None else eta) if learn else 0.0
    eye = xp.eye(spec.sizes[-1], dtype=ws.y.dtype)
    step_ = getattr(ops, "step", step)  # a backend may supply a compiled step
    # ... or run an image's steps in one call, where nothing is read between them
    whole = getattr(ops, "present", None) if uniforms is None and not record else None
    gate = [eta if j >= delay else 0.0 for j in range(T)]
    ys = xp.zeros((n_img * T, batch, spec.sizes[-1]), ws.y.dtype)
    records = []
    for k in range(n_img * T):
        img = k // T
        if k % T == 0:
            ws.target[...] = eye[labels[:, img]]
            x = xp.asarray(images[:, img], order=STREAM_ORDER)
            if whole is not None:
                whole(spec, state, x, ws, ys[k : k + T], gate, rng, eta, model, fb, learn)
        if whole is not None:
            continue
        with parts("spike noise"):
            _draw_noise(spec, state, ws, ops, rng, uniforms, k, feedback=learn or record)
        # exp(−u) overflows to inf for very negative u: σ = 0, as in Brian2
        with np.errstate(over="ignore"):
            step_(spec, state, x, ws, gate[k % T], ops, eta, model, fb, learn or record)
        ys[k] = ws.y
        if record:
            records.append(StepRecord.of(spec, state, ws, xp))
    return ys, records


def present(spec, state, x, ws, ys, etas, ops, rng, eta_max, model, fb, feedback) -> None:
    """Show image `x` for len(etas) steps with spike noise from `rng`: step j learns at etas[j] and
    leaves its output rates in ys[j]. Nothing outside reads between the steps, so a backend can
    compile them into one call (`torch_backend.TorchOps`)."""
    for j, eta in enumerate(etas):
        _draw_noise(spec, state, ws, ops, rng, None, j, feedback=feedback)
        step(spec, state, x, ws, eta, ops, eta_max, model, fb, feedback)
        ys[j] = ws.y


def _draw_noise(spec, state, ws, ops, rng, uniforms, k: int, feedback: bool) -> None:
    """This step's uniforms (given, or from `rng`): of the layers, and of the error units where
    the error travels down (`feedback`); and then in a redraw mode a new B."""
    for g in range(len(ws.r) if feedback else spec.n_layers):
        if uniforms is None:
            ops.uniforms(rng, ws.r[g])
        else:
            ws.r[g][...] = uniforms[g][:, k]
    if spec.mode.redraw and feedback:
        redraw_feedback(spec, state, ops, rng)


def redraw_feedback(spec: SpikingSpec, state: dict, ops: ArrayOps, rng) -> None:
    """equations.FEEDBACK_REDRAW, in place: every B_l drawn afresh from U[−β, β]."""
    for l in range(1, spec.n_layers):
        B = state[f"B{l}"]
        ops.uniforms(rng, B)
        B *= 2 * spec.feedback_scale
        B -= spec.feedback_scale


def default_ops(array) -> ArrayOps:
    return CpuOps() if isinstance(array, np.ndarray) else ArrayOps(array_module(array))
