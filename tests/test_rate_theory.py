"""Theorem 1 of the paper: the linear FA ODE keeps its invariant and drives the error to zero."""

import numpy as np
import pytest

from spikefa.rate.theory import fa_linear_ode, invariant


def test_fa_ode_from_zero_learns_the_target_and_keeps_the_invariant():
    rng = np.random.default_rng(0)
    n_in, n_h, n_out = 6, 5, 3
    T = rng.uniform(-1, 1, (n_out, n_in))
    B = rng.uniform(-0.5, 0.5, (n_h, n_out))
    assert np.allclose(np.linalg.pinv(B) @ B, np.eye(n_out))  # full column rank: B⁺B = I
    t, A, W = fa_linear_ode(T, B, np.zeros((n_h, n_in)), np.zeros((n_out, n_h)), t_end=200.0)
    errors = np.linalg.norm(T - W @ A, axis=(1, 2))
    assert errors[-1] < 1e-3 * errors[0]
    C = np.array([invariant(B, a, w) for a, w in zip(A, W)])
    assert np.abs(C).max() < 1e-6  # C = 0 from the start, and it stays there


def test_invariant_is_conserved_from_any_start():
    rng = np.random.default_rng(1)
    T, B = rng.normal(size=(2, 4)), rng.normal(size=(3, 2))
    t, A, W = fa_linear_ode(T, B, rng.normal(size=(3, 4)), rng.normal(size=(2, 3)), t_end=2.0)
    C = np.array([invariant(B, a, w) for a, w in zip(A, W)])
    assert np.abs(C[0]).max() > 0.1
    np.testing.assert_allclose(C, np.broadcast_to(C[0], C.shape), atol=1e-6)


def test_flow_field_trajectory_from_zero_ends_on_the_stable_branch():
    from spikefa import plotting
    from spikefa.rate.theory import plot_flow_field

    fig, ax = plotting.new_axes()
    _, (a, w) = plot_flow_field(ax)
    assert a * w == pytest.approx(1.0, abs=1e-3) and w > 0  # W·A = T on the branch with W·B > 0
    assert a**2 / 2 - w == pytest.approx(0.0, abs=1e-3)  # A²/2 − B·W conserved at its start value
    plotting.close(fig)
