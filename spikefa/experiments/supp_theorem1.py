"""Supplementary: Theorem 1 and the 1-1-1 flow field (linear FA in the batch limit).

Each run draws a target T and a feedback matrix B and integrates the batch-limit ODE of linear FA,
dW/dt = E Aᵀ, dA/dt = B E with E = T − W A, from A = W = 0. Recorded: the error ‖E‖ relative to its
start over time, the largest entry of the invariant B W + Wᵀ Bᵀ − A Aᵀ (0 at the start, so it must
stay 0), and whether B⁺B = I (the theorem's condition). The 1-1-1 network's flow field (T = B = 1)
and its trajectory from A = W = 0 are drawn beside them.
"""

from __future__ import annotations

import numpy as np

from spikefa import config, plotting
from spikefa.errors import SpikefaError
from spikefa.rate.theory import fa_linear_ode, invariant, plot_flow_field
from spikefa.seeds import stream


def validate(cfg: dict) -> None:
    sizes = cfg["sizes"]
    if len(sizes) != 3 or min(sizes) < 1:
        raise SpikefaError(f"sizes must be [inputs, hidden, outputs], got {sizes}")
    config.require_positive(
        {
            "runs": cfg["runs"],
            "target_scale": cfg["target_scale"],
            "feedback_scale": cfg["feedback_scale"],
            "t_end": cfg["t_end"],
        }
    )


def run(cfg: dict, out, data_dir=None) -> dict:
    n_in, n_h, n_out = cfg["sizes"]
    curves, final, drift, full_rank = [], [], [], []
    for r in range(cfg["runs"]):
        rng = stream(cfg["seed"] + r, "task")
        T = rng.uniform(-cfg["target_scale"], cfg["target_scale"], (n_out, n_in))
        B = stream(cfg["seed"] + r, "feedback").uniform(
            -cfg["feedback_scale"], cfg["feedback_scale"], (n_h, n_out)
        )
        t, A, W = fa_linear_ode(
            T, B, np.zeros((n_h, n_in)), np.zeros((n_out, n_h)), t_end=cfg["t_end"], n_points=200
        )
        err = np.linalg.norm(T - W @ A, axis=(1, 2)) / np.linalg.norm(T)
        curves.append(err)
        final.append(float(err[-1]))
        drift.append(float(max(np.abs(invariant(B, a, w)).max() for a, w in zip(A, W))))
        full_rank.append(bool(np.allclose(np.linalg.pinv(B) @ B, np.eye(n_out), atol=1e-8)))
    fig, (ax0, ax1) = plotting.plt.subplots(1, 2, figsize=(8.4, 3.6))
    for err in curves:
        ax0.plot(
            t, np.maximum(err, 1e-16), color=plotting.COLOURS.get("fa"), alpha=0.4, linewidth=0.8
        )
    ax0.set(
        yscale="log",
        xlabel="time (batch limit)",
        ylabel="‖E‖ / ‖T‖",
        title=f"{'-'.join(map(str, cfg['sizes']))}, {cfg['runs']} problems",
    )
    _, (a, w) = plot_flow_field(ax1)
    fig.tight_layout()
    out.savefig(fig, "theorem1.png")
    plotting.close(fig)
    out.write_csv(
        "metrics.csv",
        [
            {"run": r, "time": float(x), "relative_error": float(e)}
            for r, c in enumerate(curves)
            for x, e in zip(t, c)
        ],
    )
    final_a = np.array(final)
    results = {
        "fa": {
            "final_relative_error": float(final_a.max()),
            "final_relative_errors": final,
            "invariant_max": float(max(drift)),
            "b_full_column_rank": all(full_rank),
            "runs": cfg["runs"],
        },
        "flow_field": {"a_end": a, "w_end": w, "a_times_w_end": a * w},
    }
    return {"results": results, "stats": {}}
