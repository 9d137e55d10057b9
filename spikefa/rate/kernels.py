"""The Numba kernels of the rate networks (`spikefa.rate.network`): one online update, `step`, and
`train`, its loop over examples. The rule and the activations are integer codes (`ALGORITHMS`,
`ACTIVATIONS`); lists of arrays are indexed by layer 0 … L.

Speed: the forward pass and the update walk the rows of W (one presynaptic unit each, contiguous)
and skip units whose activity is exactly zero, which most MNIST pixels are.
"""

from __future__ import annotations

import math

from numba import njit

from spikefa.metrics import vector_angle

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
    loss = _output_delta(kinds[L], h[L], ystar, mse_output, delta[L])
    if algo == NODE_PERTURBATION:
        _perturbed_deltas(kinds, W, scales, b, x, ystar, xi, sigma2, loss, m_bp, d_bp, delta)
    else:
        _modulated_deltas(algo, kinds, W, scales, B, feedback_scale, h, m, delta)
    if angles.shape[0]:
        _angles_to_backprop(kinds, W, scales, h, delta, m_bp, d_bp, angles)
    _update(algo, W, scales, b, masks, etas, bias_etas, decay, h, delta)
    return loss


@njit(cache=True)
def _output_delta(kind, h, ystar, mse_output, delta):
    """δ_L = e (or e ∘ f'(h_L)) into `delta`; returns ½‖e‖²."""
    loss = 0.0
    for k in range(h.shape[0]):
        e = ystar[k] - h[k]
        loss += 0.5 * e * e
        delta[k] = e
    if mse_output:
        _times_slope(kind, h, delta, delta)
    return loss


@njit(cache=True)
def _modulated_deltas(algo, kinds, W, scales, B, feedback_scale, h, m, delta):
    """Every hidden δ_l = m_l ∘ f'_l(h_l), top down, with the modulator m_l of the rule `algo`."""
    L = len(W) - 1
    for l in range(L - 1, 0, -1):
        if algo == BP or algo == SHALLOW:
            _project(W[l + 1], scales[l + 1], delta[l + 1], m[l], False)
        elif algo == SIGN_SYMMETRIC:
            _project(W[l + 1], 1.0, delta[l + 1], m[l], True)
            m[l] *= feedback_scale
        else:
            _project(B[l], 1.0, delta[L] if algo == DFA else delta[l + 1], m[l], False)
        _times_slope(kinds[l], h[l], m[l], delta[l])


@njit(cache=True)
def _angles_to_backprop(kinds, W, scales, h, delta, m_bp, d_bp, angles):
    """angles[l − 1]: the folded angle between δ_l and backprop's δ_l from the same δ_L (work
    vectors m_bp, d_bp)."""
    L = len(W) - 1
    d_bp[L][:] = delta[L]
    for l in range(L - 1, 0, -1):
        _project(W[l + 1], scales[l + 1], d_bp[l + 1], m_bp[l], False)
        _times_slope(kinds[l], h[l], m_bp[l], d_bp[l])
        angles[l - 1] = vector_angle(delta[l], d_bp[l], True)


@njit(cache=True)
def _update(algo, W, scales, b, masks, etas, bias_etas, decay, h, delta):
    """ΔW_l = η_l (h_{l−1} δ_lᵀ − λ W_l) through the rows of active presynaptic units (the decay
    goes to the scale), Δb_l = η_l δ_l; shallow learning updates the output layer only."""
    L = len(W) - 1
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
