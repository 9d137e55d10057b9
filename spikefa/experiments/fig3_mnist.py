"""Fig. 3a,b and Supp. Fig. 5 — MNIST with a 784-1000-10 sigmoid network (SPEC §2).

Each algorithm trains `runs` networks online (run r uses seed + r: its own forward init, B, masks
and example order; BP and FA of one run start from the same W). Recorded: test error every
`train.eval_every` epochs, the angle between each hidden layer's δ and backprop's on every training
example (summarised in windows), the angle between W and B at the end, and the receptive fields of
100 hidden units of run 0. With `batch` > 1 the networks learn in minibatches (NumPy BLAS, or CuPy
with `backend = "cupy"`) and no δ angles are recorded. Deeper and wider networks are a `sizes` away;
`dataset` may also be fashion-mnist or svhn (3,072 standardised inputs, SPEC §6.4).
"""

from __future__ import annotations

import time

import numpy as np
from tqdm import tqdm

from spikefa import config, plotting
from spikefa.arrays import import_cupy
from spikefa.data import load_images, load_svhn
from spikefa.errors import DivergenceError, SpikefaError
from spikefa.rate.network import ACTIVATIONS, ALGORITHMS, Network
from spikefa.seeds import stream

CHANCE = 0.9
INPUTS = {"mnist": 784, "fashion-mnist": 784, "svhn": 3072}


def validate(cfg: dict) -> None:
    algos, known = cfg["algorithms"], [a for a in ALGORITHMS if a != "node_perturbation"]  # NP: Fig. 2 only
    if not algos or len(set(algos)) != len(algos) or any(a not in known for a in algos):
        raise SpikefaError(f"algorithms must be distinct names from {', '.join(known)}, got {algos}")
    if cfg["dataset"] not in INPUTS:
        raise SpikefaError(f"dataset must be one of {', '.join(INPUTS)}, got {cfg['dataset']!r}")
    sizes, n_in = cfg["sizes"], INPUTS[cfg["dataset"]]
    if len(sizes) < 3 or sizes[0] != n_in or sizes[-1] != 10 or min(sizes) < 1:
        raise SpikefaError(f"sizes must be [{n_in}, hidden..., 10] for {cfg['dataset']} with at least one hidden "
                           f"layer, got {sizes}")
    if cfg["hidden"] not in ACTIVATIONS or cfg["output"] not in ACTIVATIONS:
        raise SpikefaError(f"hidden and output must be among {', '.join(ACTIVATIONS)}")
    if cfg["output_delta"] not in ("e", "mse"):
        raise SpikefaError(f"output_delta must be e or mse, got {cfg['output_delta']!r}")
    if cfg["dtype"] not in ("float32", "float64"):
        raise SpikefaError(f"dtype must be float32 or float64, got {cfg['dtype']!r}")
    positive = {"runs": cfg["runs"], "eta": cfg["eta"], "init_scale": cfg["init_scale"],
                "feedback_scale": cfg["feedback_scale"], "train.epochs": cfg["train"]["epochs"],
                "train.eval_every": cfg["train"]["eval_every"], "angle.window": cfg["angle"]["window"]}
    config.require_positive(positive)
    at_least_zero = {"weight_decay": cfg["weight_decay"], "train.images": cfg["train"]["images"],
                     "test.images": cfg["test"]["images"]}
    config.require_positive(at_least_zero, allow_zero=True)
    if cfg["batch"] < 1:
        raise SpikefaError(f"batch must be at least 1, got {cfg['batch']}")
    if cfg["backend"] not in ("numpy", "cupy") or (cfg["backend"] == "cupy" and cfg["batch"] == 1):
        raise SpikefaError(f"backend must be numpy, or cupy with batch > 1 (online learning runs on the CPU), "
                           f"got {cfg['backend']!r} with batch {cfg['batch']}")
    if not 0 <= cfg["sparsity"] < 1:
        raise SpikefaError(f"sparsity must be in [0, 1), got {cfg['sparsity']}")


