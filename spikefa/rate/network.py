"""Rate networks of any depth learning online, as Numba kernels (Figs. 2, 3 and 5).

Weights are stored pre × post, as synapses are: W_l[i, j] connects unit i of layer l−1 to unit j
of layer l, so the paper's W_l is our W_lᵀ and its backprop pathway W_lᵀ is our W_l itself. Layer
l = 1 … L computes a_l[j] = Σ_i h_{l−1}[i] W_l[i, j] + b_l[j], h_l = f_l(a_l) (h_0 = x); f is linear,
sigmoid or tanh, and f' is written through the unit's output h (sigmoid h(1−h), tanh 1−h², linear 1).
The error is e = y* − h_L and every update is added:

  output δ_L     e                        (`output_delta="e"`, the paper's MNIST choice)
                 e ∘ f'_L(h_L)            (`output_delta="mse"`, the exact gradient of ½‖e‖²)
  modulator m_l  W_{l+1} δ_{l+1}          bp (weight transport)
                 B_l δ_{l+1}              fa, sparse_fa (B_l fixed, n_l × n_{l+1}, the shape of W_{l+1})
                 B_l δ_L                  dfa (B_l fixed, n_l × n_L: the error straight down)
                 sign(W_{l+1}) δ_{l+1}·β  sign_symmetric (β = `feedback_scale`)
  δ_l            m_l ∘ f'_l(h_l)
                 −(L(ξ) − L)·ξ_l/σ²       node_perturbation: a second forward pass adds ξ_l ~ N(0, σ²)
                                          to every hidden net input a_l; L(ξ) is its loss ½‖e‖²
  ΔW_l           η_l (h_{l−1} δ_lᵀ − λ W_l),  Δb_l = η_l δ_l   (shallow: only the output layer;
                 `bias=False`: no biases)

sparse_fa removes a fraction of every B_l and of the forward weights it stands in for (W_2 … W_L;
W_1 stays dense), and masks their updates so that removed synapses stay at zero.
All δs are computed from the weights before the example's update. With `angles` given, a step also
records, per hidden layer, the folded angle between its δ_l and the δ_l backprop would compute
through the same weights (δ_l^BP = (W_{l+1} δ_{l+1}^BP) ∘ f'_l, the chain started from the same δ_L):
the vectors that actually drive ΔW_l.

Speed: the forward pass and the update walk the rows of W (one presynaptic unit each, contiguous)
and skip units whose activity is exactly zero, which most MNIST pixels are.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numba.typed import List

from spikefa.arrays import array_module, to_numpy
from spikefa.metrics import angle_deg, vector_angle

ALGORITHMS = ("bp", "fa", "sparse_fa", "dfa", "sign_symmetric", "shallow", "node_perturbation")
BP, FA, SPARSE_FA, DFA, SIGN_SYMMETRIC, SHALLOW, NODE_PERTURBATION = range(7)
ACTIVATIONS = ("linear", "sigmoid", "tanh")
LINEAR, SIGMOID, TANH = range(3)


@njit(cache=True)
def _activate(kind, a, h):
    for i in range(a.shape[0]):
        if kind == SIGMOID:
            h[i] = 1.0 / (1.0 + math.exp(-a[i]))
        elif kind == TANH:
            h[i] = math.tanh(a[i])
        else:
            h[i] = a[i]


@njit(cache=True)
def _times_slope(kind, h, m, out):
    """out = m ∘ f'(h), with f' written through the unit's output h."""
    for i in range(h.shape[0]):
        if kind == SIGMOID:
            out[i] = m[i] * h[i] * (1.0 - h[i])
        elif kind == TANH:
            out[i] = m[i] * (1.0 - h[i] * h[i])
        else:
            out[i] = m[i]


