"""A training recipe read from a config: the spec of each feedback mode, the declared schedule of
phases, the identity a resumed run must share, and a runner for each phase."""

from __future__ import annotations

import dataclasses

import numpy as np

from spikefa.config import phase_eta
from spikefa.errors import SpikefaError
from spikefa.spiking.spec import SpikingSpec
from spikefa.spiking.switches import SWITCHES
from spikefa.spiking.training import BrianRunner, FastRunner
from spikefa.timing import NO_PARTS
from spikefa.training_loop import Schedule

SPEC_KEYS = (
    "sizes",
    "reading",
    "time_constant",
    "steps_per_image",
    "readout_fraction",
    "eta",
    "eta_scale",
    "weight_decay",
    "init_scale",
    "feedback_scale",
    "feedback_sparsity",
    "seed",
    "dtype",
)
PHASE_KEYS = ("epochs", "eta", "steps_per_image", "plasticity_delay", "eta_halving_epochs")


def spec_for(cfg: dict, mode: str) -> SpikingSpec:
    return SpikingSpec(
        **{k: cfg[k] for k in SPEC_KEYS + tuple(SWITCHES)},
        feedback=mode,
        plasticity=cfg["plasticity"],
        feedback_rule=cfg["feedback"],
    )


def schedule(cfg: dict) -> list[dict]:
    """The declared training phases, each complete: `epochs`, `eta` (per step, one per weight
    layer), `steps_per_image`, `plasticity_delay` and `eta_halving_epochs` (from the phase's
    start)."""
    L = len(cfg["sizes"]) - 1
    raw = cfg["schedule"] or [
        {
            "epochs": float(cfg["train"]["epochs"]),
            "eta": [cfg["eta"] * a for a in (cfg["eta_scale"] or [1.0] * L)],
            "eta_halving_epochs": cfg["train"]["eta_halving_epochs"],
        }
    ]
    phases = []
    for i, ph in enumerate(raw, 1):
        where = f"schedule phase {i}"
        if not isinstance(ph, dict) or not {"epochs", "eta"} <= set(ph):
            raise SpikefaError(f"{where} must be a table with at least epochs and eta, got {ph!r}")
        unknown = sorted(set(ph) - set(PHASE_KEYS))
        if unknown:
            raise SpikefaError(
                f"{where}: unknown keys {unknown}; a phase takes {', '.join(PHASE_KEYS)}"
            )
        eta = ph["eta"] if isinstance(ph["eta"], list) else [ph["eta"]] * L
        eta = [0.0 if l in cfg["frozen_layers"] else e for l, e in enumerate(eta, 1)]
        numbers = [ph["epochs"], ph.get("eta_halving_epochs", 0.0), *eta]
        if len(eta) != L or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers
        ):
            raise SpikefaError(
                f"{where}: eta must be a number or {L} numbers (one per weight layer), "
                f"epochs and eta_halving_epochs numbers; got {ph!r}"
            )
        p = {
            "epochs": float(ph["epochs"]),
            "eta": [float(e) for e in eta],
            "steps_per_image": ph.get("steps_per_image", cfg["steps_per_image"]),
            "plasticity_delay": ph.get("plasticity_delay", cfg["plasticity_delay"]),
            "eta_halving_epochs": float(ph.get("eta_halving_epochs", 0.0)),
        }
        if not (
            0 < p["epochs"] <= 1e6
            and min(p["eta"]) >= 0
            and p["eta_halving_epochs"] >= 0
            and isinstance(p["steps_per_image"], int)
            and isinstance(p["plasticity_delay"], int)
            and 0 <= p["plasticity_delay"] < p["steps_per_image"]
        ):
            raise SpikefaError(
                f"{where}: needs 0 < epochs ≤ 1e6, eta ≥ 0, eta_halving_epochs ≥ 0 and integer "
                f"steps_per_image > plasticity_delay ≥ 0; got {p}"
            )
        phases.append(p)
    return phases


def phase_spec(cfg: dict, mode: str, phase: dict) -> SpikingSpec:
    """The spec a phase trains with: its steps per image, and its per-layer rates as η·eta_scale."""
    top = max(phase["eta"])
    return dataclasses.replace(
        spec_for(cfg, mode),
        steps_per_image=phase["steps_per_image"],
        eta=top,
        eta_scale=tuple(e / top for e in phase["eta"]) if top else (),
        plasticity_delay=phase["plasticity_delay"],
    )


def recipe(cfg: dict, mode: str) -> dict:
    """Everything that defines how a network is trained; a resumed run must have the same."""
    # fields at their defaults are left out: a later field does not break a resume
    defaults = SpikingSpec().to_dict()
    spec = {k: v for k, v in spec_for(cfg, mode).to_dict().items() if v != defaults[k]}
    out = {
        "schedule": schedule(cfg),
        "spec": spec,
        "dataset": cfg["dataset"],
        "validation": cfg["train"]["validation"],
        "images": cfg["train"]["images"],
        "batch": cfg["batch"],
    }
    if cfg["train"]["patience_epochs"]:  # declared only when used: older checkpoints keep resuming
        out["patience_epochs"] = cfg["train"]["patience_epochs"]
    return out


def make_runner(cfg: dict, spec: SpikingSpec, chunk: int):
    if cfg["engine"] == "brian2":
        return BrianRunner(spec, chunk, cfg["device"], threads=cfg["threads"])
    return FastRunner(spec, chunk, batch=cfg["batch"], backend=cfg["backend"])


class Phases(Schedule):
    """The declared phases as a `Schedule`, and a runner for each phase that carries the state and
    the spike generator over from the one before."""

    def __init__(self, cfg, mode, n_train, chunk, parts=NO_PARTS):
        self.cfg, self.mode, self.chunk, self.parts = cfg, mode, chunk, parts
        self.phases = schedule(cfg)
        ends = [round(n_train * e) for e in np.cumsum([p["epochs"] for p in self.phases])]
        super().__init__(n_train, ends)
        self.index, self.runner = None, None

    def enter(self, k: int, state: dict):
        """The runner of phase k and the state prepared for it (a no-op inside the current
        phase)."""
        if k == self.index:
            return self.runner, state
        phase = self.phases[k]
        runner = make_runner(self.cfg, phase_spec(self.cfg, self.mode, phase), self.chunk)
        runner.parts = self.parts
        if self.runner is not None:
            runner.restore_random_state(self.runner.random_state())
            state = self.runner.export(state)
        self.index, self.runner = k, runner
        return runner, runner.prepare(state)

    def eta(self, seen: int) -> float:
        k = self.at(seen)
        return phase_eta(self.phases[k], (seen - self.start(k)) / self.n)
