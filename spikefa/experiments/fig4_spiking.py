"""Fig. 4 — train the spiking FA network on MNIST with either engine, select on validation, test once.

Per feedback mode in `algorithms`: draw the network from the seed and follow the declared schedule
(`[[schedule]]` phases, or one phase from the top-level keys), showing the training images
(reshuffled every epoch by the "order" stream) in chunks. The last `train.validation` training images
are held out: the validation error is measured during training, and `<mode>-best.npz` keeps the weights
with the lowest one. The test images are read once, at the end, by that selected network.
`<mode>.npz` is the latest state (weights, PSPs, spike generator) that `--resume` continues from.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
from tqdm import tqdm

from spikefa import plotting
from spikefa.config import phase_eta
from spikefa.data import load_images
from spikefa.data.datasets import check_sizes, is_own_dataset
from spikefa.diagnose import health
from spikefa.errors import SpikefaError, check_finite
from spikefa.seeds import stream
from spikefa.spiking.alignment import alignment
from spikefa.spiking.brian import DEVICES, STANDALONE
from spikefa.spiking.spec import (
    FEEDBACK_MODES,
    SpikingSpec,
    at_rest,
    initial_state,
    load_checkpoint,
    save_checkpoint,
)
from spikefa.spiking.training import BrianRunner, FastRunner, evaluate
from spikefa.timing import NO_PARTS

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
ALIGNMENT_IMAGES = (
    100  # validation images whose modulators are compared with backprop's at each measurement
)


def spec_for(cfg: dict, mode: str) -> SpikingSpec:
    return SpikingSpec(
        **{k: cfg[k] for k in SPEC_KEYS},
        feedback=mode,
        plasticity=cfg["plasticity"],
        feedback_rule=cfg["feedback"],
    )


def schedule(cfg: dict) -> list[dict]:
    """The declared training phases, each complete: `epochs`, `eta` (per step, one per weight layer),
    `steps_per_image`, `plasticity_delay` and `eta_halving_epochs` (from the phase's start)."""
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
    defaults = (
        SpikingSpec().to_dict()
    )  # fields at their defaults are left out: a later field does not break a resume
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


def validate(cfg: dict) -> None:
    bad = [a for a in cfg["algorithms"] if a not in FEEDBACK_MODES]
    if bad or not cfg["algorithms"]:
        raise SpikefaError(
            f"algorithms must name feedback modes from {', '.join(FEEDBACK_MODES)}, got {cfg['algorithms']}"
        )
    if cfg["engine"] not in ("brian2", "fast"):
        raise SpikefaError(f"engine must be brian2 or fast, got {cfg['engine']!r}")
    if cfg["backend"] not in ("numpy", "cupy"):
        raise SpikefaError(f"backend must be numpy or cupy, got {cfg['backend']!r}")
    if cfg["device"] not in DEVICES:
        raise SpikefaError(f"device must be one of {', '.join(DEVICES)}, got {cfg['device']!r}")
    own = is_own_dataset(cfg["dataset"])  # its sizes are checked against the file once it is loaded
    if not own and cfg["dataset"] not in ("mnist", "fashion-mnist"):
        raise SpikefaError(
            f"dataset must be mnist, fashion-mnist or a path to an .npz, got {cfg['dataset']!r}"
        )
    if len(cfg["sizes"]) < 3 or (not own and (cfg["sizes"][0] != 784 or cfg["sizes"][-1] != 10)):
        raise SpikefaError(
            f"sizes must start with 784 inputs and end with 10 outputs, got {cfg['sizes']}"
        )
    at_least = {
        "threads": (cfg["threads"], 1),
        "batch": (cfg["batch"], 1),
        "chunk_images": (cfg["chunk_images"], 1),
        "train.epochs": (cfg["train"]["epochs"], 1),
        "train.images": (cfg["train"]["images"], 0),
        "train.validation": (cfg["train"]["validation"], 0),
        "train.eta_halving_epochs": (cfg["train"]["eta_halving_epochs"], 0),
        "train.patience_epochs": (cfg["train"]["patience_epochs"], 0),
        "validation.images": (cfg["validation"]["images"], 0),
        "validation.every_images": (cfg["validation"]["every_images"], 0),
        "test.images": (cfg["test"]["images"], 0),
        "checkpoint_minutes": (cfg["checkpoint_minutes"], 0),
    }
    for key, (v, low) in at_least.items():
        if v < low:
            raise SpikefaError(f"{key} must be at least {low}, got {v}")
    if not 0 <= cfg["plasticity_delay"] < cfg["steps_per_image"]:
        raise SpikefaError(
            f"plasticity_delay must be in 0..steps_per_image − 1, got {cfg['plasticity_delay']}"
        )
    if not set(cfg["frozen_layers"]) <= set(range(1, len(cfg["sizes"]))):
        raise SpikefaError(
            f"frozen_layers must name weight layers 1..{len(cfg['sizes']) - 1}, got {cfg['frozen_layers']}"
        )
    spec_for(cfg, cfg["algorithms"][0])  # the spec checks its own fields
    for phase in schedule(cfg):
        phase_spec(cfg, cfg["algorithms"][0], phase)


def chunk_size(cfg: dict, *counts: int) -> int:
    """Images per engine call. Standalone binaries run a fixed length, so there it must divide every
    image count they are shown (training, validation, test): the largest divisor of their gcd not
    above `chunk_images`."""
    want = min(cfg["chunk_images"], counts[0])
    if cfg["engine"] != "brian2" or cfg["device"] not in STANDALONE:
        return want
    g = math.gcd(*counts)
    return max(d for d in range(1, min(want, g) + 1) if g % d == 0)


def make_runner(cfg: dict, spec: SpikingSpec, chunk: int):
    if cfg["engine"] == "brian2":
        return BrianRunner(spec, chunk, cfg["device"], threads=cfg["threads"])
    return FastRunner(spec, chunk, batch=cfg["batch"], backend=cfg["backend"])


def run(cfg: dict, out, data_dir=None, resume: bool = False, parts=NO_PARTS) -> dict:
    """Train every mode of `cfg`; `parts` (`spikefa.timing.Parts`) times each part of the loop."""
    data = load_images(cfg["dataset"], data_dir)
    check_sizes(data, cfg["sizes"], cfg["dataset"])
    data = data.holdout(cfg["train"]["validation"])
    dtype = np.dtype(cfg["dtype"])

    def first(x, y, n):
        n = min(n or len(x), len(x))
        return x[:n].astype(dtype), y[:n]

    sets = {
        "train": first(data.train_x, data.train_y, cfg["train"]["images"]),
        "validation": first(data.val_x, data.val_y, cfg["validation"]["images"]),
        "test": first(data.test_x, data.test_y, cfg["test"]["images"]),
    }
    chunk = chunk_size(cfg, *(len(x) for x, _ in sets.values() if len(x)))
    results, curves = {}, {}
    for mode in cfg["algorithms"]:
        results[mode] = train_mode(cfg, mode, sets, chunk, out, curves, resume, parts)
    return {"results": results, "stats": {}}


class _Phases:
    """Where a position (training images seen) falls in the schedule, and a runner for each phase
    that carries the state and the spike generator over from the one before."""

    def __init__(self, cfg, mode, n_train, chunk, parts=NO_PARTS):
        self.cfg, self.mode, self.chunk, self.n_train, self.parts = cfg, mode, chunk, n_train, parts
        self.phases = schedule(cfg)
        self.ends = [round(n_train * e) for e in np.cumsum([p["epochs"] for p in self.phases])]
        self.index, self.runner = None, None

    @property
    def total(self) -> int:
        return self.ends[-1]

    def at(self, seen: int) -> int:
        return (
            next(k for k, end in enumerate(self.ends) if seen < end)
            if seen < self.total
            else len(self.ends) - 1
        )

    def start(self, k: int) -> int:
        return self.ends[k - 1] if k else 0

    def enter(self, k: int, state: dict):
        """The runner of phase k and the state prepared for it (a no-op inside the current phase)."""
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
        return phase_eta(self.phases[k], (seen - self.start(k)) / self.n_train)


def train_mode(cfg, mode, sets, chunk, out, curves, resume, parts=NO_PARTS):
    """Train one feedback mode along its schedule, measuring the validation error and checkpointing as
    it goes; then the test error of the checkpoint selected on validation. With `resume`, continue
    from `<mode>.npz` in the results folder, which must have been trained under the same recipe."""
    (X, Y), (Xv, Yv), (Xt, Yt) = sets["train"], sets["validation"], sets["test"]
    plan, this_recipe = _Phases(cfg, mode, len(X), chunk, parts), recipe(cfg, mode)
    path, best_path = out.path / f"{mode}.npz", out.path / f"{mode}-best.npz"
    state, meta = (
        initial_state(spec_for(cfg, mode)),
        {"images_seen": 0, "curve": [], "wall_seconds": 0.0, "train_steps": 0, "best": None},
    )
    if resume and path.exists():
        _, state, meta = load_checkpoint(path)
        if meta.get("recipe") != this_recipe:
            raise SpikefaError(
                f"{path} was trained under another recipe than this config; a resumed run "
                f"continues its declared schedule: a new schedule is a new recipe (a new run)"
            )
    seen, steps, stopped = meta["images_seen"], meta["train_steps"], bool(meta.get("finished"))
    curve = [tuple(c) for c in meta["curve"]]
    declared, patience = plan.total / len(X), cfg["train"]["patience_epochs"] * len(X)
    runner, state = plan.enter(plan.at(seen), state)
    if resume:
        runner.restore_random_state(meta.get("random_state"))
    # a checkpoint carried to another folder without its selected network starts the selection afresh
    every, best = cfg["validation"]["every_images"], meta["best"] if best_path.exists() else None
    split = {
        "train_images": len(X),
        "validation_images": len(Xv),
        "test_images": len(Xt),
        "holdout_images": cfg["train"][
            "validation"
        ],  # validation_images: the measured subset of it
        "validation": f"the last {cfg['train']['validation']} of the training images"
        if len(Xv)
        else "none",
    }
    start, wall_before, last_save = time.perf_counter(), meta["wall_seconds"], time.monotonic()
    bar = tqdm(
        total=plan.total, initial=seen, desc=f"{mode} ({cfg['engine']})", unit="img", mininterval=5
    )
    with parts("training"):  # the loop's own time is what its named parts leave over
        while seen < plan.total and not stopped:
            k = plan.at(seen)
            runner, state = plan.enter(k, state)
            epoch, lo = divmod(seen, len(X))
            perm = stream(cfg["seed"], "order", epoch).permutation(
                len(X)
            )  # the same order after a resume
            idx = perm[lo : lo + min(chunk, plan.ends[k] - seen)]
            with parts("steps"):
                state, _ = runner.run(state, X[idx], Y[idx], learn=True, eta=plan.eta(seen))
            seen, steps = seen + len(idx), steps + len(idx) * runner.spec.steps_per_image
            check_finite(
                state,
                mode,
                f"by step {steps} (after {seen} training images)",
                f"the last good checkpoint {path} is kept" if path.exists() else "",
            )
            bar.update(len(idx))
            measure = (
                seen % len(X) == 0 or seen == plan.ends[k] or (every and seen % every < len(idx))
            )
            meta = {
                "images_seen": seen,
                "epoch": seen / len(X),
                "phase": k + 1,
                "train_steps": steps,
                "curve": curve,
                "best": best,
                "dataset": cfg["dataset"],
                "engine": cfg["engine"],
                "recipe": this_recipe,
                "config": {"name": cfg["recipe"] or None, **cfg},
                "split": split,
                "wall_seconds": wall_before + time.perf_counter() - start,
                "epochs_trained": seen / len(X),
                "epochs_declared": declared,
                "finished": seen >= plan.total,
            }
            if measure and len(Xv):
                # Judge by held-out images only: while an image is shown, learning pulls the output towards
                # its label, so errors scored during training are far too optimistic.
                with parts("validation"):
                    val = evaluate(runner, state, Xv, Yv)
                with parts("alignment"):
                    angles = alignment(
                        runner.spec,
                        runner.export(state),
                        Xv[:ALIGNMENT_IMAGES],
                        Yv[:ALIGNMENT_IMAGES],
                    )
                curve.append((seen, val, *(round(a, 2) for a in angles.values())))
                meta["curve"], meta["angle_names"] = curve, list(angles)
                curves[mode] = (np.array(curve), list(angles))
                bar.set_postfix(validation_error=f"{val:.4f}")
                with parts("figures"):
                    _write_metrics(curves, len(X), out)
                    _figure(
                        curves, out
                    )  # kept current, like metrics.csv, so a long run can be followed
                # the declared stopping rule: no new best for `patience_epochs` epochs ends the recipe
                stopped = (
                    bool(patience)
                    and best is not None
                    and val >= best["validation_error"]
                    and seen - best["images_seen"] >= patience
                )
                meta["finished"] = meta["finished"] or stopped
                if best is None or val < best["validation_error"]:
                    best = meta["best"] = {
                        "images_seen": seen,
                        "epoch": seen / len(X),
                        "validation_error": val,
                    }
                    # the latest state is the selected network too, until a later measurement does better
                    meta.update(selected_on="validation", validation_error=val)
                    with parts("checkpoint"):
                        save_checkpoint(
                            best_path,
                            runner.spec,
                            at_rest(runner.export(state)),
                            {**meta, "random_state": None},
                            compress=False,
                        )
            if measure or time.monotonic() - last_save >= 60 * cfg["checkpoint_minutes"]:
                latest = {**meta, "random_state": runner.random_state()}
                with parts("checkpoint"):
                    save_checkpoint(path, runner.spec, runner.export(state), latest, compress=False)
                    if (
                        measure and cfg["keep_snapshots"]
                    ):  # each one can be resumed, like the latest
                        (out.path / "snapshots").mkdir(exist_ok=True)
                        save_checkpoint(
                            out.path / "snapshots" / f"{mode}-{seen:08d}.npz",
                            runner.spec,
                            runner.export(state),
                            latest,
                            compress=False,
                        )
                last_save = time.monotonic()
    bar.close()
    if cfg["test"]["read"]:
        res = _test_selected(cfg, mode, best_path if best else path, (Xt, Yt), chunk)
    else:  # a candidate of a search: judged on validation alone
        res = {
            "validation_error": (best or {}).get("validation_error"),
            "selected_on": "validation" if best else "last",
            "selected_epoch": round(best["epoch"], 4) if best else None,
            "steps_per_image": runner.spec.steps_per_image,
        }
    res.update(
        epochs_trained=round(seen / len(X), 4),
        epochs_declared=declared,
        finished=seen >= plan.total or stopped,
    )
    if len(Xv):  # saturation and weight growth of the network that ships, on held-out images
        res["health"] = health(*load_checkpoint(best_path if best else path)[:2], Xv, Yv)["layers"]
    res.update(
        reading=runner.spec.reading,
        decay_per_step=runner.spec.decay,
        tau_steps=runner.spec.tau_steps,
        images_seen=seen,
        epochs=seen / len(X),
        engine=cfg["engine"],
        train_steps=steps,
        wall_seconds=round(meta["wall_seconds"], 1),
        phases=len(plan.phases),
        **split,
    )
    if curve:
        res.update(
            {
                f"{name}_final": round(v, 2)
                for name, v in zip(meta.get("angle_names", []), curve[-1][2:])
            }
        )
    if cfg["engine"] == "brian2":
        if runner.steps:
            res.update(
                device=cfg["device"],
                ms_per_step=1e3 * runner.sim_seconds / runner.steps,
                compile_seconds=round(runner.net.build_seconds, 1),
            )
    else:
        res.update(batch=cfg["batch"], backend=cfg["backend"])
    return res


def _test_selected(cfg, mode, path, test, chunk) -> dict:
    """The test error of the checkpoint at `path` (the one selected on validation, or the last one
    where there is no validation set), measured once; it is recorded in that checkpoint too."""
    spec, state, meta = load_checkpoint(path)
    err = meta.get("test_error")
    if err is None:  # a finished run resumed again reads nothing twice
        err = evaluate(make_runner(cfg, spec, chunk), state, *test, progress=f"{mode}: test")
    if meta.get("selected_on") == "validation":
        save_checkpoint(
            path,
            spec,
            state,
            {**meta, "test_error": err, "test_read_at_epoch": meta["epoch"], "finished": True},
        )
    best = meta.get("best") or {}
    return {
        "test_error": err,
        "validation_error": best.get("validation_error"),
        "selected_on": meta.get("selected_on", "last"),
        "selected_images": meta["images_seen"],
        "selected_epoch": round(meta["epoch"], 4),
        "steps_per_image": spec.steps_per_image,
    }


def _write_metrics(curves: dict, n_train: int, out) -> None:
    rows = []
    for mode, (c, names) in curves.items():
        for seen, val, *angles in c:
            rows.append(
                {
                    "algorithm": mode,
                    "epoch": round(seen / n_train, 4),
                    "images": int(seen),
                    "validation_error": val,
                    **dict(zip(names, angles)),
                }
            )
    out.write_csv("metrics.csv", rows)


def _figure(curves: dict, out) -> None:
    """Validation error, and per hidden layer the two alignment angles: the modulator's to backprop's
    (solid) and the feedback weights' to the forward weights above them, B_l vs w_{l+1}ᵀ (dashed)."""
    if not curves:
        return
    fig, (ax, ax2) = plotting.plt.subplots(1, 2, figsize=(10, 3.6))
    for mode, (c, names) in curves.items():
        plotting.plot_curve(ax, c[:, 0], 100 * c[:, 1], mode, marker="o", markersize=3)
        for j, name in enumerate(names):
            kind, layer = name[len("angle_deg_") : -1], name[-1]
            if kind in ("mod", "wb"):
                ax2.plot(
                    c[:, 0],
                    c[:, 2 + j],
                    color=f"C{int(layer) - 1}",
                    linestyle="-" if kind == "mod" else "--",
                    marker="o",
                    markersize=2,
                    label=f"{mode}: layer {layer} "
                    + ("δ vs backprop's" if kind == "mod" else "B vs wᵀ above"),
                )
    ax.set(
        yscale="log",
        xlabel="training images",
        ylabel="validation error (%)",
        title="Fig. 4 — spiking network",
    )
    ax2.axhline(90, color="0.5", linestyle=":", linewidth=0.8)
    ax2.set(
        xlabel="training images",
        ylabel="angle (°)",
        ylim=(0, 180),
        title="alignment of the hidden layers",
    )
    ax.legend(frameon=False, fontsize=8)
    ax2.legend(frameon=False, fontsize=7, ncol=2, loc="lower left")
    out.savefig(fig, "validation_error.png")
    plotting.close(fig)
