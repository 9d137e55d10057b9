"""The Brian2 reference model on small networks: dynamics, feedback, plasticity, devices.

Most tests use the "numpy" runtime device (no compiler start-up); one compares it with
cpp_standalone and with Cython-generated runtime code.
"""

import time

import numpy as np
import pytest

from spikefa.arrays import to_numpy
from spikefa.errors import SpikefaError
from spikefa.spiking import fast
from spikefa.spiking.brian import BrianNetwork
from spikefa.spiking.spec import SpikingSpec, initial_state, load_checkpoint, save_checkpoint

SIZES = (12, 9, 7, 3)


def small_spec(**kw):
    base = dict(sizes=SIZES, reading="tau", steps_per_image=5, eta=0.05, dtype="float64")
    return SpikingSpec(**{**base, **kw})


def inputs(spec, n_img, seed=1):
    rng = np.random.default_rng(seed)
    images = rng.random((n_img, spec.sizes[0]))
    labels = rng.integers(0, spec.sizes[-1], n_img)
    uniforms = {
        l: rng.random((n_img * spec.steps_per_image, n)) for l, n in enumerate(spec.sizes[:-1])
    }
    return images, labels, uniforms


def all_neurons(spec):
    return {l: list(range(spec.sizes[l])) for l in range(1, spec.n_layers)}


@pytest.mark.parametrize("reading, decay", [("decay", 0.9), ("tau", np.exp(-1 / 0.9))])
def test_psp_decays_by_the_reading_each_step(reading, decay):
    spec = small_spec(reading=reading, eta=0.0)
    state = initial_state(spec)
    state["u1"] = np.linspace(-2, 2, SIZES[1])
    images = np.zeros((2, SIZES[0]))  # no input spikes
    no_spikes = {
        l: np.ones((10, n)) for l, n in enumerate(SIZES[:-1])
    }  # a uniform of 1 never fires
    net = BrianNetwork(spec, 2, "numpy", noise=True, trace_neurons={1: list(range(SIZES[1]))})
    _, rec = net.run(state, images, np.zeros(2, int), uniforms=no_spikes)
    u = rec.traces[1]["u"]
    np.testing.assert_allclose(u[:, 0], decay * state["u1"], rtol=1e-12)
    np.testing.assert_allclose(u[:, 1:], decay * u[:, :-1], rtol=1e-12)
    assert spec.decay == pytest.approx(decay, rel=1e-15)


def test_spike_probability_is_sigmoid_of_psp():
    """Biases hold each PSP at a fixed value c (input weights zero); units fire with probability σ(c)."""
    spec = SpikingSpec(
        sizes=(4, 40, 2), reading="tau", steps_per_image=100, eta=0.0, dtype="float64", seed=3
    )
    state = initial_state(spec)
    c = np.linspace(-3, 3, 40)
    state["w1"][:] = 0
    state["bias1"], state["u1"] = c.copy(), c.copy()
    net = BrianNetwork(spec, 30, "numpy", record_spikes=True)
    _, rec = net.run(state, np.zeros((30, 4)), np.zeros(30, int), learn=False)
    steps = 30 * 100
    counts = np.bincount(rec.spikes[1][1], minlength=40)
    p = 1 / (1 + np.exp(-c))
    z = (counts - steps * p) / np.sqrt(steps * p * (1 - p))
    assert np.all(np.abs(z) < 4.5), z
    assert counts[0] < counts[-1]


def test_input_units_fire_with_pixel_probability():
    spec = SpikingSpec(
        sizes=(5, 3, 2), reading="tau", steps_per_image=400, eta=0.0, dtype="float64", seed=4
    )
    pixels = np.array([[0.0, 0.1, 0.5, 0.9, 1.0]])
    net = BrianNetwork(spec, 1, "numpy", record_spikes=True)
    _, rec = net.run(initial_state(spec), pixels, np.zeros(1, int), learn=False)
    counts = np.bincount(rec.spikes[0][1], minlength=5)
    assert counts[0] == 0 and counts[4] == 400
    assert np.all(np.abs(counts[1:4] - 400 * pixels[0, 1:4]) < 4.5 * np.sqrt(400 * 0.25))


