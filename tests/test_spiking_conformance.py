"""Conformance of the two engines: the same pre-drawn uniforms into the Brian2 network (numpy runtime
device) and the batched engine, compared step by step — PSPs, modulators, δs, output rates and
spikes at every step, weights, biases, feedback weights, traces and delay lines after every image —
for every feedback mode, both readings of the time constant, weight decay, the plasticity gate,
user rules, float64 and float32, and a batch of streams against the same streams run one by one;
the switches towards biology in `test_spiking_conformance_switches.py`, with the helpers here.

Tolerances: float64 agrees to rtol 1e-8 (the engines sum the same terms in another order); float32
to rtol 2e-4, atol 2e-5 (single-precision rounding over a few dozen steps). Spikes agree exactly.
"""

import dataclasses

import numpy as np
import pytest

from spikefa.errors import SpikefaError
from spikefa.spiking import codegen, equations, fast
from spikefa.spiking.brian import BrianNetwork
from spikefa.spiking.codegen import eligibility
from spikefa.spiking.spec import SpikingSpec, initial_state, is_stream_var
from spikefa.spiking.training import FastRunner

SIZES = (12, 9, 7, 3)
TOL = {"float64": dict(rtol=1e-8, atol=1e-11), "float32": dict(rtol=2e-4, atol=2e-5)}

NO_SIGMA_PRIME = "w += eta_post * mod_post * p_pre"
SIGN_FEEDBACK = "mod_post = sign(B) * delta_pre : 1 (summed)"
PSP_GATED = "w += eta_post * delta_post * p_pre * int(u_post > 0)"
WEIGHT_DEPENDENT = "w += eta_post * delta_post * p_pre * (1 - w**2)"
DISTRIBUTES = "w += eta_post * (delta_post + 0.5 * mod_post) * (p_pre - 0.1 * w)"
SHIFTED_FEEDBACK = "mod_post = (B + 0.1) * delta_pre * (1 - tanh(u_post)**2) : 1 (summed)"


def spec_(**kw):
    base = dict(sizes=SIZES, reading="tau", steps_per_image=3, eta=0.05, dtype="float64", seed=2)
    return SpikingSpec(**{**base, **kw})


def draws(spec, n_img, batch=1, seed=1):
    rng = np.random.default_rng(seed)
    images = rng.random((batch, n_img, spec.sizes[0])).astype(spec.dtype)
    labels = rng.integers(0, spec.sizes[-1], (batch, n_img))
    uniforms = [
        rng.random((batch, n_img * spec.steps_per_image, n)).astype(spec.dtype)
        for _, n in spec.spiking_groups()
    ]
    return images, labels, uniforms


def close(got, want, tol, what):
    np.testing.assert_allclose(np.asarray(got, float), np.asarray(want, float), err_msg=what, **tol)


def brian_by_image(spec, state, images, labels, uniforms):
    """One stream through Brian2, image by image: the state after each image and every step's recording."""
    L, T = spec.n_layers, spec.steps_per_image
    net = BrianNetwork(
        spec,
        1,
        "numpy",
        noise=True,
        record_spikes=True,
        trace_neurons={l: list(range(spec.sizes[l])) for l in range(1, L)},
    )
    states, steps = [], []
    for k in range(len(images)):
        state, rec = net.run(
            state,
            images[k : k + 1],
            labels[k : k + 1],
            uniforms={l: u[k * T : (k + 1) * T] for l, u in enumerate(uniforms)},
        )
        states.append(state)
        for t in range(T):
            spikes = [np.zeros(n) for _, n in spec.spiking_groups()]
            for k, (when, which) in rec.spikes.items():
                spikes[k][which[when == t]] = 1
            steps.append(
                {
                    "y": rec.y[t],
                    "delta_out": rec.error[t],
                    "spikes": spikes,
                    **{
                        f"{key}{l}": rec.traces[l][key][:, t]
                        for l in range(1, L)
                        for key in ("u", "mod", "delta")
                    },
                }
            )
    return states, steps


def fast_by_image(spec, state, images, labels, uniforms):
    """The same stream (batch of 1) through the batched engine, image by image."""
    T, st = spec.steps_per_image, fast.batch_state(spec, state, 1)
    states, records = [], []
    for k in range(images.shape[1]):
        _, rec = fast.run(
            spec,
            st,
            images[:, k : k + 1],
            labels[:, k : k + 1],
            record=True,
            uniforms=[u[:, k * T : (k + 1) * T] for u in uniforms],
        )
        states.append({key: np.array(v) for key, v in st.items()})
        records += rec
    return states, records


def traces_of(spec):
    """(weight layer, name) of every eligibility trace of the spec's rule."""
    names = [n for n, _ in eligibility.split_rule(spec.plasticity)[0]]
    return [(l, n) for l in range(1, spec.n_layers + 1) for n in names]


