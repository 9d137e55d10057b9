"""The batched engine: the Brian2 model's equations for a batch of image streams.

Each of `batch` independent streams has its own PSPs and traces (arrays batch × n); the weights are
shared and the weight changes of all streams add up, so a batch of 1 is exactly the single-stream
model of `brian.py`. Every element-wise statement and every factor of every matrix product is
compiled from the strings of `equations.py` (and the spec's own rules) by `codegen`; this module
only orders them, as `brian.BrianNetwork._schedule` does:

  1. bottom-up, l = 0 … L−1: layer l's state update (the exact step of its differential equations;
     for l ≥ 1 the PSP's own decay was already applied below), threshold, reset; then
     u_{l+1} ← β·u_{l+1} + α·s_l w_{l+1}   (one product: β the PSP decay, α from the forward on_pre)
  2. the output's state update and error; top-down, l = L−1 … 1: the summed feedback variable mod_l
     (matrix products of the presynaptic δs with f(B_l)), then δ_l
  3. plasticity: each term of the rule is a matrix product of (presynaptic) × (postsynaptic)
     factors over the streams, times f(w); the bias learns from its increments summed over streams
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
from spikefa.spiking.codegen import NOISE, SPIKES, CompiledModel, compile_model, invalidate
from spikefa.spiking.codegen.blocks import smallest_normal
from spikefa.spiking.dale import dale_signs
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
    """Per-step buffers of a batch: spikes s_l and uniforms r_l (layers 0 … L−1), modulators and δs
    (layers 1 … L), the output rates y and the one-hot targets."""

    s: list
    r: list
    mod: list
    delta: list
    y: object
    target: object
    pool: list = None  # per layer: buffers of hoisted subexpressions (codegen.Block)
    ei: list = None  # Dale's law: the sign of every unit's outgoing weights, layers 0 … L

    @classmethod
    def allocate(cls, spec: SpikingSpec, batch: int, xp=np):
        dt, sizes, L = np.dtype(spec.dtype), spec.sizes, spec.n_layers

        def zeros(n):
            return xp.zeros((batch, n), dt, order=STREAM_ORDER)

        return cls(
            s=[zeros(n) for n in sizes[:-1]],
            r=[zeros(n) for n in sizes[:-1]],
            mod=[None] + [zeros(sizes[l]) for l in range(1, L + 1)],
            delta=[None] + [zeros(sizes[l]) for l in range(1, L + 1)],
            y=zeros(sizes[-1]),
            target=zeros(sizes[-1]),
            pool=[{} for _ in sizes],
            ei=None if not spec.dale else [xp.asarray(s) for s in dale_signs(spec)],
        )


def namespaces(
    spec: SpikingSpec, state: dict, x, ws: Workspace, eta: float, eta_max: float
) -> list[dict]:
    """Each layer's variables under their Brian2 names, with the pixels as `rate`, the one-hot labels
    as `ystar` and this step's learning rate as `eta` (the Brian2 model reads those from TimedArrays)."""
    L = spec.n_layers
    out = [{"p": state["p0"], "rate": x, NOISE: ws.r[0], SPIKES: ws.s[0], "_pool": ws.pool[0]}]
    if ws.ei is not None:
        out[0]["ei"] = ws.ei[0]
    for l in range(1, L + 1):
        ns = {
            "u": state[f"u{l}"],
            "bias": state[f"bias{l}"],
            "mod": ws.mod[l],
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
    `eta` is this step's learning rate (0 while the plasticity gate is shut), `eta_max` the ungated one.
    `feedback=False` runs the forward pathway and the output alone (nothing learns): the output rates
    are the same, since modulators and hidden δs reach only the weights."""
    xp = ops.xp
    model = model or compile_model(spec, xp.__name__, isinstance(ops, CpuOps))
    fb = fb if fb is not None else feedback_matrices(model, state, xp)
    L = spec.n_layers
    ns = namespaces(spec, state, x, ws, eta, eta if eta_max is None else eta_max)
    for l in range(L):
        if model.update[l]:
            model.update[l](ns[l])
        model.spike[l](ns[l])
        ops.gemm(
            ws.s[l],
            state[f"w{l + 1}"],
            state[f"u{l + 1}"],
            alpha=model.alpha[l + 1],
            beta=model.beta[l + 1],
        )
    model.update[L](ns[L])
    model.output_error(ns[L])
    if not feedback:
        return
    for l in reversed(range(1, L)):
        if not model.feedback_fixed:
            fb[l] = [p.syn(state[f"B{l}"], xp) for p in model.feedback[l]]
        _feedback(model.feedback[l], fb[l], ns[spec.feedback_source(l)], ns[l], ws.mod[l], ops)
        invalidate(ns[l], ("mod",))
        model.hidden_delta(ns[l])
    learns, tiny = eta or not model.plasticity_needs_eta, smallest_normal(np.dtype(spec.dtype))
    for l in range(1, L + 1):
        pre, post = _traces(model.traces[l], state, ns[l - 1], ns[l], xp, tiny)
        if learns:
            _plasticity(model.plasticity[l], state[f"w{l}"], pre, post, ops)
            if model.dale[l]:
                model.dale[l](state[f"w{l}"], pre, post)
    if eta or not model.bias_needs_eta:
        for l in range(1, L + 1):
            model.bias_plasticity["output" if l == L else "hidden"](ns[l])


def _feedback(products, matrices, pre: dict, post: dict, mod, ops) -> None:
    """mod = Σ_terms c · post ⊙ (pre-side factor @ f(B))."""
    xp, (batch, n) = ops.xp, mod.shape
    scalars = _scalars(pre, post)
    first = True
    for p, F in zip(products, matrices):
        c = p.coeff(scalars)
        Q = p.pre(pre, batch, F.shape[0], mod.dtype, xp)
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


def _traces(updates, state: dict, pre: dict, post: dict, xp, tiny: float) -> tuple[dict, dict]:
    """Advance the per-unit parts of a rule's eligibility traces by one step, in place; the two
    sides' variables with those parts under the trace's name."""
    if not updates:
        return pre, post
    scalars, sides = _scalars(pre, post), {"pre": dict(pre), "post": dict(post)}
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


def _plasticity(products, W, pre: dict, post: dict, ops) -> None:
    """W += Σ_terms c · f(W) ⊙ Σ_streams pre-side factor ⊗ post-side factor, every f(W) of the old W."""
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
    Everything is stored column-major, weights and per-stream arrays alike: OpenBLAS multiplies a batch
    of 50 rows by a column-major 1500×1500 matrix, and adds a rank-50 update to one, faster (row-major
    weights: ~0.8 of the step rate; row-major streams: ~0.98).
    Per-stream arrays get this order whatever their source, so that a resumed run takes the same BLAS
    paths, bit for bit, as an uninterrupted one."""
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
            [None] + [xp.copy(m) for m in ws.mod[1:-1]],
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
            _draw_noise(spec, state, ws, ops, rng, uniforms, k, redraw=learn or record)
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
        _draw_noise(spec, state, ws, ops, rng, None, j, redraw=feedback)
        step(spec, state, x, ws, eta, ops, eta_max, model, fb, feedback)
        ys[j] = ws.y


def _draw_noise(spec, state, ws, ops, rng, uniforms, k: int, redraw: bool) -> None:
    """This step's uniforms (given, or from `rng`), and in a redraw mode a new B."""
    for l in range(spec.n_layers):
        if uniforms is None:
            ops.uniforms(rng, ws.r[l])
        else:
            ws.r[l][...] = uniforms[l][:, k]
    if spec.mode.redraw and redraw:
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
