"""Conformance of the two engines under the switches towards biology (`spikefa.spiking.switches`):
refractoriness, Dale's law, eligibility traces, the spiking error pathway and transmission delays,
each alone, with other feedback modes and user rules, all together, from rest and in mid-run, and
the refusals; compared as in `test_spiking_conformance.py`, whose helpers these tests use.
"""

import numpy as np
import pytest
from test_spiking_conformance import (
    DISTRIBUTES,
    NO_SIGMA_PRIME,
    PSP_GATED,
    SHIFTED_FEEDBACK,
    SIGN_FEEDBACK,
    SIZES,
    TOL,
    WEIGHT_DEPENDENT,
    assert_batch_conforms,
    assert_conform,
    brian_by_image,
    close,
    draws,
    spec_,
    traces_of,
)

from spikefa.errors import SpikefaError
from spikefa.spiking import codegen, fast
from spikefa.spiking.brian import BrianNetwork
from spikefa.spiking.codegen import eligibility
from spikefa.spiking.dale import dale_signs
from spikefa.spiking.spec import initial_state, is_stream_var
from spikefa.spiking.training import FastRunner

# eligibility traces: a filtered presynaptic factor gated by the current modulator and slope (e-prop's
# form), a filtered postsynaptic factor, a filtered sum of both sides, two traces; and one whose
# factor multiplies both sides, which only Brian2 runs
ELIG_PRE = "delig/dt = (p_pre - elig) / (3 * ms)\nw += eta_post * delta_post * elig"
ELIG_POST = (
    "delig/dt = (mod_post * (1 - tanh(u_post)**2) - elig) / (4 * ms)\nw += eta_post * p_pre * elig"
)
ELIG_SUM = (
    "delig/dt = (p_pre + 0.5 * delta_post - elig) / (2 * ms)\nw += eta_post * mod_post * elig"
)
ELIG_TWO = (
    "da/dt = (p_pre - a) / (3 * ms); db/dt = (delta_post - b) / (5 * ms)\n"
    "w += eta_post * (delta_post * a + b * p_pre)"
)
ELIG_PRODUCT = "delig/dt = (p_pre * delta_post - elig) / (3 * ms)\nw += eta_post * mod_post * elig"


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


# ------------------------------------------------------------------------- biology switches
def spike_trains(records, L):
    """Spikes of layers 1 … L−1 of stream 0: one array steps × units per layer."""
    return {l: np.array([r.spikes[l][0] for r in records]) for l in range(1, L)}


@pytest.mark.parametrize(
    "mode, reading, r",
    [("fa", "tau", 1), ("dfa", "decay", 2), ("bp", "tau", 3), ("sparse_fa", "decay", 1)],
)
def test_conformance_refractory_steps(mode, reading, r):
    """Refractoriness in both engines; every hidden unit stays silent for r steps after a spike."""
    spec = spec_(feedback=mode, reading=reading, refractory_steps=r, init_scale=8.0)
    _, _, records = assert_conform(spec, n_img=6)
    gaps = []
    for s in spike_trains(records, spec.n_layers).values():
        for unit in s.T:
            gaps += list(np.diff(np.flatnonzero(unit)))
    assert min(gaps) == r + 1, "a spike r + 1 steps after the last is allowed, none sooner"


def test_conformance_refractory_off_is_the_model_without_it():
    """refractory_steps = 0 adds nothing: no countdown state, the same spikes as the plain model."""
    spec = spec_(refractory_steps=0)
    assert spec == spec_() and not any(k.startswith("refr") for k in initial_state(spec))
    _, _, records = assert_conform(spec_(refractory_steps=1), n_img=3)
    _, _, plain = assert_conform(spec, n_img=3)
    trains, plain_trains = spike_trains(records, 3), spike_trains(plain, 3)
    assert any(not np.array_equal(trains[l], plain_trains[l]) for l in trains)


@pytest.mark.parametrize(
    "mode, excitatory, feedback",
    [("fa", 0.8, False), ("dfa", 0.5, True), ("bp", 0.7, False), ("sparse_fa", 0.6, True)],
)
def test_conformance_dale(mode, excitatory, feedback):
    """Dale's law in both engines: every weight keeps the sign of its presynaptic unit while it
    learns (some reach zero), and B too where asked."""
    dale = {"excitatory": excitatory, "feedback": feedback}
    spec = spec_(feedback=mode, dale=dale, eta=0.5)
    state, states, _ = assert_conform(spec)
    signs = dale_signs(spec)
    for l in range(1, spec.n_layers + 1):
        assert (signs[l - 1] == 1).sum() == round(excitatory * spec.sizes[l - 1])
        for w in (state[f"w{l}"], states[-1][f"w{l}"]):
            assert np.all(w * signs[l - 1][:, None] >= 0)
    assert any(np.sum(states[-1][f"w{l}"] == 0) > np.sum(state[f"w{l}"] == 0) for l in (1, 2, 3))
    for l in range(1, spec.n_layers) if feedback else ():
        B = state[f"B{l}"] * signs[spec.feedback_source(l)][:, None]
        assert np.all(B >= 0)


