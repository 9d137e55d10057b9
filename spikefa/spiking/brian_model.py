"""The Brian2 objects of the spiking network, built from `equations.py`, and their order in a step.

`BrianModel` makes the groups and synapses of a spec; `brian.BrianNetwork` runs them. Besides the
layers and their forward and feedback synapses there are, where the spec switches them on:

- error units (error_coding "spikes"): for each layer whose δ is sent down, two groups e⁺ and e⁻
  (`error_plus_<s>`, `error_minus_<s>`), each with its own feedback synapses to the layers below;
- delay lines (forward_delay, feedback_delay = D): a sending group keeps what it sent in the last D
  steps in a shift register q1 … qD, and its synapses act on the event "arrive" (a spike D steps
  old). Brian2's own synaptic `delay` would keep the spikes in flight in its spike queues, outside
  the state record, so a run in chunks, or one resumed from a checkpoint, would lose them. With
  analog error the feedback synapses read δ from a group of its own, `feedback_line_<s>`;
- refractory countdowns of the hidden layers (`every_step_<l>`), the signs of Dale's law (`ei` of
  the input and hidden layers; w is clipped to them after every change), and the eligibility traces
  of a user rule, per synapse.
"""

from __future__ import annotations

import itertools

import numpy as np

from spikefa.spiking import equations as eq
from spikefa.spiking.codegen import brian_rule, layer_variables
from spikefa.spiking.codegen.eligibility import kinds
from spikefa.spiking.dale import dale_keep, dale_signs


def spike_line(D: int) -> tuple[list[str], str, str]:
    """A group's spikes of the last D steps: (slots q1 … qD, their declarations, the shift that
    makes room for this step's spikes, which the group's reset stores in q1)."""
    slots = [f"q{k}" for k in range(1, D + 1)]
    return slots, _declare(slots), _shift(slots, "0")


def value_line(D: int) -> tuple[list[str], str, str]:
    """δ of the last D steps in a feedback line: the oldest slot is `delta`, what the feedback
    synapses read; the shift takes in this step's δ (`error`)."""
    slots = [f"q{k}" for k in range(1, D)] + ["delta"]
    return slots, _declare(slots[:-1]), _shift(slots, "error")


def _declare(slots) -> str:
    return "".join(f"\n{q} : 1" for q in slots)


def _shift(slots, new: str) -> str:
    moves = [f"{slots[k]} = {slots[k - 1]}" for k in range(len(slots) - 1, 0, -1)]
    return "\n".join([*moves, f"{slots[0]} = {new}"])


STORE = "q1 = 1"  # the reset of a group with a spike line: this step's spikes enter the line
ERROR_FIRE = {"threshold": eq.ERROR_SPIKE, "reset": ""}  # error units: no trace, not refractory


