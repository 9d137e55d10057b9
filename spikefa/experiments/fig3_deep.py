"""Fig. 3c,d — does feedback alignment use depth? 30-20-10 vs 30-20-10-10 students.

A fixed 30-20-10-10 tanh teacher (linear outputs, biases) makes the targets. Students with one
(depth 3) or two (depth 4) tanh hidden layers learn it online from one shared example stream;
`runs` students per condition (run r: its own initial weights and B from seed + r; BP and FA of one
run start from the same weights). Conditions are named algorithm + depth (bp3, fa4, …); the control
`fa4_frozen_w0` is 4-layer FA whose first layer never learns (the paper's Supp. Notes 2-3).
Statistics: two-sample t-tests on the final test NSE, Student and Welch.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as sstats
from tqdm import tqdm

from spikefa import config, metrics, plotting
from spikefa.data.synthetic import TanhTeacher
from spikefa.errors import SpikefaError, check_finite, layers
from spikefa.rate.network import Network, regression_network
from spikefa.seeds import stream

ALGORITHMS = ("shallow", "bp", "fa")
STUDENTS = {3: (30, 20, 10), 4: (30, 20, 10, 10)}


def conditions(cfg: dict) -> list[str]:
    names = [f"{a}{d}" for d in cfg["depths"] for a in cfg["algorithms"]]
    return names + (["fa4_frozen_w0"] if cfg["frozen_control"] else [])


def validate(cfg: dict) -> None:
    algos, depths = cfg["algorithms"], cfg["depths"]
    config.require_distinct("algorithms", algos, ALGORITHMS)
    if not depths or any(d not in STUDENTS for d in depths):
        raise SpikefaError(f"depths must be a list of 3 and/or 4, got {depths}")
    config.require_positive_keys(
        cfg,
        ("runs", "eta", "init_scale", "feedback_scale", "teacher_scale")
        + ("train.examples", "train.eval_every", "test.points"),
    )


def student(cfg: dict, name: str, seed: int) -> Network:
    algo, depth = ("fa", 4) if name == "fa4_frozen_w0" else (name[:-1], int(name[-1]))
    etas = [cfg["eta"]] * (depth - 1)
    if name == "fa4_frozen_w0":
        etas[0] = 0.0
    return regression_network(STUDENTS[depth], algo, cfg, seed, etas)


def train_student(
    cfg: dict, net: Network, teacher: TanhTeacher, X_test, Y_test, name: str
) -> tuple:
    """Online over the shared stream (redrawn chunk by chunk from the "data" stream); NSE curve."""
    n, every = cfg["train"]["examples"], cfg["train"]["eval_every"]
    data = stream(cfg["seed"], "data")
    points, nses = [0], [metrics.nse(Y_test, net.predict(X_test))]
    for lo in range(0, n, every):
        X, Y = teacher.sample(data, min(every, n - lo))
        net.train(X, Y)
        check_finite(layers(net.W), name, f"between examples {lo} and {lo + len(X)}")
        points.append(lo + len(X))
        nses.append(metrics.nse(Y_test, net.predict(X_test)))
    return np.array(points), np.array(nses)


def run(cfg: dict, out, data_dir=None) -> dict:
    teacher = TanhTeacher.draw(stream(cfg["seed"], "task"), scale=cfg["teacher_scale"])
    X_test, Y_test = teacher.sample(stream(cfg["seed"], "test"), cfg["test"]["points"])
    names, runs = conditions(cfg), cfg["runs"]
    curves = {}
    with tqdm(total=len(names) * runs, desc="students", unit="run", leave=False) as bar:
        for name in names:
            curves[name] = []
            for r in range(runs):
                curves[name].append(
                    train_student(
                        cfg, student(cfg, name, cfg["seed"] + r), teacher, X_test, Y_test, name
                    )
                )
                bar.update(1)
    final = {k: np.array([c[1][-1] for c in cs]) for k, cs in curves.items()}
    results = {
        k: {
            "test_nse": float(v.mean()),
            "test_nse_sd": float(v.std(ddof=1)) if runs > 1 else 0.0,
            "test_nses": v.tolist(),
            "runs": runs,
        }
        for k, v in final.items()
    }
    out.write_csv(
        "metrics.csv",
        [
            {"condition": k, "run": r, "examples": int(x), "test_nse": float(v)}
            for k, cs in curves.items()
            for r, (xs, vs) in enumerate(cs)
            for x, v in zip(xs, vs)
        ],
    )
    out.write_npz(
        "curves.npz",
        **{f"{k}_nse": np.array([c[1] for c in cs]) for k, cs in curves.items()},
        examples=next(iter(curves.values()))[0][0],
    )
    _figure(curves, out)
    return {"results": results, "stats": _tests(final) if runs > 1 else {}}


def _tests(final: dict) -> dict:
    """p-values of 'the first condition has a lower final NSE than the second' (two-sided tests)."""
    out = {}
    for a, b in (("bp4", "bp3"), ("fa4", "fa3"), ("fa4", "fa4_frozen_w0")):
        if a in final and b in final:
            out[f"{a}_vs_{b}_p"] = float(sstats.ttest_ind(final[a], final[b]).pvalue)
            out[f"{a}_vs_{b}_welch_p"] = float(
                sstats.ttest_ind(final[a], final[b], equal_var=False).pvalue
            )
            out[f"{a}_better_than_{b}"] = bool(final[a].mean() < final[b].mean())
    return out


def _figure(curves: dict, out) -> None:
    fig, ax = plotting.new_axes()
    for name, cs in curves.items():
        x = np.maximum(cs[0][0], 1)
        colour = (
            name if name in ("bp4", "fa4") else "fa4" if "frozen" in name else name[:-1]
        )  # the paper's
        plotting.plot_curve(
            ax,
            x,
            np.mean([c[1] for c in cs], axis=0),
            colour,
            linestyle="--" if "frozen" in name else "-",
        )
        ax.lines[-1].set_label(name)
    plotting.nse_axes(ax, "Fig. 3d — 30-20-10 vs 30-20-10-10", "test NSE (mean over runs)")
    out.savefig(fig, "nse.png")
    plotting.close(fig)
