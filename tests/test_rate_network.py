"""The rate engine of any depth (spikefa/rate/network.py) against plain NumPy, finite differences and theory."""

import numpy as np
import pytest

from spikefa import metrics
from spikefa.rate.network import ALGORITHMS, Network

SIZES = (6, 5, 4, 3)


SIGMA = 0.1


def make(algorithm, hidden="sigmoid", output="sigmoid", seed=0, **kw):
    rngs = [np.random.default_rng([seed, k]) for k in range(3)]
    return Network(
        SIZES,
        algorithm,
        *rngs,
        hidden=hidden,
        output=output,
        init_scale=0.8,
        etas=[0.1, 0.2, 0.3],
        sigma=SIGMA,
        perturbation_rng=np.random.default_rng([seed, 3]),
        **kw,
    )


def sample(n=1, seed=5):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, SIZES[0])), rng.random((n, SIZES[-1]))


def reference_step(net, x, y, seed=0):
    """The docstring's equations in NumPy, for one example; returns new (W, b) and the BP-angle list.
    Node perturbation's ξ is the first row the network's own generator will draw."""
    f = {"sigmoid": lambda a: 1 / (1 + np.exp(-a)), "tanh": np.tanh, "linear": lambda a: a}
    slope = {
        "sigmoid": lambda h: h * (1 - h),
        "tanh": lambda h: 1 - h * h,
        "linear": lambda h: np.ones_like(h),
    }
    names = ["linear"] + [("linear", "sigmoid", "tanh")[k] for k in net.kinds[1:]]
    L, W, b = net.L, [w.copy() for w in net.W], [v.copy() for v in net.b]
    h = [x]
    for l in range(1, L + 1):
        h.append(f[names[l]](h[-1] @ W[l] + b[l]))
    delta = {L: (y - h[L]) * (slope[names[L]](h[L]) if net.mse_output else 1)}
    d_bp, m, m_bp = dict(delta), {}, {}
    xi = np.split(
        np.random.default_rng([seed, 3]).standard_normal(sum(SIZES[1:-1])) * SIGMA,
        np.cumsum(SIZES[1:-2]),
    )
    hq = [x]
    for l in range(1, L + 1):
        hq.append(f[names[l]](hq[-1] @ W[l] + b[l] + (xi[l - 1] if l < L else 0)))
    dloss = 0.5 * np.sum((y - hq[L]) ** 2) - 0.5 * np.sum((y - h[L]) ** 2)
    for l in range(L - 1, 0, -1):
        if net.algorithm == "node_perturbation":
            m[l] = None
            delta[l] = -dloss * xi[l - 1] / SIGMA**2
        elif net.algorithm in ("bp", "shallow"):
            m[l] = W[l + 1] @ delta[l + 1]
        elif net.algorithm == "sign_symmetric":
            m[l] = np.sign(W[l + 1]) @ delta[l + 1] * net.feedback_scale
        else:
            m[l] = net.B[l] @ (delta[L] if net.algorithm == "dfa" else delta[l + 1])
        if m[l] is not None:
            delta[l] = m[l] * slope[names[l]](h[l])
        m_bp[l] = W[l + 1] @ d_bp[l + 1]
        d_bp[l] = m_bp[l] * slope[names[l]](h[l])
    angles = [
        np.degrees(
            np.arccos(
                min(1, abs(delta[l] @ d_bp[l]) / np.linalg.norm(delta[l]) / np.linalg.norm(d_bp[l]))
            )
        )
        for l in range(1, L)
    ]
    for l in range(L if net.algorithm == "shallow" else 1, L + 1):
        dw = net.etas[l] * (np.outer(h[l - 1], delta[l]) - net.decay * W[l])
        W[l] += dw * net.masks[l] if net.algorithm == "sparse_fa" else dw
        b[l] += net.etas[l] * delta[l]
    return W, b, angles


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize(
    "hidden, output, output_delta", [("sigmoid", "sigmoid", "e"), ("tanh", "linear", "mse")]
)
def test_one_step_matches_numpy_reference(algorithm, hidden, output, output_delta):
    net = make(algorithm, hidden, output, output_delta=output_delta, weight_decay=0.01)
    x, y = sample()
    W, b, angles = reference_step(net, x[0], y[0])
    _, got = net.train(x, y, angles=True)
    for l in range(1, net.L + 1):
        np.testing.assert_allclose(net.W[l], W[l], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(net.b[l], b[l], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        got[0], angles, atol=1e-5
    )  # degrees; arccos near 0° magnifies round-off


def test_backprop_step_is_minus_the_gradient():
    """With the exact MSE output delta, BP's ΔW_l / η_l is −∂(½‖e‖²)/∂W_l (central differences)."""
    net = make("bp", "tanh", "sigmoid", output_delta="mse")
    x, y = sample()

    def loss():
        return 0.5 * np.sum((y[0] - net.predict(x)[0]) ** 2)

    before = [w.copy() for w in net.W]
    numeric = []
    for l in range(1, net.L + 1):
        g = np.zeros_like(net.W[l])
        for idx in np.ndindex(g.shape):
            for sgn in (1, -1):
                net.W[l][idx] += sgn * 1e-6
                g[idx] += sgn * loss() / 2e-6
                net.W[l][idx] -= sgn * 1e-6
        numeric.append(g)
    net.train(x, y)
    for l in range(1, net.L + 1):
        np.testing.assert_allclose(
            (net.W[l] - before[l]) / net.etas[l], -numeric[l - 1], rtol=1e-6, atol=1e-9
        )


def test_feedback_equal_to_forward_transpose_gives_backprop():
    x, y = sample()
    bp, fa = make("bp"), make("fa")
    fa.B = [fa.B[0]] + [fa.W[l + 1].copy() for l in range(1, fa.L)]
    bp.train(x, y)
    fa.train(x, y)
    for l in range(1, bp.L + 1):
        np.testing.assert_allclose(fa.W[l], bp.W[l], rtol=1e-13)


def test_dfa_equals_fa_with_one_hidden_layer():
    def rngs():
        return [np.random.default_rng([1, k]) for k in range(3)]

    fa, dfa = (Network((6, 5, 3), a, *rngs(), init_scale=0.5) for a in ("fa", "dfa"))
    np.testing.assert_array_equal(fa.B[1], dfa.B[1])
    x, y = sample(20)
    fa.train(x[:, :6], y)
    dfa.train(x[:, :6], y)
    np.testing.assert_allclose(dfa.W[1], fa.W[1], rtol=1e-13)


def test_sparse_masks_stay_zero_and_remove_the_fraction():
    net = Network(
        (40, 30, 20, 3),
        "sparse_fa",
        *[np.random.default_rng([2, k]) for k in range(3)],
        sparsity=0.5,
    )
    removed = [np.mean(net.masks[l] == 0) for l in range(2, net.L + 1)] + [
        np.mean(B == 0) for B in net.B[1:]
    ]
    assert all(0.4 < r < 0.6 for r in removed)
    assert np.all(net.W[1] != 0)  # the input layer stays dense
    rng = np.random.default_rng(3)
    net.train(rng.normal(size=(200, 40)), rng.random((200, 3)))
    for l in range(1, net.L + 1):
        assert np.all(net.W[l][net.masks[l] == 0] == 0)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_short_learning_runs_improve(algorithm):
    """A 10-5-4-2 tanh teacher: every rule lowers the squared error within 3,000 examples, the ones
    that train hidden layers by at least half (shallow, with random hidden layers, much less)."""
    rng = np.random.default_rng(4)
    Ws = [rng.uniform(-1, 1, s) for s in ((5, 10), (4, 5), (2, 4))]
    X = rng.normal(size=(3000, 10))
    Y = np.tanh(np.tanh(X @ Ws[0].T) @ Ws[1].T) @ Ws[2].T
    net = Network(
        (10, 5, 4, 2),
        algorithm,
        *[np.random.default_rng([5, k]) for k in range(3)],
        hidden="tanh",
        output="linear",
        init_scale=0.3,
        etas=0.01,
        sparsity=0.25,
        sigma=0.01,
        perturbation_rng=np.random.default_rng(6),
    )
    losses, _ = net.train(X, Y)
    slow = algorithm in (
        "shallow",
        "node_perturbation",
    )  # random hidden layers / a noisy gradient estimate
    assert losses[-500:].mean() < (0.95 if slow else 0.5) * losses[:500].mean()


def test_float32_follows_float64():
    x, y = sample(50)
    nets = [make("fa", dtype=dt) for dt in ("float32", "float64")]
    for n in nets:
        n.train(x, y)
    assert nets[0].W[1].dtype == np.float32
    np.testing.assert_allclose(nets[0].W[1], nets[1].W[1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("algorithm", [a for a in ALGORITHMS if a != "node_perturbation"])
def test_minibatch_of_one_is_the_online_rule(algorithm):
    x, y = sample(3)
    online, batched = make(algorithm, weight_decay=0.01), make(algorithm, weight_decay=0.01)
    online.train(x, y)
    batched.train_batch(x, y, batch=1)
    for l in range(1, online.L + 1):
        np.testing.assert_allclose(batched.W[l], online.W[l], rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(batched.b[l], online.b[l], rtol=1e-10, atol=1e-13)


def test_minibatch_update_is_the_mean_of_single_updates():
    x, y = sample(8)
    start = make("fa")
    changes = []
    for i in range(8):  # each example from the same starting weights
        net = make("fa")
        net.train(x[i : i + 1], y[i : i + 1])
        changes.append(net.W[1] - start.W[1])
    batched = make("fa")
    batched.train_batch(x, y, batch=8)
    np.testing.assert_allclose(
        batched.W[1] - start.W[1], np.mean(changes, axis=0), rtol=1e-9, atol=1e-13
    )


@pytest.mark.parametrize("algorithm", ["bp", "fa", "sparse_fa", "dfa", "sign_symmetric", "shallow"])
def test_minibatch_path_gives_the_same_weights_on_every_backend(algorithm, xp):
    """The minibatch rule moved to `xp` (NumPy, or CuPy where a GPU answers) equals it on NumPy."""
    x, y = sample(40)
    ref, moved = make(algorithm, weight_decay=0.01), make(algorithm, weight_decay=0.01).to(xp)
    ref_losses, losses = (
        ref.train_batch(x, y, batch=8),
        moved.train_batch(xp.asarray(x), y, batch=8),
    )
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-10)
    np.testing.assert_allclose(moved.predict(x), ref.predict(x), rtol=1e-10)
    moved.to(np)
    for l in range(1, ref.L + 1):
        assert isinstance(moved.W[l], np.ndarray)
        np.testing.assert_allclose(moved.W[l], ref.W[l], rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(moved.b[l], ref.b[l], rtol=1e-10, atol=1e-13)
    assert not np.allclose(ref.W[-1], make(algorithm).W[-1])
    if xp is not np:
        with pytest.raises(ValueError, match="online"):
            make(algorithm).to(xp).train(x, y)


def test_one_fa_example_of_the_mnist_network_is_about_3_mflop():
    from spikefa.bench import rate_example_flops

    assert rate_example_flops((784, 1000, 10)) == 2.0 * (2 * (784 * 1000 + 1000 * 10) + 1000 * 10)


def test_node_perturbation_is_online_only():
    with pytest.raises(ValueError, match="online"):
        make("node_perturbation").train_batch(*sample(4))


@pytest.mark.parametrize("algorithm", ["shallow", "node_perturbation", "bp", "fa"])
def test_fig2_linear_network_follows_the_fig2_rules(algorithm):
    """Fig. 2's 30-20-10 network (linear, no biases) in the paper's layout h = W0 x, y = W h:
    ΔW = η e hᵀ and ΔW0 = η0 δ xᵀ with δ = 0 (shallow), Wᵀe (bp), B e (fa) or the node-perturbation
    estimate −(½‖e − Wξ‖² − ½‖e‖²) ξ/σ², and the FA angle between B e and Wᵀ e."""
    rng = np.random.default_rng(42)
    W0, W, B = (
        rng.uniform(-0.3, 0.3, (20, 30)),
        rng.uniform(-0.3, 0.3, (10, 20)),
        rng.uniform(-0.5, 0.5, (20, 10)),
    )
    x, ystar = rng.standard_normal(30), rng.standard_normal(10)
    sigma, eta0, eta = 0.05, 0.02, 0.03
    xi = sigma * np.random.default_rng(7).standard_normal((1, 20))[0]  # the network's first draw
    net = Network(
        (30, 20, 10),
        algorithm,
        rng,
        rng,
        hidden="linear",
        output="linear",
        etas=(eta0, eta),
        sigma=sigma,
        perturbation_rng=np.random.default_rng(7),
        bias=False,
    )
    net.W[1][...], net.W[2][...] = W0.T, W.T
    if algorithm == "fa":
        net.B[1] = B.copy()
    _, angles = net.train(x[None], ystar[None], angles=True)
    h = W0 @ x
    e = ystar - W @ h
    delta = {
        "shallow": np.zeros(20),
        "bp": W.T @ e,
        "fa": B @ e,
        "node_perturbation": -(0.5 * np.sum((e - W @ xi) ** 2) - 0.5 * np.sum(e**2))
        * xi
        / sigma**2,
    }[algorithm]
    np.testing.assert_allclose(net.W[2].T, W + eta * np.outer(e, h), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(net.W[1].T, W0 + eta0 * np.outer(delta, x), rtol=1e-9, atol=1e-12)
    assert not net.b[1].any() and not net.b[2].any()
    if algorithm == "fa":
        assert angles[0, 0] == pytest.approx(metrics.angle_deg(B @ e, W.T @ e), abs=1e-9)
