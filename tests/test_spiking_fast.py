"""The batched engine: its two backends agree, streams add up, and checkpoints move between engines."""

import numpy as np
import pytest

from spikefa.arrays import to_numpy
from spikefa.spiking import fast
from spikefa.spiking.brian import BrianNetwork
from spikefa.spiking.spec import SpikingSpec, initial_state

SIZES = (12, 9, 7, 3)


def spec_(**kw):
    return SpikingSpec(
        **{**dict(sizes=SIZES, reading="tau", steps_per_image=4, eta=0.05, dtype="float64"), **kw}
    )


def draws(spec, batch, n_img, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.random((batch, n_img, spec.sizes[0])).astype(spec.dtype)
    labels = rng.integers(0, spec.sizes[-1], (batch, n_img))
    uniforms = [
        rng.random((batch, n_img * spec.steps_per_image, n)).astype(spec.dtype)
        for _, n in spec.spiking_groups()
    ]
    return images, labels, uniforms


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("beta", [0.0, 1.0, 0.3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_in_place_blas_matches_numpy(trans_a, beta, dtype):
    rng = np.random.default_rng(0)
    a = rng.random((5, 7)).astype(dtype)
    b = rng.random((5 if trans_a else 7, 4)).astype(dtype)
    out = rng.random((7 if trans_a else 5, 4)).astype(dtype)
    expected = beta * out + 0.5 * ((a.T if trans_a else a) @ b)
    for x, y in ((a, b), (np.asfortranarray(a), np.asfortranarray(b))):  # either memory order
        for order in "CF":
            result = out.copy(order=order)
            fast.CpuOps().gemm(x, y, result, alpha=0.5, beta=beta, trans_a=trans_a)
            np.testing.assert_allclose(
                result, expected, rtol=1e-5 if dtype == np.float32 else 1e-12
            )


@pytest.mark.parametrize(
    "mode, kw",
    [
        ("fa", {}),
        ("dfa", {}),
        ("bp", {"weight_decay": 0.3}),
        ("fa", {"plasticity": "w += eta_post * delta_post * p_pre * (1 - w**2) * int(u_post > 0)"}),
        (
            "sparse_fa",
            {
                "feedback_rule": "mod_post = (sign(B) + 0.1) * delta_pre * exp(-u_post**2) : 1 (summed)"
            },
        ),
    ],
)
def test_numba_blas_backend_equals_array_backend(mode, kw):
    """The compiled loops (CPU) and the compiled array code (what CuPy runs) give the same run."""
    spec = spec_(feedback=mode, **kw)
    images, labels, uniforms = draws(spec, 3, 10)
    results = []
    for ops in (fast.CpuOps(), fast.ArrayOps(np)):
        state = fast.batch_state(spec, initial_state(spec), 3)
        y, _ = fast.run(spec, state, images, labels, uniforms=uniforms, ops=ops)
        results.append((state, y))
    (s1, y1), (s2, y2) = results
    np.testing.assert_allclose(y1, y2, rtol=1e-12)
    for k in s1:
        np.testing.assert_allclose(s1[k], s2[k], rtol=1e-10, atol=1e-14)


def test_weight_changes_of_streams_add_up(xp):
    spec = SpikingSpec(sizes=SIZES, reading="tau", steps_per_image=1, eta=0.05, dtype="float64")
    images, labels, uniforms = draws(spec, 2, 1)
    images, labels, uniforms = (
        xp.asarray(images),
        xp.asarray(labels),
        [xp.asarray(u) for u in uniforms],
    )
    start = initial_state(spec)
    both = fast.batch_state(spec, start, 2, xp)
    fast.run(spec, both, images, labels, uniforms=uniforms)
    change = {k: to_numpy(both[k]) - start[k] for k in ("w1", "w2", "w3", "bias1", "bias3")}
    alone = []
    for b in range(2):
        one = fast.batch_state(spec, start, 1, xp)
        fast.run(
            spec,
            one,
            images[b : b + 1],
            labels[b : b + 1],
            uniforms=[u[b : b + 1] for u in uniforms],
        )
        alone.append({k: to_numpy(one[k]) - start[k] for k in change})
    for k in change:
        np.testing.assert_allclose(change[k], alone[0][k] + alone[1][k], rtol=1e-10, atol=1e-15)
        assert np.abs(alone[0][k]).max() > 0


@pytest.mark.parametrize("first", ["fast", "brian2"])
def test_checkpoints_move_both_ways(first):
    """Train a while in one engine, continue in both from that state: the two continuations agree."""
    spec = spec_()
    images, labels, uniforms = draws(spec, 1, 12, seed=5)
    half = 6 * spec.steps_per_image
    net = BrianNetwork(spec, 6, "numpy", noise=True)
    state = initial_state(spec)
    if first == "fast":
        s = fast.batch_state(spec, state, 1)
        fast.run(spec, s, images[:, :6], labels[:, :6], uniforms=[u[:, :half] for u in uniforms])
        trained = {k: (v[0] if v.ndim == 2 and k[0] in "up" else v) for k, v in s.items()}
    else:
        trained, _ = net.run(
            state,
            images[0, :6],
            labels[0, :6],
            uniforms={l: u[0, :half] for l, u in enumerate(uniforms)},
        )
    via_brian, _ = net.run(
        trained,
        images[0, 6:],
        labels[0, 6:],
        uniforms={l: u[0, half:] for l, u in enumerate(uniforms)},
    )
    via_fast = fast.batch_state(spec, trained, 1)
    fast.run(spec, via_fast, images[:, 6:], labels[:, 6:], uniforms=[u[:, half:] for u in uniforms])
    for k in via_brian:
        np.testing.assert_allclose(
            via_fast[k].reshape(via_brian[k].shape), via_brian[k], rtol=1e-9, atol=1e-13
        )
    assert not np.allclose(via_brian["w1"], trained["w1"])


def test_plasticity_delay_skips_the_first_steps_of_each_image():
    spec = spec_()
    images, labels, uniforms = draws(spec, 2, 3)
    gated = fast.batch_state(spec, initial_state(spec), 2)
    fast.run(spec, gated, images, labels, uniforms=uniforms, plasticity_delay=3)
    ref, ws, T = (
        fast.batch_state(spec, initial_state(spec), 2),
        fast.Workspace.allocate(spec, 2),
        spec.steps_per_image,
    )
    for k in range(3 * T):
        ws.target[...] = np.eye(spec.sizes[-1])[labels[:, k // T]]
        for l in range(spec.n_layers):
            ws.r[l][...] = uniforms[l][:, k]
        fast.step(spec, ref, images[:, k // T], ws, spec.eta if k % T == 3 else 0.0, fast.CpuOps())
    for k in ref:
        np.testing.assert_allclose(gated[k], ref[k], rtol=1e-12, atol=1e-15, err_msg=k)
    assert not np.allclose(gated["w1"], initial_state(spec)["w1"])
