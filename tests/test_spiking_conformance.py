"""Conformance of the two engines: the same pre-drawn uniforms into the Brian2 network (numpy runtime
device) and the batched engine, compared step by step — PSPs, modulators, δs, output rates and
spikes at every step, weights, biases, feedback weights, traces and delay lines after every image —
for every feedback mode, both readings of the time constant, weight decay, the plasticity gate,
user rules, float64 and float32, the spiking error pathway and transmission delays, and a batch of
streams against the same streams run one by one.

Tolerances: float64 agrees to rtol 1e-8 (the engines sum the same terms in another order); float32
to rtol 2e-4, atol 2e-5 (single-precision rounding over a few dozen steps). Spikes agree exactly.
"""

import dataclasses

import numpy as np
import pytest

from spikefa.errors import SpikefaError
from spikefa.spiking import codegen, equations, fast
from spikefa.spiking.brian import BrianNetwork
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


def busy_state(spec, seed=3):
    """A state in mid-run: PSPs, traces, modulators and delay lines (spikes in flight) at random."""
    rng = np.random.default_rng(seed)
    state = initial_state(spec)
    for k, v in state.items():
        if is_stream_var(k):
            binary = k.startswith("fq") or (k.startswith("bq") and spec.coding.spikes)
            drawn = rng.random(v.shape) < 0.3 if binary else rng.normal(0, 0.5, v.shape)
            state[k] = drawn.astype(v.dtype)
    return state


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
            close(mine[key].reshape(ref[key].shape), ref[key], tol, f"{key} after image {k}")
    changed = np.abs(ref_states[-1]["w1"] - state["w1"]).max()
    assert changed > (1e-6 if spec.eta else -1), "the weights must have learned"
    if spec.feedback == "bp":
        for l in range(1, L):
            np.testing.assert_array_equal(ref_states[-1][f"B{l}"], ref_states[-1][f"w{l + 1}"].T)


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


# ------------------------------------------------------------------ the spiking error pathway
@pytest.mark.parametrize(
    "mode, switches",
    [
        ("fa", {}),
        ("dfa", dict(modulator_time_constant=0.5)),
        ("sparse_fa", dict(reading="decay", weight_decay=0.5)),
        ("fa", dict(dtype="float32", eta_scale=(1.0, 0.5, 2.0), plasticity_delay=1)),
    ],
)
def test_conformance_spikes(mode, switches):
    assert_conform(spec_(feedback=mode, error_coding="spikes", **switches))


def test_conformance_spikes_error_units_fire_at_the_parts_of_the_error():
    """e⁺ fires only where the error is positive, e⁻ only where it is negative, at the rates of
    those parts; without delays the top modulator is then d_m·(its last value) + (1 − d_m)·B(e⁺ − e⁻)."""
    spec = spec_(error_coding="spikes", steps_per_image=40)
    images, labels, uniforms = draws(spec, 5, batch=4)
    state = fast.batch_state(spec, initial_state(spec), 4)
    _, records = fast.run(spec, state, images, labels, uniforms=uniforms, record=True)
    L, top = spec.n_layers, spec.n_layers - 1
    plus, minus = (len(spec.spiking_groups()) - 2, len(spec.spiking_groups()) - 1)
    error = np.array([r.delta[L] for r in records])
    fired = {k: np.array([r.spikes[k] for r in records]) for k in (plus, minus)}
    assert fired[plus].any() and fired[minus].any()
    assert not (fired[plus].astype(bool) & (error <= 0)).any()
    assert not (fired[minus].astype(bool) & (error >= 0)).any()
    drive = np.clip(np.abs(error), 0, 1)  # uniforms below the part of the error fire
    u = [uniforms[k].transpose(1, 0, 2) for k in (plus, minus)]
    np.testing.assert_array_equal(fired[plus], (u[0] < error) & (error > 0))
    np.testing.assert_array_equal(fired[minus], (u[1] < -error) & (error < 0))
    assert 0.5 < fired[plus].sum() / drive[error > 0].sum() < 1.5
    d, B = spec.modulator_decay, initial_state(spec)[f"B{top}"]
    for before, now, k in zip(records, records[1:], range(1, len(records))):
        sent = fired[plus][k] - fired[minus][k]
        close(now.mod[top], d * before.mod[top] + (1 - d) * sent @ B, TOL["float64"], "modulator")


# ------------------------------------------------------------------ transmission delays
@pytest.mark.parametrize(
    "mode, switches",
    [
        ("fa", dict(forward_delay=2)),
        ("bp", dict(forward_delay=3, weight_decay=0.5)),
        ("dfa", dict(feedback_delay=1)),
        ("fa", dict(feedback_delay=3, reading="decay")),
        ("sparse_fa", dict(forward_delay=1, feedback_delay=2, plasticity_delay=1)),
    ],
)
def test_conformance_delay(mode, switches):
    assert_conform(spec_(feedback=mode, **switches))


@pytest.mark.parametrize(
    "mode, switches",
    [
        ("fa", dict(forward_delay=2, feedback_delay=3)),
        ("dfa", dict(error_coding="spikes", forward_delay=1, feedback_delay=1)),
    ],
)
def test_conformance_delay_with_spikes_in_flight(mode, switches):
    """Start in mid-run, with spikes and δs already in the delay lines: the state record carries them."""
    spec = spec_(feedback=mode, **switches)
    assert_conform(spec, n_img=3, state=busy_state(spec))


