"""Fig. 4 — train the spiking FA network on MNIST with either engine and measure its test error.

Per feedback mode in `algorithms`: draw the network from the seed, present the training images
(reshuffled every epoch by the "order" stream) in chunks, measure the test error with learning off,
and keep the latest checkpoint `<mode>.npz` (written atomically) in the results folder.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
from tqdm import tqdm

from spikefa import config, plotting
from spikefa.data import load_images
from spikefa.errors import SpikefaError, check_finite
from spikefa.seeds import stream
from spikefa.spiking.brian import DEVICES, STANDALONE
from spikefa.spiking.spec import FEEDBACK_MODES, SpikingSpec, initial_state, load_checkpoint, save_checkpoint
from spikefa.spiking.training import BrianRunner, FastRunner, evaluate

SPEC_KEYS = ("sizes", "reading", "time_constant", "steps_per_image", "readout_fraction", "eta", "eta_scale",
             "weight_decay", "init_scale", "feedback_scale", "feedback_sparsity", "seed", "dtype")
# may change when a run is resumed: a new learning schedule or presentation length for the same network
RESUMABLE_FIELDS = ("eta", "eta_scale", "weight_decay", "steps_per_image")


def spec_for(cfg: dict, mode: str) -> SpikingSpec:
    return SpikingSpec(**{k: cfg[k] for k in SPEC_KEYS}, feedback=mode)


def validate(cfg: dict) -> None:
    bad = [a for a in cfg["algorithms"] if a not in FEEDBACK_MODES]
    if bad or not cfg["algorithms"]:
        raise SpikefaError(f"algorithms must name feedback modes from {', '.join(FEEDBACK_MODES)}, got {cfg['algorithms']}")
    if cfg["engine"] not in ("brian2", "fast"):
        raise SpikefaError(f"engine must be brian2 or fast, got {cfg['engine']!r}")
    if cfg["backend"] not in ("numpy", "cupy"):
        raise SpikefaError(f"backend must be numpy or cupy, got {cfg['backend']!r}")
    if cfg["device"] not in DEVICES:
        raise SpikefaError(f"device must be one of {', '.join(DEVICES)}, got {cfg['device']!r}")
    if cfg["dataset"] not in ("mnist", "fashion-mnist"):
        raise SpikefaError(f"dataset must be mnist or fashion-mnist, got {cfg['dataset']!r}")
    if len(cfg["sizes"]) < 3 or cfg["sizes"][0] != 784 or cfg["sizes"][-1] != 10:
        raise SpikefaError(f"sizes must start with 784 inputs and end with 10 outputs, got {cfg['sizes']}")
    at_least = {"threads": (cfg["threads"], 1), "batch": (cfg["batch"], 1), "chunk_images": (cfg["chunk_images"], 1),
                "train.epochs": (cfg["train"]["epochs"], 1), "train.images": (cfg["train"]["images"], 0),
                "train.eta_halving_epochs": (cfg["train"]["eta_halving_epochs"], 0),
                "test.images": (cfg["test"]["images"], 0), "test.every_images": (cfg["test"]["every_images"], 0),
                "checkpoint_minutes": (cfg["checkpoint_minutes"], 0)}
    for key, (v, low) in at_least.items():
        if v < low:
            raise SpikefaError(f"{key} must be at least {low}, got {v}")
    if not 0 <= cfg["plasticity_delay"] < cfg["steps_per_image"]:
        raise SpikefaError(f"plasticity_delay must be in 0..steps_per_image − 1, got {cfg['plasticity_delay']}")
    spec_for(cfg, cfg["algorithms"][0])  # the spec checks its own fields


def chunk_size(cfg: dict, n_train: int, n_test: int) -> int:
    """Images per engine call. Standalone binaries run a fixed length, so there it must divide both
    the training and the test set: the largest divisor of their gcd not above `chunk_images`."""
    want = min(cfg["chunk_images"], n_train)
    if cfg["engine"] != "brian2" or cfg["device"] not in STANDALONE:
        return want
    g = math.gcd(n_train, n_test)
    return max(d for d in range(1, min(want, g) + 1) if g % d == 0)


def make_runner(cfg: dict, spec: SpikingSpec, chunk: int):
    if cfg["engine"] == "brian2":
        return BrianRunner(spec, chunk, cfg["device"], threads=cfg["threads"], plasticity_delay=cfg["plasticity_delay"])
    return FastRunner(spec, chunk, batch=cfg["batch"], backend=cfg["backend"], plasticity_delay=cfg["plasticity_delay"])


def run(cfg: dict, out, data_dir=None, resume: bool = False) -> dict:
    data = load_images(cfg["dataset"], data_dir)
    n_train = cfg["train"]["images"] or len(data.train_x)
    n_test = cfg["test"]["images"] or len(data.test_x)
    dtype = np.dtype(cfg["dtype"])
    train = (data.train_x[:n_train].astype(dtype), data.train_y[:n_train])
    test = (data.test_x[:n_test].astype(dtype), data.test_y[:n_test])
    chunk = chunk_size(cfg, n_train, n_test)
    results, curves = {}, {}
    for mode in cfg["algorithms"]:
        results[mode], curves[mode] = train_mode(cfg, mode, train, test, chunk, out, curves, resume)
    _figure(curves, out)
    return {"results": results, "stats": {}}


def train_mode(cfg, mode, train, test, chunk, out, curves, resume):
    """Train one feedback mode, measuring the test error and checkpointing as it goes. With `resume`,
    continue from `<mode>.npz` in the results folder: its state, random state and position (with the
    learning rates and steps per image of this config, which may differ from the checkpoint's)."""
    (X, Y), (Xt, Yt) = train, test
    spec = spec_for(cfg, mode)
    runner = make_runner(cfg, spec, chunk)
    state, meta = runner.prepare(initial_state(spec)), {"images_seen": 0, "curve": [], "wall_seconds": 0.0,
                                                          "train_steps": 0}
    path = out.path / f"{mode}.npz"
    if resume and path.exists():
        saved_spec, saved, meta = load_checkpoint(path)
        if dataclasses.replace(saved_spec, **{k: getattr(spec, k) for k in RESUMABLE_FIELDS}) != spec:
            raise SpikefaError(f"{path} was trained with another spec than this config ({saved_spec.describe()})")
        state = runner.prepare(saved)
        runner.restore_random_state(meta.get("random_state"))
        meta.setdefault("train_steps", meta["images_seen"] * saved_spec.steps_per_image)  # older checkpoints
    seen, curve, steps = meta["images_seen"], [tuple(c) for c in meta["curve"]], meta["train_steps"]
    # every start and resume with its learning settings, so a checkpoint tells how it was trained
    schedule = meta.get("schedule", []) + [{"images_seen": seen, "eta": spec.eta, "eta_scale": list(spec.eta_scale),
                                             "weight_decay": spec.weight_decay,
                                             "eta_halving_epochs": cfg["train"]["eta_halving_epochs"],
                                             "plasticity_delay": cfg["plasticity_delay"],
                                             "steps_per_image": spec.steps_per_image}]
    total, every = cfg["train"]["epochs"] * len(X), cfg["test"]["every_images"]
    start, wall_before, last_save = time.perf_counter(), meta["wall_seconds"], time.monotonic()
    bar = tqdm(total=total, initial=seen, desc=f"{mode} ({cfg['engine']})", unit="img", mininterval=5)
    while seen < total:
        epoch, lo = divmod(seen, len(X))
        perm = stream(cfg["seed"], "order", epoch).permutation(len(X))  # the same order after a resume
        idx = perm[lo:lo + chunk]
        state, _ = runner.run(state, X[idx], Y[idx], learn=True, eta=config.eta_at(cfg, seen / len(X)))
        seen, steps = seen + len(idx), steps + len(idx) * spec.steps_per_image
        check_finite(state, mode, f"by step {steps} (after {seen} training images)",
                     f"the last good checkpoint {path} is kept" if path.exists() else "")
        bar.update(len(idx))
        evaluate_now = seen % len(X) == 0 or (every and seen % every < len(idx))
        if evaluate_now:
            # Judge by held-out images only: while an image is shown, learning pulls the output
            # towards its label, so errors scored during training are far too optimistic.
            curve.append((seen, evaluate(runner, state, Xt, Yt)))
            bar.set_postfix(test_error=f"{curve[-1][1]:.4f}")
            curves[mode] = np.array(curve)
            _write_metrics(curves, len(X), out)
        if evaluate_now or time.monotonic() - last_save >= 60 * cfg["checkpoint_minutes"]:
            meta = {"images_seen": seen, "epoch": seen / len(X), "test_error": curve[-1][1] if curve else None,
                    "curve": curve, "dataset": cfg["dataset"], "engine": cfg["engine"],
                    "random_state": runner.random_state(), "wall_seconds": wall_before + time.perf_counter() - start,
                    "train_steps": steps, "schedule": schedule}
            save_checkpoint(path, spec, runner.export(state), meta)  # the latest, replaced each time
            last_save = time.monotonic()
            if evaluate_now and cfg["keep_snapshots"]:
                (out.path / "snapshots").mkdir(exist_ok=True)
                save_checkpoint(out.path / "snapshots" / f"{mode}-{seen:08d}.npz", spec, runner.export(state), meta)
    bar.close()
    res = {"test_error": curve[-1][1], "reading": spec.reading, "decay_per_step": spec.decay,
           "tau_steps": spec.tau_steps, "steps_per_image": spec.steps_per_image, "train_images": seen,
           "epochs": seen / len(X), "test_images": len(Xt), "engine": cfg["engine"],
           "wall_seconds": round(meta["wall_seconds"], 1), "train_steps": steps,
           "plasticity_delay": cfg["plasticity_delay"]}
    if cfg["engine"] == "brian2":
        if runner.steps:
            res.update(device=cfg["device"], ms_per_step=1e3 * runner.sim_seconds / runner.steps,
                       compile_seconds=round(runner.net.build_seconds, 1))
    else:
        res.update(batch=cfg["batch"], backend=cfg["backend"])
    return res, np.array(curve)


def _write_metrics(curves: dict, n_train: int, out) -> None:
    out.write_csv("metrics.csv", [{"algorithm": m, "epoch": round(seen / n_train, 4), "images": int(seen),
                                   "test_error": err} for m, c in curves.items() for seen, err in c])


def _figure(curves: dict, out) -> None:
    fig, ax = plotting.new_axes()
    for mode, c in curves.items():
        plotting.plot_curve(ax, c[:, 0], 100 * c[:, 1], mode, marker="o", markersize=3)
    ax.set(yscale="log", xlabel="training images", ylabel="test error (%)", title="Fig. 4 — spiking network")
    ax.legend(frameon=False, fontsize=8)
    out.savefig(fig, "test_error.png")
    plotting.close(fig)