@njit(cache=True)
def _forward(h_pre, V, scale, bias, out):
    """out = scale·(h_pre V) + bias, one row of V per active presynaptic unit."""
    out[:] = 0.0
    for i in range(V.shape[0]):
        a = h_pre[i]
        if a != 0.0:
            for j in range(V.shape[1]):
                out[j] += a * V[i, j]
    for j in range(out.shape[0]):
        out[j] = scale * out[j] + bias[j]


@njit(cache=True)
def _project(M, scale, d, out, sign_only):
    """out = scale·(M d) (or sign(M) d): the modulator reaching each row's unit."""
    for i in range(M.shape[0]):
        s = 0.0
        for j in range(M.shape[1]):
            a = M[i, j]
            if sign_only:
                a = 1.0 if a > 0 else (-1.0 if a < 0 else 0.0)
            s += a * d[j]
        out[i] = s if sign_only else scale * s


@njit(cache=True)
def step(
    algo,
    kinds,
    W,
    scales,
    b,
    B,
    masks,
    x,
    ystar,
    etas,
    bias_etas,
    decay,
    mse_output,
    feedback_scale,
    xi,
    sigma2,
    h,
    m,
    delta,
    m_bp,
    d_bp,
    angles,
):
    """One online update in place. Lists are indexed by layer 0 … L (entry 0 unused except h[0]);
    the weights of layer l are scales[l]·W[l]; h, m, delta, m_bp, d_bp are work vectors; `xi` holds
    node perturbation's ξ of every hidden unit, bottom layer first; `angles` (length L−1, or empty)
    receives the δ angles to backprop. Returns ½‖e‖² before the update.

    Weight decay W ← (1 − ηλ)W shrinks the scale instead of every weight, so an update still
    touches only the rows of active presynaptic units."""
    L = len(W) - 1
    h[0][:] = x
    for l in range(1, L + 1):
        _forward(h[l - 1], W[l], scales[l], b[l], m[l])
        _activate(kinds[l], m[l], h[l])
    loss = 0.0
    for k in range(h[L].shape[0]):
        e = ystar[k] - h[L][k]
        loss += 0.5 * e * e
        delta[L][k] = e
    if mse_output:
        _times_slope(kinds[L], h[L], delta[L], delta[L])
    if algo == NODE_PERTURBATION:
        _perturbed_deltas(kinds, W, scales, b, x, ystar, xi, sigma2, loss, m_bp, d_bp, delta)
    else:
        for l in range(L - 1, 0, -1):
            if algo == BP or algo == SHALLOW:
                _project(W[l + 1], scales[l + 1], delta[l + 1], m[l], False)
            elif algo == SIGN_SYMMETRIC:
                _project(W[l + 1], 1.0, delta[l + 1], m[l], True)
                m[l] *= feedback_scale
            else:
                _project(B[l], 1.0, delta[L] if algo == DFA else delta[l + 1], m[l], False)
            _times_slope(kinds[l], h[l], m[l], delta[l])
    if angles.shape[0]:
        d_bp[L][:] = delta[L]
        for l in range(L - 1, 0, -1):
            _project(W[l + 1], scales[l + 1], d_bp[l + 1], m_bp[l], False)
            _times_slope(kinds[l], h[l], m_bp[l], d_bp[l])
            angles[l - 1] = vector_angle(delta[l], d_bp[l], True)
    for l in range(L if algo == SHALLOW else 1, L + 1):
        eta, Wl, Ml, dl, hp = etas[l], W[l], masks[l], delta[l], h[l - 1]
        scales[l] *= 1.0 - eta * decay
        for i in range(Wl.shape[0]):
            g = eta * hp[i] / scales[l]
            if g != 0.0:
                if algo == SPARSE_FA:
                    for j in range(Wl.shape[1]):
                        Wl[i, j] += g * dl[j] * Ml[i, j]
                else:
                    for j in range(Wl.shape[1]):
                        Wl[i, j] += g * dl[j]
        for j in range(dl.shape[0]):
            b[l][j] += bias_etas[l] * dl[j]
    return loss