def assert_conform(spec, n_img=5, state=None):
    L = spec.n_layers
    tol = TOL[spec.dtype]
    state = initial_state(spec) if state is None else state
    images, labels, uniforms = draws(spec, n_img)
    ref_states, ref_steps = brian_by_image(
        spec, state, images[0], labels[0], [u[0] for u in uniforms]
    )
    states, records = fast_by_image(spec, state, images, labels, uniforms)
    groups = [name for name, _ in spec.spiking_groups()]
    for k, (ref, rec) in enumerate(zip(ref_steps, records)):
        for g, name in enumerate(groups):
            np.testing.assert_array_equal(
                rec.spikes[g][0], ref["spikes"][g], err_msg=f"spikes of {name}, step {k}"
            )
        close(rec.y[0], ref["y"], tol, f"output rates, step {k}")
        close(rec.delta[L][0], ref["delta_out"], tol, f"output error, step {k}")
        for l in range(1, L):
            for key in ("u", "mod", "delta"):
                close(
                    getattr(rec, key)[l][0], ref[f"{key}{l}"], tol, f"{key} of layer {l}, step {k}"
                )
    for k, (ref, mine) in enumerate(zip(ref_states, states)):
        for key in ref:
            if not key.startswith("trace_"):
                close(mine[key].reshape(ref[key].shape), ref[key], tol, f"{key} after image {k}")
        one = {key: v[0] for key, v in mine.items() if key.startswith("trace_")}
        for l, name in traces_of(spec):  # the engines may split a trace into other per-unit parts
            shape = ref[f"w{l}"].shape
            got = eligibility.per_synapse(one, name, l, shape)
            close(got, eligibility.per_synapse(ref, name, l, shape), tol, f"{name}, {l}, image {k}")
    changed = np.abs(ref_states[-1]["w1"] - state["w1"]).max()
    assert changed > (1e-6 if spec.eta else -1), "the weights must have learned"
    if spec.feedback == "bp":
        for l in range(1, L):
            np.testing.assert_array_equal(ref_states[-1][f"B{l}"], ref_states[-1][f"w{l + 1}"].T)
    return state, states, records


@pytest.mark.parametrize("reading", ["tau", "decay"])
@pytest.mark.parametrize("mode", ["fa", "sparse_fa", "dfa", "bp"])
def test_conformance_feedback_modes_and_readings(mode, reading):
    assert_conform(spec_(feedback=mode, reading=reading))


@pytest.mark.parametrize(
    "mode, reading", [("fa", "tau"), ("dfa", "decay"), ("bp", "tau"), ("sparse_fa", "decay")]
)
def test_conformance_weight_decay(mode, reading):
    assert_conform(spec_(feedback=mode, reading=reading, weight_decay=0.5))


@pytest.mark.parametrize("mode, delay", [("fa", 1), ("bp", 2), ("dfa", 2)])
def test_conformance_plasticity_gate(mode, delay):
    assert_conform(spec_(feedback=mode, plasticity_delay=delay, eta_scale=(1.0, 0.5, 2.0)))


@pytest.mark.parametrize(
    "mode, plasticity, feedback",
    [
        ("fa", NO_SIGMA_PRIME, ""),
        ("fa", "", SIGN_FEEDBACK),
        ("dfa", NO_SIGMA_PRIME, SIGN_FEEDBACK),
        ("fa", PSP_GATED, ""),
        ("fa", WEIGHT_DEPENDENT, ""),
        ("fa", DISTRIBUTES, ""),
        ("sparse_fa", "", SHIFTED_FEEDBACK),
        ("bp", WEIGHT_DEPENDENT, ""),
        ("bp", NO_SIGMA_PRIME, ""),
    ],
)
def test_conformance_user_rules(mode, plasticity, feedback):
    assert_conform(
        spec_(feedback=mode, plasticity=plasticity, feedback_rule=feedback, reading="decay")
    )


@pytest.mark.parametrize(
    "mode, reading, plasticity",
    [("fa", "tau", ""), ("dfa", "decay", ""), ("bp", "decay", ""), ("fa", "decay", NO_SIGMA_PRIME)],
)
def test_conformance_float32(mode, reading, plasticity):
    assert_conform(
        spec_(
            feedback=mode, reading=reading, plasticity=plasticity, dtype="float32", weight_decay=0.1
        )
    )


@pytest.mark.parametrize(
    "mode, plasticity, weight_decay",
    [
        ("fa", "", 0.0),
        ("sparse_fa", "", 0.0),
        ("dfa", "", 0.5),
        ("bp", "", 0.5),
        ("fa", DISTRIBUTES, 0.0),
    ],
)
def test_conformance_batch_is_streams_one_by_one(mode, plasticity, weight_decay):
    spec = spec_(feedback=mode, plasticity=plasticity, weight_decay=weight_decay, steps_per_image=1)
    assert_batch_conforms(spec, initial_state(spec))


