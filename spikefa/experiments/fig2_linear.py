"""Fig. 2a,b — linear function approximation with a 30-20-10 network.

Four algorithms learn the same fixed target T from the same example stream, starting from the
same forward weights: shallow (only W learns), node perturbation, backprop and feedback alignment —
each the rate engine's `Network` rule on a linear network without biases (h = W0 x, y = W h).
Recorded: test NSE on held-out points every `train.eval_every` examples; for FA, the angle between
δ_FA = B e and δ_BP = Wᵀ e on every training example and, at every evaluation, its mean over the
held-out points (a low-noise version of the same curve).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from spikefa import config, metrics, plotting
from spikefa.data.synthetic import LinearTask
from spikefa.errors import SpikefaError, check_finite
from spikefa.rate.network import Network
from spikefa.seeds import stream

ALGORITHMS = ("shallow", "node_perturbation", "bp", "fa")
NSE_LEVELS = (1e-2, 1e-3)
MILESTONES = (1000, 3000, 10000, 20000, 50000)


@dataclass
class Setup:
    """Everything every algorithm shares: task, data stream, held-out set, initial weights, B, and
    the seed of node perturbation's ξ."""

    seed: int
    task: LinearTask
    X: np.ndarray
    Y: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray
    W0: np.ndarray
    W: np.ndarray
    B: np.ndarray


@dataclass
class Curve:
    examples: np.ndarray  # evaluation points (0 = before training)
    test_nse: np.ndarray
    test_angle: np.ndarray  # FA: mean angle over held-out points; NaN otherwise
    angles: np.ndarray  # FA: angle on each training example; NaN otherwise
    W0: np.ndarray
    W: np.ndarray


def validate(cfg: dict) -> None:
    config.require_distinct("algorithms", cfg["algorithms"], ALGORITHMS)
    if len(cfg["sizes"]) != 3 or min(cfg["sizes"]) < 1:
        raise SpikefaError(
            f"sizes must be three positive layer sizes [in, hidden, out], got {cfg['sizes']}"
        )
    config.require_positive_keys(
        cfg,
        ("train.examples", "train.eval_every", "test.points", "init_scale", "feedback_scale")
        + ("node_perturbation.sigma", "node_perturbation.lr_hidden")
        + ("angle.window", "angle.final_examples")
        + tuple(f"lr.{a}" for a in ALGORITHMS),
    )


def make_setup(cfg: dict) -> Setup:
    seed, (n_in, n_h, n_out) = cfg["seed"], cfg["sizes"]
    task = LinearTask.draw(stream(seed, "task"), n_in, n_out)
    X, Y = task.sample(stream(seed, "data"), cfg["train"]["examples"])
    X_test, Y_test = task.sample(stream(seed, "test"), cfg["test"]["points"])
    init, w = stream(seed, "init"), cfg["init_scale"]
    W0, W = init.uniform(-w, w, (n_h, n_in)), init.uniform(-w, w, (n_out, n_h))
    B = stream(seed, "feedback").uniform(
        -cfg["feedback_scale"], cfg["feedback_scale"], (n_h, n_out)
    )
    return Setup(seed, task, X, Y, X_test, Y_test, W0, W, B)


def _test_angle(s: Setup, W: np.ndarray, E: np.ndarray) -> float:
    return float(np.mean(metrics.row_angles_deg(E @ s.B.T, E @ W)))


def train(
    s: Setup,
    algo: str,
    lr: float,
    lr_hidden: float | None = None,
    sigma: float = 1.0,
    eval_every: int = 100,
    progress: bool = False,
) -> Curve:
    """Train one algorithm online over the whole stream; raise DivergenceError on NaN/inf. Node
    perturbation's ξ comes from the seed's "perturbation" stream."""
    n, (n_h, n_in), n_out = len(s.X), s.W0.shape, s.W.shape[0]
    unused = np.random.default_rng(0)  # the network's own draws are replaced by the setup's weights
    net = Network(
        (n_in, n_h, n_out),
        algo,
        unused,
        unused,
        hidden="linear",
        output="linear",
        etas=(lr if lr_hidden is None else lr_hidden, lr),
        sigma=sigma,
        bias=False,
        perturbation_rng=stream(s.seed, "perturbation"),
    )
    net.W[1][...], net.W[2][...] = s.W0.T, s.W.T  # the network stores weights pre × post
    if algo == "fa":
        net.B[1] = s.B.copy()
    W0, W = net.W[1].T, net.W[2].T  # views: the paper's layout
    angles = np.full(n, np.nan)
    points, nses, test_angles = [], [], []

    def evaluate(k):
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is caught just below
            y = s.X_test @ W0.T @ W.T
            points.append(k)
            nses.append(metrics.nse(s.Y_test, y))
            E = s.Y_test - y
            test_angles.append(_test_angle(s, W, E) if algo == "fa" else np.nan)

    evaluate(0)
    bar = tqdm(total=n, desc=algo, unit="ex", disable=None if progress else True, leave=False)
    for start in range(0, n, eval_every):
        stop = min(start + eval_every, n)
        _, chunk_angles = net.train(s.X[start:stop], s.Y[start:stop], angles=algo == "fa")
        if algo == "fa":
            angles[start:stop] = chunk_angles[:, 0]
        check_finite(
            {"W0 (hidden layer)": W0, "W (output layer)": W},
            algo,
            f"between examples {start} and {stop}",
        )
        evaluate(stop)
        bar.update(stop - start)
    bar.close()
    return Curve(
        np.array(points), np.array(nses), np.array(test_angles), angles, W0.copy(), W.copy()
    )