class BrianModel:
    """The objects of one network: `layers`, `forward[l]`, `feedback[l]` (a list: one synapse group
    per sending group), `errors[s]` (e⁺, e⁻), `lines` (feedback lines), `shifts` (group → the shift
    of its delay line) and `segments`: for each state entry that the switches add, the (group,
    variable) pairs that hold it, one per n values. Subclasses set `spec`, `noise`,
    `images_per_run`, `steps_per_run`, `trace_neurons`, `trace_pre` and `record_spikes` first."""

    def _build(self) -> None:
        import brian2 as b2

        spec = self.spec
        b2.prefs.core.default_float_dtype = np.dtype(spec.dtype).type
        b2.defaultclock.dt = 1 * b2.ms
        if not self.noise and not self.device.endswith("standalone"):
            b2.seed(spec.seed)
        ns = self._namespace(b2)
        self.segments, self.shifts = {}, {}
        self._layers(b2, ns)
        self._forward_synapses(b2, ns)
        self._error_units(b2, ns)
        self._feedback_synapses(b2, ns)
        self._neuron_updates()
        self._monitors(b2)
        self._schedule()
        self.net = b2.Network(
            self.layers,
            self.countdowns,
            *self.error_units,
            *self.lines.values(),
            self.forward[1:],
            *itertools.chain(*self.feedback[1:]),
            self.out_monitor,
            *self.trace_monitors.values(),
            *self.synapse_monitors.values(),
            *self.spike_monitors.values(),
        )

    def _namespace(self, b2) -> dict:
        """Constants and the TimedArrays of images, labels, the plasticity gate and the uniforms."""
        spec, n_img, dtype = self.spec, self.images_per_run, np.dtype(self.spec.dtype)
        T = spec.steps_per_image * b2.ms
        self.images = b2.TimedArray(np.zeros((n_img, spec.sizes[0]), dtype), dt=T, name="images")
        self.labels = b2.TimedArray(np.zeros(n_img, np.int32), dt=T, name="labels")
        gate = (np.arange(spec.steps_per_image) >= spec.plasticity_delay).astype(dtype)
        # the plasticity_delay gate (equations.py)
        self.plastic = b2.TimedArray(np.tile(gate, n_img), dt=b2.ms, name="plastic")
        ns = {
            "tau": spec.tau_steps * b2.ms,
            "decay": spec.decay,
            "weight_decay": spec.weight_decay,
            "feedback_scale": spec.feedback_scale,
            "refractory_steps": spec.refractory_steps,
            "tau_mod": spec.modulator_time_constant * b2.ms,
            "mod_decay": spec.modulator_decay,
            "images": self.images,
            "labels": self.labels,
            "plastic": self.plastic,
        }
        self.uniforms = {}
        for k, (_, n) in enumerate(spec.spiking_groups() if self.noise else ()):
            self.uniforms[k] = b2.TimedArray(
                np.zeros((self.steps_per_run, n), dtype), dt=b2.ms, name=f"uniforms_{k}"
            )
            ns[f"uniforms_{k}"] = self.uniforms[k]
        return ns

    def _noise(self, k: int) -> str:
        return f"uniforms_{k}(t, i)" if self.noise else "rand()"

    def _spiking_group(self, b2, k: int, equations: str, fire: dict, line, ns):
        """Spiking group k of `spec.spiking_groups()`; `fire`: its threshold, reset and (with a
        spike line) what its spikes do as they arrive. With a spike line of D slots, its reset also
        stores the spikes in the line, and the event "arrive" marks those of D steps ago."""
        name, n = self.spec.spiking_groups()[k]
        threshold = fire["threshold"].format(noise=self._noise(k))
        reset, extra = fire["reset"], {}
        if line:
            slots, declared, shift = line
            equations += declared
            reset = "\n".join(r for r in (STORE, reset) if r)
            extra = dict(events={"arrive": f"{slots[-1]} > 0.5"})
        group = b2.NeuronGroup(
            n,
            equations,
            threshold=threshold,
            reset=reset,
            method="exact",
            namespace=ns,
            name=name,
            **extra,
        )
        if line:
            if fire.get("arrival"):
                group.run_on_event("arrive", fire["arrival"])
            self.shifts[group] = group.run_regularly(shift, name=f"{name}_shift")
        return group

    def _layers(self, b2, ns) -> None:
        """Input, hidden and output layers under the spec's switches (`equations.layer`); with a
        forward delay each sending layer keeps a spike line, and its trace jumps as its spikes
        arrive at the synapses; with refractoriness a hidden layer counts down at every step."""
        spec, L = self.spec, self.spec.n_layers
        line = spike_line(spec.forward_delay) if spec.forward_delay else None
        self.layers, self.countdowns = [], []
        for l, kind in enumerate(kinds(spec)[:L]):
            fire = dict(
                threshold=eq.threshold(kind, spec),
                reset=eq.on_spike(kind, spec),
                arrival=eq.on_arrival(spec),
            )
            group = self._spiking_group(b2, l, eq.layer(kind, spec), fire, line, ns)
            self.layers.append(group)
            if eq.every_step(kind, spec):
                self.countdowns.append(
                    group.run_regularly(eq.every_step(kind, spec), name=f"every_step_{l}")
                )
                self.segments[f"refr{l}"] = [(group, "refr")]
            if line:
                self.segments[f"fq{l}"] = [(group, q) for q in line[0]]
            if spec.coding.spikes and l:
                self.segments[f"m{l}"] = [(group, "mod")]
        self.layers.append(
            b2.NeuronGroup(
                spec.sizes[L], eq.layer("output", spec), method="exact", namespace=ns, name="output"
            )
        )
        for group, signs in zip(self.layers[:L], dale_signs(spec) or ()):
            group.ei = signs
        self.spiking = list(self.layers[:L])

    def _forward_synapses(self, b2, ns) -> None:
        """Forward synapses with the plasticity rule (its eligibility traces, Dale's law)."""
        self.trace_decl, self.rule = brian_rule(self.spec)
        self.trace_names = [line.split(":")[0].strip() for line in self.trace_decl.splitlines()]
        self.rule += ("\n" + eq.DALE[dale_keep(self.spec)]) if self.spec.dale else ""
        self.forward, self.plasticity = [None], []
        event = "arrive" if self.spec.forward_delay else "spike"
        for l in range(1, self.spec.n_layers + 1):
            s = b2.Synapses(
                self.layers[l - 1],
                self.layers[l],
                eq.FORWARD + "\n" + self.trace_decl,
                on_pre=eq.FORWARD_ON_PRE,
                on_event=event,
                namespace=ns,
                name=f"forward_{l}",
            )
            s.connect()  # all-to-all: synapse k = i·n_post + j
            self.forward.append(s)
            self.plasticity.append(s.run_regularly(self.rule, name=f"plasticity_{l}"))

    def _error_units(self, b2, ns) -> None:
        """e⁺ and e⁻ of each layer whose δ is sent down (spikes), or with analog error and a
        feedback delay its feedback line; what the feedback synapses of each such layer read."""
        spec, D = self.spec, self.spec.feedback_delay
        self.errors, self.lines, k = {}, {}, spec.n_layers
        for s in spec.feedback_sources:
            if spec.coding.spikes:
                line = spike_line(D) if D else None
                self.errors[s] = []
                for sign in eq.ERROR_SIGNS.values():
                    g = self._spiking_group(b2, k, eq.layer("error", spec), ERROR_FIRE, line, ns)
                    g.error = b2.linked_var(self.layers[s], "delta")
                    g.delta = sign
                    self.errors[s].append(g)
                    k += 1
                self.spiking += self.errors[s]
                if line:
                    self.segments[f"bq{s}"] = [(g, q) for g in self.errors[s] for q in line[0]]
            elif D:
                slots, declared, shift = value_line(D)
                g = b2.NeuronGroup(
                    spec.sizes[s],
                    eq.layer("line", spec) + declared,
                    namespace=ns,
                    name=f"feedback_line_{s}",
                )
                g.error = b2.linked_var(self.layers[s], "delta")
                self.shifts[g] = g.run_regularly(shift, name=f"feedback_line_{s}_shift")
                self.lines[s] = g
                self.segments[f"bq{s}"] = [(g, q) for q in slots]

    def _senders(self, s: int) -> list:
        return self.errors.get(s) or [self.lines.get(s, self.layers[s])]

    def _feedback_synapses(self, b2, ns) -> None:
        """Feedback synapses into each hidden layer from every group that sends its source's
        error: a summed modulator (analog), or an increment of the modulator per error spike."""
        spec, L = self.spec, self.spec.n_layers
        self.feedback, self._fb_index, self.redraws = [None], [None], []
        rule = eq.feedback_rule(spec)
        event = "arrive" if spec.feedback_delay else "spike"
        for l in range(1, L):
            groups = []
            for k, src in enumerate(self._senders(spec.feedback_source(l))):
                name = f"feedback_{l}" + (f"_{k}" if spec.coding.spikes else "")
                kw = (
                    dict(on_pre=eq.feedback_on_spike(rule), on_event=event)
                    if spec.coding.spikes
                    else {}
                )
                fb_eqs = eq.FEEDBACK_WEIGHT + ("" if spec.coding.spikes else "\n" + rule)
                if spec.mode.transport:  # B's mirror keeps the rule's traces too
                    fb_eqs += "\n" + self.trace_decl
                groups.append(
                    b2.Synapses(src, self.layers[l], fb_eqs, namespace=ns, name=name, **kw)
                )
            self.feedback.append(groups)
            if spec.mode.redraw:
                self.redraws.append(groups[0].run_regularly(eq.FEEDBACK_REDRAW, name=f"redraw_{l}"))
            if (
                spec.mode.transport
            ):  # the forward twin's postsynaptic layer is this one's presynaptic
                twin_post = layer_variables(kinds(spec)[l + 1], spec)[0]
                mirror = eq.mirror(self.rule, twin_post)
                self.plasticity.append(groups[0].run_regularly(mirror, name=f"mirror_{l}"))

    def _neuron_updates(self) -> None:
        L = self.spec.n_layers
        self.deltas = [None] + [
            self.layers[l].run_regularly(eq.HIDDEN_DELTA, name=f"delta_{l}") for l in range(1, L)
        ]
        self.output_error = self.layers[L].run_regularly(eq.OUTPUT_ERROR, name="output_error")
        self.plasticity += [
            self.layers[l].run_regularly(eq.BIAS_PLASTICITY, name=f"bias_plasticity_{l}")
            for l in range(1, L + 1)
        ]

    def _monitors(self, b2) -> None:
        L = self.spec.n_layers
        self.out_monitor = b2.StateMonitor(
            self.layers[L], ["y", "delta"], record=True, when="end", name="out_monitor"
        )
        self.trace_monitors = {
            l: b2.StateMonitor(
                self.layers[l],
                ["u", "mod", "delta"],
                record=n,
                when="end",
                name=f"trace_monitor_{l}",
            )
            for l, n in self.trace_neurons.items()
        }
        # the eligibility traces of the synapses from `trace_pre` onto each recorded unit
        self.synapse_monitors = {
            l: b2.StateMonitor(
                self.forward[l],
                self.trace_names,
                record=[i * self.spec.sizes[l] + j for j in n for i in self.trace_pre],
                when="end",
                name=f"synapse_monitor_{l}",
            )
            for l, n in self.trace_neurons.items()
            if self.trace_pre and self.trace_names
        }
        self.spike_monitors = (
            {k: b2.SpikeMonitor(g, name=f"spike_monitor_{k}") for k, g in enumerate(self.spiking)}
            if self.record_spikes
            else {}
        )

    def _schedule(self) -> None:
        """The order of operations within one step, set explicitly on every object."""
        L, order = self.spec.n_layers, itertools.count()

        def place(*objs):
            for obj in objs:
                obj.when, obj.order = "groups", next(order)

        def fire(group):  # its spikes; with a line, also the arrival of those of D steps ago
            place(group.thresholder["spike"])
            if group in self.shifts:
                place(group.thresholder["arrive"])

        # 1. every PSP, trace and spiking modulator decays by one step (exact integration);
        #    refractory countdowns count down
        place(*(g.state_updater for g in [*self.layers, *self.error_units, *self.lines.values()]))
        place(*self.countdowns)
        # 2. forward sweep, bottom-up: layer l−1 spikes, its trace jumps (as its spikes arrive at
        #    the synapses), the spikes that arrive enter layer l's PSP, its line takes in the new
        for l in range(L):
            layer = self.layers[l]
            fire(layer)
            if layer in self.shifts:
                place(layer.resetter["arrive"], self.forward[l + 1].pre, self.shifts[layer])
                place(layer.resetter["spike"])
            else:
                place(layer.resetter["spike"], self.forward[l + 1].pre)
        # 3. output error, then δ travels down the feedback synapses (all within this step); the
        #    error units of a layer fire once its δ is known; the feedback lines take in the new
        place(self.output_error, *self.redraws)
        for g in self.errors.get(L, ()):
            fire(g)
        for l in reversed(range(1, L)):
            for f in self.feedback[l]:
                place(f.pre if self.spec.coding.spikes else f.summed_updaters["mod_post"])
            place(self.deltas[l])
            for g in self.errors.get(l, ()):
                fire(g)
        for g in self.lines.values():
            place(self.shifts[g])
        for g in self.error_units:
            if g in self.shifts:
                place(self.shifts[g], g.resetter["spike"])
        # 4. three-factor plasticity of every forward synapse and bias (and B's mirror in bp mode)
        place(*self.plasticity)

    @property
    def error_units(self) -> list:
        """Every group of error units, in the order of `spec.spiking_groups()`."""
        return self.spiking[self.spec.n_layers :]