def assert_batch_conforms(spec, state):
    """A batch of 3 streams, one step, against each stream alone in Brian2: per-stream PSPs, δs and
    spikes agree, and the batch's weight change is the sum of the streams' changes."""
    tol = TOL[spec.dtype]
    images, labels, uniforms = draws(spec, 1, batch=3)
    batch = fast.batch_state(spec, state, 3)
    _, (rec,) = fast.run(spec, batch, images, labels, uniforms=uniforms, record=True)
    summed = {k: np.zeros_like(v) for k, v in state.items() if not is_stream_var(k)}
    for b in range(3):
        ref_states, (ref,) = brian_by_image(
            spec, state, images[b], labels[b], [u[b] for u in uniforms]
        )
        for g in range(len(spec.spiking_groups())):
            np.testing.assert_array_equal(rec.spikes[g][b], ref["spikes"][g])
        for l in range(1, spec.n_layers):
            for key in ("u", "mod", "delta"):
                close(
                    getattr(rec, key)[l][b],
                    ref[f"{key}{l}"],
                    tol,
                    f"{key} of layer {l}, stream {b}",
                )
        for k in state:
            if is_stream_var(k):
                close(batch[k][b], ref_states[0][k], tol, f"{k}, stream {b}")
            else:
                summed[k] += ref_states[0][k] - state[k]
    for k in summed:
        close(np.asarray(batch[k]) - state[k], summed[k], tol, f"summed change of {k}")
    assert np.abs(summed["w1"]).max() > 0


@pytest.mark.parametrize(
    "name, text",
    [
        ("HIDDEN_DELTA", "delta = mod"),  # no σ′ factor
        ("SPIKE", "{noise} < 1 / (1 + exp(-2 * u))"),  # steeper spike probability
        ("OUTPUT_ERROR", "y = 1 / (1 + exp(-u))\ndelta = 2 * (ystar - y)\nmod = delta"),
        ("BIAS_PLASTICITY", "bias += 0.5 * eta * delta"),
        (
            "HIDDEN",
            equations.HIDDEN.replace("dp/dt = -p / tau", "dp/dt = -2 * p / tau"),
        ),  # faster trace
    ],
)
def test_conformance_one_term_swapped_changes_both_engines(monkeypatch, name, text):
    """Each term is written once: swap it in equations.py and both engines follow, identically."""
    spec = spec_(feedback="fa")
    images, labels, uniforms = draws(spec, 4)
    before, _ = fast_by_image(spec, initial_state(spec), images, labels, uniforms)
    monkeypatch.setattr(equations, name, text)
    codegen.clear_caches()
    try:
        assert_conform(spec, n_img=4)
        after, _ = fast_by_image(spec, initial_state(spec), images, labels, uniforms)
    finally:
        monkeypatch.undo()
        codegen.clear_caches()
    assert not np.allclose(after[-1]["w1"], before[-1]["w1"]) or not np.allclose(
        after[-1]["u1"], before[-1]["u1"]
    )


@pytest.mark.parametrize(
    "rule, words",
    [
        ("w += eta_post * sin(w * mod_post * p_pre)", "does not factorise"),
        ("w += eta_post * exp(delta_post * p_pre)", "mixes presynaptic and postsynaptic variables"),
        ("w += eta_post * delta_post * rand()", "rand()"),
        ("w += eta_post * delta_post * q_pre", "unknown name 'q_pre'"),
        (
            "w += eta_post * delta_post * u_pre",
            "unknown name 'u_pre'",
        ),  # the input layer has no PSP
        ("x = 1", "one statement that changes w"),
    ],
)
def test_conformance_refusals_are_one_line(rule, words):
    spec = spec_(plasticity=rule)
    with pytest.raises(SpikefaError, match=words.replace("(", r"\(").replace(")", r"\)")) as err:
        FastRunner(spec, 4)
    assert "\n" not in str(err.value)


def test_conformance_factorisable_rules_compile_to_few_products():
    """The default rule is one product per layer plus, with weight decay, a scaling of w."""
    model = codegen.compile_model(spec_(weight_decay=0.1))
    assert [len(model.plasticity[l]) for l in (1, 2, 3)] == [2, 2, 2]
    assert sum(p.scalar_sides for p in model.plasticity[1]) == 1
    assert (
        len(codegen.compile_model(spec_(plasticity=DISTRIBUTES)).plasticity[1]) == 2
    )  # p·(δ+½mod) and w·(δ+½mod)
    assert dataclasses.replace(spec_(), plasticity="") == spec_()
