"""Every update rule of the Fig. 2 kernels against a plain NumPy reference on the same example."""

import numpy as np
import pytest

from spikefa import metrics
from spikefa.rate import linear

SIGMA2 = 0.05 ** 2  # variance of the perturbation ξ in the fixture


@pytest.fixture
def net():
    rng = np.random.default_rng(42)
    return dict(W0=rng.uniform(-0.3, 0.3, (20, 30)), W=rng.uniform(-0.3, 0.3, (10, 20)),
                B=rng.uniform(-0.5, 0.5, (20, 10)), x=rng.standard_normal(30), ystar=rng.standard_normal(10),
                xi=0.05 * rng.standard_normal(20))


def reference(algo, W0, W, B, x, ystar, xi, eta0, eta):
    """The update rules of Fig. 2 written out in NumPy."""
    h = W0 @ x
    e = ystar - W @ h
    dW = eta * np.outer(e, h)
    if algo == "shallow":
        dW0 = np.zeros_like(W0)
    elif algo == "bp":
        dW0 = eta0 * np.outer(W.T @ e, x)
    elif algo == "fa":
        dW0 = eta0 * np.outer(B @ e, x)
    else:
        loss0 = 0.5 * np.sum(e ** 2)
        loss1 = 0.5 * np.sum((ystar - W @ (h + xi)) ** 2)
        dW0 = -eta0 * (loss1 - loss0) * np.outer(xi, x) / SIGMA2
    return W0 + dW0, W + dW



@pytest.mark.parametrize("algo", linear.ALGORITHMS)
def test_step_matches_numpy_reference(net, algo):
    W0, W = net["W0"].copy(), net["W"].copy()
    angle = linear.step(linear.algorithm_code(algo), W0, W, net["B"], net["x"], net["ystar"], 0.02, 0.03,
                        net["xi"], SIGMA2)
    ref_W0, ref_W = reference(algo, net["W0"], net["W"], net["B"], net["x"], net["ystar"], net["xi"], 0.02, 0.03)
    np.testing.assert_allclose(W0, ref_W0, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(W, ref_W, rtol=1e-12, atol=1e-14)
    if algo == "fa":
        e = net["ystar"] - net["W"] @ net["W0"] @ net["x"]
        assert angle == pytest.approx(metrics.angle_deg(net["B"] @ e, net["W"].T @ e), abs=1e-9)
    else:
        assert np.isnan(angle)


def test_train_runs_steps_in_order(net):
    rng = np.random.default_rng(0)
    X, Y, XI = rng.standard_normal((5, 30)), rng.standard_normal((5, 10)), rng.standard_normal((5, 20))
    code = linear.algorithm_code("fa")
    W0a, Wa, W0b, Wb = net["W0"].copy(), net["W"].copy(), net["W0"].copy(), net["W"].copy()
    angles = np.empty(5)
    linear.train(code, W0a, Wa, net["B"], X, Y, 0.01, 0.01, XI, 1.0, angles)
    for i in range(5):
        assert linear.step(code, W0b, Wb, net["B"], X[i], Y[i], 0.01, 0.01, XI[i], 1.0) == angles[i]
    np.testing.assert_array_equal(W0a, W0b)


def test_bp_delta_is_the_loss_gradient(net):
    """BP's ΔW0 / η equals −∂L/∂W0 by central finite differences of L = ½‖y* − W W0 x‖²."""
    W0, W, x, ystar = net["W0"], net["W"], net["x"], net["ystar"]

    def loss(w0):
        return 0.5 * np.sum((ystar - W @ w0 @ x) ** 2)

    grad = np.zeros_like(W0)
    eps = 1e-6
    for idx in np.ndindex(W0.shape):
        d = np.zeros_like(W0)
        d[idx] = eps
        grad[idx] = (loss(W0 + d) - loss(W0 - d)) / (2 * eps)
    updated = W0.copy()
    linear.step(linear.BP, updated, W.copy(), net["B"], x, ystar, 1.0, 0.0, net["xi"], 1.0)
    np.testing.assert_allclose(updated - W0, -grad, rtol=1e-6, atol=1e-8)


def test_node_perturbation_is_unbiased_for_the_bp_delta(net):
    """Averaged over many perturbations ξ, node perturbation's hidden update points along BP's."""
    rng = np.random.default_rng(1)
    n, sigma = 40000, 1e-3
    X = np.repeat(net["x"][None], n, axis=0)
    Y = np.repeat(net["ystar"][None], n, axis=0)
    XI = sigma * rng.standard_normal((n, 20))
    code, mean_update = linear.algorithm_code("node_perturbation"), np.zeros_like(net["W0"])
    for i in range(n):  # the weights are reset every time: one example, many perturbations
        W0 = net["W0"].copy()
        linear.step(code, W0, net["W"].copy(), net["B"], X[i], Y[i], 1.0, 0.0, XI[i], sigma ** 2)
        mean_update += (W0 - net["W0"]) / n
    W0 = net["W0"].copy()
    linear.step(linear.BP, W0, net["W"].copy(), net["B"], net["x"], net["ystar"], 1.0, 0.0, XI[0], 1.0)
    bp_update = W0 - net["W0"]
    assert metrics.angle_deg(mean_update, bp_update, folded=False) < 5.0
    assert np.linalg.norm(mean_update) / np.linalg.norm(bp_update) == pytest.approx(1.0, abs=0.1)
