"""The batched engine: the Brian2 model's discrete-time equations for a batch of image streams.

Each of `batch` independent streams has its own PSPs and traces (arrays batch × n); the weights are
shared and the weight changes of all streams add up, so a batch of 1 is exactly the single-stream
model of `brian.py`. One step computes what `brian.BrianNetwork._schedule` does, in this order:

  1. bottom-up, l = 0 … L−1: (l ≥ 1) u_l += (1−decay)·bias_l, after which u_l is final for the step;
     s_l = [r < σ(u_l)] (input: [r < pixel]); p_l ← decay·p_l + (1−decay)·s_l;
     u_{l+1} ← decay·u_{l+1} + (1−decay)·s_l w_{l+1}  (one GEMM: the decay is BLAS's β)
  2. u_L += (1−decay)·bias_L; δ_L = y* − σ(u_L); top-down, l = L−1 … 1: mod_l = δ_src B_l;
     δ_l = σ'(u_l)·mod_l
  3. w_l += η_l·p_{l−1}ᵀ δ_l;  bias_l += η_l·Σ δ_l   (bp mode: B_l is a view of w_{l+1}ᵀ, so it follows)

The sums in u are those of the Brian2 model taken in another order (equal to rounding).

`step` works on the state record in place (no allocation per step). The arithmetic goes through a
backend: `ArrayOps` uses only NumPy's array interface, so it runs on NumPy or CuPy unchanged;
`CpuOps` does the same on the CPU with in-place float32 BLAS calls and fused Numba kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from spikefa.arrays import array_module, gemm
from spikefa.spiking.spec import SpikingSpec, is_stream_var


# ------------------------------------------------------------------------------------ backends
class ArrayOps:
    """Every operation through NumPy's array interface (`xp` = numpy or cupy)."""

    def __init__(self, xp=np):
        self.xp = xp

    def sigmoid(self, u, out):
        """out = σ(u) = (1 + tanh(u/2))/2: one SIMD tanh instead of exp, add and divide, no overflow."""
        self.xp.multiply(u, 0.5, out=out)
        self.xp.tanh(out, out=out)
        out *= 0.5
        out += 0.5

    def spike_input(self, x, r, p, s, d):
        """s = [r < pixel]; p ← decay·p + (1 − decay)·s."""
        s[...] = r < x
        p *= d
        p += (1.0 - d) * s

    def spike_hidden(self, u, bias, r, p, s, sig, d):
        """u += (1 − decay)·bias (u is then final for this step); sig = σ(u), kept for δ;
        s = [r < sig]; p ← decay·p + (1 − decay)·s."""
        u += (1.0 - d) * bias
        self.sigmoid(u, sig)
        self.spike_input(sig, r, p, s, d)

    def output_error(self, u, bias, target, y, delta, d):
        u += (1.0 - d) * bias
        self.sigmoid(u, y)
        self.xp.subtract(target, y, out=delta)

    def hidden_delta(self, sig, mod, delta):
        delta[...] = sig * (1 - sig) * mod

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
    """float32/float64 BLAS in place (no temporaries) and fused element-wise Numba kernels."""

    def spike_input(self, x, r, p, s, d):
        _spike_input(*_memory_order(x, r, p, s), d)

    def hidden_delta(self, sig, mod, delta):
        _hidden_delta(*_memory_order(sig, mod, delta))

    def gemm(self, a, b, out, alpha=1.0, beta=0.0, trans_a=False):
        gemm(a, b, out, alpha, beta, trans_a)

    def uniforms(self, rng, out):
        (out_c,) = _memory_order(out)
        rng.random(out=out_c, dtype=out.dtype) if out_c.flags.c_contiguous else super().uniforms(rng, out)


def _memory_order(*arrays):
    """The arrays, transposed when the first is column-major, so that an element-wise kernel's inner
    loop runs along memory (element-wise work does not care which axis is which)."""
    column_major = arrays[0].flags.f_contiguous and not arrays[0].flags.c_contiguous
    return tuple(a.T for a in arrays) if column_major else arrays


# Element-wise kernels, each touching every element once (no fastmath: contracting to FMA would
# make the results depend on array alignment, and resumed runs must repeat uninterrupted ones).
# Single-threaded on purpose: Numba threads next to OpenBLAS threads (which spin while idle) ran four
# times slower here.
@njit(cache=True)
def _spike_input(x, r, p, s, d):
    g = 1.0 - d
    for b in range(x.shape[0]):
        for i in range(x.shape[1]):
            fired = r[b, i] < x[b, i]
            s[b, i] = fired
            p[b, i] = p[b, i] * d + (g if fired else 0.0)


@njit(cache=True)
def _hidden_delta(sig, mod, delta):
    for b in range(sig.shape[0]):
        for i in range(sig.shape[1]):
            delta[b, i] = sig[b, i] * (1.0 - sig[b, i]) * mod[b, i]


# ------------------------------------------------------------------------------------ the step
STREAM_ORDER = "F"  # per-stream arrays (batch × n) are column-major: see `batch_state`


@dataclass
class Workspace:
    """Per-step buffers of a batch: spikes s_l, uniforms r_l, σ(u_l), modulators, δs and output rates."""
    s: list
    r: list
    sig: list
    mod: list
    delta: list
    y: object
    target: object

    @classmethod
    def allocate(cls, spec: SpikingSpec, batch: int, xp=np):
        dt, sizes, L = np.dtype(spec.dtype), spec.sizes, spec.n_layers
        def zeros(n):
            return xp.zeros((batch, n), dt, order=STREAM_ORDER)

        return cls(s=[zeros(n) for n in sizes[:-1]], r=[zeros(n) for n in sizes[:-1]],
                   sig=[None] + [zeros(sizes[l]) for l in range(1, L)], mod=[None] + [zeros(sizes[l]) for l in range(1, L)],
                   delta=[None] + [zeros(sizes[l]) for l in range(1, L + 1)], y=zeros(sizes[-1]), target=zeros(sizes[-1]))