@pytest.mark.parametrize("mode", ["fa", "bp"])
def test_conformance_dale_reflect(mode):
    """Dale's law kept by reflection in both engines: a weight pushed across zero comes back with
    its unit's sign instead of stopping at zero, so the weights keep their signs and part from
    the clipped ones."""
    dale = {"excitatory": 0.7, "keep": "reflect"}
    spec = spec_(feedback=mode, dale=dale, eta=0.5)
    state, states, _ = assert_conform(spec)
    _, clipped, _ = assert_conform(spec_(feedback=mode, dale={"excitatory": 0.7}, eta=0.5))
    signs = dale_signs(spec)
    for l in range(1, spec.n_layers + 1):
        assert np.all(states[-1][f"w{l}"] * signs[l - 1][:, None] >= 0)
    assert any(
        not np.array_equal(states[-1][f"w{l}"], clipped[-1][f"w{l}"]) for l in (1, 2, 3)
    ) and all(np.sum(states[-1][f"w{l}"] == 0) == np.sum(state[f"w{l}"] == 0) for l in (1, 2, 3))


@pytest.mark.parametrize(
    "mode, rule, delay",
    [("fa", ELIG_PRE, 0), ("dfa", ELIG_POST, 0), ("bp", ELIG_SUM, 0), ("sparse_fa", ELIG_TWO, 2)],
)
def test_conformance_elig_traces(mode, rule, delay):
    """A rule's eligibility traces: per synapse in Brian2, per unit in the batched engine, the same
    weights, and traces that carry over from image to image (also through the plasticity gate)."""
    spec = spec_(feedback=mode, plasticity=rule, plasticity_delay=delay)
    _, states, _ = assert_conform(spec)
    last = {k: v[0] for k, v in states[-1].items() if k.startswith("trace_")}
    for l, name in traces_of(spec):
        assert np.abs(eligibility.per_synapse(last, name, l, (SIZES[l - 1], SIZES[l]))).max() > 0
    assert len(codegen.compile_model(spec).plasticity[2]) <= 4  # matrix products, not per synapse


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
        ("fa", dict(dale={"excitatory": 0.8}, refractory_steps=1, plasticity=ELIG_SUM)),
        ("bp", dict(dale={"excitatory": 0.6}, refractory_steps=2, plasticity=ELIG_PRE)),
        ("dfa", dict(dale={"excitatory": 0.8, "feedback": True}, plasticity=ELIG_POST)),
        ("fa", dict(refractory_steps=1, plasticity=ELIG_TWO, feedback_rule=SIGN_FEEDBACK)),
    ],
)
def test_conformance_dale_refractory_elig_combined(mode, switches):
    assert_conform(spec_(feedback=mode, weight_decay=0.1, **switches))


@pytest.mark.parametrize("mode", ["fa", "dfa"])
def test_conformance_dale_refractory_elig_float32(mode):
    switches = dict(dale={"excitatory": 0.8}, refractory_steps=1, plasticity=ELIG_SUM)
    assert_conform(spec_(feedback=mode, dtype="float32", **switches))


def test_conformance_elig_product_runs_in_brian2_and_is_refused_in_one_line():
    """A trace of a pre × post product needs one value per synapse and stream: Brian2 keeps it per
    synapse, the batched engine refuses the rule in one line that names it."""
    spec = spec_(plasticity=ELIG_PRODUCT)
    with pytest.raises(SpikefaError, match="trace elig .* both change in time") as err:
        FastRunner(spec, 4)
    assert "\n" not in str(err.value) and repr(ELIG_PRODUCT) in str(err.value)
    state = initial_state(spec)
    assert state["trace_elig1"].shape == (SIZES[0] * SIZES[1],)
    images, labels, uniforms = draws(spec, 3)
    states, _ = brian_by_image(spec, state, images[0], labels[0], [u[0] for u in uniforms])
    E = states[-1]["trace_elig2"].reshape(SIZES[1], SIZES[2])
    assert np.linalg.matrix_rank(E) > 2  # not a sum of per-unit parts: it needs every synapse


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


# ------------------------------------------------------------------ every switch at once
@pytest.mark.parametrize(
    "mode, switches",
    [
        ("fa", dict(error_coding="spikes", forward_delay=1, feedback_delay=2, plasticity=ELIG_SUM)),
        (
            "dfa",
            dict(error_coding="spikes", forward_delay=2, refractory_steps=2, plasticity=ELIG_PRE),
        ),
        ("bp", dict(forward_delay=1, refractory_steps=1, plasticity=ELIG_POST)),
        ("fa", dict(feedback_delay=1, refractory_steps=1, plasticity=ELIG_TWO, dtype="float32")),
    ],
)
@pytest.mark.parametrize("dale", [{"excitatory": 0.8}, {"excitatory": 0.6, "feedback": True}])
def test_conformance_spikes_delays_dale_refractory_elig_together(mode, switches, dale):
    if mode == "bp" and dale.get("feedback"):
        dale = {"excitatory": 0.6}  # bp's B follows w, whose signs Dale's law keeps already
    # images long enough, and B strong enough, for error spikes to reach the first layer
    assert_conform(
        spec_(feedback=mode, dale=dale, steps_per_image=6, feedback_scale=2.0, **switches)
    )


def test_conformance_all_switches_in_mid_run():
    """Spikes in flight, countdowns running and traces charged at the start: the state record
    carries every switch's stream state."""
    spec = spec_(
        error_coding="spikes",
        forward_delay=1,
        feedback_delay=1,
        refractory_steps=2,
        dale={"excitatory": 0.8},
        plasticity=ELIG_SUM,
    )
    assert_conform(spec, n_img=3, state=busy_state(spec))