@pytest.mark.parametrize("mode", ["fa", "dfa"])
def test_delta_is_error_propagated_through_B_layer_by_layer(mode):
    spec = small_spec(feedback=mode)
    state = initial_state(spec)
    images, labels, uniforms = inputs(spec, 6)
    net = BrianNetwork(spec, 6, "numpy", noise=True, trace_neurons=all_neurons(spec))
    _, rec = net.run(state, images, labels, uniforms=uniforms)
    L = spec.n_layers
    delta = {L: rec.error.T, **{l: rec.traces[l]["delta"] for l in range(1, L)}}
    np.testing.assert_allclose(rec.error, np.eye(3)[np.repeat(labels, 5)] - rec.y, atol=1e-15)
    for l in range(1, L):
        src = spec.feedback_source(l)
        np.testing.assert_allclose(
            rec.traces[l]["mod"], state[f"B{l}"].T @ delta[src], rtol=1e-10, atol=1e-14
        )
        sig = 1 / (1 + np.exp(-rec.traces[l]["u"]))
        np.testing.assert_allclose(
            rec.traces[l]["delta"], sig * (1 - sig) * rec.traces[l]["mod"], rtol=1e-10, atol=1e-14
        )


def test_one_step_weight_change_is_the_three_factor_product():
    spec = SpikingSpec(sizes=SIZES, reading="tau", steps_per_image=1, eta=0.05, dtype="float64")
    state = initial_state(spec)
    images, labels, uniforms = inputs(spec, 1)
    net = BrianNetwork(spec, 1, "numpy", noise=True, trace_neurons=all_neurons(spec))
    new, rec = net.run(state, images, labels, uniforms=uniforms)
    deltas = {1: rec.traces[1]["delta"][:, 0], 2: rec.traces[2]["delta"][:, 0], 3: rec.error[0]}
    for l in (1, 2, 3):
        expected = spec.eta * np.outer(
            new[f"p{l - 1}"], deltas[l]
        )  # presynaptic trace × σ'(u)·modulator
        np.testing.assert_allclose(new[f"w{l}"] - state[f"w{l}"], expected, rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(
            new[f"bias{l}"] - state[f"bias{l}"], spec.eta * deltas[l], rtol=1e-9, atol=1e-15
        )
    assert np.abs(new["w1"] - state["w1"]).max() > 0


def test_noise_source_makes_runs_identical():
    spec = small_spec()
    images, labels, uniforms = inputs(spec, 4)
    net = BrianNetwork(spec, 4, "numpy", noise=True)
    a, rec_a = net.run(initial_state(spec), images, labels, uniforms=uniforms)
    b, rec_b = net.run(initial_state(spec), images, labels, uniforms=uniforms)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_array_equal(rec_a.y, rec_b.y)
    other = {l: np.roll(u, 1, axis=0) for l, u in uniforms.items()}
    c, _ = net.run(initial_state(spec), images, labels, uniforms=other)
    assert not np.array_equal(a["w1"], c["w1"])


def test_bp_mode_keeps_feedback_equal_to_forward_weights():
    spec = small_spec(feedback="bp")
    state = initial_state(spec)
    images, labels, uniforms = inputs(spec, 8)
    net = BrianNetwork(spec, 8, "numpy", noise=True)
    new, _ = net.run(state, images, labels, uniforms=uniforms)
    assert np.abs(new["w2"] - state["w2"]).max() > 1e-3
    for l in (1, 2):
        np.testing.assert_array_equal(new[f"B{l}"], new[f"w{l + 1}"].T)


def test_sparse_feedback_removes_the_requested_fraction():
    spec = SpikingSpec(sizes=(10, 200, 200, 10), feedback="sparse_fa", feedback_sparsity=0.5)
    B = initial_state(spec)["B1"]
    assert abs(np.mean(B == 0) - 0.5) < 0.02


def test_user_plasticity_and_feedback_equations():
    spec = small_spec()
    images, labels, uniforms = inputs(spec, 3)
    frozen = BrianNetwork(
        spec, 3, "numpy", noise=True, plasticity="w += 0 * eta_post * delta_post * p_pre"
    )
    state = initial_state(spec)
    new, _ = frozen.run(state, images, labels, uniforms=uniforms)
    np.testing.assert_array_equal(new["w1"], state["w1"])
    assert not np.array_equal(new["bias1"], state["bias1"])  # biases still learn
    default = BrianNetwork(spec, 3, "numpy", noise=True, trace_neurons={2: [0, 1, 2]})
    doubled = BrianNetwork(
        spec,
        3,
        "numpy",
        noise=True,
        trace_neurons={2: [0, 1, 2]},
        feedback="mod_post = 2 * B * delta_pre : 1 (summed)",
    )
    _, r1 = default.run(state, images, labels, uniforms=uniforms, learn=False)
    _, r2 = doubled.run(state, images, labels, uniforms=uniforms, learn=False)
    np.testing.assert_allclose(r2.traces[2]["mod"], 2 * r1.traces[2]["mod"], rtol=1e-12)


def test_learning_off_keeps_weights():
    spec = small_spec()
    images, labels, uniforms = inputs(spec, 3)
    state = initial_state(spec)
    new, _ = BrianNetwork(spec, 3, "numpy", noise=True).run(
        state, images, labels, uniforms=uniforms, learn=False
    )
    for k in ("w1", "w2", "w3", "bias1", "B1"):
        np.testing.assert_array_equal(new[k], state[k])


@pytest.mark.parametrize(
    "mode, eta_scale, delay",
    [
        ("fa", (), 0),
        ("sparse_fa", (), 0),
        ("dfa", (), 0),
        ("bp", (), 0),
        ("fa", (0.5, 0.0, 2.0), 0),
        ("bp", (2.0, 0.5, 1.0), 0),
        ("fa", (), 2),
        ("bp", (), 3),
    ],
)
def test_fast_engine_matches_brian2_step_by_step(mode, eta_scale, delay, xp):
    """Conformance: same uniforms, one stream, 250 steps — PSPs, δs, spikes and weights agree
    (also with per-layer learning rates, which in bp mode the mirrored feedback must follow, and
    with the plasticity_delay ablation), on the CPU backend and, where a GPU answers, on CuPy."""
    spec = small_spec(feedback=mode, eta_scale=eta_scale)
    state = initial_state(spec)
    images, labels, uniforms = inputs(spec, 50)
    net = BrianNetwork(
        spec,
        50,
        "numpy",
        noise=True,
        trace_neurons=all_neurons(spec),
        record_spikes=True,
        plasticity_delay=delay,
    )
    ref, rec = net.run(state, images, labels, uniforms=uniforms)
    mine = fast.batch_state(spec, state, 1, xp)
    y, steps = fast.run(
        spec,
        mine,
        xp.asarray(images[None]),
        xp.asarray(labels[None]),
        uniforms=[xp.asarray(uniforms[l][None]) for l in range(3)],
        record=True,
        plasticity_delay=delay,
    )
    for k in ref:
        np.testing.assert_allclose(
            to_numpy(mine[k]).reshape(ref[k].shape), ref[k], rtol=1e-5, atol=1e-12
        )
    np.testing.assert_allclose(to_numpy(y[:, 0]), rec.y, rtol=1e-5, atol=1e-12)
    for l in (1, 2):
        for key, got in (
            ("mod", [s.mod[l][0] for s in steps]),
            ("delta", [s.delta[l][0] for s in steps]),
        ):
            np.testing.assert_allclose(
                to_numpy(xp.stack(got)).T, rec.traces[l][key], rtol=1e-5, atol=1e-12
            )
    for l in (0, 1, 2):
        t, i = np.nonzero(to_numpy(xp.stack([s.spikes[l][0] for s in steps])))
        order = np.lexsort((rec.spikes[l][1], rec.spikes[l][0]))
        np.testing.assert_array_equal(t, rec.spikes[l][0][order])
        np.testing.assert_array_equal(i, rec.spikes[l][1][order])
    assert np.abs(ref["w1"] - state["w1"]).max() > 1e-4


@pytest.mark.parametrize("device", ["cpp_standalone", "runtime"])
def test_compiled_devices_agree_with_numpy_runtime(device, tmp_path):
    spec = small_spec()
    images, labels, uniforms = inputs(spec, 10)
    ref, rec_ref = BrianNetwork(spec, 10, "numpy", noise=True).run(
        initial_state(spec), images, labels, uniforms=uniforms
    )
    net = BrianNetwork(spec, 10, device, noise=True, directory=str(tmp_path / "build"))
    state = initial_state(spec)
    for _ in range(2):  # the second run re-uses the compiled code with new weights and state
        start = time.perf_counter()
        state, rec = net.run(state, images, labels, uniforms=uniforms)
        assert 0 < net.last_run_seconds < time.perf_counter() - start  # the simulation alone
        if _ == 0:
            for k in ref:
                np.testing.assert_allclose(state[k], ref[k], rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(rec.y, rec_ref.y, rtol=1e-12)
    assert not np.allclose(state["w1"], ref["w1"])


def test_chunk_size_is_enforced_for_standalone_and_noise_must_match():
    spec = small_spec()
    net = BrianNetwork(spec, 4, "numpy", noise=True)
    images, labels, uniforms = inputs(spec, 5)
    with pytest.raises(SpikefaError, match="4 images per run"):
        net.run(initial_state(spec), images, labels, uniforms=uniforms)
    with pytest.raises(SpikefaError, match="uniforms"):
        net.run(initial_state(spec), images[:4], labels[:4])


def test_checkpoint_roundtrip_and_refusals(tmp_path):
    spec = small_spec(feedback="dfa")
    state = initial_state(spec)
    path = save_checkpoint(tmp_path / "c.npz", spec, state, {"images_seen": 7})
    spec2, state2, meta = load_checkpoint(path)
    assert spec2 == spec and meta == {"images_seen": 7}
    for k in state:
        np.testing.assert_array_equal(state2[k], state[k])
    truncated = tmp_path / "t.npz"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(SpikefaError, match="corrupted"):
        load_checkpoint(truncated)
    with pytest.raises(SpikefaError, match="does not exist"):
        load_checkpoint(tmp_path / "none.npz")
    np.savez(tmp_path / "foreign.npz", x=np.zeros(3))
    with pytest.raises(SpikefaError, match="not a spikefa checkpoint"):
        load_checkpoint(tmp_path / "foreign.npz")


def test_spec_refuses_bad_fields():
    with pytest.raises(SpikefaError, match="reading"):
        SpikingSpec(reading="both")
    with pytest.raises(SpikefaError, match="feedback"):
        SpikingSpec(feedback="magic")
    with pytest.raises(SpikefaError, match="time_constant"):
        SpikingSpec(reading="decay", time_constant=1.5)
    with pytest.raises(SpikefaError, match="eta_scale needs one factor"):
        SpikingSpec(eta_scale=(1.0, 2.0))
    with pytest.raises(SpikefaError, match="eta_scale must be lists of numbers"):
        SpikingSpec(eta_scale=("fast",) * 4)


@pytest.mark.parametrize(
    "body, words",
    [
        ("raise ModuleNotFoundError('no brian2cuda')", "pip install brian2cuda"),
        ("raise ValueError('x not in list')", "does not work with brian2"),
    ],
)
def test_cuda_standalone_without_a_working_brian2cuda_is_one_clear_error(
    tmp_path, monkeypatch, body, words
):
    """brian2cuda missing, or installed for another Brian2 release (it pins one exactly)."""
    (tmp_path / "brian2cuda").mkdir()
    (tmp_path / "brian2cuda" / "__init__.py").write_text(body + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "brian2cuda", raising=False)
    spec = SpikingSpec(sizes=(4, 3, 2), steps_per_image=2)
    with pytest.raises(SpikefaError, match=words):
        BrianNetwork(spec, 1, "cuda_standalone")


def _looks_drawn(B, beta):
    return np.abs(B).max() <= beta and abs(B.std() - beta / np.sqrt(3)) < 0.25 * beta


@pytest.mark.parametrize("engine", ["brian2", "fast"])
def test_shuffled_feedback_is_drawn_afresh_at_every_step(engine):
    """The control: B comes from U[−β, β] like FA's draw, but a new one every step, in both engines;
    the modulator of hidden layer 1 is then δ_2 times that step's B."""
    spec = small_spec(feedback="shuffled", feedback_scale=0.3, sizes=(12, 40, 30, 3))
    images, labels, uniforms = inputs(spec, 2)
    state = initial_state(spec)
    if engine == "brian2":
        net = BrianNetwork(spec, 1, "numpy", noise=True, trace_neurons=all_neurons(spec))
        after_one, _ = net.run(
            state, images[:1], labels[:1], uniforms={l: u[:5] for l, u in uniforms.items()}
        )
        after_two, _ = net.run(
            after_one, images[1:], labels[1:], uniforms={l: u[5:] for l, u in uniforms.items()}
        )
    else:
        from spikefa.spiking.noise import CounterNoise

        rng, st = CounterNoise(0), fast.batch_state(spec, state, 1)
        fast.run(spec, st, images[None, :1], labels[None, :1], rng=rng)
        after_one = {k: v.copy() for k, v in st.items()}
        _, steps = fast.run(spec, st, images[None, 1:], labels[None, 1:], rng=rng, record=True)
        after_two = st
        np.testing.assert_allclose(
            steps[-1].mod[1][0], steps[-1].delta[2][0] @ st["B1"], rtol=1e-10
        )
    for l in (1, 2):
        assert _looks_drawn(after_one[f"B{l}"], 0.3) and _looks_drawn(after_two[f"B{l}"], 0.3)
        assert not np.allclose(after_one[f"B{l}"], state[f"B{l}"])
        assert not np.allclose(after_two[f"B{l}"], after_one[f"B{l}"])