def step(spec: SpikingSpec, state: dict, x, ws: Workspace, eta: float, ops: ArrayOps) -> None:
    """Advance every stream by one step, in place. x: batch × n_in pixels; ws.r holds this step's
    uniforms and ws.target the one-hot labels; the step leaves its spikes, δs and rates in `ws`."""
    L, d = spec.n_layers, spec.decay
    g = 1.0 - d
    for l in range(L):
        if l == 0:
            ops.spike_input(x, ws.r[0], state["p0"], ws.s[0], d)
        else:
            ops.spike_hidden(state[f"u{l}"], state[f"bias{l}"], ws.r[l], state[f"p{l}"], ws.s[l], ws.sig[l], d)
        ops.gemm(ws.s[l], state[f"w{l + 1}"], state[f"u{l + 1}"], alpha=g, beta=d)  # the decay rides on β
    ops.output_error(state[f"u{L}"], state[f"bias{L}"], ws.target, ws.y, ws.delta[L], d)
    for l in reversed(range(1, L)):
        ops.gemm(ws.delta[spec.feedback_source(l)], state[f"B{l}"], ws.mod[l])
        ops.hidden_delta(ws.sig[l], ws.mod[l], ws.delta[l])
    if eta:
        for l in range(1, L + 1):
            eta_l = spec.layer_eta(eta, l)
            if spec.weight_decay:
                state[f"w{l}"] *= 1.0 - eta_l * spec.weight_decay * x.shape[0]
            ops.gemm(state[f"p{l - 1}"], ws.delta[l], state[f"w{l}"], alpha=eta_l, beta=1.0, trans_a=True)
            state[f"bias{l}"] += eta_l * ws.delta[l].sum(axis=0)


def batch_state(spec: SpikingSpec, state: dict, batch: int, xp=np) -> dict:
    """A copy of `state` for `batch` streams: PSPs and traces get one row per stream (single-stream
    values are repeated); in bp mode each B_l becomes a view of w_{l+1}ᵀ, so it follows w exactly.
    Everything is stored column-major, weights and per-stream arrays alike: OpenBLAS multiplies a batch
    of 50 rows by a column-major 1500×1500 matrix, and adds a rank-50 update to one, faster (row-major
    weights: ~0.8 of the step rate; row-major streams: ~0.98; scripts/weight_layout_bench.py).
    Per-stream arrays get this order whatever their source, so that a resumed run takes the same BLAS
    paths, bit for bit, as an uninterrupted one."""
    out = {k: xp.array(np.broadcast_to(v, (batch, v.shape[-1])), copy=True, order=STREAM_ORDER) if is_stream_var(k)
           else xp.array(v, copy=True, order="F" if v.ndim == 2 else "K") for k, v in state.items()}
    if spec.feedback == "bp":
        for l in range(1, spec.n_layers):
            out[f"B{l}"] = out[f"w{l + 1}"].T
    return out


@dataclass
class StepRecord:
    y: np.ndarray
    mod: list
    delta: list
    spikes: list


def run(spec: SpikingSpec, state: dict, images, labels, learn: bool = True, uniforms: list | None = None,
        rng=None, record: bool = False, ops: ArrayOps | None = None, ws: Workspace | None = None,
        eta: float | None = None, plasticity_delay: int = 0):
    """Show images[k] (batch × n_img × n_in) to stream k in order. Returns (y, records): y has shape
    steps × batch × n_out; records holds a StepRecord per step when `record` is set. Uniforms come
    from `uniforms[l]` (batch × steps × n_l) when given, else from `rng`. `eta` overrides spec.eta.
    `plasticity_delay` = d > 0 (an ablation; the model learns at every step): no weight change in the
    first d steps of each image, while the PSPs still carry the previous one."""
    ops = ops or default_ops(images)
    xp = ops.xp
    batch, n_img, _ = images.shape
    ws = ws if ws is not None and ws.y.shape[0] == batch else Workspace.allocate(spec, batch, xp)
    T, eta = spec.steps_per_image, (spec.eta if eta is None else eta) if learn else 0.0
    eye = xp.eye(spec.sizes[-1], dtype=ws.y.dtype)
    ys = xp.zeros((n_img * T, batch, spec.sizes[-1]), ws.y.dtype)
    records = []
    for k in range(n_img * T):
        img = k // T
        if k % T == 0:
            ws.target[...] = eye[labels[:, img]]
            x = xp.asarray(images[:, img], order=STREAM_ORDER)
        for l in range(spec.n_layers):
            if uniforms is None:
                ops.uniforms(rng, ws.r[l])
            else:
                ws.r[l][...] = uniforms[l][:, k]
        step(spec, state, x, ws, eta if k % T >= plasticity_delay else 0.0, ops)
        ys[k] = ws.y
        if record:
            records.append(StepRecord(ws.y.copy(), [m if m is None else m.copy() for m in ws.mod],
                                      [dl if dl is None else dl.copy() for dl in ws.delta], [s.copy() for s in ws.s]))
    return ys, records


def default_ops(array) -> ArrayOps:
    return CpuOps() if isinstance(array, np.ndarray) else ArrayOps(array_module(array))

