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

Biology switches (spec fields, off by default) add terms: `refractory_steps` a refractory
countdown of every hidden unit (`REFRACTORY…`), `dale` a sign per presynaptic unit that its weights
keep (`DALE…`). `layer`, `threshold` and `on_spike` assemble a layer's strings under a spec.
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
mod : 1                        # modulatory signal, summed from the feedback synapses
delta : 1                      # δ = σ'(u) · mod
eta = eta_max * plastic(t) : 1 (shared)  # this step's learning rate (plastic(t): see BIAS_PLASTICITY)
eta_max : 1 (shared)           # learning rate of this layer's weights and bias (0: no learning)
"""
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
DALE = "w = ei_pre * clip(ei_pre * w, 0, inf)"


def layer(kind: str, spec) -> str:
    """The model equations of a layer kind (input, hidden, output) under the spec's switches."""
    text = {"input": INPUT, "hidden": HIDDEN, "output": OUTPUT}[kind]
    if spec.dale and kind != "output":
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
    """The reset statements of a layer's spiking units."""
    if spec.refractory_steps and kind == "hidden":
        return TRACE_ON_SPIKE + "\n" + REFRACTORY_RESET
    return TRACE_ON_SPIKE


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
    feedback synapse runs the forward rule with pre and post swapped and B for w (an unsuffixed name,
    which Brian2 reads from the postsynaptic group, becomes a presynaptic one)."""

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