def lr_of(cfg: dict, algo: str) -> dict:
    """Keyword arguments of `train` for `algo` from the config."""
    kw = {"lr": cfg["lr"][algo], "eval_every": cfg["train"]["eval_every"]}
    if algo == "node_perturbation":
        kw.update(
            lr_hidden=cfg["node_perturbation"]["lr_hidden"], sigma=cfg["node_perturbation"]["sigma"]
        )
    return kw


def summarise(cfg: dict, s: Setup, algo: str, c: Curve) -> dict:
    out = {
        "test_nse": float(c.test_nse[-1]),
        "test_nse_at": {
            str(m): float(c.test_nse[c.examples == m][0]) for m in MILESTONES if m in c.examples
        },
    }
    for level in NSE_LEVELS:
        out[f"examples_to_nse_{level:g}"] = metrics.first_reaching(c.examples, c.test_nse, level)
    out.update({k: v for k, v in lr_of(cfg, algo).items() if k != "eval_every"})
    if algo == "fa":
        final = c.angles[-cfg["angle"]["final_examples"] :]
        E0 = s.Y_test - s.X_test @ s.W0.T @ s.W.T
        out.update(
            angle_deg_initial=_test_angle(s, s.W, E0),
            angle_deg_first_window=float(np.mean(c.angles[: cfg["angle"]["window"]])),
            angle_deg_final=float(np.mean(final)),
            angle_final_sd_deg=float(np.std(final)),
            angle_deg_test_final=float(c.test_angle[-1]),
        )
    return out


def run(cfg: dict, out, data_dir=None) -> dict:
    """Train every configured algorithm and write metrics, curves and figures (no data files
    needed)."""
    s = make_setup(cfg)
    curves = {a: train(s, a, progress=True, **lr_of(cfg, a)) for a in cfg["algorithms"]}
    results = {a: summarise(cfg, s, a, c) for a, c in curves.items()}

    rows = []
    for a, c in curves.items():
        for k, v, ang in zip(c.examples, c.test_nse, c.test_angle):
            rows.append(
                {
                    "algorithm": a,
                    "examples": int(k),
                    "test_nse": float(v),
                    "angle_deg_test": "" if np.isnan(ang) else float(ang),
                }
            )
    out.write_csv("metrics.csv", rows)
    out.write_npz(
        "curves.npz",
        **{
            f"{a}_{f}": getattr(c, f)
            for a, c in curves.items()
            for f in ("examples", "test_nse", "test_angle", "angles", "W0", "W")
        },
        T=s.task.T,
        B=s.B,
    )
    _figures(cfg, curves, out)

    stats = {}
    if {"fa", "node_perturbation"} <= set(results):
        n_fa, n_np = (results[a]["examples_to_nse_0.01"] for a in ("fa", "node_perturbation"))
        stats["np_over_fa_examples_to_nse_0.01"] = n_np / n_fa if n_fa and n_np else None
    return {"results": results, "stats": stats}


def _figures(cfg: dict, curves: dict, out) -> None:
    fig, ax = plotting.new_axes()
    for a, c in curves.items():
        plotting.plot_curve(ax, np.maximum(c.examples, 1), c.test_nse, a)
    plotting.nse_axes(ax, "Fig. 2a — linear 30-20-10")
    ax.set_ylim(bottom=max(1e-8, ax.get_ylim()[0]))
    out.savefig(fig, "nse.png")
    plotting.close(fig)

    if "fa" in curves:
        c, w = curves["fa"], cfg["angle"]["window"]
        mean, sd = metrics.window_stats(c.angles, w)
        x = (np.arange(len(mean)) + 1) * w
        fig, ax = plotting.new_axes()
        plotting.plot_angle_band(
            ax, x, mean, sd, "fa", label=f"training examples (windows of {w}, ±2 SD)"
        )
        ax.plot(
            np.maximum(c.examples, 1), c.test_angle, color="k", linewidth=1, label="held-out mean"
        )
        ax.set(xscale="log", xlabel="training examples", title="Fig. 2b — FA vs BP modulator")
        ax.legend(frameon=False, fontsize=8, loc="lower left")
        out.savefig(fig, "angle.png")
        plotting.close(fig)
