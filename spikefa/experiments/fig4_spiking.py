"""Fig. 4 — train the spiking FA network on MNIST with either engine, select on validation, test
once.

The experiment checks its config, loads the images (the last `train.validation` training images held
out for validation) and trains each feedback mode in `algorithms` with the training loop
(`spikefa.training_loop`; the spiking network as `spikefa.spiking.loop` trains it), keeping
`metrics.csv` and the figure of the validation error and the alignment angles current at every
measurement, so that a long run can be followed.
"""

from __future__ import annotations

import math

import numpy as np

from spikefa import plotting
from spikefa.data import load_images
from spikefa.data.datasets import check_sizes, is_own_dataset
from spikefa.errors import SpikefaError
from spikefa.spiking.brian import DEVICES, STANDALONE
from spikefa.spiking.loop import training_loop
from spikefa.spiking.recipe import phase_spec, recipe, schedule, spec_for
from spikefa.spiking.spec import FEEDBACK_MODES
from spikefa.spiking.training import BACKENDS
from spikefa.timing import NO_PARTS

__all__ = ["chunk_size", "phase_spec", "run", "schedule", "spec_for", "validate"]


def validate(cfg: dict) -> None:
    bad = [a for a in cfg["algorithms"] if a not in FEEDBACK_MODES]
    if bad or not cfg["algorithms"]:
        raise SpikefaError(
            f"algorithms must name feedback modes from {', '.join(FEEDBACK_MODES)}, got {cfg['algorithms']}"
        )
    if cfg["engine"] not in ("brian2", "fast"):
        raise SpikefaError(f"engine must be brian2 or fast, got {cfg['engine']!r}")
    if cfg["backend"] not in BACKENDS:
        raise SpikefaError(f"backend must be numpy, cupy or torch, got {cfg['backend']!r}")
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
    for mode in cfg["algorithms"]:  # the spec checks its own fields, for every mode and phase
        spec_for(cfg, mode)
        for phase in schedule(cfg):
            phase_spec(cfg, mode, phase)


def chunk_size(cfg: dict, *counts: int) -> int:
    """Images per engine call. Standalone binaries run a fixed length, so there it must divide every
    image count they are shown (training, validation, test): the largest divisor of their gcd not
    above `chunk_images`."""
    want = min(cfg["chunk_images"], counts[0])
    if cfg["engine"] != "brian2" or cfg["device"] not in STANDALONE:
        return want
    g = math.gcd(*counts)
    return max(d for d in range(1, min(want, g) + 1) if g % d == 0)


def recipes(cfg: dict) -> dict[str, dict]:
    """The recipe of each checkpoint a run of `cfg` writes, by its name: what a resume must
    share."""
    return {mode: recipe(cfg, mode) for mode in cfg["algorithms"]}


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
    curves = {}

    def keep_current(mode, curve, names):  # metrics.csv and the figure, of every mode so far
        curves[mode] = (curve, names)
        _write_metrics(curves, len(sets["train"][0]), out)
        _figure(curves, out)

    results = {}
    for mode in cfg["algorithms"]:
        loop = training_loop(cfg, mode, sets, chunk, out, parts, on_measure=[keep_current])
        loop.start(resume)
        results[mode] = loop.run()
    return {"results": results, "stats": {}}


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
    """Validation error, and per hidden layer the two alignment angles: the modulator's to
    backprop's (solid) and the feedback weights' to the forward weights above them, B_l vs w_{l+1}ᵀ
    (dashed)."""
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
