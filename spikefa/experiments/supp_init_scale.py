"""Initial scale and pseudo-backprop (arXiv Fig. 4): the linear 30-20-10 task of Fig. 2
learnt by FA from initial weights U[−ω, ω] for a range of ω.

Recorded every `train.eval_every` examples, on the held-out points: NSE, and the mean angle between
FA's hidden δ = B e and (i) backprop's Wᵀe, (ii) pseudo-backprop's W⁺e (Moore-Penrose inverse of
the hidden → output weights). The claim: from small weights, W comes to act like a pseudo-inverse
of B, so δ_FA ends closer to pseudo-backprop than to backprop.
"""

from __future__ import annotations

import numpy as np

from spikefa import config, metrics, plotting
from spikefa.data.synthetic import LinearTask
from spikefa.errors import SpikefaError, check_finite, layers
from spikefa.rate.network import Network
from spikefa.seeds import stream


def validate(cfg: dict) -> None:
    if len(cfg["sizes"]) != 3 or min(cfg["sizes"]) < 1:
        raise SpikefaError(
            f"sizes must be three positive layer sizes [in, hidden, out], got {cfg['sizes']}"
        )
    if not cfg["init_scales"] or min(cfg["init_scales"]) <= 0:
        raise SpikefaError(
            f"init_scales must be a list of positive numbers, got {cfg['init_scales']}"
        )
    config.require_positive_keys(
        cfg, ("eta", "feedback_scale", "train.examples", "train.eval_every", "test.points")
    )


def held_out_angles(net: Network, E: np.ndarray) -> tuple[float, float]:
    """Mean folded angles of δ_FA = B e to Wᵀe (backprop) and to W⁺e (pseudo-backprop) over rows of
    E. Weights are stored pre × post, so the paper's W is net.W[2]ᵀ and Wᵀe is net.W[2] e."""
    W, B = net.W[2].T, net.B[1]
    d_fa = E @ B.T
    d_bp = E @ W
    d_pbp = E @ np.linalg.pinv(W).T
    return float(np.nanmean(metrics.row_angles_deg(d_fa, d_bp))), float(
        np.nanmean(metrics.row_angles_deg(d_fa, d_pbp))
    )


def train(cfg: dict, task: LinearTask, omega: float, X_test, Y_test) -> dict:
    net = Network(
        tuple(cfg["sizes"]),
        "fa",
        stream(cfg["seed"], "init"),
        stream(cfg["seed"], "feedback"),
        hidden="linear",
        output="linear",
        init_scale=omega,
        feedback_scale=cfg["feedback_scale"],
        etas=cfg["eta"],
        dtype="float64",
    )
    data, n, every = (
        stream(cfg["seed"], "data"),
        cfg["train"]["examples"],
        cfg["train"]["eval_every"],
    )
    c = {"examples": [], "test_nse": [], "angle_bp": [], "angle_pbp": []}

    def record(k):
        Y = net.predict(X_test)
        bp, pbp = held_out_angles(net, Y_test - Y)
        for key, v in zip(c, (k, metrics.nse(Y_test, Y), bp, pbp)):
            c[key].append(v)

    record(0)
    for lo in range(0, n, every):
        X, Y = task.sample(data, min(every, n - lo))
        net.train(X, Y)
        check_finite(layers(net.W), f"ω = {omega}", f"between examples {lo} and {lo + len(X)}")
        record(lo + len(X))
    return {k: np.asarray(v, float) for k, v in c.items()}


def run(cfg: dict, out, data_dir=None) -> dict:
    task = LinearTask.draw(stream(cfg["seed"], "task"), cfg["sizes"][0], cfg["sizes"][2])
    X_test, Y_test = task.sample(stream(cfg["seed"], "test"), cfg["test"]["points"])
    curves = {w: train(cfg, task, w, X_test, Y_test) for w in cfg["init_scales"]}
    last = max(
        1, len(next(iter(curves.values()))["examples"]) // 10
    )  # the last tenth of the evaluations
    results = {
        f"omega_{w:g}": {
            "init_scale": w,
            "test_nse": float(c["test_nse"][-1]),
            "angle_deg_to_bp_final": float(np.mean(c["angle_bp"][-last:])),
            "angle_deg_to_pseudo_bp_final": float(np.mean(c["angle_pbp"][-last:])),
        }
        for w, c in curves.items()
    }
    for r in results.values():
        r["closer_to_pseudo_bp"] = r["angle_deg_to_pseudo_bp_final"] < r["angle_deg_to_bp_final"]
    out.write_csv(
        "metrics.csv",
        [
            {"init_scale": w, **{k: float(v[i]) for k, v in c.items()}}
            for w, c in curves.items()
            for i in range(len(c["examples"]))
        ],
    )
    out.write_npz(
        "curves.npz", **{f"omega_{w:g}_{k}": v for w, c in curves.items() for k, v in c.items()}
    )
    _figure(curves, out)
    return {"results": results, "stats": {}}


def _figure(curves: dict, out) -> None:
    fig, axes = plotting.plt.subplots(1, 3, figsize=(11, 3.2))
    colours = plotting.plt.cm.coolwarm(np.linspace(0, 1, len(curves)))
    for colour, (w, c) in zip(colours, curves.items()):
        x = c["examples"]
        axes[0].plot(x, c["test_nse"], color=colour, label=f"ω = {w:g}")
        axes[1].plot(x, c["angle_bp"], color=colour)
        axes[2].plot(x, c["angle_pbp"], color=colour)
    axes[0].set(yscale="log", ylabel="test NSE")
    axes[1].set(ylabel="angle δ_FA vs Wᵀe (°)")
    axes[2].set(ylabel="angle δ_FA vs W⁺e (°)")
    for ax in axes:
        ax.set(xlabel="training examples")
    for ax in axes[1:]:
        ax.set(ylim=(0, 95), yticks=[0, 30, 60, 90])
    axes[0].legend(frameon=False, fontsize=6)
    fig.tight_layout()
    out.savefig(fig, "init_scale.png")
    plotting.close(fig)
