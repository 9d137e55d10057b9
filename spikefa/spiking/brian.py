"""The Brian2 reference engine: the spiking FA network as NeuronGroups and Synapses.

Build once for a fixed number of images per run; every `run()` starts at t = 0 from the `state`
record it is given (weights, biases, PSPs, traces — see `spec.py`) and returns the state at the
end, so training proceeds in chunks that can be checkpointed, and the same compiled network serves
training (η > 0) and evaluation (η = 0). Its groups and synapses, and their order within a step,
are made by `brian_model.BrianModel`. Devices:

- "runtime": Brian2's runtime with Cython code generation; "numpy": runtime, NumPy code generation
  (no compiler start-up; handy for small networks and tests);
- "cpp_standalone": compiled once, re-run with new images, weights and state through `run_args`;
- "cuda_standalone": the same through brian2cuda, where it is installed and a GPU exists.

Random numbers: by default each unit draws `rand()`. With `noise=True` every stochastic group reads
pre-drawn uniforms from a TimedArray instead (`run(..., uniforms=...)`), which makes every spike
reproducible and lets the fast engine replay exactly the same run. Without `noise`, the runtime
devices are seeded once from `spec.seed`; standalone binaries draw a fresh seed for every run.
"""

from __future__ import annotations

import contextlib
import itertools
import tempfile
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from spikefa.errors import SpikefaError
from spikefa.spiking.brian_model import BrianModel
from spikefa.spiking.codegen import state_key, trace_shapes
from spikefa.spiking.codegen.eligibility import per_synapse, per_unit
from spikefa.spiking.spec import SpikingSpec, with_rules

DEVICES = ("runtime", "numpy", "cpp_standalone", "cuda_standalone")
STANDALONE = ("cpp_standalone", "cuda_standalone")


@dataclass
class Recording:
    """What one `run()` recorded. Times are step indices (multiply by dt = 1 ms for ms)."""

    y: np.ndarray  # output rates, steps × n_out
    error: np.ndarray  # output error e = y* − y, steps × n_out
    # layer → {"neurons", "u", "mod", "delta"} (neurons × steps) and, with `trace_pre`,
    # "eligibility": {trace name: (neurons · pre) × steps, neuron-major}
    traces: dict = field(default_factory=dict)
    # spiking group (index in spec.spiking_groups(): layers 0 … L−1, then error units) →
    # (step, neuron) arrays
    spikes: dict = field(default_factory=dict)


def _activate(device: str, directory: str | None, threads: int):
    import brian2

    # every object built here belongs to the network; Brian2 would still warn at exit about a
    # network that was built but never run
    brian2.BrianLogger.suppress_name("unused_brian_object")

    current = brian2.get_device()
    if device in STANDALONE:
        if device == "cuda_standalone":
            try:
                import brian2cuda  # noqa: F401
            except ModuleNotFoundError:
                raise SpikefaError(
                    "device cuda_standalone needs brian2cuda (pip install brian2cuda) and a GPU"
                ) from None
            except (
                Exception
            ) as exc:  # brian2cuda pins one Brian2 release (1.0a6: 2.7.1, 1.0b1: 2.10.1)
                raise SpikefaError(
                    f"brian2cuda does not work with brian2 {brian2.__version__} here "
                    f"({type(exc).__name__}: {exc}); it needs the Brian2 release it pins"
                ) from None
        if (
            getattr(current, "has_been_run", False)
            or getattr(current, "build_on_run", None) is False
        ):
            current.reinit()
        brian2.set_device(device, directory=directory, build_on_run=False)
        brian2.prefs.devices.cpp_standalone.openmp_threads = (
            threads if threads > 1 else 0
        )  # 0: no OpenMP
    else:
        if current.__class__.__name__ != "RuntimeDevice":
            current.reinit()
        brian2.set_device("runtime")
        brian2.prefs.codegen.target = "cython" if device == "runtime" else "numpy"


