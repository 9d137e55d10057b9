"""The Brian2 equations of the spiking FA network, all in one place.

One step = one `dt`. `decay` = exp(−dt/τ) is the per-step decay of PSPs and traces; the exact
solution of du/dt = (bias − u)/τ over one step is u ← decay·u + (1 − decay)·bias, and each spike
arriving adds (1 − decay)·w, so that within a step (see `brian.SCHEDULE` for the order)

    u_l  = decay·u_l + (1 − decay)·(W_l s_{l−1} + bias_l)    PSP of layer l
    s_l  = [rand() < σ(u_l)]                                 stochastic binary units
    p_l  = decay·p_l + (1 − decay)·s_l                       presynaptic trace = ∂u/∂w
    e    = y* − σ(u_out)                                     output error (the output's δ)
    mod_l = Σ_k B_lk δ_k                                     modulatory signal via feedback synapses
    δ_l  = σ'(u_l)·mod_l                                     postsynaptic factor × modulator
    Δw   = η·(δ_post·p_pre − α·w),  Δbias = η·δ            three-factor plasticity (α: weight decay)

Switches of the spec (`switches`, off by default) change how the error travels (`error_coding`, the
delays):

    e⁺ = [r < δ_src],  e⁻ = [r < −δ_src]                    error units (error_coding = "spikes")
    mod_l = d_m·mod_l + (1 − d_m)·B_lᵀ(e⁺ − e⁻)              the modulator filters the error spikes
    s_{l−1}, δ_src, e± reach the synapses D steps late      forward_delay, feedback_delay = D

Both engines are built from these strings: Brian2 directly, the batched engine by compiling them
(`codegen`). Users may replace `PLASTICITY` (per forward synapse) or `FEEDBACK` (the summed
modulator) with their own strings — the spec's `plasticity` and `feedback_rule`, the config keys
`plasticity` and `feedback`. A rule reads any variable of its pre- and postsynaptic layers (`u`,
`p`, `mod`, `delta`, `bias`, `eta`; the output also has `y`, `ystar`; the input has `rate`, `p`)
with the suffix `_pre` or `_post`, the synapse's own `w` (or `B`) and the constants `decay`, `tau`,
`weight_decay`. The batched engine runs a rule whose terms each factorise into (postsynaptic) ×
(presynaptic) × f(w) — f(B) for feedback — and refuses others; a rule should scale with `eta_post`
so that evaluation and the plasticity gate (η = 0) switch it off. A user rule may also declare
eligibility traces, one line `dX/dt = (F - X) / (T * ms)` each (`codegen.eligibility`).

Two more switches add terms: `refractory_steps` a refractory countdown of every hidden unit
(`REFRACTORY…`), `dale` a sign per presynaptic unit that its weights keep (`DALE…`). `layer`,
`threshold`, `on_spike`, `on_arrival` and `every_step` assemble a group's strings under a spec.
"""

import re

# Input layer: unit i fires with probability = pixel i of the image on show, every step.
INPUT = """
rate = images(t, i) : 1   # pixel intensity of the image on show (TimedArray, one row per image)
dp/dt = -p / tau : 1      # presynaptic trace
"""

# Hidden layers: stochastic binary units, no fixed threshold, no refractory period (see REFRACTORY).
HIDDEN = """
du/dt = (bias - u) / tau : 1   # PSP, leaky integration (exact)
dp/dt = -p / tau : 1           # presynaptic trace of this unit's spikes
bias : 1
delta : 1                      # δ = σ'(u) · mod
eta = eta_max * plastic(t) : 1 (shared)  # this step's learning rate (plastic(t): see BIAS_PLASTICITY)
eta_max : 1 (shared)           # learning rate of this layer's weights and bias (0: no learning)
"""
# The hidden layers' modulatory signal: summed from the feedback synapses at every step (analog
# error), or a state of its own that filters the error spikes with time constant tau_mod (spikes).
MODULATOR = {
    "analog": "mod : 1  # modulatory signal, summed from the feedback synapses",
    "spikes": "dmod/dt = -mod / tau_mod : 1  # modulatory signal: the filtered error spikes",
}
SPIKE = "{noise} < 1 / (1 + exp(-u))"
INPUT_SPIKE = "{noise} < rate"
TRACE_ON_SPIKE = "p += 1 - decay"
HIDDEN_DELTA = """
sig = 1 / (1 + exp(-u))
delta = sig * (1 - sig) * mod
"""

