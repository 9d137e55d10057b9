"""Rate networks of any depth learning online, as Numba kernels (Figs. 2, 3 and 5).

Weights are stored pre × post, as synapses are: W_l[i, j] connects unit i of layer l−1 to unit j
of layer l, so the paper's W_l is our W_lᵀ and its backprop pathway W_lᵀ is our W_l itself. Layer
l = 1 … L computes a_l[j] = Σ_i h_{l−1}[i] W_l[i, j] + b_l[j], h_l = f_l(a_l) (h_0 = x); f is
linear, sigmoid or tanh, and f' is written through the unit's output h (sigmoid h(1−h), tanh 1−h²,
linear 1). The error is e = y* − h_L and every update is added:

  output δ_L     e                        (`output_delta="e"`, the paper's MNIST choice)
                 e ∘ f'_L(h_L)            (`output_delta="mse"`, the exact gradient of ½‖e‖²)
  modulator m_l  W_{l+1} δ_{l+1}          bp (weight transport)
                 B_l δ_{l+1}              fa, sparse_fa (B_l fixed, n_l × n_{l+1}, the shape of
                 W_{l+1}) B_l δ_L                  dfa (B_l fixed, n_l × n_L: the error straight
                 down) sign(W_{l+1}) δ_{l+1}·β  sign_symmetric (β = `feedback_scale`)
  δ_l            m_l ∘ f'_l(h_l)
                 −(L(ξ) − L)·ξ_l/σ²       node_perturbation: a second forward pass adds ξ_l ~ N(0,
                 σ²)
                                          to every hidden net input a_l; L(ξ) is its loss ½‖e‖²
  ΔW_l           η_l (h_{l−1} δ_lᵀ − λ W_l),  Δb_l = η_l δ_l   (shallow: only the output layer;
                 `bias=False`: no biases)

sparse_fa removes a fraction of every B_l and of the forward weights it stands in for (W_2 … W_L;
W_1 stays dense), and masks their updates so that removed synapses stay at zero.
All δs are computed from the weights before the example's update. With `angles` given, a step also
records, per hidden layer, the folded angle between its δ_l and the δ_l backprop would compute
through the same weights (δ_l^BP = (W_{l+1} δ_{l+1}^BP) ∘ f'_l, the chain started from the same
δ_L): the vectors that actually drive ΔW_l.
The kernels that do the work are in `spikefa.rate.kernels`.
"""

from __future__ import annotations

import numpy as np
from numba.typed import List

from spikefa.arrays import array_module, to_numpy
from spikefa.metrics import angle_deg
from spikefa.rate.kernels import ACTIVATIONS, ALGORITHMS, LINEAR, SIGMOID, TANH, train
from spikefa.seeds import stream

__all__ = ["ACTIVATIONS", "ALGORITHMS", "Network", "regression_network", "typed"]


def _check_choices(algorithm, hidden, output, output_delta, perturbation_rng) -> None:
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
    feedback_scale  B_l ~ U[−β, β] (one β, or one per hidden layer, bottom first; sign_symmetric:
    one β) sparsity      sparse_fa: fraction of W_2 … W_L and of B set to zero for good (separate
    masks) etas          learning rate of each weight layer 1 … L (one number: the same for all)
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
        _check_choices(algorithm, hidden, output, output_delta, perturbation_rng)
        self.sizes, self.algorithm, self.dtype = tuple(sizes), algorithm, np.dtype(dtype)
        self.sigma, self.perturbation_rng = float(sigma), perturbation_rng
        L = self.L = len(sizes) - 1
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
        self._draw(
            init_rng, np.broadcast_to(np.asarray(init_scale, float), (L,)), feedback_rng, betas
        )
        if algorithm == "sparse_fa":
            self._sparsify(mask_rng, sparsity)
        self._work = {
            k: typed([np.zeros(n, self.dtype) for n in sizes])
            for k in ("h", "m", "delta", "m_bp", "d_bp")
        }

    def _draw(self, init_rng, omegas, feedback_rng, betas) -> None:
        """W_l ~ U[−ω_l, ω_l], zero biases and, for the rules with fixed feedback, B_l ~ U[−β_l,
        β_l] (dfa: from the output layer)."""
        sizes, L, dt = self.sizes, self.L, self.dtype
        none = np.zeros((0, 0), dt)
        self.W = [none] + [
            init_rng.uniform(-w, w, (sizes[l - 1], sizes[l])).astype(dt)
            for l, w in zip(range(1, L + 1), omegas)
        ]
        self.b = [np.zeros(0, dt)] + [np.zeros(n, dt) for n in sizes[1:]]
        self.B = [none] * L
        self.masks = [none] * (L + 1)
        if self.algorithm in ("fa", "sparse_fa", "dfa"):
            top = self.algorithm == "dfa"
            self.B = [none] + [
                feedback_rng.uniform(
                    -betas[l - 1], betas[l - 1], (sizes[l], sizes[L] if top else sizes[l + 1])
                ).astype(dt)
                for l in range(1, L)
            ]

    def _sparsify(self, mask_rng, sparsity: float) -> None:
        """Remove a fraction `sparsity` of W_2 … W_L and of every B_l for good (separate masks)."""

        def keep(shape):
            return (mask_rng.random(shape) >= sparsity).astype(self.dtype)

        self.masks = [self.masks[0], np.ones_like(self.W[1])] + [keep(w.shape) for w in self.W[2:]]
        self.W = [w * k for w, k in zip(self.W, self.masks)]
        self.B = [self.B[0]] + [Bl * keep(Bl.shape) for Bl in self.B[1:]]

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


def regression_network(sizes, algorithm: str, cfg: dict, seed: int, etas) -> Network:
    """A tanh network with linear outputs learning the exact gradient of the squared error, drawn
    from the streams of `seed` at the config's `init_scale` and `feedback_scale`: the students of
    the regression experiments (Figs. 3c,d and 5)."""
    return Network(
        sizes,
        algorithm,
        stream(seed, "init"),
        stream(seed, "feedback"),
        hidden="tanh",
        output="linear",
        init_scale=cfg["init_scale"],
        feedback_scale=cfg["feedback_scale"],
        etas=etas,
        output_delta="mse",
    )
