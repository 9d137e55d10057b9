"""Online learning in the linear 30-20-10 network of Fig. 2, as Numba kernels.

Network h = W0 x, y = W h; error e = y* − y; loss ½‖e‖². Updates are added (e already carries the
minus sign) and are computed from the weights *before* the example's update:

  every algorithm   ΔW  = η e hᵀ                         (output layer)
  shallow           ΔW0 = 0
  backprop          ΔW0 = η0 (Wᵀ e) xᵀ
  feedback align.   ΔW0 = η0 (B e) xᵀ                     B fixed, random
  node perturbation ΔW0 = −η0 (L(h+ξ) − L(h)) ξ xᵀ / σ²   ξ ~ N(0, σ² I), pre-drawn

For FA, each step also returns the angle between δ_FA = B e and δ_BP = Wᵀ e on that example
(`metrics.angle_deg`, folded into [0°, 90°] as in the paper); other algorithms return NaN.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from spikefa.rate.network import folded_angle

ALGORITHMS = ("shallow", "node_perturbation", "bp", "fa")
SHALLOW, NODE_PERTURBATION, BP, FA = range(4)


@njit(cache=True)
def _matvec(A, x, out):
    for i in range(A.shape[0]):
        s = 0.0
        for j in range(A.shape[1]):
            s += A[i, j] * x[j]
        out[i] = s


@njit(cache=True)
def _matvec_t(A, x, out):
    """out = Aᵀ x without forming the transpose."""
    out[:] = 0.0
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            out[j] += A[i, j] * x[i]


@njit(cache=True)
def _outer_add(A, scale, u, v):
    """A += scale · u vᵀ."""
    for i in range(A.shape[0]):
        su = scale * u[i]
        for j in range(A.shape[1]):
            A[i, j] += su * v[j]


@njit(cache=True)
def step(algo, W0, W, B, x, ystar, eta0, eta, xi, sigma2):
    """One online update of (W0, W) in place for example (x, y*). Returns the FA angle or NaN."""
    n_h, n_out = W0.shape[0], W.shape[0]
    h = np.empty(n_h)
    y = np.empty(n_out)
    e = np.empty(n_out)
    _matvec(W0, x, h)
    _matvec(W, h, y)
    for k in range(n_out):
        e[k] = ystar[k] - y[k]
    angle = np.nan
    delta = np.empty(n_h)  # the hidden layer's modulator, before any weight changes
    if algo == BP:
        _matvec_t(W, e, delta)
    elif algo == FA:
        _matvec(B, e, delta)
        d_bp = np.empty(n_h)
        _matvec_t(W, e, d_bp)
        angle = folded_angle(delta, d_bp)
    elif algo == NODE_PERTURBATION:
        # L1 − L0 = ½‖e − Wξ‖² − ½‖e‖², evaluated exactly; the estimate of −∂L/∂h is −(L1 − L0) ξ / σ².
        wxi = np.empty(n_out)
        _matvec(W, xi, wxi)
        dl = 0.0
        for k in range(n_out):
            dl += 0.5 * ((e[k] - wxi[k]) ** 2 - e[k] ** 2)
        for i in range(n_h):
            delta[i] = -dl * xi[i] / sigma2
    _outer_add(W, eta, e, h)
    if algo != SHALLOW:
        _outer_add(W0, eta0, delta, x)
    return angle


@njit(cache=True)
def train(algo, W0, W, B, X, Y, eta0, eta, XI, sigma2, angles):
    """Run `step` over the rows of X, Y in order; angles[i] receives example i's FA angle."""
    for i in range(X.shape[0]):
        angles[i] = step(algo, W0, W, B, X[i], Y[i], eta0, eta, XI[i], sigma2)


def algorithm_code(name: str) -> int:
    return ALGORITHMS.index(name)