@njit(cache=True)
def _perturbed_deltas(kinds, W, scales, b, x, ystar, xi, sigma2, loss, a, h, delta):
    """Node perturbation: rerun the forward pass with ξ added to the hidden net inputs (work vectors
    a, h) and set every hidden δ_l = −(L(ξ) − L)·ξ_l/σ², an unbiased estimate of −∂L/∂a_l."""
    L = len(W) - 1
    h[0][:] = x
    offset = 0
    for l in range(1, L + 1):
        _forward(h[l - 1], W[l], scales[l], b[l], a[l])
        if l < L:
            for i in range(a[l].shape[0]):
                a[l][i] += xi[offset + i]
            offset += a[l].shape[0]
        _activate(kinds[l], a[l], h[l])
    perturbed = 0.0
    for k in range(h[L].shape[0]):
        perturbed += 0.5 * (ystar[k] - h[L][k]) ** 2
    g = -(perturbed - loss) / sigma2
    offset = 0
    for l in range(1, L):
        for i in range(delta[l].shape[0]):
            delta[l][i] = g * xi[offset + i]
        offset += delta[l].shape[0]


@njit(cache=True)
def train(
    algo,
    kinds,
    W,
    scales,
    b,
    B,
    masks,
    X,
    Y,
    etas,
    bias_etas,
    decay,
    mse_output,
    feedback_scale,
    XI,
    sigma2,
    h,
    m,
    delta,
    m_bp,
    d_bp,
    angles,
    losses,
):
    """`step` over the rows of X, Y (and of XI, node perturbation's ξ) in order; example i's angles
    go to row i of `angles` (shape n × (L−1), or n × 0 to skip them) and its loss to losses[i]."""
    for i in range(X.shape[0]):
        losses[i] = step(
            algo,
            kinds,
            W,
            scales,
            b,
            B,
            masks,
            X[i],
            Y[i],
            etas,
            bias_etas,
            decay,
            mse_output,
            feedback_scale,
            XI[i],
            sigma2,
            h,
            m,
            delta,
            m_bp,
            d_bp,
            angles[i],
        )


def typed(arrays) -> List:
    """A Numba typed list (layer 0 first)."""
    out = List()
    for a in arrays:
        out.append(a)
    return out