def test_conformance_delay_offsets_the_pathways_in_time():
    """From rest, a PSP moves only once the first spikes below have arrived, D steps late, and the
    top modulator is B applied to the output error of D steps before (learning off)."""
    D = 2
    spec = spec_(forward_delay=D, feedback_delay=D, steps_per_image=10)
    images, labels, uniforms = draws(spec, 2)
    state = fast.batch_state(spec, initial_state(spec), 1)
    _, records = fast.run(spec, state, images, labels, uniforms=uniforms, record=True, learn=False)
    L = spec.n_layers
    for l in range(1, L + 1):
        assert not any(r.u[l].any() for r in records[:D]) and records[D].u[l].any(), f"layer {l}"
    B = initial_state(spec)[f"B{L - 1}"]
    for k, r in enumerate(records):
        sent = records[k - D].delta[L] @ B if k >= D else np.zeros_like(r.mod[L - 1])
        close(r.mod[L - 1], sent, TOL["float64"], f"top modulator, step {k}")


@pytest.mark.parametrize(
    "switches",
    [dict(forward_delay=1, feedback_delay=1), dict(error_coding="spikes", feedback_delay=1)],
)
def test_conformance_delay_and_spikes_batch_is_streams_one_by_one(switches):
    spec = spec_(steps_per_image=1, **switches)
    assert_batch_conforms(spec, busy_state(spec))


def test_conformance_delay_lines_carry_over_from_run_to_run():
    """The batched engine run in one piece and image by image ends in the same state."""
    spec = spec_(error_coding="spikes", forward_delay=2, feedback_delay=2, steps_per_image=3)
    images, labels, uniforms = draws(spec, 4, batch=2)
    whole = fast.batch_state(spec, initial_state(spec), 2)
    fast.run(spec, whole, images, labels, uniforms=uniforms)
    pieces = fast.batch_state(spec, initial_state(spec), 2)
    for k in range(4):
        u = [a[:, 3 * k : 3 * k + 3] for a in uniforms]
        fast.run(spec, pieces, images[:, k : k + 1], labels[:, k : k + 1], uniforms=u)
    for key in whole:
        np.testing.assert_array_equal(pieces[key], whole[key], err_msg=key)
    assert whole["fq0"].any() and whole["bq3"].any()


# ------------------------------------------------------------------ switches together, user rules
@pytest.mark.parametrize(
    "mode, switches",
    [
        ("fa", dict(error_coding="spikes", feedback_delay=2, steps_per_image=5)),
        ("dfa", dict(error_coding="spikes", feedback_delay=2, forward_delay=3)),
        ("sparse_fa", dict(error_coding="spikes", forward_delay=1, feedback_delay=1)),
    ],
)
def test_conformance_spikes_with_delays(mode, switches):
    assert_conform(spec_(feedback=mode, **switches))


@pytest.mark.parametrize(
    "mode, switches, plasticity, feedback",
    [
        ("fa", dict(error_coding="spikes"), NO_SIGMA_PRIME, SHIFTED_FEEDBACK),
        ("dfa", dict(error_coding="spikes", feedback_delay=2), WEIGHT_DEPENDENT, SIGN_FEEDBACK),
        ("fa", dict(forward_delay=3, feedback_delay=3), PSP_GATED, SIGN_FEEDBACK),
        ("bp", dict(forward_delay=2), NO_SIGMA_PRIME, ""),
        ("sparse_fa", dict(error_coding="spikes", forward_delay=2), DISTRIBUTES, ""),
    ],
)
def test_conformance_spikes_and_delays_with_user_rules(mode, switches, plasticity, feedback):
    assert_conform(
        spec_(
            feedback=mode,
            plasticity=plasticity,
            feedback_rule=feedback,
            reading="decay",
            **switches,
        )
    )


@pytest.mark.parametrize(
    "switches, words",
    [
        (dict(forward_delay=4), "forward_delay must be in 0..steps_per_image (3), got 4"),
        (dict(feedback_delay=-1), "feedback_delay must be in 0..steps_per_image (3), got -1"),
        (dict(error_coding="bursts"), "error_coding must be one of analog, spikes"),
        (dict(error_coding="spikes", feedback="bp"), "needs fixed feedback weights"),
        (dict(error_coding="spikes", feedback="shuffled"), "needs fixed feedback weights"),
        (dict(feedback_delay=1, feedback="bp"), "feedback_delay needs feedback weights of their"),
        (dict(modulator_time_constant=0.0), "modulator_time_constant must be positive"),
        (dict(forward_delay=1.5), "forward_delay must be an int64 integer"),
    ],
)
def test_conformance_spikes_and_delay_refusals_are_one_line(switches, words):
    with pytest.raises(SpikefaError, match=words.replace("(", r"\(").replace(")", r"\)")) as err:
        spec_(**switches)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("engine", ["fast", "brian2"])
def test_conformance_spikes_refuse_a_rule_that_reads_the_sending_layer(engine):
    """Error spikes carry their sign alone: a feedback rule that reads the source's PSP is refused."""
    spec = spec_(error_coding="spikes", feedback_rule="mod_post = B * u_pre : 1 (summed)")
    images, labels, uniforms = draws(spec, 1)
    with pytest.raises(SpikefaError, match="u_pre") as err:
        if engine == "fast":
            FastRunner(spec, 4)
        else:
            net = BrianNetwork(spec, 1, "numpy", noise=True)
            net.run(initial_state(spec), images[0], labels[0], uniforms=[u[0] for u in uniforms])
    assert "\n" not in str(err.value)
