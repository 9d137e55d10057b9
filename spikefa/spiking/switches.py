"""The switches towards biology of the spiking model: what each means as a config key, its default
(the spec's own field), the values the spec accepts, and the per-stream state each adds.

Every switch is a field of `spec.SpikingSpec`, off by default, where the model is the paper's."""

from __future__ import annotations

import numbers

from spikefa.spiking.modes import ERROR_CODINGS, FEEDBACK_MODES, MODES

# config keys of the spiking experiment whose defaults are the spec's own
SWITCHES = {
    "error_coding": "how the error travels down: `analog` (real numbers) or `spikes` (error units "
    "e⁺ and e⁻ fire at the error's positive and negative parts)",
    "modulator_time_constant": "error_coding `spikes`: time constant of each hidden unit's filter "
    "of the error spikes, in steps",
    "forward_delay": "steps a spike takes along a forward synapse (0 … steps_per_image)",
    "feedback_delay": "steps the error takes along a feedback synapse (0 … steps_per_image)",
    "refractory_steps": "a hidden unit cannot fire for this many steps after a spike (0: it may fire "
    "at every step)",
    "dale": "Dale's law, e.g. `{excitatory = 0.8}`: each unit is excitatory or inhibitory (this "
    "fraction excitatory) and its outgoing weights keep their sign; `feedback = true` also B; "
    '`keep = "reflect"` reflects a weight pushed across zero instead of stopping it there '
    "(empty: off)",
}


def switch_defaults() -> dict:
    """The biology switches and their defaults (off), as config keys take them.

    Returns
    -------
    dict
        {config key: default}.
    """
    from spikefa.spiking.spec import SpikingSpec

    return {k: SpikingSpec().to_dict()[k] for k in SWITCHES}


def switch_problems(spec) -> list[str]:
    """What is wrong with the switches of `spec`: their ranges, and the modes they can run with."""
    problems = [
        f"{k} must be in 0..steps_per_image ({spec.steps_per_image}), got {getattr(spec, k)}"
        for k in ("forward_delay", "feedback_delay")
        if not 0 <= getattr(spec, k) <= spec.steps_per_image
    ]
    # membership in the names' tuples: a checkpoint's field may hold any JSON value, even a list
    mode = MODES[spec.feedback] if spec.feedback in FEEDBACK_MODES else None
    b_changes = mode is not None and (mode.transport or mode.redraw)
    if spec.error_coding not in ERROR_CODINGS:
        problems.append(
            f"error_coding must be one of {', '.join(ERROR_CODINGS)}, got {spec.error_coding!r}"
        )
    elif spec.coding.spikes and b_changes:
        problems.append(
            f"error_coding 'spikes' needs fixed feedback weights (the e⁺ and e⁻ synapses hold "
            f"the same B), but feedback {spec.feedback} changes B at every step"
        )
    if spec.feedback_delay and mode is not None and mode.transport:
        problems.append(
            "feedback_delay needs feedback weights of their own: bp's B learns from the δ "
            "of the layer above as it is now, while its feedback synapses see it late"
        )
    if not 0 < spec.modulator_time_constant:
        problems.append(
            f"modulator_time_constant must be positive (steps), got {spec.modulator_time_constant}"
        )
    if spec.refractory_steps < 0:
        problems.append(f"refractory_steps must be at least 0, got {spec.refractory_steps}")
    return problems + _dale_problems(spec.dale, spec.feedback, b_changes)


def _dale_problems(d, feedback: str, b_changes: bool) -> list[str]:
    if not isinstance(d, dict) or not d:
        return [] if isinstance(d, dict) else [f"dale must be a table, got {d!r}"]
    f, fb = d.get("excitatory"), d.get("feedback", False)
    fraction = isinstance(f, numbers.Real) and not isinstance(f, bool) and 0 <= f <= 1
    if set(d) - {"excitatory", "feedback", "keep"} or not fraction:
        return [f"dale takes excitatory (a fraction in [0, 1]), feedback and keep, got {d}"]
    if d.get("keep", "clip") not in ("clip", "reflect"):
        return [f'dale.keep must be "clip" or "reflect", got {d["keep"]!r}']
    if not isinstance(fb, bool):
        return [f"dale.feedback must be true or false, got {fb!r}"]
    if fb and b_changes:
        return [f"dale.feedback needs fixed feedback weights; {feedback}'s B changes"]
    return []


def switch_shapes(spec) -> dict[str, tuple[int, ...]]:
    """The one-stream state the switches add: spiking modulators m, delay lines fq and bq
    (slot-major: the n values of 1, 2, … D steps ago; spikes: e⁺'s D slots, then e⁻'s), refractory
    countdowns refr, and the eligibility traces of a user rule (per unit where the rule factorises,
    else per synapse)."""
    sizes, L, shapes = spec.sizes, spec.n_layers, {}
    if spec.coding.spikes:
        shapes |= {f"m{l}": (sizes[l],) for l in range(1, L)}
    if spec.forward_delay:
        shapes |= {f"fq{l}": (spec.forward_delay * sizes[l],) for l in range(L)}
    if spec.feedback_delay:
        lines = 2 if spec.coding.spikes else 1
        shapes |= {
            f"bq{s}": (lines * spec.feedback_delay * sizes[s],) for s in spec.feedback_sources
        }
    if spec.refractory_steps:
        shapes |= {f"refr{l}": (sizes[l],) for l in range(1, L)}
    if spec.plasticity:
        from spikefa.spiking.codegen import trace_shapes

        shapes |= trace_shapes(spec)
    return shapes
