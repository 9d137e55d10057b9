"""The batch-limit dynamics of linear feedback alignment (the paper's Theorem 1).

For h = A x, y = W h, target T and inputs with E[x xᵀ] = I, averaging the FA updates over the
input distribution gives the ODE

    Ẇ = E Aᵀ,   Ȧ = B E,   E = T − W A.

It conserves B W + Wᵀ Bᵀ − A Aᵀ (= C), and when C = 0 (e.g. A = W = 0 at the start) and B⁺B = I
the error E goes to zero: feedback alignment then learns any linear map.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp


def fa_linear_ode(
    T: np.ndarray, B: np.ndarray, A0: np.ndarray, W0: np.ndarray, t_end: float, n_points: int = 50
):
    """Integrate the ODE from (A0, W0); returns (times, A(t), W(t)) with a leading time axis."""
    (n_h, n_in), n_out = A0.shape, W0.shape[0]

    def rhs(_, z):
        A, W = z[: n_h * n_in].reshape(n_h, n_in), z[n_h * n_in :].reshape(n_out, n_h)
        E = T - W @ A
        return np.concatenate([(B @ E).ravel(), (E @ A.T).ravel()])

    times = np.linspace(0.0, t_end, n_points)
    sol = solve_ivp(
        rhs,
        (0.0, t_end),
        np.concatenate([A0.ravel(), W0.ravel()]),
        t_eval=times,
        rtol=1e-9,
        atol=1e-12,
    )
    A = sol.y[: n_h * n_in].T.reshape(-1, n_h, n_in)
    W = sol.y[n_h * n_in :].T.reshape(-1, n_out, n_h)
    return sol.t, A, W


def invariant(B: np.ndarray, A: np.ndarray, W: np.ndarray) -> np.ndarray:
    """B W + Wᵀ Bᵀ − A Aᵀ, constant along the ODE's solutions."""
    BW = B @ W
    return BW + BW.T - A @ A.T


def plot_flow_field(ax, T: float = 1.0, B: float = 1.0, t_end: float = 20.0):
    """The 1-1-1 linear network under FA (arXiv Fig. 3): the batch-limit vector field
    over (A, W), the two branches of W·A = T (the one with W·B > 0 attracts) and the trajectory from
    A = W = 0, which follows the parabola A²/2 − B·W = 0 onto the stable branch. Returns (ax, (A, W)
    at the end of the trajectory)."""
    from spikefa import plotting

    a, w = np.meshgrid(np.linspace(-2, 2, 21), np.linspace(-2, 2, 21))
    e = T - w * a
    ax.quiver(a, w, B * e, e * a, color="0.6", angles="xy", width=0.003)
    x = np.linspace(0.5, 2, 100)
    ax.plot(x, T / x, color=plotting.COLOURS["fa"], label="W·A = T, stable (W·B > 0)")
    ax.plot(-x, -T / x, color="k", linestyle="--", label="W·A = T, unstable")
    _, A, W = fa_linear_ode(
        np.array([[T]]),
        np.array([[B]]),
        np.zeros((1, 1)),
        np.zeros((1, 1)),
        t_end=t_end,
        n_points=400,
    )
    ax.plot(A[:, 0, 0], W[:, 0, 0], color="tab:red", linewidth=2, label="from A = W = 0")
    ax.set(
        xlim=(-2, 2),
        ylim=(-2, 2),
        xlabel="A (input → hidden)",
        ylabel="W (hidden → output)",
        title="1-1-1 network, feedback alignment",
    )
    ax.legend(frameon=False, fontsize=7, loc="lower right")
    return ax, (float(A[-1, 0, 0]), float(W[-1, 0, 0]))