# Output layer: rate units; their error is the output modulator.
OUTPUT = """
du/dt = (bias - u) / tau : 1
bias : 1
ystar = int(labels(t) == i) : 1   # one-hot target of the image on show
y : 1                             # output rate σ(u)
delta : 1                         # error e = y* − y
mod : 1                           # = delta: the output's modulator is its error (no σ′ factor)
eta = eta_max * plastic(t) : 1 (shared)
eta_max : 1 (shared)
"""
OUTPUT_ERROR = """
y = 1 / (1 + exp(-u))
delta = ystar - y
mod = delta
"""
BIAS_PLASTICITY = "bias += eta * delta"
# plastic(t), a TimedArray with one value per step: 1, or 0 in the first `plasticity_delay` steps of
# each image (an ablation: no learning while the PSPs still carry the previous image). The model
# itself learns at every step (plasticity_delay = 0).

# Forward synapses: spikes drive the PSP (event-driven, exact); weights learn every step.
FORWARD = "w : 1"
FORWARD_ON_PRE = "u_post += (1 - decay) * w"
PLASTICITY = (
    "w += eta_post * (delta_post * p_pre - weight_decay * w)"  # η is the postsynaptic group's
)

# Feedback synapses (separate groups, pre = the layer the error comes from): fixed weights B.
FEEDBACK = "mod_post = B * delta_pre : 1 (summed)"
FEEDBACK_WEIGHT = "B : 1"
# The shuffled-feedback control: every step, before δ travels down, each B is drawn afresh from the
# distribution of the fixed draw, U[−β, β]; the modulator then carries no consistent credit.
FEEDBACK_REDRAW = "B = feedback_scale * (2 * rand() - 1)"

# Spiking error (error_coding = "spikes"): each layer whose δ is sent down has two populations of
# error units, e⁺ and e⁻, that fire at rates [δ]⁺ and [−δ]⁺ (at every step where |δ| ≥ 1). A spike
# carries one unit of error of its population's sign, and each feedback synapse adds, per spike,
# (1 − mod_decay) times what its summed rule would add for that δ, so that the modulator's mean is
# the analog one. The summed rule (FEEDBACK or the user's) gives `effect`.
ERROR_UNITS = """
error : 1 (linked)             # δ of the layer these units signal
delta : 1 (constant)           # the error one spike carries: +1 (e⁺) or −1 (e⁻)
"""
ERROR_SIGNS = {"plus": 1.0, "minus": -1.0}
ERROR_SPIKE = "{noise} < delta * error"
FEEDBACK_ON_SPIKE = "mod_post += (1 - mod_decay) * ({effect})"
# A feedback delay of D steps with analog error: the feedback synapses read δ from a delay line, a
# group of its own between the layer and its feedback synapses (as the error units are).
FEEDBACK_LINE = """
error : 1 (linked)   # δ of the layer whose error travels down
delta : 1            # that δ as it was D steps ago: what reaches the feedback synapses
"""


def feedback_on_spike(rule: str) -> str:
    """FEEDBACK_ON_SPIKE for a summed feedback rule `mod_post = <effect> : 1 (summed)`."""
    from brian2 import Equations

    ((_, summed),) = Equations(rule).items()
    return FEEDBACK_ON_SPIKE.format(effect=summed.expr)


