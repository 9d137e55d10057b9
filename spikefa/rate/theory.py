"""The batch-limit dynamics of linear feedback alignment (SPEC §6.3, Theorem 1).

For h = A x, y = W h, target T and inputs with E[x xᵀ] = I, averaging the FA updates over the
input distribution gives the ODE

    Ẇ = E Aᵀ,   Ȧ = B E,   E = T − W A.

It conserves B W + Wᵀ Bᵀ − A Aᵀ (= C), and when C = 0 (e.g. A = W = 0 at the start) and B⁺B = I
the error E goes to zero: feedback alignment then learns any linear map.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp


def fa_linear_ode(T: np.ndarray, B: np.ndarray, A0: np.ndarray, W0: np.ndarray, t_end: float, n_points: int = 50):
    """Integrate the ODE from (A0, W0); returns (times, A(t), W(t)) with a leading time axis."""
    (n_h, n_in), n_out = A0.shape, W0.shape[0]

    def rhs(_, z):
        A, W = z[:n_h * n_in].reshape(n_h, n_in), z[n_h * n_in:].reshape(n_out, n_h)
        E = T - W @ A
        return np.concatenate([(B @ E).ravel(), (E @ A.T).ravel()])

    times = np.linspace(0.0, t_end, n_points)
    sol = solve_ivp(rhs, (0.0, t_end), np.concatenate([A0.ravel(), W0.ravel()]), t_eval=times, rtol=1e-9, atol=1e-12)
    A = sol.y[:n_h * n_in].T.reshape(-1, n_h, n_in)
    W = sol.y[n_h * n_in:].T.reshape(-1, n_out, n_h)
    return sol.t, A, W


def invariant(B: np.ndarray, A: np.ndarray, W: np.ndarray) -> np.ndarray:
    """B W + Wᵀ Bᵀ − A Aᵀ, constant along the ODE's solutions."""
    BW = B @ W
    return BW + BW.T - A @ A.T