def make_network(cfg: dict, algorithm: str, seed: int) -> Network:
    return Network(cfg["sizes"], algorithm, stream(seed, "init"), stream(seed, "feedback"), stream(seed, "masks"),
                   hidden=cfg["hidden"], output=cfg["output"], init_scale=cfg["init_scale"],
                   feedback_scale=cfg["feedback_scale"], sparsity=cfg["sparsity"], etas=cfg["eta"],
                   weight_decay=cfg["weight_decay"], output_delta=cfg["output_delta"], dtype=cfg["dtype"])


def error_rate(net: Network, X: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(net.predict(X), axis=1) != labels))


def train_run(cfg: dict, net: Network, X, Y, X_test, y_test, seed: int, bar=None) -> dict:
    """Training (online, or in minibatches of `batch`) over `train.epochs` reshuffled epochs; returns
    the curves of one run."""
    n, epochs, window = len(X), cfg["train"]["epochs"], cfg["angle"]["window"]
    chunk = max(1, int(round(cfg["train"]["eval_every"] * n)))
    batch = cfg["batch"]
    with_angles = batch == 1 and net.L > 1 and net.algorithm not in ("bp", "shallow")  # their δ is backprop's
    points, errors, angle_windows = [0], [error_rate(net, X_test, y_test)], []
    seen, start = 0, time.perf_counter()
    for epoch in range(int(np.ceil(epochs))):
        order = stream(seed, "order", epoch).permutation(n)[:int(round(min(1.0, epochs - epoch) * n))]
        for lo in range(0, len(order), chunk):
            idx = order[lo:lo + chunk]
            if batch > 1:
                net.train_batch(X[idx], Y[idx], batch)
            else:
                _, angles = net.train(X[idx], Y[idx], angles=with_angles)
            if not all(np.isfinite(w).all() for w in net.W):
                raise DivergenceError(f"{net.algorithm} diverged (NaN/inf weights) after {seen} examples; lower eta")
            if with_angles:
                k = len(angles) // window * window
                angle_windows.append(angles[:k].reshape(-1, window, angles.shape[1]))
            seen += len(idx)
            points.append(seen)
            errors.append(error_rate(net, X_test, y_test))
            if bar is not None:
                bar.update(len(idx))
                bar.set_postfix(test_error=f"{errors[-1]:.4f}")
    train_seconds = time.perf_counter() - start
    aw = np.concatenate(angle_windows) if angle_windows else np.zeros((0, window, max(net.L - 1, 1)))
    return {"examples": np.array(points), "test_error": np.array(errors), "seconds": train_seconds,
            "angle_mean": np.nanmean(aw, axis=1) if len(aw) else aw[:, 0],
            "angle_sd": np.nanstd(aw, axis=1) if len(aw) else aw[:, 0]}


def run(cfg: dict, out, data_dir=None) -> dict:
    data = load_svhn(data_dir) if cfg["dataset"] == "svhn" else load_images(cfg["dataset"], data_dir)
    n_train = cfg["train"]["images"] or len(data.train_x)
    n_test = cfg["test"]["images"] or len(data.test_x)
    dt = cfg["dtype"]
    X, labels = data.train_x[:n_train].astype(dt), data.train_y[:n_train]
    Y = np.eye(10, dtype=dt)[labels]
    X_test, y_test = data.test_x[:n_test].astype(dt), data.test_y[:n_test]
    runs, curves, fields = cfg["runs"], {}, {}
    total = int(round(cfg["train"]["epochs"] * n_train)) * runs
    fields["initial"] = make_network(cfg, cfg["algorithms"][0], cfg["seed"]).W[1].copy()
    for algo in cfg["algorithms"]:
        curves[algo] = []
        with tqdm(total=total, desc=algo, unit="ex", leave=False, mininterval=1.0) as bar:
            for r in range(runs):
                net = make_network(cfg, algo, cfg["seed"] + r)
                if cfg["backend"] == "cupy":
                    net.to(import_cupy())
                c = train_run(cfg, net, X, Y, X_test, y_test, cfg["seed"] + r, bar)
                net.to(np)
                c["weight_feedback_angles"] = net.weight_feedback_angles()
                curves[algo].append(c)
                if r == 0:
                    fields[algo] = net.W[1].copy()
    results = {a: summarise(cfg, cs, n_train) for a, cs in curves.items()}
    rows = [{"algorithm": a, "run": r, "epoch": k / n_train, "examples": int(k), "test_error": float(e)}
            for a, cs in curves.items() for r, c in enumerate(cs) for k, e in zip(c["examples"], c["test_error"])]
    out.write_csv("metrics.csv", rows)
    out.write_npz("curves.npz", **{f"{a}_run{r}_{k}": np.asarray(v) for a, cs in curves.items()
                                   for r, c in enumerate(cs) for k, v in c.items() if k != "seconds"},
                  **{f"fields_{k}": v for k, v in fields.items()})
    _figures(cfg, curves, fields, n_train, out)
    stats = {}
    if "bp" in curves:
        mean_bp = np.mean([c["test_error"] for c in curves["bp"]], axis=0)
        stats["bp_best_epoch"] = float(curves["bp"][0]["examples"][int(np.argmin(mean_bp))] / n_train)
    return {"results": results, "stats": stats}