# Refractoriness (refractory_steps = r ≥ 1): a spike sets a hidden unit's countdown to r; it counts
# down by one at the start of every step and the unit may fire only while it is below zero, so the r
# steps after a spike pass in silence.
REFRACTORY = "refr : 1   # refractory countdown (steps)"
REFRACTORY_COUNTDOWN = "refr = clip(refr - 1, -1, refractory_steps)"
REFRACTORY_GATE = "refr < 0 and "
REFRACTORY_RESET = "refr = refractory_steps"

# Dale's law: every presynaptic unit has a sign ei (+1 excitatory, −1 inhibitory) that all its
# outgoing weights keep. After every change, a weight that crossed zero is set to zero (clipping:
# the projection of the step onto the weights of the right sign).
DALE_SIGN = "ei : 1 (constant)   # Dale's law: +1 excitatory, -1 inhibitory"
# how a weight that the rule pushes across zero keeps its unit's sign: stopped at zero (the
# projection onto the allowed weights), or reflected (w = ei·|v| with v learning by the chain rule)
DALE = {"clip": "w = ei_pre * clip(ei_pre * w, 0, inf)", "reflect": "w = ei_pre * abs(w)"}


def layer(kind: str, spec) -> str:
    """The Brian2 equations of a group under the spec's switches: a layer (input, hidden, output),
    the error units (error) or a feedback delay line (line). A hidden layer's modulator follows the
    error coding; under Dale's law the input and hidden units carry their sign; with
    `refractory_steps` the hidden units their countdown (error units are not refractory)."""
    text = {
        "input": INPUT,
        "hidden": HIDDEN + MODULATOR[spec.error_coding] + "\n",
        "output": OUTPUT,
        "error": ERROR_UNITS,
        "line": FEEDBACK_LINE,
    }[kind]
    if spec.dale and kind in ("input", "hidden"):
        text += DALE_SIGN + "\n"
    if spec.refractory_steps and kind == "hidden":
        text += REFRACTORY + "\n"
    return text


def threshold(kind: str, spec) -> str:
    """The spike condition of an input or hidden layer, with a `{noise}` field for the uniform."""
    if kind == "input":
        return INPUT_SPIKE
    return (REFRACTORY_GATE if spec.refractory_steps else "") + SPIKE


def on_spike(kind: str, spec) -> str:
    """The reset statements of a layer's units at their spikes: the trace's jump (with a forward
    delay it jumps as the spikes arrive, `on_arrival`) and the start of the refractory countdown."""
    resets = [] if spec.forward_delay else [TRACE_ON_SPIKE]
    if spec.refractory_steps and kind == "hidden":
        resets.append(REFRACTORY_RESET)
    return "\n".join(resets)


def on_arrival(spec) -> str:
    """The reset statements of a layer's spikes as they reach its synapses D steps late, with a
    forward delay ("": none)."""
    return TRACE_ON_SPIKE if spec.forward_delay else ""


def every_step(kind: str, spec) -> str:
    """Statements a layer runs at the start of every step, with the decay of its PSP ("": none)."""
    return REFRACTORY_COUNTDOWN if spec.refractory_steps and kind == "hidden" else ""


def plasticity_rule(spec) -> str:
    """The plasticity of every forward synapse: the spec's own rule, else `PLASTICITY`."""
    return spec.plasticity or PLASTICITY


def feedback_rule(spec) -> str:
    """The summed modulator of every feedback synapse: the spec's own rule, else `FEEDBACK`."""
    return spec.feedback_rule or FEEDBACK


def mirror(rule: str, post_names) -> str:
    """bp mode (weight transport): B learns exactly as its forward twin, so B stays equal to wᵀ. The
    feedback synapse runs the forward rule with pre and post swapped and B for w (an unsuffixed
    name, which Brian2 reads from the postsynaptic group, becomes a presynaptic one)."""

    def swap(m):
        name = m.group(0)
        if name == "w":
            return "B"
        if name.endswith("_pre"):
            return name[:-4] + "_post"
        if name.endswith("_post"):
            return name[:-5] + "_pre"
        return name + "_pre" if name in post_names else name

    return re.sub(r"\b[A-Za-z_]\w*\b", swap, rule)
