"""Fig. 5 — how feedback alignment works: a 20-1000-20 network learning a quadratic target.

Tanh hidden units, linear outputs, online learning from small initial weights. Recorded every
`train.eval_every` examples: test NSE, the angle between the forward weights W (hidden → output)
and the fixed feedback B that stands in for them (the paper's W vs Bᵀ, Fig. 5a), and the mean angle
between δ_FA and δ_BP over the last examples. The control `fa_frozen_w0` learns only the output
layer with FA's settings: what the hidden layer contributes (Fig. 5c).
"""

from __future__ import annotations

import numpy as np

from spikefa import config, metrics, plotting
from spikefa.data.synthetic import QuadraticTask
from spikefa.errors import check_finite, layers
from spikefa.rate.network import Network, regression_network
from spikefa.seeds import stream

ALGORITHMS = ("fa", "bp", "fa_frozen_w0")


def validate(cfg: dict) -> None:
    algos = cfg["algorithms"]
    config.require_distinct("algorithms", algos, ALGORITHMS)
    config.require_positive_keys(
        cfg,
        ("eta", "init_scale", "feedback_scale", "hidden_units")
        + ("train.examples", "train.eval_every", "test.points"),
    )


def network(cfg: dict, name: str) -> Network:
    etas = [0.0 if name == "fa_frozen_w0" else cfg["eta"], cfg["eta"]]
    sizes, algo = (20, cfg["hidden_units"], 20), "bp" if name == "bp" else "fa"
    return regression_network(sizes, algo, cfg, cfg["seed"], etas)


def train(cfg: dict, task: QuadraticTask, name: str, X_test, Y_test) -> dict:
    net, data = network(cfg, name), stream(cfg["seed"], "data")
    n, every = cfg["train"]["examples"], cfg["train"]["eval_every"]
    c = {
        "examples": [0],
        "test_nse": [metrics.nse(Y_test, net.predict(X_test))],
        "angle_w_b": [net.weight_feedback_angles()[0] if name != "bp" else np.nan],
        "angle_delta": [np.nan],
    }
    for lo in range(0, n, every):
        X, Y = task.sample(data, min(every, n - lo))
        _, angles = net.train(X, Y, angles=True)
        check_finite(layers(net.W), name, f"between examples {lo} and {lo + len(X)}")
        c["examples"].append(lo + len(X))
        c["test_nse"].append(metrics.nse(Y_test, net.predict(X_test)))
        c["angle_w_b"].append(net.weight_feedback_angles()[0] if name != "bp" else np.nan)
        c["angle_delta"].append(float(np.nanmean(angles)) if name != "bp" else np.nan)
    return {k: np.asarray(v, float) for k, v in c.items()}


def run(cfg: dict, out, data_dir=None) -> dict:
    task = QuadraticTask.draw(stream(cfg["seed"], "task"), n_in=20, n_out=20)
    X_test, Y_test = task.sample(stream(cfg["seed"], "test"), cfg["test"]["points"])
    curves = {name: train(cfg, task, name, X_test, Y_test) for name in cfg["algorithms"]}
    results = {}
    for name, c in curves.items():
        results[name] = {"test_nse": float(c["test_nse"][-1])}
        if name != "bp":
            results[name].update(
                angle_deg_w_vs_b_initial=float(c["angle_w_b"][0]),
                angle_deg_w_vs_b_final=float(c["angle_w_b"][-1]),
                angle_deg_final=float(c["angle_delta"][-1]),
            )
    out.write_csv(
        "metrics.csv",
        [
            {"algorithm": a, **{k: float(v[i]) for k, v in c.items()}}
            for a, c in curves.items()
            for i in range(len(c["examples"]))
        ],
    )
    out.write_npz("curves.npz", **{f"{a}_{k}": v for a, c in curves.items() for k, v in c.items()})
    _figures(curves, out)
    return {"results": results, "stats": {}}


def _figures(curves: dict, out) -> None:
    fig, (ax, bx) = plotting.plt.subplots(1, 2, figsize=(9, 3.2))
    for name, c in curves.items():
        colour = "fa" if name.startswith("fa") else name
        style = "--" if "frozen" in name else "-"
        x = np.maximum(c["examples"], 1)
        plotting.plot_curve(ax, x, c["test_nse"], colour, linestyle=style)
        ax.lines[-1].set_label(name)
        if name != "bp":
            bx.plot(
                x,
                c["angle_w_b"],
                color=plotting.COLOURS["fa"],
                linestyle=style,
                label=f"{name}: W vs B",
            )
            bx.plot(
                x, c["angle_delta"], color="0.4", linestyle=style, label=f"{name}: δ_FA vs δ_BP"
            )
    plotting.nse_axes(ax, "20-1000-20, quadratic target")
    bx.axhline(90, color="0.5", linestyle=":", linewidth=0.8)
    bx.set(
        xscale="log",
        ylim=(0, 120),
        yticks=[0, 30, 60, 90, 120],
        xlabel="training examples",
        ylabel="angle (°)",
        title="Fig. 5a — W aligns with B",
    )
    bx.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    out.savefig(fig, "alignment.png")
    plotting.close(fig)
