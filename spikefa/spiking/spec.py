"""The spiking network of Fig. 4, defined once: its spec, its state, and checkpoints.

Both engines (the Brian2 reference in `brian.py` and the batched NumPy engine in `fast.py`) build
from a `SpikingSpec` and read and write the same `state` record: a dict of NumPy arrays

    w1..wL      forward weights, shape (n_pre, n_post)            (synapse k = i·n_post + j)
    bias1..L    biases of hidden and output layers
    B1..B{L-1}  feedback weights into hidden layer l, shape (n_source, n_l); the source is layer
                l+1 for fa/sparse_fa/bp, the output layer for dfa
    u1..uL      PSPs; p0..p{L-1} presynaptic traces (p0: input layer)
    m1..m{L-1}  modulators, a state of their own where the error travels as spikes
    fq0..       forward delay lines of the sending layers: their spikes of the last D steps
    bq{s}       feedback delay lines of each layer s whose δ is sent down: its δ (analog) or its
                e⁺ and e⁻ spikes, of the last D steps

and, where the spec switches them on, refr1..refr{L-1} (refractory countdowns) and the per-unit
eligibility traces of a user rule, trace_<name>_pre<l> and trace_<name>_post<l> (per-synapse in
Brian2, see `codegen.eligibility`), so a checkpoint trained by one engine loads into the other.

Time is discrete: one step is one `dt` (1 ms nominally). "Time constant 0.9" has two readings
in the paper's text: `reading="decay"` — the PSP decays by 0.9 per step (τ = −1/ln 0.9 ≈ 9.49 steps)
— and `reading="tau"` — τ = 0.9 steps (decay e^(−1/0.9) ≈ 0.329 per step). Every reported number
names the reading and `steps_per_image`.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import numbers
import re
import sys
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from spikefa.errors import SpikefaError
from spikefa.results import atomic_write_bytes, load_npz
from spikefa.seeds import stream
from spikefa.spiking.dale import dale_signs, signed
from spikefa.spiking.modes import (
    CODINGS,
    FEEDBACK_MODES,
    MODES,
    ErrorCoding,
    FeedbackMode,
)
from spikefa.spiking.switches import switch_problems, switch_shapes

READINGS = ("decay", "tau")
STREAM_VAR = re.compile(
    r"(u|p|m|fq|bq|refr)\d+|trace_\w+"
)  # per-stream state: one row per image stream


@dataclass(frozen=True)
class SpikingSpec:
    sizes: tuple[int, ...] = (784, 1500, 1500, 1500, 10)
    reading: str = "decay"  # "decay": ×0.9 per step; "tau": τ = 0.9 steps
    time_constant: float = 0.9
    steps_per_image: int = 100  # images follow each other with no pause and no reset
    readout_fraction: float = 0.5  # read-out: mean output rate over this last part of each image
    eta: float = 1e-3  # learning rate per step (weights and biases)
    eta_scale: tuple[
        float, ...
    ] = ()  # per weight layer 1..L: η_l = η·eta_scale[l−1] (empty: all 1)
    weight_decay: float = 0.0  # w += η(δ p − α w) when α > 0
    init_scale: float = 4.0  # w ~ init_scale · U[−1, 1] / √fan_in (Glorot scale for σ units)
    feedback_scale: float = 0.5  # B ~ U[−β, β]
    feedback: str = "fa"  # a feedback mode: fa | sparse_fa | dfa | bp | shuffled (MODES)
    feedback_sparsity: float = 0.5  # sparse_fa: fraction of feedback synapses removed
    seed: int = 0
    dtype: str = "float32"
    plasticity_delay: int = (
        0  # the plasticity gate, an ablation: no learning in the first N steps of each image
    )
    plasticity: str = ""  # a user rule for w in Brian2 syntax (empty: equations.PLASTICITY)
    feedback_rule: str = ""  # a user summed modulator in Brian2 syntax (empty: equations.FEEDBACK)
    # the switches towards biology, off by default (`switches`, equations.py):
    error_coding: str = "analog"  # how δ travels down: analog | spikes (error units; CODINGS)
    modulator_time_constant: float = 2.0  # spikes: τ of each modulator's filter, in steps
    forward_delay: int = 0  # steps a forward spike takes to arrive, 0 … steps_per_image
    feedback_delay: int = 0  # steps the error takes down each feedback synapse, 0 … steps_per_image
    refractory_steps: int = 0  # a hidden unit stays silent for this many steps after a spike
    # Dale's law: {"excitatory": fraction of excitatory units, "feedback": B too} (empty: off)
    dale: dict = field(default_factory=dict)

    def __post_init__(self):
        self._coerce()
        problems = self._problems()
        if problems:
            raise SpikefaError("; ".join(problems))

    def _coerce(self) -> None:
        """Lists become tuples; a checkpoint's JSON may hold anything: numbers are checked first."""
        try:
            object.__setattr__(self, "sizes", tuple(int(n) for n in self.sizes))
            object.__setattr__(self, "eta_scale", tuple(float(a) for a in self.eta_scale))
        except (TypeError, ValueError, OverflowError):
            raise SpikefaError(
                f"sizes and eta_scale must be lists of numbers, got {self.sizes!r} and "
                f"{self.eta_scale!r}"
            ) from None
        if isinstance(self.dale, dict):
            object.__setattr__(self, "dale", dict(self.dale))
        for f in fields(self):
            integer, v = isinstance(f.default, int), getattr(self, f.name)
            if isinstance(f.default, (int, float)) and not _number(v, integer):
                raise SpikefaError(
                    f"spec field {f.name} must be {'an int64 integer' if integer else 'a finite number'}"
                    f", got {v!r}"
                )

    def _problems(self) -> list[str]:
        """Every field that is out of range, in one list."""
        problems = []
        if self.eta_scale and (
            len(self.eta_scale) != len(self.sizes) - 1
            or not all(0 <= a < math.inf for a in self.eta_scale)
        ):
            problems.append(
                f"eta_scale needs one factor ≥ 0 per weight layer ({len(self.sizes) - 1}), "
                f"got {list(self.eta_scale)}"
            )
        if len(self.sizes) < 3 or min(self.sizes) < 1:
            problems.append(
                f"sizes needs input, ≥1 hidden and output layers of positive size, got {list(self.sizes)}"
            )
        if self.reading not in READINGS:
            problems.append(f"reading must be one of {', '.join(READINGS)}, got {self.reading!r}")
        if self.feedback not in FEEDBACK_MODES:
            problems.append(
                f"feedback must be one of {', '.join(FEEDBACK_MODES)}, got {self.feedback!r}"
            )
        if not 0 < self.time_constant or not 0 < self.decay < 1:  # e^(−1/τ) may round to 0 or 1
            problems.append(
                f"time_constant {self.time_constant} is impossible for reading {self.reading!r}"
            )
        if self.steps_per_image < 1 or not 0 < self.readout_fraction <= 1:
            problems.append("steps_per_image must be ≥ 1 and readout_fraction in (0, 1]")
        if not 0 <= self.plasticity_delay < self.steps_per_image:
            problems.append(
                f"plasticity_delay must be in 0..steps_per_image − 1, got {self.plasticity_delay}"
            )
        if not isinstance(self.plasticity, str) or not isinstance(self.feedback_rule, str):
            problems.append("plasticity and feedback_rule must be strings (Brian2 syntax)")
        problems += switch_problems(self)
        if not 0 <= self.feedback_sparsity < 1:
            problems.append(f"feedback_sparsity must be in [0, 1), got {self.feedback_sparsity}")
        if self.dtype not in ("float32", "float64"):
            problems.append(f"dtype must be float32 or float64, got {self.dtype!r}")
        negative = [
            k
            for k in ("eta", "weight_decay", "init_scale", "feedback_scale", "seed")
            if getattr(self, k) < 0
        ]
        if negative:
            problems.append(f"{', '.join(negative)} must be at least 0")
        return problems

    @property
    def coding(self) -> ErrorCoding:
        return CODINGS[self.error_coding]

    @property
    def modulator_decay(self) -> float:
        """Decay factor per step of a spiking modulator."""
        return math.exp(-1.0 / self.modulator_time_constant)

    @property
    def feedback_sources(self) -> tuple[int, ...]:
        """The layers whose δ is sent down (indices in `sizes`)."""
        return tuple(sorted({self.feedback_source(l) for l in range(1, self.n_layers)}))

    def spiking_groups(self) -> list[tuple[str, int]]:
        """(name, size) of every group that draws spike noise, in the order both engines draw it:
        the input and hidden layers, then (spikes coding) e⁺ and e⁻ of each layer in
        `feedback_sources`."""
        groups = [("input", self.sizes[0])]
        groups += [(f"hidden_{l}", self.sizes[l]) for l in range(1, self.n_layers)]
        for s in self.feedback_sources if self.coding.spikes else ():
            groups += [(f"error_{sign}_{s}", self.sizes[s]) for sign in ("plus", "minus")]
        return groups

    @property
    def decay(self) -> float:
        """PSP and trace decay factor per step."""
        return (
            self.time_constant if self.reading == "decay" else math.exp(-1.0 / self.time_constant)
        )

    @property
    def tau_steps(self) -> float:
        """Continuous time constant in steps: exp(−1/τ) = decay."""
        return -1.0 / math.log(self.decay)

    @property
    def n_layers(self) -> int:
        """Weight layers L (hidden layers + output)."""
        return len(self.sizes) - 1

    def layer_eta(self, eta: float, l: int) -> float:
        """Learning rate of weight layer l (1-based) when the global rate is `eta`."""
        return eta * self.eta_scale[l - 1] if self.eta_scale else eta

    @property
    def mode(self) -> FeedbackMode:
        return MODES[self.feedback]

    def feedback_source(self, l: int) -> int:
        """Index (in `sizes`) of the layer whose δ feeds hidden layer l (1-based)."""
        return self.n_layers if self.mode.source == "output" else l + 1

    def describe(self) -> str:
        defaults = SpikingSpec().to_dict()  # the switches at their defaults are left out
        rules = "".join(
            f", {k} {getattr(self, k)!r}"
            for k in (
                "plasticity",
                "feedback_rule",
                "plasticity_delay",
                "error_coding",
                "modulator_time_constant",
                "forward_delay",
                "feedback_delay",
                "refractory_steps",
                "dale",
            )
            if getattr(self, k) != defaults[k]
        )
        return (
            f"{'-'.join(map(str, self.sizes))}, reading {self.reading!r} (decay {self.decay:.4g}/step, "
            f"τ = {self.tau_steps:.3g} steps), {self.steps_per_image} steps per image, feedback {self.feedback}"
            + rules
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sizes"] = list(self.sizes)
        d["eta_scale"] = list(self.eta_scale)
        d["dale"] = dict(self.dale)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SpikingSpec:
        """The spec of a dict such as a checkpoint's; fields it lacks (older checkpoints) take their
        defaults."""
        if not isinstance(d, dict):
            raise SpikefaError(f"a spec is a JSON object of its fields, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise SpikefaError(f"unknown spec fields {sorted(unknown)}")
        return cls(**d)


def _number(v, integer: bool) -> bool:
    """A number (not a boolean) that fits a float64, or an int64 where `integer` (JSON numbers have
    any size)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral if integer else numbers.Real):
        return False
    return abs(v) < 2**63 if integer else abs(v) <= sys.float_info.max


def is_stream_var(key: str) -> bool:
    """PSPs u1.., traces p0.., and what the switches add (modulators m1.., delay lines fq, bq,
    refractory countdowns refr1.., eligibility traces trace_…) belong to one image stream;
    everything else is shared weights."""
    return STREAM_VAR.fullmatch(key) is not None


def at_rest(state: dict) -> dict:
    """One stream at rest (zero PSPs and traces) with the same weights: how a network is shipped."""
    return {k: np.zeros(v.shape[-1], v.dtype) if is_stream_var(k) else v for k, v in state.items()}


def initial_state(spec: SpikingSpec) -> dict[str, np.ndarray]:
    """Weights drawn from the seed (streams "init", "feedback", "masks"; under Dale's law their
    signs from "dale"); zero PSPs, traces and countdowns."""
    dt = np.dtype(spec.dtype)
    sizes, L = spec.sizes, spec.n_layers
    init, signs = stream(spec.seed, "init"), dale_signs(spec)
    state = {}
    for l in range(1, L + 1):
        n_pre, n_post = sizes[l - 1], sizes[l]
        w = spec.init_scale * init.uniform(-1, 1, (n_pre, n_post)) / math.sqrt(n_pre)
        state[f"w{l}"] = (w if signs is None else signed(w, signs[l - 1], spec)).astype(dt)
        state[f"bias{l}"] = np.zeros(n_post, dt)
    state |= {k: np.zeros(shape, dt) for k, shape in stream_shapes(spec).items()}
    return state | feedback_weights(spec, state)


def feedback_weights(spec: SpikingSpec, state: dict) -> dict[str, np.ndarray]:
    """The feedback weights B_l of a network (new arrays): drawn from the seed (streams "feedback"
    and "masks", and under Dale's law for B "dale"), or in bp mode the transposes of the forward
    weights above."""
    if spec.mode.transport:  # kept equal to the forward weights
        return {f"B{l}": state[f"w{l + 1}"].T.copy() for l in range(1, spec.n_layers)}
    shapes = tuple(
        (spec.sizes[spec.feedback_source(l)], spec.sizes[l]) for l in range(1, spec.n_layers)
    )
    sparsity = spec.feedback_sparsity if spec.mode.sparse else None
    drawn = _drawn_feedback(shapes, spec.seed, spec.feedback_scale, sparsity, spec.dtype)
    signs = dale_signs(spec) if spec.dale.get("feedback") else None
    return {
        k: v.copy() if signs is None else signed(v, signs[spec.feedback_source(l)], spec)
        for l, (k, v) in enumerate(drawn.items(), 1)
    }


@functools.lru_cache(maxsize=2)  # the checkpoints of one run compare against the same draw
def _drawn_feedback(shapes, seed, scale, sparsity, dtype) -> dict[str, np.ndarray]:
    fb, masks = stream(seed, "feedback"), stream(seed, "masks")
    out = {}
    for l, shape in enumerate(shapes, 1):
        B = fb.uniform(-scale, scale, shape).astype(dtype)
        if sparsity is not None:
            B *= masks.random(B.shape) >= sparsity
        out[f"B{l}"] = B
    return out


def _digest(arrays: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        h.update(np.ascontiguousarray(arrays[k]).tobytes())
    return h.hexdigest()


def save_checkpoint(
    path: str | Path,
    spec: SpikingSpec,
    state: dict,
    meta: dict | None = None,
    store_dtype: str | None = None,
    compress: bool = True,
) -> Path:
    """Write `state` and the spec (as JSON) to an `.npz`, atomically. Feedback weights that the spec
    redraws (fixed B from the seed, or bp's wᵀ) are left out: the file records where they come from
    and, for drawn ones, their SHA-256, which loading checks. `store_dtype` (e.g. "float16", for
    shipping) shrinks the file, loading casts back to the spec's dtype; `compress=False` writes
    faster (a checkpoint during training)."""
    B = {k: v for k, v in state.items() if k[0] == "B"}
    again = feedback_weights(spec, state)
    source = "wT" if spec.mode.transport else "seed"
    if B and set(B) == set(again) and all(np.array_equal(B[k], again[k]) for k in B):
        state = {k: v for k, v in state.items() if k not in B}
        extra = {
            "feedback": json.dumps(
                {"source": source, "sha256": _digest(B) if source == "seed" else None}
            )
        }
    else:
        extra = {}  # weights the spec cannot redraw (changed by hand, or trained) are kept as they are
    if store_dtype:
        state = {k: v.astype(store_dtype) for k, v in state.items()}
    buf = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(
        buf, spec=json.dumps(spec.to_dict()), meta=json.dumps(meta or {}), **extra, **state
    )
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_checkpoint(path: str | Path) -> tuple[SpikingSpec, dict, dict]:
    """(spec, state, meta) from a checkpoint; a missing, truncated, corrupted or foreign file is a
    SpikefaError."""
    arrays = load_npz(path, "spikefa checkpoint")
    try:
        spec = SpikingSpec.from_dict(json.loads(str(arrays.pop("spec"))))
        meta = json.loads(str(arrays.pop("meta", "{}")))
        if not isinstance(meta, dict):
            raise ValueError(f"meta is a JSON {type(meta).__name__}, not an object")
        feedback = json.loads(str(arrays.pop("feedback", "null")))
        state = {k: v.astype(spec.dtype, copy=False) for k, v in arrays.items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise SpikefaError(
            f"{path} is not a spikefa checkpoint ({type(exc).__name__}: {' '.join(str(exc).split())})"
        ) from None
    if feedback is not None:
        B = feedback_weights(spec, state)
        if feedback["source"] == "seed" and _digest(B) != feedback["sha256"]:
            raise SpikefaError(
                f"{path}: the feedback weights drawn again from seed {spec.seed} differ from the "
                f"ones it was trained with (another NumPy's random numbers?); they cannot be restored"
            )
        state |= B
    elif not spec.mode.transport and all(
        v.dtype == np.float16 for k, v in arrays.items() if k[0] == "B"
    ):
        # an older file that stored B rounded to float16: the draw it rounds is the B it trained
        # with
        B = feedback_weights(spec, state)
        if all(
            k in arrays and np.array_equal(arrays[k], v.astype(np.float16)) for k, v in B.items()
        ):
            state |= B
    shapes = state_shapes(spec)
    if set(state) != set(shapes):
        raise SpikefaError(
            f"checkpoint {path} does not match its spec: missing {sorted(set(shapes) - set(state))}, "
            f"unexpected {sorted(set(state) - set(shapes))}"
        )
    for k, shape in shapes.items():
        v = state[k]  # PSPs and traces: one stream, or one row per stream
        if v.shape != shape and not (
            is_stream_var(k) and v.ndim == 2 and len(v) >= 1 and v.shape[1:] == shape
        ):
            raise SpikefaError(f"checkpoint {path}: {k} has shape {v.shape}, spec says {shape}")
    return spec, state, meta


def eta_in_force(spec: SpikingSpec, meta: dict, at_start: bool = False) -> float:
    """The learning rate per step of the run that wrote a checkpoint where the checkpoint was saved,
    or (`at_start`) at the earliest start its schedule records. `spec.eta` is only the schedule's
    constant (η·0.5^(epoch/halving), epochs counted from 0, so it can be far above the rate in
    force). Checkpoints without a schedule learned at `spec.eta`."""
    from spikefa.config import eta_at, phase_eta

    if "recipe" in meta:  # trained under a declared schedule: the rate of its phase at that point
        phases = meta["recipe"]["schedule"]
        k = 0 if at_start else meta["phase"] - 1
        per_epoch = meta["images_seen"] / meta["epoch"]
        start = sum(p["epochs"] for p in phases[:k]) * per_epoch
        return phase_eta(phases[k], 0.0 if at_start else (meta["images_seen"] - start) / per_epoch)
    schedule = meta.get("schedule")
    if not schedule:
        return spec.eta
    entry = schedule[0] if at_start else schedule[-1]
    images_per_epoch = meta["images_seen"] / meta["epoch"] if meta.get("epoch") else 0.0
    images = entry["images_seen"] if at_start else meta.get("images_seen", 0)
    epoch = images / images_per_epoch if images_per_epoch else 0.0
    return eta_at(
        {
            "eta": entry["eta"],
            "train": {"eta_halving_epochs": entry.get("eta_halving_epochs") or 0.0},
        },
        epoch,
    )


def state_shapes(spec: SpikingSpec) -> dict[str, tuple[int, ...]]:
    """The shape of every array of a one-stream state."""
    sizes, L = spec.sizes, spec.n_layers
    shapes = {}
    for l in range(1, L + 1):
        shapes |= {f"w{l}": (sizes[l - 1], sizes[l]), f"bias{l}": (sizes[l],)}
    for l in range(1, L):
        shapes[f"B{l}"] = (sizes[spec.feedback_source(l)], sizes[l])
    return shapes | stream_shapes(spec)


def stream_shapes(spec: SpikingSpec) -> dict[str, tuple[int, ...]]:
    """The shape of every per-stream array of a one-stream state: PSPs, traces, and what the
    switches add (`switches.switch_shapes`)."""
    shapes = {}
    for l in range(1, spec.n_layers + 1):
        shapes |= {f"u{l}": (spec.sizes[l],), f"p{l - 1}": (spec.sizes[l - 1],)}
    return shapes | switch_shapes(spec)


def with_rules(spec: SpikingSpec, plasticity=None, feedback=None, plasticity_delay=None):
    """`spec` with a user's plasticity rule, summed modulator or plasticity delay, where given."""
    given = (("plasticity", plasticity), ("feedback_rule", feedback))
    changes = {k: v for k, v in (*given, ("plasticity_delay", plasticity_delay)) if v is not None}
    return replace(spec, **changes) if changes else spec