class Network:
    """A rate network and its learning rule: weights, fixed feedback, masks and work vectors.

    sizes         n_0 … n_L;  hidden / output: activation names of the hidden and output layers
    init_scale    W_l ~ U[−ω, ω] (one ω, or one per layer)
    feedback_scale  B_l ~ U[−β, β] (one β, or one per hidden layer, bottom first; sign_symmetric: one β)
    sparsity      sparse_fa: fraction of W_2 … W_L and of B set to zero for good (separate masks)
    etas          learning rate of each weight layer 1 … L (one number: the same for all)
    sigma         node_perturbation: SD of ξ, drawn from `perturbation_rng` for every example
    bias          False: no biases (they stay at zero), as in the linear network of Fig. 2
    Random draws come from the generators passed in (see `spikefa.seeds`), so BP and FA runs of one
    seed start from the same W.
    """

    def __init__(
        self,
        sizes,
        algorithm,
        init_rng,
        feedback_rng,
        mask_rng=None,
        hidden="sigmoid",
        output="sigmoid",
        init_scale=0.05,
        feedback_scale=0.5,
        sparsity=0.5,
        etas=1e-3,
        weight_decay=0.0,
        output_delta="e",
        dtype="float64",
        sigma=1e-3,
        perturbation_rng=None,
        bias=True,
    ):
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
        if hidden not in ACTIVATIONS or output not in ACTIVATIONS:
            raise ValueError(
                f"activations must be among {', '.join(ACTIVATIONS)}, got {hidden!r}, {output!r}"
            )
        if output_delta not in ("e", "mse"):
            raise ValueError(f"output_delta must be 'e' or 'mse', got {output_delta!r}")
        if algorithm == "node_perturbation" and perturbation_rng is None:
            raise ValueError("node_perturbation needs perturbation_rng")
        self.sizes, self.algorithm, self.dtype = tuple(sizes), algorithm, np.dtype(dtype)
        self.sigma, self.perturbation_rng = float(sigma), perturbation_rng
        L = self.L = len(sizes) - 1
        omegas = np.broadcast_to(np.asarray(init_scale, float), (L,))
        self.etas = np.concatenate([[0.0], np.broadcast_to(np.asarray(etas, float), (L,))])
        self.bias_etas = (
            self.etas if bias else np.zeros_like(self.etas)
        )  # bias=False: biases stay at zero
        self.kinds = np.array(
            [LINEAR] + [ACTIVATIONS.index(hidden)] * (L - 1) + [ACTIVATIONS.index(output)]
        )
        betas = np.broadcast_to(np.asarray(feedback_scale, float), (max(L - 1, 1),))
        if algorithm == "sign_symmetric" and np.ptp(betas) > 0:
            raise ValueError("sign_symmetric takes one feedback_scale for every layer")
        self.decay, self.mse_output, self.feedback_scale = (
            float(weight_decay),
            output_delta == "mse",
            float(betas[0]),
        )
        dt, none = self.dtype, np.zeros((0, 0), self.dtype)
        self.W = [none] + [
            init_rng.uniform(-w, w, (sizes[l - 1], sizes[l])).astype(dt)
            for l, w in zip(range(1, L + 1), omegas)
        ]
        self.b = [np.zeros(0, dt)] + [np.zeros(n, dt) for n in sizes[1:]]
        self.B = [none] * L
        self.masks = [none] * (L + 1)
        if algorithm in ("fa", "sparse_fa", "dfa"):
            src = (lambda l: sizes[L]) if algorithm == "dfa" else (lambda l: sizes[l + 1])
            self.B = [none] + [
                feedback_rng.uniform(-betas[l - 1], betas[l - 1], (sizes[l], src(l))).astype(dt)
                for l in range(1, L)
            ]
        if algorithm == "sparse_fa":

            def keep(shape):
                return (mask_rng.random(shape) >= sparsity).astype(dt)

            self.masks = [none, np.ones_like(self.W[1])] + [keep(w.shape) for w in self.W[2:]]
            self.W = [w * k for w, k in zip(self.W, self.masks)]
            self.B = [none] + [Bl * keep(Bl.shape) for Bl in self.B[1:]]
        self._work = {
            k: typed([np.zeros(n, dt) for n in sizes]) for k in ("h", "m", "delta", "m_bp", "d_bp")
        }

    def train(self, X, Y, angles: bool = False):
        """One online pass over the rows of X, Y in order. Returns (losses, angles or None), the
        angles with one column per hidden layer (bottom first)."""
        if self.xp is not np:
            raise ValueError("online training runs on NumPy arrays: call to(numpy) first")
        X, Y = np.ascontiguousarray(X, self.dtype), np.ascontiguousarray(Y, self.dtype)
        out = np.full((len(X), self.L - 1 if angles else 0), np.nan)
        losses = np.zeros(len(X))
        w, scales = self._work, np.ones(self.L + 1)
        hidden = sum(self.sizes[1:-1]) if self.algorithm == "node_perturbation" else 0
        XI = (
            self.perturbation_rng.standard_normal((len(X), hidden)) * self.sigma
            if hidden
            else np.zeros((len(X), 0))
        ).astype(self.dtype)
        train(
            ALGORITHMS.index(self.algorithm),
            self.kinds,
            typed(self.W),
            scales,
            typed(self.b),
            typed(self.B),
            typed(self.masks),
            X,
            Y,
            self.etas,
            self.bias_etas,
            self.decay,
            self.mse_output,
            self.feedback_scale,
            XI,
            self.sigma**2,
            w["h"],
            w["m"],
            w["delta"],
            w["m_bp"],
            w["d_bp"],
            out,
            losses,
        )
        for W, c in zip(self.W[1:], scales[1:]):  # fold the decay back into the weights
            W *= c
        return losses, (out if angles else None)

    def to(self, xp) -> Network:
        """Move weights, biases, feedback and masks to the array module `xp` (numpy or cupy); the
        minibatch path and `forward` then run there. Online training needs them on NumPy."""
        for name in ("W", "b", "B", "masks"):
            setattr(
                self,
                name,
                [xp.asarray(a) if xp is not np else to_numpy(a) for a in getattr(self, name)],
            )
        return self

    @property
    def xp(self):
        return array_module(self.W[1])

    def train_batch(self, X, Y, batch: int = 100) -> np.ndarray:
        """Minibatch learning with the array module the weights live on (NumPy BLAS, or CuPy after
        `to(cupy)`): the same rule with every δ computed from the weights before the batch's update
        and the weight change averaged over the batch. Returns each batch's mean loss. A batch of 1
        is the online rule."""
        if self.algorithm == "node_perturbation":
            raise ValueError("node_perturbation learns online only (Network.train)")
        xp = self.xp
        X, Y = xp.asarray(X, self.dtype), xp.asarray(Y, self.dtype)
        algo, L, losses = self.algorithm, self.L, []
        for lo in range(0, len(X), batch):
            hs = self.forward(X[lo : lo + batch])
            E = Y[lo : lo + batch] - hs[L]
            losses.append(0.5 * xp.mean(xp.sum(E * E, axis=1)))
            deltas = {L: E * self._slope(L, hs[L]) if self.mse_output else E}
            for l in range(L - 1, 0, -1):
                if algo in ("bp", "shallow"):
                    m = deltas[l + 1] @ self.W[l + 1].T
                elif algo == "sign_symmetric":
                    m = deltas[l + 1] @ xp.sign(self.W[l + 1]).T * self.feedback_scale
                else:
                    m = (deltas[L] if algo == "dfa" else deltas[l + 1]) @ self.B[l].T
                deltas[l] = m * self._slope(l, hs[l])
            n = len(E)
            for l in range(L if algo == "shallow" else 1, L + 1):
                eta = self.etas[l]
                if self.decay:
                    self.W[l] *= 1.0 - eta * self.decay  # masked weights are zero and stay zero
                step = hs[l - 1].T @ (
                    deltas[l] * self.dtype.type(eta / n)
                )  # scale the small factor
                self.W[l] += step * self.masks[l] if algo == "sparse_fa" else step
                self.b[l] += self.bias_etas[l] * deltas[l].mean(axis=0)
        return to_numpy(xp.stack(losses)).astype(float) if losses else np.zeros(0)

    def _slope(self, l: int, h):
        k = self.kinds[l]
        return h * (1 - h) if k == SIGMOID else 1 - h * h if k == TANH else self.xp.ones_like(h)

    def forward(self, X) -> list:
        """Activities of every layer for a batch (h_0 = X), on the weights' array module."""
        xp = self.xp
        hs = [xp.asarray(X, self.dtype)]
        for l in range(1, self.L + 1):
            a = hs[-1] @ self.W[l]
            a += self.b[l]
            if self.kinds[l] == SIGMOID:  # σ(a) = (1 + tanh(a/2))/2, in place
                a *= 0.5
                xp.tanh(a, out=a)
                a *= 0.5
                a += 0.5
            elif self.kinds[l] == TANH:
                xp.tanh(a, out=a)
            hs.append(a)
        return hs

    def predict(self, X) -> np.ndarray:
        return to_numpy(self.forward(X)[-1])

    def weight_feedback_angles(self) -> list:
        """Angle (degrees, signed) between the forward weights W_{l+1} and the feedback B_l that
        stands in for them, for each hidden layer l (fa and sparse_fa; the paper's W vs Bᵀ)."""
        if self.algorithm not in ("fa", "sparse_fa"):
            return []
        return [
            angle_deg(to_numpy(self.W[l + 1]), to_numpy(self.B[l]), folded=False)
            for l in range(1, self.L)
        ]