def summarise(cfg: dict, cs: list, n_train: int) -> dict:
    final = np.array([c["test_error"][-1] for c in cs])
    seconds = np.array([c["seconds"] for c in cs])
    out = {"test_error": float(final.mean()), "test_error_sd": float(final.std(ddof=1)) if len(cs) > 1 else 0.0,
           "test_errors": final.tolist(), "runs": len(cs), "epochs": cfg["train"]["epochs"],
           "train_seconds_per_run": float(seconds.mean()),
           "examples_per_s": float(cfg["train"]["epochs"] * n_train / seconds.mean())}
    tail = [c["angle_mean"][-max(1, len(c["angle_mean"]) // 10):] for c in cs if len(c["angle_mean"])]
    if tail:  # mean over the last tenth of training, per hidden layer (bottom first)
        per_layer = np.nanmean(np.concatenate(tail), axis=0)
        out["angle_deg_final"] = float(per_layer[-1])
        out["angle_deg_final_per_layer"] = per_layer.tolist()
    if cs[0]["weight_feedback_angles"]:
        out["angle_deg_w_vs_b_final"] = float(np.mean([c["weight_feedback_angles"][-1] for c in cs]))
    return out


def _figures(cfg: dict, curves: dict, fields: dict, n_train: int, out) -> None:
    fig, ax = plotting.new_axes()
    for a, cs in curves.items():
        plotting.plot_curve(ax, cs[0]["examples"] / n_train, 100 * np.mean([c["test_error"] for c in cs], axis=0), a)
    ax.axhline(100 * CHANCE, color="0.5", linestyle="--", linewidth=0.8)
    ax.set(yscale="log", xlabel="epochs", ylabel="test error (%)", title=f"Fig. 3a — {'-'.join(map(str, cfg['sizes']))}")
    ax.legend(frameon=False, fontsize=8)
    out.savefig(fig, "test_error.png")
    plotting.close(fig)

    banded = [a for a, cs in curves.items() if len(cs[0]["angle_mean"])]
    if banded:
        fig, ax = plotting.new_axes()
        w = cfg["angle"]["window"]
        for a in banded:
            c = curves[a][0]
            x = (np.arange(len(c["angle_mean"])) + 1) * w / n_train
            plotting.plot_angle_band(ax, x, c["angle_mean"][:, -1], c["angle_sd"][:, -1], a, n_sd=1.0,
                                     label=f"{a} (windows of {w}, ±1 SD)")
        ax.set(xlabel="epochs", title="Fig. 3b — top hidden layer")
        ax.legend(frameon=False, fontsize=8)
        out.savefig(fig, "angle.png")
        plotting.close(fig)

    units = stream(cfg["seed"], "figures").choice(cfg["sizes"][1], size=min(100, cfg["sizes"][1]), replace=False)
    shape = (32, 32, 3) if cfg["dataset"] == "svhn" else (28, 28)
    fig = plotting.receptive_fields({k: v[:, units] for k, v in fields.items()}, shape)
    out.savefig(fig, "receptive_fields.png")
    plotting.close(fig)