class BrianNetwork(BrianModel):
    """`plasticity`, `feedback` and `plasticity_delay`, when given, replace the spec's own rules and
    gate. `trace_neurons` ({layer: units}) records PSP, modulator and δ of those units; `trace_pre`
    also the eligibility traces of their synapses from these presynaptic units (a rule that
    declares traces)."""

    def __init__(
        self,
        spec: SpikingSpec,
        images_per_run: int,
        device: str = "runtime",
        *,
        noise: bool = False,
        trace_neurons: dict[int, list[int]] | None = None,
        record_spikes: bool = False,
        trace_pre: list[int] | None = None,
        plasticity: str | None = None,
        feedback: str | None = None,
        threads: int = 1,
        directory: str | None = None,
        profile: bool = False,
        plasticity_delay: int | None = None,
    ):
        if device not in DEVICES:
            raise SpikefaError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
        spec = with_rules(spec, plasticity, feedback, plasticity_delay)
        self.spec, self.device, self.images_per_run, self.noise = (
            spec,
            device,
            int(images_per_run),
            noise,
        )
        self.steps_per_run = self.images_per_run * spec.steps_per_image
        self.trace_neurons = {int(l): list(map(int, n)) for l, n in (trace_neurons or {}).items()}
        self.trace_pre = list(map(int, trace_pre or ()))
        self.record_spikes, self.profile = record_spikes, profile
        if directory is None:  # a private build folder, removed with this object
            self._tmp = tempfile.TemporaryDirectory(prefix="spikefa-brian2-")
            directory = self._tmp.name
        self.directory = directory
        self._built = False
        _activate(device, self.directory, threads)
        with self._user_rule_errors():
            self._build()

    @contextlib.contextmanager
    def _user_rule_errors(self):
        """Brian2's own error about a user's rule (the first cause of it), as one line."""
        try:
            yield
        except SpikefaError:
            raise
        except Exception as exc:
            if not (self.spec.plasticity or self.spec.feedback_rule):
                raise
            cause = exc  # Brian2 wraps the error in the object that met it
            while cause.__cause__ or cause.__context__:
                cause = cause.__cause__ or cause.__context__
            raise SpikefaError(
                f"Brian2 cannot run the rules plasticity={self.spec.plasticity!r} "
                f"feedback={self.spec.feedback_rule!r}: {' '.join(str(cause).split())[:300]}"
            ) from None

    # ---------------------------------------------------------------- running
    def _feedback_pairs(self, l: int, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Synapse index arrays of feedback group l: every nonzero entry of B (all of them unless
        sparse)."""
        src, dst = np.nonzero(B) if self.spec.mode.sparse else np.indices(B.shape).reshape(2, -1)
        return src.astype(np.int32), dst.astype(np.int32)

    def _values(self, state: dict, eta: float) -> dict:
        """Map each Brian2 variable to the value it must start this run with."""
        L, values = self.spec.n_layers, {}
        for l in range(1, L + 1):
            values[self.forward[l].w] = state[f"w{l}"].ravel()
            values[self.layers[l].bias] = state[f"bias{l}"]
            values[self.layers[l].u] = state[f"u{l}"]
            values[self.layers[l].eta_max] = self.spec.layer_eta(eta, l)
            values[self.layers[l - 1].p] = state[f"p{l - 1}"]
        for l in range(1, L):
            src, dst = self._fb_index[l]
            for f in self.feedback[l]:
                values[f.B] = state[f"B{l}"][src, dst]
        for key, segments in self.segments.items():
            n = len(segments[0][0])
            for k, (group, var) in enumerate(segments):
                values[getattr(group, var)] = state[key][k * n : (k + 1) * n]
        for l, name in itertools.product(range(1, L + 1), self.trace_names):
            E = per_synapse(state, name, l, state[f"w{l}"].shape)
            values[getattr(self.forward[l], name)] = E.ravel()
            if self.spec.mode.transport and l > 1:  # B's mirror keeps the transposed trace
                src, dst = self._fb_index[l - 1]
                values[getattr(self.feedback[l - 1][0], name)] = E.T[src, dst]
        return values

    def _first_build(self, state: dict) -> None:
        import brian2 as b2

        for l in range(1, self.spec.n_layers):
            self._fb_index.append(self._feedback_pairs(l, state[f"B{l}"]))
            for f in self.feedback[l]:
                f.connect(i=self._fb_index[l][0], j=self._fb_index[l][1])
        start = time.perf_counter()
        with self._user_rule_errors():
            if self.device in STANDALONE:
                self.net.run(self.steps_per_run * b2.ms, namespace={}, profile=self.profile)
                b2.get_device().build(run=False, directory=self.directory)
            else:
                self.net.store("start")
        self.build_seconds = (
            time.perf_counter() - start
        )  # code generation and compilation (standalone)
        self._built = True

    def run(
        self,
        state: dict,
        images: np.ndarray,
        labels: np.ndarray,
        learn: bool = True,
        uniforms: dict[int, np.ndarray] | None = None,
        eta: float | None = None,
    ) -> tuple[dict, Recording]:
        """Show `images` (n × n_in, pixels in [0,1]) in order; return the new state and the
        recording. `eta` overrides the spec's learning rate for this run (a schedule)."""
        import brian2 as b2

        n = len(images)
        if n != self.images_per_run and (self.device in STANDALONE or n > self.images_per_run):
            raise SpikefaError(
                f"this network was built for {self.images_per_run} images per run, got {n}"
            )
        if self.noise != (uniforms is not None):
            raise SpikefaError("pass uniforms exactly when the network was built with noise=True")
        if not self._built:
            self._first_build(state)
        dtype = np.dtype(self.spec.dtype)
        padded = np.zeros((self.images_per_run, self.spec.sizes[0]), dtype)
        padded[:n] = images
        lab = np.zeros(self.images_per_run, np.int32)
        lab[:n] = labels
        values = self._values(state, (self.spec.eta if eta is None else eta) if learn else 0.0)
        timed = {self.images: padded, self.labels: lab}
        for k, ta in self.uniforms.items():  # by spiking group (spec.spiking_groups())
            u = np.zeros(ta.values.shape, dtype)
            u[: n * self.spec.steps_per_image] = uniforms[k][: n * self.spec.steps_per_image]
            timed[ta] = u
        with warnings.catch_warnings():
            # Brian2 range-checks float32 values against 1e50, which NumPy reports as a cast
            # overflow
            warnings.filterwarnings("ignore", "overflow encountered in cast", RuntimeWarning)
            if self.device in STANDALONE:
                device = b2.get_device()
                device.run(directory=self.directory, run_args={**values, **timed})
                self.last_run_seconds = (
                    device._last_run_time
                )  # simulation only, as timed by the binary
                device.delete(
                    code=False, data=False, run_args=True, directory=False
                )  # this run's input files
            else:
                self.net.restore("start")
                for view, v in values.items():
                    view[:] = v
                for ta, v in timed.items():
                    ta.values[:] = v
                start = time.perf_counter()
                with self._user_rule_errors():  # the runtime devices generate code at the first run
                    self.net.run(
                        n * self.spec.steps_per_image * b2.ms, namespace={}, profile=self.profile
                    )
                self.last_run_seconds = time.perf_counter() - start
        return self._read_state(state), self._recording()

    def profile_fractions(self) -> dict[str, float]:
        """Share of the last run's time spent in each Brian2 object (built with profile=True)."""
        info = self.net.profiling_info
        total = sum(float(t) for _, t in info) or 1.0
        return {
            name: round(float(t) / total, 4) for name, t in sorted(info, key=lambda x: -float(x[1]))
        }

    def _read_state(self, old: dict) -> dict:
        # np.array copies: the runtime devices hand out views of arrays that the next run overwrites
        L, new = self.spec.n_layers, {}
        for l in range(1, L + 1):
            new[f"w{l}"] = np.array(self.forward[l].w[:]).reshape(old[f"w{l}"].shape)
            new[f"bias{l}"] = np.array(self.layers[l].bias[:])
            new[f"u{l}"] = np.array(self.layers[l].u[:])
            new[f"p{l - 1}"] = np.array(self.layers[l - 1].p[:])
        for l in range(1, L):
            B = old[f"B{l}"]
            if self.spec.mode.transport or self.spec.mode.redraw:  # B changed during the run
                B = np.zeros_like(B)
                src, dst = self._fb_index[l]
                B[src, dst] = self.feedback[l][0].B[:]
            new[f"B{l}"] = B
        for key, segments in self.segments.items():
            new[key] = np.concatenate([np.array(getattr(g, var)[:]) for g, var in segments])
        shapes = trace_shapes(self.spec) if self.trace_names else {}
        for l, name in itertools.product(range(1, L + 1), self.trace_names):
            E = np.array(getattr(self.forward[l], name)[:]).reshape(old[f"w{l}"].shape)
            new |= per_unit(E, name, l, state_key(name, "pre", l) in shapes)
        return new

    def _recording(self) -> Recording:
        rec = Recording(np.array(self.out_monitor.y[:]).T, np.array(self.out_monitor.delta[:]).T)
        for l, m in self.trace_monitors.items():
            rec.traces[l] = {
                "neurons": np.array(self.trace_neurons[l]),
                "u": np.array(m.u[:]),
                "mod": np.array(m.mod[:]),
                "delta": np.array(m.delta[:]),
            }
        for l, m in self.synapse_monitors.items():
            rec.traces[l]["eligibility"] = {x: np.array(getattr(m, x)[:]) for x in self.trace_names}
        for k, m in self.spike_monitors.items():
            rec.spikes[k] = (np.rint(np.array(m.t_[:]) * 1e3).astype(np.int64), np.array(m.i[:]))
        return rec
